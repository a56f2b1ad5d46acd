"""Screenshot the scenario report in headless Chromium (Debian's `chromium` package; no network).

    python scripts/screenshot_report.py                       # data/scenarios/scenario_report.html -> docs/report.png
    python scripts/screenshot_report.py --build               # first build a catalog (all registered families)
    python scripts/screenshot_report.py --report R.html --output shot.png --dump-dom dom.html

`--build` runs the `scenarios` CLI into a temporary output directory with a temporary Dagster instance,
so it touches neither data/scenarios nor .dagster_home. `--dump-dom` also writes the page's DOM after
load (the report's <body data-charts-loaded="N/M"> says how many embedded charts the browser decoded).
Exit status: 0 on success, 1 if Chromium failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scenarios_assets.core.library.atomic import atomic_path  # noqa: E402  (after the checkout is importable)
from scenarios_assets.core.library.builds import REPORT_FILE  # noqa: E402
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR  # noqa: E402

DEFAULT_REPORT = DEFAULT_OUTPUT_DIR / REPORT_FILE
DEFAULT_OUTPUT = ROOT / "docs" / "report.png"
# Isolated, quiet, offline: no sandbox (root in CI), no GPU, no background traffic, a fresh profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--virtual-time-budget=10000",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def run_chromium(chromium: str, page: Path, extra: list[str], timeout: float = 90.0) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "HOME": profile})


def screenshot(page: Path, output: Path, width: int = 1280, height: int = 2400, chromium: str | None = None) -> Path:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=".tmp.png") as target:
        target.unlink()  # chromium writes the file itself: an empty one must not pass for a screenshot
        proc = run_chromium(chromium, page, [f"--window-size={width},{height}", f"--screenshot={target}"])
        if proc.returncode != 0 or not target.exists() or target.stat().st_size == 0:
            raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return output


def dump_dom(page: Path, chromium: str | None = None) -> str:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    proc = run_chromium(chromium, page, ["--dump-dom"])
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode("utf-8", errors="replace")


def build_catalog(workdir: Path) -> Path:
    """A catalog of every registered family, all severities, on the bundled data (via the CLI)."""
    out, home = workdir / "out", workdir / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "scenarios_assets", "--output-dir", str(out)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"scenarios CLI failed: {proc.stderr.strip()[-2000:]}")
    return out / REPORT_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help=f"the HTML report (default {DEFAULT_REPORT.relative_to(ROOT)})")
    parser.add_argument("--build", action="store_true", help="build a fresh catalog first (temporary directory)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="PNG to write (default docs/report.png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--dump-dom", type=Path, help="also write the DOM after load to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scenario-report-") as workdir:
        try:
            page = build_catalog(Path(workdir)) if args.build else (args.report or DEFAULT_REPORT)
            if not page.exists():
                print(f"error: {page} does not exist (run `make run`, or pass --build or --report)", file=sys.stderr)
                return 2
            shot = screenshot(page, args.output, args.width, args.height)
            if args.dump_dom:
                args.dump_dom.write_text(dump_dom(page))
        except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"{shot} ({shot.stat().st_size} bytes) from {page.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
