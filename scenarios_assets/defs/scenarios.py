"""One severity-partitioned asset per registered family, and the catalog that writes the library."""


from collections import Counter

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from scenarios_assets.core.families import FAMILY_SPECS, FamilySpec, GenerationContext, enabled, generate_family
from scenarios_assets.core.library import IncompleteLibraryError, assemble_build
from scenarios_assets.core.market import MarketData
from scenarios_assets.core.scenario import ScenarioSet
from scenarios_assets.core.storage import utc_now, write_catalog
from scenarios_assets.core.validation import CATALOG_CHECKS, catalog_checks, checks_for, validate_set
from scenarios_assets.defs.automation import catalog_condition
from scenarios_assets.defs.monitoring import markdown_table, measured
from scenarios_assets.defs.partitions import severity_partitions
from scenarios_assets.defs.resources import ScenarioSettings

MARKET_KEY = AssetKey(["market_data", "ohlcv"])
ECONOMIC_KEY = AssetKey(["market_data", "economic"])
CATALOG_KEY = AssetKey(["scenarios", "catalog"])


def family_key(spec: FamilySpec) -> AssetKey:
    return AssetKey(["scenarios", spec.asset_name])


def check_results(key: AssetKey, validation: dict) -> list[AssetCheckResult]:
    return [
        AssetCheckResult(
            asset_key=key,
            check_name=name,
            passed=res["passed"],
            severity=AssetCheckSeverity.ERROR if res["blocking"] else AssetCheckSeverity.WARN,
            metadata={
                "value": res["value"] if res["value"] is not None else float("nan"),
                "threshold": str(res["threshold"]),
                "detail": res["detail"],
            },
        )
        for name, res in validation.items()
    ]


def family_metadata(ss: ScenarioSet, figures: dict) -> dict:
    types = Counter(s.scenario_type for s in ss.scenarios)
    symbols = sorted({sym for s in ss.scenarios for sym in s.symbols})
    rows = [
            {
                "name": s.name,
                "start": s.start_date,
                "end": s.end_date,
                "symbols": len(s.symbols),
                "total_return": round(s.expected_return, 4),
                "max_drawdown": round(s.max_drawdown, 4),
                "vol_multiplier": round(s.volatility_multiplier, 2),
            }
            for s in ss.scenarios[:50]
    ]
    return {
        "scenario_count": len(ss),
        "skipped_count": len(ss.skipped),
        "skipped": MetadataValue.json(ss.skipped),
        "scenario_types": MetadataValue.json(dict(types)),
        "unique_names": len({s.name for s in ss.scenarios}),
        "symbols_covered": len(symbols),
        "min_coverage": min((s.validation["coverage"]["value"] or 0.0 for s in ss.scenarios), default=0.0),
        **diversity_metadata(ss),
        "generation_seconds": round(ss.generation_seconds, 3),
        "data_version": ss.data_version,
        "config_hash": ss.config_hash,
        "failed_checks": MetadataValue.json(ss.failed_checks),
        "scenarios": MetadataValue.md(markdown_table(rows)),
        **{f"step_{k}": v for k, v in figures.items()},
    }


def diversity_metadata(ss: ScenarioSet) -> dict:
    """How different the scenarios of a set are: windows, dates, outcomes (for monitoring in the UI)."""
    windows = {(s.start_date, s.end_date) for s in ss.scenarios}
    returns = [s.expected_return for s in ss.scenarios]
    drawdowns = [s.max_drawdown for s in ss.scenarios]
    coverage = [s.validation.get("coverage", {}).get("value") for s in ss.scenarios]
    coverage = [c for c in coverage if c is not None]
    return {
        "unique_date_ranges": len(windows),
        "date_range": f"{min(s.start_date for s in ss.scenarios)}..{max(s.end_date for s in ss.scenarios)}"
        if ss.scenarios else "none",
        "mean_coverage": round(sum(coverage) / len(coverage), 4) if coverage else 0.0,
        "return_dispersion": round(float(pd.Series(returns).std(ddof=0)), 6) if returns else 0.0,
        "return_range": MetadataValue.json([round(min(returns), 6), round(max(returns), 6)] if returns else []),
        "max_drawdown_range": MetadataValue.json([round(min(drawdowns), 6), round(max(drawdowns), 6)] if drawdowns else []),
    }


def build_family_asset(spec: FamilySpec) -> AssetsDefinition:
    key = family_key(spec)
    checks = checks_for(spec.family)

    @asset(
        key=key,
        group_name="scenarios",
        partitions_def=severity_partitions,
        ins={"market": AssetIn(key=MARKET_KEY), "economic": AssetIn(key=ECONOMIC_KEY)},
        check_specs=[AssetCheckSpec(c.name, asset=key, blocking=c.blocking, description=c.description) for c in checks],
        description=spec.description,
    )
    def family_asset(context: AssetExecutionContext, settings: ScenarioSettings, market: MarketData, economic: pd.DataFrame):
        config = settings.pipeline_config()
        ctx = GenerationContext(market, economic, config, settings.config_hash(), context.partition_key)
        with measured() as figures:
            if enabled(spec, config):
                ss = generate_family(spec.family, ctx)
            else:
                ss = validate_set(ScenarioSet(spec.family, ctx.severity, [], market.data_version, ctx.config_hash, metadata={"disabled": True}))
        yield Output(ss, metadata=family_metadata(ss, figures))
        yield from check_results(key, ss.validation)

    return family_asset


family_assets = [build_family_asset(spec) for spec in FAMILY_SPECS.values()]


def failure_rates_by_family(sets: list[ScenarioSet]) -> dict[str, float]:
    """Failed validation checks / checks run, per family (all severities)."""
    run, failed = Counter(), Counter()
    for ss in sets:
        run[ss.family] += len(ss.validation)
        failed[ss.family] += len(ss.failed_checks)
    return {family: round(failed[family] / run[family], 4) if run[family] else 0.0 for family in run}


def write_report_files(context: AssetExecutionContext, out, written: dict) -> dict:
    """scenario_report.html and its PNG charts next to the catalog files (atomically, core/report.py); the
    charts as asset metadata. The report is a by-product: if it fails, the catalog stands and says why."""
    from scenarios_assets.core.report import REPORT_FILE, write_report

    try:
        report, files = write_report(out)
    except Exception as exc:  # noqa: BLE001
        context.log.warning(f"scenario report not written: {exc}")
        return {"report_error": str(exc)}
    written.update(files)
    return {
        "report": MetadataValue.path(str(files[REPORT_FILE])),
        **{f"chart_{chart.key}": MetadataValue.md(chart.markdown()) for chart in report.charts},
    }


@asset(
    key=CATALOG_KEY,
    group_name="scenarios",
    ins={
        "market": AssetIn(key=MARKET_KEY),
        **{
            spec.family: AssetIn(
                key=family_key(spec), partition_mapping=AllPartitionMapping(), metadata={"allow_missing_partitions": True}
            )
            for spec in FAMILY_SPECS.values()
        },
    },
    # Rebuilt once after every severity of every family is done, never from a half-finished set
    # (defs/automation.py; evaluated by the `scenarios_automation` sensor).
    automation_condition=catalog_condition(),
    check_specs=[
        AssetCheckSpec("complete_and_current", asset=CATALOG_KEY, blocking=True,
                       description="every requested family and severity is present, current and valid"),
        *(AssetCheckSpec(name, asset=CATALOG_KEY, blocking=blocking, description=description)
          for name, blocking, description in CATALOG_CHECKS),
    ],
    description="All families and severities, validated, written atomically as scenario_metadata.json, "
    "scenario_timeseries.parquet and scenario_summary.txt in the output directory.",
)
def catalog(context: AssetExecutionContext, settings: ScenarioSettings, market: MarketData, **family_sets):
    config = settings.pipeline_config()
    with measured() as figures:
        try:
            build = assemble_build(
                family_sets,
                settings.catalog_families(),
                settings.catalog_severities(),
                market.data_version,
                settings.config_hash(),
            )
        except IncompleteLibraryError as exc:
            yield AssetCheckResult(
                asset_key=CATALOG_KEY, check_name="complete_and_current", passed=False, metadata={"detail": str(exc)}
            )
            raise Failure(description=str(exc)) from None
        build.generated_at = utc_now()
        diversity = catalog_checks(build.sets)
        unusable = [name for name, res in diversity.items() if res["blocking"] and not res["passed"]]
        if unusable:  # nothing is written: yesterday's files stay
            yield from check_results(CATALOG_KEY, diversity)
            raise Failure(description=f"catalog check(s) failed: {', '.join(unusable)}; previous files kept")
        out = settings.output_path()
        written = {} if settings.dry_run else write_catalog(build, out, config["performance"]["save_timeseries"])
        report_md = {} if settings.dry_run else write_report_files(context, out, written)
    counts = Counter(f"{ss.family}/{ss.severity}" for ss in build.sets for _ in ss.scenarios)
    checks_run = sum(len(ss.validation) for ss in build.sets)
    checks_failed = sum(len(ss.failed_checks) for ss in build.sets)
    summary = {
        "output_dir": str(out),
        "files": {name: str(path) for name, path in written.items()},
        "dry_run": settings.dry_run,
        "scenario_count": len(build.scenarios),
        "counts": dict(counts),
        "data_version": build.data_version,
        "config_hash": build.config_hash,
        "generated_at": build.generated_at,
    }
    yield Output(
        summary,
        metadata={
            "scenario_count": len(build.scenarios),
            "counts_by_family_severity": MetadataValue.json(dict(counts)),
            "validation_checks": checks_run,
            "validation_failures": checks_failed,
            "validation_failure_rate": round(checks_failed / checks_run, 4) if checks_run else 0.0,
            "validation_failure_rate_by_family": MetadataValue.json(failure_rates_by_family(build.sets)),
            "output_dir": MetadataValue.path(str(out)),
            "dry_run": settings.dry_run,
            "data_version": build.data_version,
            "config_hash": build.config_hash,
            **{f"step_{k}": v for k, v in figures.items()},
            **report_md,
        },
    )
    yield from check_results(CATALOG_KEY, diversity)
    yield AssetCheckResult(
        asset_key=CATALOG_KEY,
        check_name="complete_and_current",
        passed=True,
        metadata={"families": MetadataValue.json(sorted({ss.family for ss in build.sets})), "sets": len(build.sets)},
    )
