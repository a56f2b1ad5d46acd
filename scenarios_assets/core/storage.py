"""The catalog files of DESIGN.md section 4: written atomically, read back with one call.

All files of a build are first written under temporary names in the output directory and only then
renamed over the previous ones, so a failed build leaves yesterday's files untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scenarios_assets.core.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.scenario import Scenario, ScenarioSet
from scenarios_assets.core.severity import SEVERITIES

METADATA_FILE = "scenario_metadata.json"
TIMESERIES_FILE = "scenario_timeseries.parquet"
SUMMARY_FILE = "scenario_summary.txt"
CATALOG_FILES = (METADATA_FILE, TIMESERIES_FILE, SUMMARY_FILE)
EXTRA_COLUMNS = ("volume_multiplier", "spread_multiplier")


@dataclass
class CatalogBuild:
    """What one build writes: the sets of every family and severity, and their provenance."""

    sets: list[ScenarioSet]
    data_version: str
    config_hash: str
    generated_at: str = ""
    notes: tuple[str, ...] = ()

    @property
    def scenarios(self) -> list[Scenario]:
        return [s for ss in self.sets for s in ss.scenarios]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def metadata_document(build: CatalogBuild) -> dict:
    return {
        "generated_at": build.generated_at or utc_now(),
        "data_version": build.data_version,
        "config_hash": build.config_hash,
        "families": {
            f"{ss.family}/{ss.severity}": {
                "count": len(ss),
                "skipped": ss.skipped,
                "validation": ss.validation,
                "generation_seconds": round(ss.generation_seconds, 3),
                "metadata": ss.metadata,
            }
            for ss in build.sets
        },
        "scenarios": [s.record() for s in build.scenarios],
    }


def timeseries_table(scenarios: list[Scenario]) -> pa.Table:
    """Long format, one row per scenario x symbol x date (symbol-major within a scenario), float32, no
    rows where a symbol has no data. Built from whole arrays per scenario, never per row: the columns are
    allocated once and each scenario's block is written into them in place (a scenario with data in
    every cell needs no mask), so 1,000 scenarios x 252 days x 500 symbols take about a second and no
    more memory than the table itself."""
    id_codes = {s.id: i for i, s in enumerate(scenarios)}
    symbol_codes: dict[str, int] = {}
    layout = []  # (present mask or None when every cell has data, row count, symbol codes) per scenario
    written_extras = set()
    for s in scenarios:
        codes = np.array([symbol_codes.setdefault(sym, len(symbol_codes)) for sym in s.symbols], dtype=np.int32)
        missing = np.isnan(s.prices)
        present = None if not missing.any() else ~missing.T.ravel()
        rows = s.prices.size if present is None else int(present.sum())
        layout.append((present, rows, codes))
        for name in EXTRA_COLUMNS:
            series = s.extra.get(name)
            if name not in written_extras and series is not None:
                values = series.astype(np.float32)
                if np.isfinite(values if present is None else values.T.ravel()[present]).any():
                    written_extras.add(name)
    total = sum(rows for _, rows, _ in layout)
    ids = np.empty(total, np.int32)
    syms = np.empty(total, np.int32)
    dates = np.empty(total, np.int32)
    rets = np.empty(total, np.float32)
    prices = np.empty(total, np.float32)
    projected = np.empty(total, bool)
    extras = {name: np.empty(total, np.float32) for name in EXTRA_COLUMNS if name in written_extras}
    offset = 0
    for s, (present, rows, codes) in zip(scenarios, layout):
        t, n = s.prices.shape
        part = slice(offset, offset + rows)
        offset += rows
        day_codes = s.dates.astype("datetime64[D]").astype(np.int32)
        flag = s.projected if s.projected is not None else np.zeros(t, dtype=bool)
        ids[part] = id_codes[s.id]
        cells = {"returns": (rets, s.returns), "prices": (prices, s.prices)}
        for name, column in extras.items():
            series = s.extra.get(name)
            cells[name] = (column, None if series is None else series.astype(np.float32))
        if present is None:  # every cell has data: write the transposed blocks straight into the columns
            syms[part].reshape(n, t)[...] = codes[:, None]
            dates[part].reshape(n, t)[...] = day_codes[None, :]
            projected[part].reshape(n, t)[...] = flag[None, :]
            for column, values in cells.values():
                column[part].reshape(n, t)[...] = np.nan if values is None else values.T
        else:
            syms[part] = np.repeat(codes, t)[present]
            dates[part] = np.tile(day_codes, n)[present]
            projected[part] = np.tile(flag, n)[present]
            for column, values in cells.values():
                column[part] = np.nan if values is None else values.T.ravel()[present]

    id_dict = pa.array([s.id for s in scenarios], pa.string())
    name_dict = pa.array([s.name for s in scenarios], pa.string())
    sym_dict = pa.array(list(symbol_codes), pa.string())
    id_idx = pa.array(ids)
    columns = {
        "scenario_id": pa.DictionaryArray.from_arrays(id_idx, id_dict),
        "scenario_name": pa.DictionaryArray.from_arrays(id_idx, name_dict),
        "symbol": pa.DictionaryArray.from_arrays(pa.array(syms), sym_dict),
        "date": pa.array(dates).cast(pa.date32()),
        "returns": pa.array(rets),
        "prices": pa.array(prices),
    }
    for name in EXTRA_COLUMNS:
        if name in extras:
            columns[name] = pa.array(extras[name], from_pandas=True)
    columns["projected"] = pa.array(projected)
    return pa.table(columns)


# Dictionary encoding only where it pays (the float columns would fill a dictionary page and fall back to
# plain encoding anyway, at three times the write time).
DICTIONARY_COLUMNS = ["scenario_id", "scenario_name", "symbol", "date"]


def summary_text(build: CatalogBuild, document: dict) -> str:
    lines = [
        "Scenario library summary",
        f"generated at: {document['generated_at']}",
        f"data version: {build.data_version}    config hash: {build.config_hash}",
        f"scenarios: {len(build.scenarios)}",
        "",
        f"{'family':<14}" + "".join(f"{sev:>10}" for sev in SEVERITIES) + f"{'seconds':>10}",
    ]
    counts = Counter((ss.family, ss.severity) for ss in build.sets for _ in ss.scenarios)
    seconds = Counter()
    for ss in build.sets:
        seconds[ss.family] += ss.generation_seconds
    for family in dict.fromkeys(ss.family for ss in build.sets):
        lines.append(
            f"{family:<14}" + "".join(f"{counts[(family, sev)]:>10}" for sev in SEVERITIES) + f"{seconds[family]:>10.2f}"
        )
    by_type = Counter(s.scenario_type for s in build.scenarios)
    lines += ["", "by type: " + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))]
    all_symbols = sorted({sym for s in build.scenarios for sym in s.symbols})
    if build.scenarios:
        first = min(s.start_date for s in build.scenarios)
        last = max(s.end_date for s in build.scenarios)
        lines.append(f"coverage: {len(all_symbols)} symbols, {first} .. {last}")
    failures = [
        f"  {ss.family}/{ss.severity}: {name} ({res['detail'] or res['value']})"
        for ss in build.sets
        for name, res in ss.validation.items()
        if not res["passed"]
    ]
    lines += ["", f"validation failures: {len(failures)}", *failures]
    skipped = [f"  {ss.family}/{ss.severity}: {sk['name']}: {sk['reason']}" for ss in build.sets for sk in ss.skipped]
    lines += ["", f"skipped: {len(skipped)}", *skipped]
    lines += ["", "generation time (s): " + f"{sum(ss.generation_seconds for ss in build.sets):.2f}"]
    lines += [*(["", *build.notes] if build.notes else [])]
    return "\n".join(lines) + "\n"


def write_catalog(build: CatalogBuild, output_dir: str | Path, save_timeseries: bool = True) -> dict[str, Path]:
    """Write the catalog files atomically; return their paths. Nothing is replaced if any write fails."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = metadata_document(build)
    staged: dict[str, Path] = {}
    try:
        staged[METADATA_FILE] = _stage(out, METADATA_FILE, lambda p: p.write_text(json.dumps(document, indent=2, allow_nan=False)))
        if save_timeseries:
            # The build it belongs to, so readers (the REST API) can tell a matching file from a stale one.
            table = timeseries_table(build.scenarios).replace_schema_metadata({
                "generated_at": document["generated_at"],
                "data_version": build.data_version,
                "config_hash": build.config_hash,
            })
            staged[TIMESERIES_FILE] = _stage(
                out, TIMESERIES_FILE, lambda p: pq.write_table(
                    table, p, compression="zstd", compression_level=3, use_dictionary=DICTIONARY_COLUMNS
                )
            )
        staged[SUMMARY_FILE] = _stage(out, SUMMARY_FILE, lambda p: p.write_text(summary_text(build, document)))
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    written = {}
    for name, tmp in staged.items():
        os.replace(tmp, out / name)
        written[name] = out / name
    if not save_timeseries:  # a time series of an older build would not match the new metadata
        (out / TIMESERIES_FILE).unlink(missing_ok=True)
    return written


def _stage(out: Path, name: str, write) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the catalog is meant to be read by other users
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


# --- reading ----------------------------------------------------------------------------------------

@dataclass
class ScenarioLibrary:
    """A loaded catalog: one row per scenario, and (on request) the long time series."""

    scenarios: pd.DataFrame
    timeseries: pd.DataFrame | None
    generated_at: str
    data_version: str
    config_hash: str
    records: list[dict]

    def __len__(self) -> int:
        return len(self.scenarios)


def load_scenarios(
    output_dir: str | Path | None = None,
    *,
    family: str | list[str] | None = None,
    severity: str | list[str] | None = None,
    name: str | list[str] | None = None,
    scenario_id: str | list[str] | None = None,
    symbols: list[str] | None = None,
    timeseries: bool = False,
) -> ScenarioLibrary:
    """Load the scenario catalog in ``output_dir`` (default ``data/scenarios``), optionally filtered.

    Filters take one value or a list. With ``timeseries=True`` the matching rows of the Parquet file are
    read (filtered inside pyarrow, not after loading the whole file).
    """
    out = Path(output_dir) if output_dir else DEFAULT_OUTPUT_DIR
    meta_path = out / METADATA_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"no scenario catalog in '{out}' (missing {METADATA_FILE}); run `scenarios` first")
    document = json.loads(meta_path.read_text())
    records = document["scenarios"]

    def keep(rec: dict, key: str, wanted) -> bool:
        return wanted is None or rec[key] in ([wanted] if isinstance(wanted, str) else wanted)

    records = [
        r for r in records
        if keep(r, "family", family) and keep(r, "severity", severity) and keep(r, "name", name) and keep(r, "id", scenario_id)
    ]
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["id", "name", "family", "severity"])
    series = None
    if timeseries:
        ts_path = out / TIMESERIES_FILE
        if not ts_path.exists():
            raise FileNotFoundError(f"'{ts_path}' does not exist; build with --save-timeseries")
        ids = [r["id"] for r in records]
        expr = pc.field("scenario_id").isin(ids)
        if symbols:
            expr = expr & pc.field("symbol").isin(list(symbols))
        table = pq.read_table(ts_path, filters=expr)
        series = table.to_pandas()
        for col in ("scenario_id", "scenario_name", "symbol"):
            series[col] = series[col].astype(str)
        series["date"] = pd.to_datetime(series["date"])
    return ScenarioLibrary(
        scenarios=frame,
        timeseries=series,
        generated_at=document["generated_at"],
        data_version=document["data_version"],
        config_hash=document["config_hash"],
        records=records,
    )
