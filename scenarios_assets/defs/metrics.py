"""Stage-3 starter: per-scenario, per-symbol risk metrics of the published build."""



from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from scenarios_assets.core.library.builds import METRICS_FILE
from scenarios_assets.core.library.metrics import load_scenario_metrics
from scenarios_assets.core.library.store import location
from scenarios_assets.defs.automation import downstream_condition
from scenarios_assets.defs.keys import CATALOG_KEY, METRICS_KEY, OWNERS
from scenarios_assets.defs.monitoring import markdown_table, measured


@asset(
    key=METRICS_KEY,
    group_name="metrics",
    ins={"catalog": AssetIn(key=CATALOG_KEY)},
    automation_condition=downstream_condition(),
    kinds={"pandas", "parquet"},
    owners=OWNERS,
    description="Per scenario and symbol: total and annualised return, annualised volatility, max drawdown "
    "(intraday lows counted where the time series has them) and its duration, worst day, worst intraday low, "
    "1-day VaR and CVaR at 95 % and 99 %, skew and excess kurtosis. Computed "
    "from each chunk of paths as it is generated and published with the build as "
    f"{METRICS_FILE} (a dataset partitioned by family and severity; load it with "
    "scenarios_assets.load_scenario_metrics). This asset reads the build the catalog published and reports it.",
)
def scenario_metrics(context: AssetExecutionContext, catalog: dict) -> Output[dict]:
    out = location(catalog["output_dir"])  # a local directory or an fsspec URL
    build = catalog.get("build_id") or ""

    def not_written(reason: str) -> Output[dict]:
        context.log.info(reason)
        return Output({"written": False, "reason": reason, "output_dir": str(out), "build_id": build},
                      metadata={"written": False, "reason": reason, "output_dir": MetadataValue.path(str(out))})

    if catalog.get("dry_run") or not build:
        return not_written("dry run: the catalog published no build, so there are no metrics")
    with measured() as figures:
        try:
            # only the columns shown: a seed-scale build has millions of rows of 26 columns
            frame = load_scenario_metrics(out, build=build, columns=[
                "family", "scenario_id", "symbol", "max_drawdown", "annualised_volatility", "var_99", "cvar_99"])
        except FileNotFoundError:
            return not_written(f"build {build} has no time series (save_timeseries off), so no metrics")
    provenance = frame.attrs["provenance"]
    worst = frame.nlargest(10, "cvar_99")[["scenario_id", "symbol", "max_drawdown", "var_99", "cvar_99"]]
    by_family = (
        frame.groupby("family")[["max_drawdown", "annualised_volatility", "cvar_99"]].median().round(4)
        .reset_index().to_dict("records")
    )
    path = out / "builds" / build / METRICS_FILE
    return Output(
        {"written": True, "path": str(path), "rows": len(frame), **provenance},
        metadata={
            "written": True,
            "path": MetadataValue.path(str(path)),
            "build_id": build,
            "rows": len(frame),
            "scenarios": int(frame["scenario_id"].nunique()),
            "symbols": int(frame["symbol"].nunique()),
            "data_version": provenance["data_version"],
            "config_hash": provenance["config_hash"],
            "catalog_generated_at": provenance["catalog_generated_at"],
            "median_by_family": MetadataValue.md(markdown_table(by_family)),
            "worst_cvar_99": MetadataValue.md(markdown_table(worst.round(4).to_dict("records"))),
            **{f"step_{k}": v for k, v in figures.items()},
        },
    )
