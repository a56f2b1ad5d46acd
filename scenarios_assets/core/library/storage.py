"""The library's file formats (DESIGN.md section 4): the long time-series table and its Parquet parts,
the metadata document and summary of a build, and :func:`load_scenarios` to read a build back.

Where files live and how a build becomes current is :mod:`scenarios_assets.core.library.builds`; how a build is
assembled from its slices is :mod:`scenarios_assets.core.library.assembly`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from scenarios_assets.core.library.builds import METADATA_FILE, SUMMARY_FILE, TIMESERIES_FILE, resolve
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.models.scenario import Scenario
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.store import arrow_location, is_remote, location

CATALOG_FILES = (METADATA_FILE, TIMESERIES_FILE, SUMMARY_FILE)
# Optional per-cell series of some families (null elsewhere): the session's intraday high and low prices
# (stress flash crashes), and liquidity multipliers (stress liquidity tests).
BAR_COLUMNS = ("high", "low")
EXTRA_COLUMNS = ("volume_multiplier", "spread_multiplier", *BAR_COLUMNS)
# Every part of every family has exactly these columns (an absent extra column is all null), so a dataset
# of parts reads with one schema; `family` and `severity` come from the hive partition directories.
TIMESERIES_SCHEMA = pa.schema([
    ("scenario_id", pa.dictionary(pa.int32(), pa.string())),
    ("scenario_name", pa.dictionary(pa.int32(), pa.string())),
    ("symbol", pa.dictionary(pa.int32(), pa.string())),
    ("date", pa.date32()),
    ("returns", pa.float32()),
    ("prices", pa.float32()),
    *((name, pa.float32()) for name in EXTRA_COLUMNS),
    ("projected", pa.bool_()),
])
PARTITIONING = ds.partitioning(pa.schema([("family", pa.string()), ("severity", pa.string())]), flavor="hive")
ROW_GROUP_ROWS = 65_536  # small enough that one scenario's symbol is read from a row group or two


def utc_now() -> str:
    """The current UTC time, as recorded in a build's documents.

    Returns
    -------
    str
        ISO 8601 with seconds and offset, e.g. ``2026-01-02T03:04:05+00:00``.
    """
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def timeseries_table(scenarios: list[Scenario]) -> pa.Table:
    """Long format (TIMESERIES_SCHEMA), one row per scenario x symbol x date (symbol-major within a
    scenario), float32, no rows where a symbol has no data. Built from whole arrays per scenario, never per row: the columns are
    allocated once and each scenario's block is written into them in place (a scenario with data in
    every cell needs no mask), so 1,000 scenarios x 252 days x 500 symbols take about a second and no
    more memory than the table itself.

    Parameters
    ----------
    scenarios : list of Scenario
        The scenarios of one part (their ``dates``, ``symbols``, ``returns``, ``prices``, ``projected`` and
        ``extra`` series named in :data:`EXTRA_COLUMNS`).

    Returns
    -------
    pyarrow.Table
        :data:`TIMESERIES_SCHEMA`: dictionary-encoded ``scenario_id``, ``scenario_name``, ``symbol``;
        ``date`` (date32); ``returns`` (daily simple return), ``prices`` and the extra columns (float32; an
        extra series without a finite value in any scenario is all null); ``projected`` (bool). A cell is
        left out where the scenario's price is NaN.
    """
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
        cells: dict[str, tuple[np.ndarray, Any]] = {"returns": (rets, s.returns), "prices": (prices, s.prices)}
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
        columns[name] = pa.array(extras[name], from_pandas=True) if name in extras else pa.nulls(total, pa.float32())
    columns["projected"] = pa.array(projected)
    return pa.table(columns, schema=TIMESERIES_SCHEMA)


# Dictionary encoding only where it pays (the float columns would fill a dictionary page and fall back to
# plain encoding anyway, at three times the write time).
DICTIONARY_COLUMNS = ["scenario_id", "scenario_name", "symbol", "date"]


def write_timeseries_part(table: pa.Table, path: Path) -> None:
    """One Parquet part of the time-series dataset: zstd, dictionaries for the repeated strings, row groups
    of ROW_GROUP_ROWS with statistics (readers prune by scenario and symbol).

    Parameters
    ----------
    table : pyarrow.Table
        A :func:`timeseries_table`.
    path : Path
        The part's file, local (its folder is created) or on an fsspec store
        (:mod:`scenarios_assets.core.library.store`).

    References
    ----------
    .. [1] Apache Parquet file format, https://parquet.apache.org/docs/file-format/
    """
    if not is_remote(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pq.write_table(table, fh, compression="zstd", compression_level=3, use_dictionary=DICTIONARY_COLUMNS,
                       row_group_size=ROW_GROUP_ROWS, write_statistics=True)


def summary_text(document: dict, run: dict) -> str:
    """scenario_summary.txt of a build: counts by family and severity, new and carried-over slices, coverage,
    validation failures, skips, and the run's wall time and where it went.

    Parameters
    ----------
    document : dict
        The build's metadata document (``scenario_metadata.json``): ``generated_at``, ``data_version``,
        ``config_hash`` and ``families`` ("family/severity" -> slice entry).
    run : dict
        The run's facts: ``build_id``, ``previous_build``, ``timings`` and ``time`` (:func:`time_lines`).

    Returns
    -------
    str
        The summary's text, ending with a newline.
    """
    slices = document["families"]
    lines = [
        "Scenario library summary",
        f"build: {run.get('build_id', '')}    generated at: {document['generated_at']}",
        f"data version: {document['data_version']}    config hash: {document['config_hash']}",
        f"scenarios: {sum(sl['count'] for sl in slices.values())}",
        "",
        f"{'family':<14}" + "".join(f"{sev:>10}" for sev in SEVERITIES),
    ]
    families = dict.fromkeys(key.split("/")[0] for key in slices)
    for family in families:
        lines.append(f"{family:<14}" + "".join(
            f"{slices[f'{family}/{sev}']['count'] if f'{family}/{sev}' in slices else '-':>10}" for sev in SEVERITIES))
    new = [k for k, sl in slices.items() if sl["origin"] == "new"]
    carried = [k for k, sl in slices.items() if sl["origin"] != "new"]
    lines += ["", f"new slices: {', '.join(new) or 'none'}"]
    if carried:
        lines.append(f"carried over from build {run.get('previous_build') or '?'}: {', '.join(carried)}")
        stale = [f"  {k}: built from data {sl['data_version']}, config {sl['config_hash']}"
                 for k, sl in slices.items() if sl.get("stale")]
        if stale:
            lines += [f"carried-over slices from another data version or config: {len(stale)}", *stale]
    by_type: Counter[str] = Counter()
    for sl in slices.values():
        by_type.update(sl.get("scenario_types") or {})
    ranges = [sl["date_range"].split("..") for sl in slices.values() if sl.get("count") and ".." in sl.get("date_range", "")]
    lines += ["", "by type: " + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))]
    if ranges:
        widest = max((sl.get("symbols_covered", 0) for sl in slices.values()), default=0)
        lines.append(f"coverage: up to {widest} symbol{'' if widest == 1 else 's'} per slice, {min(r[0] for r in ranges)} .. {max(r[1] for r in ranges)}")
    starts = sorted({(key.split("/")[0], st["date"], st["market_data_end"]) for key, sl in slices.items()
                     if isinstance(st := (sl.get("metadata") or {}).get("start_state"), dict)})
    if starts:  # simulated paths start at their calibration end, which may lie before the data's end
        lines.append("paths start: " + "; ".join(
            f"{family} at {date} (calibration end; market data to {end})" for family, date, end in starts))
    calendars = sorted({(key.split("/")[0], meta.get("trading_calendar"), sym, cal) for key, sl in slices.items()
                        for meta in [sl.get("metadata") or {}] for sym, cal in (meta.get("symbol_calendars") or {}).items()})
    if calendars:  # symbols with their own trading calendar in the simulated families (core.data.session_layout)
        by_family: dict[tuple[str, str | None], list[str]] = {}
        for family, primary, sym, cal in calendars:
            by_family.setdefault((family, primary), []).append(f"{sym} {cal}")
        lines.append("own trading calendars: " + "; ".join(
            f"{family}: {', '.join(items)} (other symbols {primary})" for (family, primary), items in by_family.items()))
    failures = [f"  {key}: {name} ({res['detail'] or res['value']})"
                for key, sl in slices.items() for name, res in sl["validation"].items() if not res["passed"]]
    lines += ["", f"validation failures: {len(failures)}", *failures]
    lines += ["", *skipped_lines(slices)]
    lines += time_lines(run)
    return "\n".join(lines) + "\n"


def skipped_lines(slices: dict) -> list[str]:
    """What was skipped and why, each (family, name, reason) once with the severities it applies to (the same
    event usually fails the same way at every severity).

    Parameters
    ----------
    slices : dict
        "family/severity" -> slice entry with its ``skipped`` list of ``{"name", "reason"}``.

    Returns
    -------
    list of str
        ``skipped: <count>`` (with the number of distinct ones when fewer), then one line per group.
    """
    grouped: dict[tuple[str, str, str], list[str]] = {}
    count = 0
    for key, sl in slices.items():
        family, severity = key.split("/")
        for sk in sl["skipped"]:
            grouped.setdefault((family, sk["name"], sk["reason"]), []).append(severity)
            count += 1
    lines = [f"skipped: {count}" + (f" ({len(grouped)} distinct)" if len(grouped) < count else "")]
    for (family, name, reason), severities in grouped.items():
        lines.append(f"  {family} [{', '.join(severities)}]: {name}: {reason}")
    return lines


PHASE_NAMES = {"plan": "plan and checks", "link_files": "link files", "report": "report", "metadata": "metadata",
               "summary": "summary", "publish": "publish"}


def time_lines(run: dict) -> list[str]:
    """The summary's account of the time spent in the steps that made a build: the market-data load, each
    family (its new slices, per severity), the catalog's parts. Carried-over slices cost this build nothing;
    the Dagster runs' own start-up and I/O, and the wall time of a command, only the caller knows (the
    command line prints them).

    Parameters
    ----------
    run : dict
        ``timings`` ("family/severity" -> seconds) and ``time`` (``market_data``: seconds; ``catalog``:
        phase -> seconds).

    Returns
    -------
    list of str
        A blank line, the total in seconds and one line per step; empty when nothing was timed.
    """
    timings = run.get("timings") or {}
    time_ = run.get("time") or {}
    rows: list[tuple[str, float, str]] = []
    if time_.get("market_data") is not None:
        rows.append(("market data", float(time_["market_data"]), "read, validate, align"))
    by_family: dict[str, list[tuple[str, float]]] = {}
    for key, seconds in timings.items():
        family, severity = key.split("/")
        by_family.setdefault(family, []).append((severity, float(seconds)))
    for family, parts in by_family.items():
        rows.append((family, sum(s for _, s in parts), ", ".join(f"{sev} {sec:.2f}" for sev, sec in parts)))
    catalog = time_.get("catalog") or {}
    if catalog:
        rows.append(("catalog", sum(catalog.values()),
                     ", ".join(f"{PHASE_NAMES.get(k, k)} {v:.2f}" for k, v in catalog.items()) + "; then publish"))
    if not rows:
        return []
    total = sum(r[1] for r in rows)
    lines = ["", f"time in the steps that made this build: {total:.2f} s"]
    lines += [f"  {name:<14}{seconds:>8.2f} s   {detail}".rstrip() for name, seconds, detail in rows]
    lines.append("  (the steps alone: `scenarios` also prints the wall time, with Dagster's run start-up and I/O)")
    return lines


# --- reading ----------------------------------------------------------------------------------------

@dataclass
class ScenarioLibrary:
    """A loaded catalog: one row per scenario, and (on request) the long time series.

    Parameters
    ----------
    scenarios : pandas.DataFrame
        One row per scenario: the fields of its metadata record (:meth:`Scenario.record`) plus its slice's
        ``data_version``, ``config_hash``, ``origin`` (new or carried) and ``stale``.
    timeseries : pandas.DataFrame or None
        The long time series (:data:`TIMESERIES_SCHEMA` columns, ids and symbols as str, ``date`` as
        datetime64), or None when not requested.
    generated_at : str
        When the build was made (ISO 8601, UTC).
    data_version, config_hash : str
        The build's market-data version and config hash.
    records : list of dict
        The selected scenarios' metadata records, as stored.
    build_id : str, default ""
        The id of the build read.
    slices : dict, optional
        "family/severity" -> count, origin (new|carried), stale, data_version, ... (metadata left out).
    """

    scenarios: pd.DataFrame
    timeseries: pd.DataFrame | None
    generated_at: str
    data_version: str
    config_hash: str
    records: list[dict]
    build_id: str = ""
    slices: dict | None = None  # "family/severity" -> count, origin (new|carried), stale, data_version, ...

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
    build: str | None = None,
) -> ScenarioLibrary:
    """Load the scenario library in ``output_dir`` (default ``data/scenarios``; a local path or an fsspec URL
    such as ``s3://bucket/prefix``), optionally filtered.

    Reads the current build (resolved once, so metadata and time series come from the same build), or
    the kept build ``build`` (an id from ``builds.published_builds``; ``library.build_id`` names the one
    read). Filters take one value or a list. With ``timeseries=True`` the matching rows of the
    time-series dataset are read: family and severity partitions are pruned from the directory names,
    scenario and symbol filters run inside pyarrow (row-group statistics), never on the whole library.

    Parameters
    ----------
    output_dir : str or Path, optional
        The library's directory or fsspec URL; None: ``data/scenarios``.
    family, severity, name, scenario_id : str or list of str, optional
        Keep the scenarios whose field is (one of) the value(s).
    symbols : list of str, optional
        With ``timeseries=True``: read only these symbols' rows.
    timeseries : bool, default False
        Also read the matching rows of the time series (Parquet).
    build : str, optional
        A kept build's id instead of the current one.

    Returns
    -------
    ScenarioLibrary
        The selected scenarios (and time series) of the build.

    Raises
    ------
    FileNotFoundError
        When there is no build (or no time series with ``timeseries=True``).

    References
    ----------
    .. [1] Apache Parquet file format, https://parquet.apache.org/docs/file-format/
    """
    out = location(output_dir) if output_dir else DEFAULT_OUTPUT_DIR
    root = resolve(out, build)
    with (root / METADATA_FILE).open("rb") as fh:
        document = json.load(fh)
    records = document["scenarios"]

    def keep(rec: dict, key: str, wanted) -> bool:
        return wanted is None or rec[key] in ([wanted] if isinstance(wanted, str) else wanted)

    records = [
        r for r in records
        if keep(r, "family", family) and keep(r, "severity", severity) and keep(r, "name", name) and keep(r, "id", scenario_id)
    ]
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["id", "name", "family", "severity"])
    slices = {key: {k: v for k, v in entry.items() if k != "metadata"}
              for key, entry in (document.get("families") or {}).items()}
    keys = [f"{r['family']}/{r['severity']}" for r in records]
    # Each scenario's own provenance: a carried-over slice may come from another data version or config.
    for column, default in (("data_version", document["data_version"]), ("config_hash", document["config_hash"]),
                            ("origin", "new"), ("stale", False)):
        frame[column] = [slices.get(k, {}).get(column, default) for k in keys]
    series = None
    if timeseries:
        series = read_timeseries(root, records, symbols).to_pandas()
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
        build_id=(document.get("run") or {}).get("build_id", ""),
        slices=slices,
    )


def timeseries_dataset(root: Path) -> ds.Dataset:
    """The time-series dataset of a build directory (hive partitions family/severity), or of a legacy
    single file.

    Parameters
    ----------
    root : Path
        A build's directory (local or fsspec).

    Returns
    -------
    pyarrow.dataset.Dataset
        The Parquet dataset; ``family`` and ``severity`` columns come from the partition directories.

    Raises
    ------
    FileNotFoundError
        When the build has no time series.
    """
    path = location(root) / TIMESERIES_FILE
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist; build with --save-timeseries")
    where, fs = arrow_location(path)
    if path.is_dir():
        return ds.dataset(where, format="parquet", partitioning=PARTITIONING, filesystem=fs)
    return ds.dataset(where, format="parquet", filesystem=fs)


@dataclass(frozen=True)
class TimeseriesPart:
    """One Parquet part of a time-series slice: its parsed footer, and the scenario-id range of each row group
    (None: no statistics). pyarrow (as of 26) does not prune row groups on a dictionary column's statistics,
    so this does: one scenario's rows are read from the row groups that can hold it, nothing else.

    Parameters
    ----------
    path : Path
        The part's file (local or fsspec).
    metadata : pyarrow.parquet.FileMetaData
        Its parsed footer.
    columns : list of str
        The columns its reads return.
    ranges : list of (str, str) or None
        Per row group, the (min, max) scenario id of its statistics, or None.

    References
    ----------
    .. [1] Apache Parquet file format, https://parquet.apache.org/docs/file-format/
    """

    path: Path
    metadata: pq.FileMetaData
    columns: list[str]
    ranges: list[tuple[str, str] | None]

    @classmethod
    def read(cls, path: Path, exclude: tuple[str, ...] = ()) -> TimeseriesPart:
        """The part at ``path``, reading its footer only.

        Parameters
        ----------
        path : Path
            The part's file (local or on an fsspec store).
        exclude : tuple of str, default ()
            Columns its reads leave out.

        Returns
        -------
        TimeseriesPart
            The footer and per-row-group scenario-id ranges.
        """
        where, fs = arrow_location(path)
        metadata = pq.read_metadata(where, filesystem=fs)
        names = metadata.schema.to_arrow_schema().names
        at = names.index("scenario_id")
        ranges = []
        for i in range(metadata.num_row_groups):
            stats = metadata.row_group(i).column(at).statistics
            ok = stats is not None and stats.has_min_max and isinstance(stats.min, str) and isinstance(stats.max, str)
            ranges.append((stats.min, stats.max) if ok else None)
        return cls(path, metadata, [c for c in names if c not in exclude], ranges)

    def rows(self, scenario_id: str, symbols: list[str] | None) -> pa.Table | None:
        """The rows of ``scenario_id`` (and ``symbols``) in this part.

        Parameters
        ----------
        scenario_id : str
            The scenario's id.
        symbols : list of str or None
            Keep only these symbols' rows; None: every symbol.

        Returns
        -------
        pyarrow.Table or None
            The rows (possibly none), or None when no row group can hold the scenario.
        """
        groups = [i for i, r in enumerate(self.ranges) if r is None or r[0] <= scenario_id <= r[1]]
        if not groups:
            return None
        if is_remote(self.path):
            with self.path.open("rb") as fh, pq.ParquetFile(fh, metadata=self.metadata) as source:
                table = source.read_row_groups(groups, columns=self.columns, use_threads=False)
        else:
            with pq.ParquetFile(self.path, metadata=self.metadata, memory_map=True) as source:
                table = source.read_row_groups(groups, columns=self.columns, use_threads=False)
        table = _select(table, "scenario_id", [scenario_id])
        return _select(table, "symbol", symbols) if symbols else table


def _select(table: pa.Table, column: str, values: list[str]) -> pa.Table:
    """The rows of ``table`` whose string ``column`` holds one of ``values``: a zero-copy slice when they are
    contiguous (a scenario's rows, a symbol's rows within a scenario, as the parts are written)."""
    mask = _is_in(table[column], values)
    rows = pc.indices_nonzero(mask)
    if len(rows) == 0 or rows[-1].as_py() - rows[0].as_py() + 1 == len(rows):
        return table.slice(rows[0].as_py() if len(rows) else 0, len(rows))
    return table.filter(mask)


def _is_in(column: pa.ChunkedArray, values: list[str]) -> pa.ChunkedArray:
    """Rows of a string column holding one of ``values``; a dictionary column is matched on its codes."""
    if not pa.types.is_dictionary(column.type):
        return pc.is_in(column, value_set=pa.array(values, column.type))
    chunks = []
    for chunk in column.chunks:
        found = pc.is_in(chunk.dictionary, value_set=pa.array(values, chunk.dictionary.type))
        codes = pc.indices_nonzero(found).cast(chunk.indices.type)
        chunks.append(pc.is_in(chunk.indices, value_set=codes))
    return pa.chunked_array(chunks, pa.bool_())


def read_timeseries(root: Path, records: list[dict], symbols: list[str] | None = None) -> pa.Table:
    """Rows of the scenarios ``records`` (and ``symbols``) from a build's time series (TIMESERIES_SCHEMA), in
    dataset order (scenario, then symbol, then date): only the parts of the records' slices (partition
    pruning by directory) and, in them, only the row groups whose scenario-id statistics can hold a record
    (:class:`TimeseriesPart`).

    Parameters
    ----------
    root : Path
        A build's directory (local or fsspec).
    records : list of dict
        Metadata records with ``id``, ``family`` and ``severity``.
    symbols : list of str, optional
        Keep only these symbols' rows.

    Returns
    -------
    pyarrow.Table
        :data:`TIMESERIES_SCHEMA` columns (an empty table when nothing matches).

    Raises
    ------
    FileNotFoundError
        When the build has no time series.
    """
    path = location(root) / TIMESERIES_FILE
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist; build with --save-timeseries")
    parts: dict[Path, TimeseriesPart] = {}
    tables = []
    for record in records:
        files = [path] if path.is_file() else sorted(
            (path / f"family={record['family']}" / f"severity={record['severity']}").glob("part-*.parquet"))
        for file in files:
            part = parts.setdefault(file, TimeseriesPart.read(file))
            rows = part.rows(record["id"], list(symbols) if symbols else None)
            if rows is not None and rows.num_rows:
                tables.append(rows.select([c for c in TIMESERIES_SCHEMA.names if c in rows.column_names]))
    if not tables:
        return TIMESERIES_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="permissive")
