"""One severity-partitioned asset per registered family, and the catalog that writes the library."""


import time
from collections import Counter
from typing import Any

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

from scenarios_assets.core.library.builds import REPORT_FILE, TMP_PREFIX, clean_staging, new_staging
from scenarios_assets.core.families.registry import FAMILY_SPECS, FamilySpec, family_config_hash, family_stream
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.library.assembly import IncompleteLibraryError, build_and_publish, plan_build
from scenarios_assets.core.data.market import MarketData
from scenarios_assets.core.library.report import write_report
from scenarios_assets.core.models.config import ScenarioConfig
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.slices import SliceManifest, SliceProgress, write_slice
from scenarios_assets.core.library.store import remove_tree
from scenarios_assets.core.library.timing import Phases
from scenarios_assets.core.library.validation import CATALOG_CHECKS, catalog_checks, checks_for
from scenarios_assets.defs.automation import catalog_condition
from scenarios_assets.defs.executors import chunk_client
from scenarios_assets.defs.keys import CATALOG_KEY, ECONOMIC_KEY, MARKET_KEY, OWNERS, family_key
from scenarios_assets.defs.monitoring import markdown_table, measured
from scenarios_assets.defs.partitions import severity_partitions
from scenarios_assets.defs.resources import ScenarioSettings


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


def family_metadata(m: SliceManifest, figures: dict) -> dict:
    """The family step's metadata in the UI: counts, diversity, coverage, checks and where the slice is."""
    digest = dict(m.digest)
    rows = digest.pop("scenarios", [])
    return {
        "scenario_count": m.count,
        "skipped_count": len(m.skipped),
        "skipped": MetadataValue.json(m.skipped),
        "scenario_types": MetadataValue.json(digest.pop("scenario_types", {})),
        **{k: MetadataValue.json(v) if isinstance(v, list) else v for k, v in digest.items()},
        "timeseries_rows": m.rows,
        "slice": m.slice_id,
        "generation_seconds": round(m.generation_seconds, 3),
        "data_version": m.data_version,
        "config_hash": m.config_hash,
        "failed_checks": MetadataValue.json(m.failed_checks),
        "scenarios": MetadataValue.md(markdown_table(rows)),
        **{f"step_{k}": v for k, v in figures.items()},
    }


UI_CHART_WIDTH = 560  # pixels: the charts as they fit the metadata panel's value column (a click opens them whole)
PROGRESS_LOG_SECONDS = 1.0  # at most one progress line per second in the run's log (and the last one)


def progress_logger(context: AssetExecutionContext):
    """A ``write_slice`` progress callback that logs :meth:`SliceProgress.message` lines to the run (the UI shows
    them, the command line draws its bars from them), at most one per PROGRESS_LOG_SECONDS and always the last."""
    last = [float("-inf")]

    def report(p: SliceProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_LOG_SECONDS or (p.total is not None and p.done >= p.total):
            last[0] = now
            context.log.info(p.message())

    return report


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
        kinds={"numpy", "parquet"},
        owners=OWNERS,
    )
    def family_asset(context: AssetExecutionContext, settings: ScenarioSettings, market: MarketData, economic: pd.DataFrame):
        config = settings.pipeline_config()
        ctx = GenerationContext(market, economic, config, settings.config_hash(), context.partition_key)
        staging = None if settings.dry_run else new_staging(settings.output_path(), spec.family, ctx.severity, context.run_id)
        with measured() as figures, chunk_client(context.run.run_config) as client:
            started = time.perf_counter()
            try:
                manifest = write_slice(family_stream(spec.family, ctx), staging, ctx.settings.performance.save_timeseries,
                                       family_config_hash(spec.family, config), progress=progress_logger(context),
                                       client=client)
                manifest.generation_seconds = time.perf_counter() - started  # calibration included
            except BaseException:
                if staging is not None:
                    remove_tree(staging)
                raise
        yield Output(manifest, metadata=family_metadata(manifest, figures))
        yield from check_results(key, manifest.validation)

    return family_asset


family_assets = [build_family_asset(spec) for spec in FAMILY_SPECS.values()]


def failure_rates_by_family(slices: list[SliceManifest]) -> dict[str, float]:
    """Failed validation checks / checks run, per family (all severities)."""
    run: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for m in slices:
        run[m.family] += len(m.validation)
        failed[m.family] += len(m.failed_checks)
    return {family: round(failed[family] / run[family], 4) if run[family] else 0.0 for family in run}


def report_writer(context: AssetExecutionContext, charts: dict, api_url: str):
    """Writes the report into the build directory before it is published; the charts become asset metadata.
    The report is a by-product: if it fails, the build is published without it and says why.

    The UI shows each chart in place in the catalog's metadata panel as an image served by the REST API
    (``api_url``: `scenarios serve`, which `make ui` starts beside the UI) for this build; the report itself is a
    link there and a path."""

    def write(build_dir) -> None:
        try:
            report, _ = write_report(build_dir)
        except Exception as exc:  # noqa: BLE001
            context.log.warning(f"scenario report not written: {exc}")
            charts["report_error"] = str(exc)
            return
        published = build_dir.with_name(build_dir.name.removeprefix(TMP_PREFIX))  # after the rename (local)
        charts["report"] = MetadataValue.path(str(published / REPORT_FILE))
        charts["report_url"] = MetadataValue.url(f"{api_url}/report?build={published.name}")
        for chart in report.charts:
            url = f"{api_url}/report/charts/{chart.key}.png?build={published.name}"
            charts[f"chart_{chart.key}"] = MetadataValue.md(chart.linked_markdown(url, f"{url}&width={UI_CHART_WIDTH}"))

    return write


def staging_cleanup(context: AssetExecutionContext, out, available: dict, consumed: set[str]) -> list[str]:
    """Remove staging directories of killed or superseded runs; keep the latest unconsumed slices."""
    latest = {m.slice_id for by_severity in available.values() for m in by_severity.values() if m is not None}

    def live(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        return run is not None and not run.is_finished

    return clean_staging(out, keep=latest - consumed, is_live=live)


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
    kinds={"parquet", "json", "html"},
    owners=OWNERS,
    check_specs=[
        AssetCheckSpec("complete_and_current", asset=CATALOG_KEY, blocking=True,
                       description="every requested family and severity is present, current and valid"),
        *(AssetCheckSpec(name, asset=CATALOG_KEY, blocking=blocking, description=description)
          for name, blocking, description in CATALOG_CHECKS),
    ],
    description="All families and severities, validated, published as one build of the library (metadata, "
    "time series, metrics, summary, report) in the output directory; a partial run carries the other slices "
    "over from the current build.",
)
def catalog(context: AssetExecutionContext, settings: ScenarioSettings, market: MarketData, **family_slices):
    config = settings.pipeline_config()
    performance = ScenarioConfig.from_mapping(config).performance
    out = settings.output_path()
    phases = Phases(on_start=lambda name: context.log.info(f"catalog: {name.replace('_', ' ')}"))
    with measured() as figures:
        try:
            with phases.timed("plan"):
                plan = plan_build(
                    family_slices, settings.catalog_families(), settings.catalog_severities(), market.data_version,
                    settings.config_hash(), out, carry_over=bool(settings.families or settings.severities),
                    all_families=list(FAMILY_SPECS), all_severities=list(SEVERITIES),
                    save_timeseries=performance.save_timeseries, check_only=settings.dry_run,
                    family_hashes={family: family_config_hash(family, config) for family in FAMILY_SPECS},
                )
        except IncompleteLibraryError as exc:
            yield AssetCheckResult(
                asset_key=CATALOG_KEY, check_name="complete_and_current", passed=False, metadata={"detail": str(exc)}
            )
            raise Failure(description=str(exc)) from None
        with phases.timed("plan"):
            diversity = catalog_checks(plan.manifests)
        unusable = [name for name, res in diversity.items() if res["blocking"] and not res["passed"]]
        if unusable:  # nothing is written: the current build stays
            yield from check_results(CATALOG_KEY, diversity)
            raise Failure(description=f"catalog check(s) failed: {', '.join(unusable)}; the current build stays")
        charts: dict = {}
        build_id, generated_at = "", ""
        if not settings.dry_run:
            timings = {s.manifest.key: round(s.manifest.generation_seconds, 3) for s in plan.sources if s.origin == "new"}
            run = {"timings": timings, "time": {"market_data": market.report.get("load_seconds")}}
            final, header = build_and_publish(plan, out, performance.keep_builds, run=run,
                                              report=report_writer(context, charts, settings.api_base_url()), phases=phases)
            build_id, generated_at = final.name, header["generated_at"]
            with phases.timed("clean_staging"):
                staging_cleanup(context, out, family_slices, {s.manifest.slice_id for s in plan.sources})
    slices = plan.manifests
    counts = {m.key: m.count for m in slices}
    checks_run = sum(len(m.validation) for m in slices)
    checks_failed = sum(len(m.failed_checks) for m in slices)
    origin = {s.manifest.key: s.origin + (" (stale)" if s.stale else "") for s in plan.sources}
    summary: dict[str, Any] = {
        "output_dir": str(out),
        "build_id": build_id,
        "dry_run": settings.dry_run,
        "scenario_count": sum(counts.values()),
        "counts": counts,
        "origin": origin,
        "data_version": plan.data_version,
        "config_hash": plan.config_hash,
        "generated_at": generated_at,
    }
    yield Output(
        summary,
        metadata={
            "scenario_count": summary["scenario_count"],
            "build_id": build_id or "dry run: nothing published",
            "counts_by_family_severity": MetadataValue.json(counts),
            "slices_new_or_carried": MetadataValue.json(origin),
            "validation_checks": checks_run,
            "validation_failures": checks_failed,
            "validation_failure_rate": round(checks_failed / checks_run, 4) if checks_run else 0.0,
            "validation_failure_rate_by_family": MetadataValue.json(failure_rates_by_family(slices)),
            "output_dir": MetadataValue.path(str(out)),
            "dry_run": settings.dry_run,
            "data_version": plan.data_version,
            "config_hash": plan.config_hash,
            "catalog_seconds": MetadataValue.json(phases.seconds),
            **{f"step_{k}": v for k, v in figures.items()},
            **charts,
        },
    )
    yield from check_results(CATALOG_KEY, diversity)
    yield AssetCheckResult(
        asset_key=CATALOG_KEY,
        check_name="complete_and_current",
        passed=True,
        metadata={"families": MetadataValue.json(sorted({m.family for m in slices})), "sets": len(slices)},
    )
