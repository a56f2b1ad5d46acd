"""Stage-1 inputs: the validated OHLCV panel and the economic series (VIX with its proxy, rates)."""


from dagster import AssetExecutionContext, AssetIn, DataVersion, MetadataValue, Output, asset

from scenarios_assets.core.data.market import MarketData, build_economic, read_economic
from scenarios_assets.defs.automation import market_data_condition
from scenarios_assets.defs.keys import ECONOMIC_KEY, MARKET_KEY, OWNERS, STAGE1_OHLCV_KEY
from scenarios_assets.defs.resources import ScenarioSettings


@asset(
    key=MARKET_KEY,
    group_name="market_data",
    # Across code locations: stage 1's asset (stage1_example/, README "Automation"); eager after it.
    deps=[STAGE1_OHLCV_KEY],
    automation_condition=market_data_condition(),
    kinds={"pandas", "parquet", "postgres"},
    owners=OWNERS,
    description="Daily OHLCV of the universe from the configured source (default: bundled real data), validated "
    "and aligned into a close/volume panel. Its data version is a content hash of the rows.",
)
def ohlcv(context: AssetExecutionContext, settings: ScenarioSettings) -> Output[MarketData]:
    market = settings.load_market_data()
    summary = market.summary()
    return Output(
        market,
        data_version=DataVersion(market.data_version),
        metadata={
            "source": market.source,
            "data_version": market.data_version,
            "symbols": MetadataValue.json(summary["symbols"]),
            "num_symbols": len(market.symbols),
            "start_date": summary["start_date"],
            "end_date": summary["end_date"],
            "trading_days": summary["trading_days"],
            "row_count": summary["rows"],
            "observations": summary["observations"],
            "filled_sessions": summary["filled_sessions"],
            "rows_reordered": summary["rows_reordered"],
            "reference_index": str(market.reference.name),
            "load_seconds": market.report.get("load_seconds", 0.0),
        },
    )


@asset(
    key=ECONOMIC_KEY,
    group_name="market_data",
    ins={"market": AssetIn(key=MARKET_KEY)},
    kinds={"pandas", "parquet"},
    owners=OWNERS,
    description="VIX and Treasury yields on the market calendar. VIX gaps are filled with the 21-session "
    "realised volatility of the reference index (annualised, VIX points); `vix_source` says which per date.",
)
def economic(context: AssetExecutionContext, settings: ScenarioSettings, market: MarketData) -> Output:
    frame = build_economic(market, read_economic(settings.economic_data_source()))
    counts = frame["vix_source"].value_counts().to_dict()
    return Output(
        frame,
        metadata={
            "rows": len(frame),
            "vix_days": int(counts.get("vix", 0)),
            "vix_proxy_days": int(counts.get("realised_vol_proxy", 0)),
            "rate_columns": MetadataValue.json([c for c in frame.columns if c.startswith("ust_")]),
            "rates_last_date": str(frame.filter(like="ust_").dropna(how="all").index.max().date())
            if frame.filter(like="ust_").notna().any().any()
            else "none",
        },
    )
