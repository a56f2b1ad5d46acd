"""Stage-3 starter: per-scenario, per-symbol risk metrics of the written catalog."""


from pathlib import Path

from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from scenarios_assets.core.metrics import METRICS_FILE, MetricsInputError, catalog_metrics, write_metrics
from scenarios_assets.core.storage import TIMESERIES_FILE
from scenarios_assets.defs.automation import METRICS_KEY, downstream_condition
from scenarios_assets.defs.monitoring import markdown_table, measured
from scenarios_assets.defs.scenarios import CATALOG_KEY


@asset(
    key=METRICS_KEY,
    group_name="metrics",
    ins={"catalog": AssetIn(key=CATALOG_KEY)},
    automation_condition=downstream_condition(),
    description="Per scenario and symbol: total and annualised return, annualised volatility, max drawdown "
    "and its duration, worst day, 1-day VaR and CVaR at 95 % and 99 %, skew and excess kurtosis, computed "
    f"from the catalog's time series and written atomically as {METRICS_FILE} next to it "
    "(load it with scenarios_assets.load_scenario_metrics).",
)
def scenario_metrics(context: AssetExecutionContext, catalog: dict) -> Output[dict]:
    out = Path(catalog["output_dir"])
    if catalog.get("dry_run"):
        reason = "dry run: the catalog wrote no files, so no metrics were computed or written"
        context.log.info(reason)
        return Output({"written": False, "reason": reason, "output_dir": str(out)},
                      metadata={"written": False, "reason": reason, "output_dir": MetadataValue.path(str(out))})
    if not (out / TIMESERIES_FILE).exists():
        # The catalog was written without time series: metrics of an older build would not match it.
        (out / METRICS_FILE).unlink(missing_ok=True)
        reason = f"the catalog in {out} has no {TIMESERIES_FILE} (save_timeseries off): no metrics written"
        context.log.warning(reason)
        return Output({"written": False, "reason": reason, "output_dir": str(out)},
                      metadata={"written": False, "reason": reason, "output_dir": MetadataValue.path(str(out))})
    with measured() as figures:
        try:
            frame, provenance = catalog_metrics(out)
        except MetricsInputError as exc:
            raise RuntimeError(str(exc)) from None
        if catalog.get("generated_at") and provenance["catalog_generated_at"] != catalog["generated_at"]:
            context.log.warning(
                f"the catalog files in {out} are from {provenance['catalog_generated_at']}, not the run's "
                f"{catalog['generated_at']}; the metrics describe the files"
            )
        path = write_metrics(frame, out, provenance)
    worst = frame.nlargest(10, "cvar_99")[["scenario_id", "symbol", "max_drawdown", "var_99", "cvar_99"]]
    by_family = (
        frame.groupby("family")[["max_drawdown", "annualised_volatility", "cvar_99"]].median().round(4)
        .reset_index().to_dict("records")
    )
    return Output(
        {"written": True, "path": str(path), **provenance},
        metadata={
            "written": True,
            "path": MetadataValue.path(str(path)),
            "rows": len(frame),
            "scenarios": provenance["scenarios"],
            "symbols": int(frame["symbol"].nunique()),
            "data_version": provenance["data_version"],
            "config_hash": provenance["config_hash"],
            "catalog_generated_at": provenance["catalog_generated_at"],
            "median_by_family": MetadataValue.md(markdown_table(by_family)),
            "worst_cvar_99": MetadataValue.md(markdown_table(worst.round(4).to_dict("records"))),
            **{f"step_{k}": v for k, v in figures.items()},
        },
    )
