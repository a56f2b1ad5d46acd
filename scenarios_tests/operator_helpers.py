"""A small real build (real slices, the real report) for the operator-experience tests."""

from pathlib import Path

from scenarios_assets.core.library.builds import new_staging
from scenarios_assets.core.families.registry import family_stream
from scenarios_assets.core.library.assembly import build_and_publish, plan_build
from scenarios_assets.core.library.report import write_report
from scenarios_assets.core.library.slices import write_slice
from scenarios_assets.core.library.timing import Phases


def publish_build(out: Path, make_ctx, families=("historical", "stress"), severity="severe",
                  seconds: dict | None = None, run: dict | None = None) -> tuple[Path, Phases]:
    """Each family's slice at ``severity`` written into staging, then one build with the report, published in
    ``out``. ``seconds``: the step time to record per family. Returns the build directory and its timed parts."""
    ctx = make_ctx(severity)
    manifests = {}
    for family in families:
        manifest = write_slice(family_stream(family, ctx), new_staging(out, family, severity, "test-run"))
        manifest.generation_seconds = (seconds or {}).get(family, manifest.generation_seconds)
        manifests[family] = {severity: manifest}
    plan = plan_build(manifests, list(families), [severity], ctx.market.data_version, ctx.config_hash, out,
                      carry_over=False, all_families=list(families), all_severities=[severity])
    phases = Phases()
    final, _ = build_and_publish(plan, out, 2, run=run, report=lambda d: write_report(d), phases=phases)
    return final, phases
