"""Market data: read the OHLCV contract, validate it, and hold it as an aligned close/volume panel.

Validation raises :class:`ScenarioInputError` with one message naming the source (for a directory, the
file) and the problem, so a bad file stops the run before anything is generated or written. Date columns
are read by ``core.data.dates``, split-like moves refused by ``core.data.price_moves``, trading calendars aligned by
``core.data.source_calendars`` (README "Market data" is the contract).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from scenarios_assets.core.data.source_calendars import check_weekend_sessions, fold_to_calendar, market_calendar
from scenarios_assets.core.models.config import DataConfig, default_config
from scenarios_assets.core.data.dates import DateColumnError, parse_date_column
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.price_moves import PriceMoveError, check_price_moves, parse_accepted_moves
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_assets.core.data.symbols import resolve_symbols, unknown_symbols_error
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR as ANNUALISATION

OHLCV_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
# Up to this many missing sessions inside a symbol's history are forward-filled (holiday calendars of
# different sources); a longer hole is a gap the user must fix.
MAX_FILLED_SESSIONS = 5
# Files a directory source reads (suffix in any case); everything else, and every hidden file or folder
# (name starting with '.' or '_', e.g. .DS_Store, _SUCCESS, .ipynb_checkpoints), is skipped and listed.
DATA_SUFFIXES = (".parquet", ".csv", ".csv.gz")
# Internal column: index (into the report's ``files``) of the file each row came from (directory sources).
FILE_COLUMN = "__file__"


def source_files(directory: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The data files under ``directory`` (recursively, sorted by relative path) and the skipped entries.

    Hidden files and folders (leading '.' or '_') are skipped whole: a hidden folder is listed, its content
    is not.

    Parameters
    ----------
    directory : Path
        A directory source of market data.

    Returns
    -------
    files : list of Path
        The files whose name ends in one of :data:`DATA_SUFFIXES` (any case), sorted.
    skipped : list of (str, str)
        (POSIX path relative to ``directory``, reason) of every other entry: ``"hidden"`` or
        ``"not .parquet/.csv/.csv.gz"``.
    """
    read, skipped = [], []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        hidden = next((part for part in rel.parts if part.startswith((".", "_"))), None)
        if hidden is not None:
            if rel.parts.index(hidden) == len(rel.parts) - 1:
                skipped.append((rel.as_posix(), "hidden"))
            continue  # inside a hidden folder: the folder is listed, its content is not
        if path.is_dir():
            continue
        if path.name.lower().endswith(DATA_SUFFIXES):
            read.append(path)
        else:
            skipped.append((rel.as_posix(), f"not {'/'.join(DATA_SUFFIXES)}"))
    return read, skipped


def read_ohlcv(source: str | Path) -> pd.DataFrame:
    """Read long OHLCV rows from a Parquet/CSV file or a directory of them.

    A directory's rows carry ``FILE_COLUMN`` (which file each came from), and ``frame.attrs`` holds
    ``files`` (relative paths read, in order) and ``skipped`` ((relative path, reason) pairs). The rows are
    read as written, not validated (:func:`validate_ohlcv`).

    Parameters
    ----------
    source : str or Path
        A ``.parquet``, ``.csv`` or ``.csv.gz`` file (suffix in any case; CSV comma-separated, UTF-8, with a
        header), a directory of them (see :func:`source_files`), or a ``postgresql://`` / ``postgres://``
        URL (read whole by :func:`~scenarios_assets.core.data.database.read_ohlcv_postgres`).

    Returns
    -------
    pandas.DataFrame
        One row per (symbol, date) as in the source, with its columns (the contract's are ``symbol, date,
        open, high, low, close, volume``, README "Market data").

    Raises
    ------
    ScenarioInputError
        When the source is an empty string or does not exist, a directory holds no data file, a file cannot
        be read or has an unsupported type, a CSV header is empty or separated by ``;``, tabs or ``|``, a
        column name appears twice, or the files of a directory differ in columns.

    References
    ----------
    .. [1] Apache Parquet file format, https://parquet.apache.org/docs/file-format/ (read through Apache
       Arrow's ``pyarrow.dataset``).
    """
    text = str(source)
    if text.startswith(("postgresql://", "postgres://")):
        from scenarios_assets.core.data.database import read_ohlcv_postgres  # optional driver, imported on use

        return read_ohlcv_postgres(text)
    path = Path(source)
    if text.strip() == "":
        raise ScenarioInputError("market data source is an empty string (give a Parquet/CSV file or directory)")
    if not path.exists():
        raise ScenarioInputError(f"market data '{source}' does not exist (expected a Parquet/CSV file or directory)")
    if not path.is_dir():
        return _read_file(path, str(source))
    files, skipped = source_files(path)
    if not files:
        listed = ", ".join(f"{name} ({why})" for name, why in skipped[:5]) or "nothing"
        raise ScenarioInputError(
            f"market data '{source}': the directory holds no {'/'.join(DATA_SUFFIXES)} file (skipped: {listed})"
        )
    frames = []
    for i, file in enumerate(files):
        frame = _read_file(file, str(file))
        frames.append(frame.assign(**{FILE_COLUMN: np.int32(i)}))
    columns = [list(f.columns) for f in frames]
    odd = next((i for i, c in enumerate(columns) if set(c) != set(columns[0])), None)
    if odd is not None:
        only = sorted(set(columns[odd]) ^ set(columns[0]))
        raise ScenarioInputError(
            f"market data '{source}': files differ in columns: {files[odd].relative_to(path)} and "
            f"{files[0].relative_to(path)} (differing: {', '.join(map(str, only))}); give every file the columns "
            f"{', '.join(OHLCV_COLUMNS)}"
        )
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    out.attrs = {"files": [f.relative_to(path).as_posix() for f in files], "skipped": skipped}
    return out


def _read_file(file: Path, shown: str) -> pd.DataFrame:
    name = file.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pads.dataset(file).to_table().to_pandas()
        elif name.endswith((".csv", ".csv.gz")):
            _check_csv_header(file, shown)
            frame = pd.read_csv(file, encoding="utf-8-sig")
        else:
            raise ScenarioInputError(
                f"market data '{shown}': unsupported file type (use {', '.join(DATA_SUFFIXES)}, in any case)"
            )
    except ScenarioInputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError, pa.ArrowException) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ScenarioInputError(f"market data '{shown}' could not be read: {reason}") from None
    if name.endswith(".parquet"):
        _check_column_names(list(frame.columns), shown)
    return frame


def _check_csv_header(file: Path, shown: str) -> None:
    """The CSV's first line is a comma-separated header without repeated names; another delimiter gets
    one clear line."""
    import csv
    import gzip

    opener = gzip.open if file.name.lower().endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = fh.readline().strip()
    if not header:
        raise ScenarioInputError(f"market data '{shown}' is empty (expected a header line {','.join(OHLCV_COLUMNS)})")
    if "," in header:
        # pandas would rename a repeated name to 'close.1' silently: check the header as written.
        _check_column_names(next(csv.reader([header])), shown)
        return
    if True:
        for delimiter, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if delimiter in header:
                raise ScenarioInputError(
                    f"market data '{shown}': the header {header[:80]!r} is separated by {label}; expected a "
                    f"comma-separated file with the header {','.join(OHLCV_COLUMNS)} (and '.' as decimal point)"
                )


def _check_column_names(columns: list, shown: str) -> None:
    """No column name twice (in a CSV header, or a Parquet schema)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(columns):
        text = str(name).strip()
        if text in seen:
            raise ScenarioInputError(
                f"market data '{shown}': column '{text}' appears twice (columns {seen[text] + 1} and {i + 1}); "
                "keep one column per name"
            )
        seen[text] = i


def normalise_columns(raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename the contract columns found under names that differ only in case or surrounding spaces.

    E.g. ``Close`` or `` Date`` become ``close`` and ``date``; other columns are kept as they are.

    Parameters
    ----------
    raw : pandas.DataFrame
        Rows as read (:func:`read_ohlcv`).
    source : str
        The source's name, for the messages.

    Returns
    -------
    frame : pandas.DataFrame
        ``raw`` with the contract columns renamed (``raw`` itself when nothing is renamed).
    renames : dict of str to str
        {name found: contract name} of the renamed columns.

    Raises
    ------
    ScenarioInputError
        When two columns map to one contract name, or when a contract column is missing (naming what was
        found).
    """
    present = [c for c in raw.columns if c != FILE_COLUMN]
    renames: dict[str, str] = {}
    claimed: dict[str, str] = {}
    for column in present:
        key = str(column).strip().lower()
        if key in OHLCV_COLUMNS:
            if key in claimed:
                raise ScenarioInputError(
                    f"market data '{source}': columns '{claimed[key]}' and '{column}' both name column '{key}' "
                    "(names differ only in case or spaces); keep one"
                )
            claimed[key] = str(column)
            if column != key:
                renames[str(column)] = key
    missing = [c for c in OHLCV_COLUMNS if c not in claimed]
    if missing:
        found = ", ".join(map(str, present[:12])) + (", ..." if len(present) > 12 else "")
        raise ScenarioInputError(
            f"market data '{source}': missing required column(s) {', '.join(missing)} (found: {found or 'none'}; "
            f"expected {', '.join(OHLCV_COLUMNS)})"
        )
    return (raw.rename(columns=renames) if renames else raw), renames


def _type_columns(df: pd.DataFrame, source: str, with_file: bool, where: Callable[[pd.Series], str]) -> dict[str, str]:
    """Type ``df``'s columns in place: symbol as text without padding spaces, date as the exchange's calendar
    date, prices and volume as float64; the first row without a symbol or date, or with a non-number, raises
    ScenarioInputError (``where(mask)``: the file(s) of the masked rows of a directory source). Returns the
    padded symbols found, as {given: stripped}."""
    if df["symbol"].isna().any():
        missing = df["symbol"].isna()
        raise ScenarioInputError(f"market data '{source}': {int(missing.sum())} row(s) have no symbol{where(missing)}")
    df["symbol"] = df["symbol"].astype(str)
    padded = {u: u.strip() for u in df["symbol"].unique() if u != u.strip()}  # fixed-width exports: 'SPX   '
    if padded:
        df["symbol"] = df["symbol"].replace(padded)
    if (df["symbol"] == "").any():
        blank = df["symbol"] == ""
        raise ScenarioInputError(f"market data '{source}': {int(blank.sum())} row(s) have an empty symbol{where(blank)}")
    try:
        # One unit whatever the source (Parquet date32/timestamps, CSV text, PostgreSQL date), so equal rows
        # give an equal data version; the exchange's local calendar date (core.data.dates).
        df["date"] = parse_date_column(df["date"], "date", source)
    except DateColumnError as exc:
        if with_file and exc.value is not None:
            hit = df["date"].astype(str).str.strip() == str(exc.value)
            raise ScenarioInputError(f"{exc}{where(hit)}") from None
        raise
    if df["date"].isna().any():
        nodate = df["date"].isna()
        raise ScenarioInputError(f"market data '{source}': {int(nodate.sum())} row(s) have no date{where(nodate)}")
    for col in (*PRICE_COLUMNS, "volume"):
        try:
            df[col] = pd.to_numeric(df[col]).astype("float64")
        except (ValueError, TypeError):
            numbers = pd.to_numeric(df[col], errors="coerce")
            bad = numbers.isna() & df[col].notna()
            value = df.loc[bad, col].iloc[0] if bad.any() else "?"
            raise ScenarioInputError(
                f"market data '{source}': column '{col}' is not numeric (first: {value!r}{where(bad)}; "
                "expected numbers with '.' as decimal point)"
            ) from None
    return padded


def _check_values(df: pd.DataFrame, source: str, where: Callable[[pd.Series], str]) -> None:
    """Prices > 0 and finite, close within [low, high], volume >= 0, one row per (symbol, date); the first
    offending row raises ScenarioInputError naming it (``where`` as in :func:`_type_columns`)."""

    def first_row(mask: pd.Series) -> str:
        row = df.loc[mask].iloc[0]
        return f"{row['symbol']} on {row['date'].date()}"

    close = df["close"]
    bad_close = close.isna() | ~np.isfinite(close) | (close <= 0)
    if bad_close.any():
        raise ScenarioInputError(
            f"market data '{source}': {int(bad_close.sum())} row(s) with a missing, zero, negative or non-finite "
            f"close (first: {first_row(bad_close)}, close={df.loc[bad_close, 'close'].iloc[0]}{where(bad_close)}); "
            "prices must be > 0"
        )
    for col in ("open", "high", "low"):
        bad = df[col].notna() & (~np.isfinite(df[col]) | (df[col] <= 0))
        if bad.any():
            raise ScenarioInputError(
                f"market data '{source}': {int(bad.sum())} row(s) with a zero, negative or non-finite {col} "
                f"(first: {first_row(bad)}{where(bad)}); prices must be > 0"
            )
    hl = df["high"].notna() & df["low"].notna()
    bad_range = hl & (
        (df["high"] < df["low"])
        | (df["close"] > df["high"] * (1 + 1e-6))
        | (df["close"] < df["low"] * (1 - 1e-6))
    )
    if bad_range.any():
        raise ScenarioInputError(
            f"market data '{source}': {int(bad_range.sum())} row(s) where the close lies outside [low, high] "
            f"or high < low (first: {first_row(bad_range)}{where(bad_range)})"
        )
    bad_volume = df["volume"].notna() & (~np.isfinite(df["volume"]) | (df["volume"] < 0))
    if bad_volume.any():
        raise ScenarioInputError(
            f"market data '{source}': {int(bad_volume.sum())} row(s) with a negative or non-finite volume "
            f"(first: {first_row(bad_volume)}{where(bad_volume)})"
        )
    dup = df.duplicated(["symbol", "date"], keep=False)
    if dup.any():
        first = df.loc[dup].iloc[0]
        same = dup & (df["symbol"] == first["symbol"]) & (df["date"] == first["date"])
        raise ScenarioInputError(
            f"market data '{source}': {int(dup.sum())} duplicate (symbol, date) row(s) (first: {first_row(dup)}"
            f"{where(same)}); keep one row per symbol and trading day"
        )


def validate_ohlcv(
    raw: pd.DataFrame,
    source: str,
    *,
    accepted_moves: Iterable[str] | set[tuple[str, str]] | None = None,
    split_check: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Check the OHLCV contract (README "Market data"); return the rows typed and sorted by (symbol, date),
    and a report.

    Checks, in order: the contract columns (:func:`normalise_columns`), at least one row, a symbol and a date
    on every row, numeric prices and volume, prices > 0 and finite, the close within [low, high] (1e-6
    tolerance), volume >= 0, one row per (symbol, date), no unexplained split-like close-to-close move
    (:mod:`scenarios_assets.core.data.price_moves`), and the weekend sessions
    (:mod:`scenarios_assets.core.data.source_calendars`).

    Parameters
    ----------
    raw : pandas.DataFrame
        Rows as read (:func:`read_ohlcv`), with its ``attrs`` (files read and skipped) for a directory.
    source : str
        The source's name, for the messages.
    accepted_moves : iterable of str or set of (str, str), optional
        ``SYMBOL:YYYY-MM-DD`` moves that ``core.data.price_moves`` would refuse but are real, or their parsed
        (symbol, date) set. None: the shipped config's ``data.accepted_moves``.
    split_check : bool, default True
        Refuse moves matching a common split ratio (the x10 test always applies).

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``symbol`` (str, stripped), ``date`` (datetime64, the exchange's calendar date), ``open``,
        ``high``, ``low``, ``close`` (price units) and ``volume`` (the source's units), float64; sorted by
        (symbol, date).
    report : dict
        ``rows``, ``rows_reordered``; when they apply ``files_read``, ``files_skipped``,
        ``columns_renamed``, ``symbols_stripped``, ``seven_day_symbols`` and ``accepted_moves``.

    Raises
    ------
    ScenarioInputError
        On the first broken rule, with one line naming the source (and, for a directory, the file), the
        first offending row and the fix.
    """
    files = list(raw.attrs.get("files", []))
    skipped = list(raw.attrs.get("skipped", []))
    raw, renamed = normalise_columns(raw, source)
    if raw.empty:
        raise ScenarioInputError(f"market data '{source}' has no rows")
    with_file = FILE_COLUMN in raw.columns and len(files) >= 1
    df = raw.loc[:, list(OHLCV_COLUMNS) + ([FILE_COLUMN] if with_file else [])].copy()

    def where(mask) -> str:
        """' in <file>' (or files) of the masked rows, for a directory source."""
        if not with_file:
            return ""
        names = sorted({files[i] for i in df.loc[mask, FILE_COLUMN].unique()})
        return f" in {' and '.join(names[:2])}" + (f" and {len(names) - 2} more" if len(names) > 2 else "")

    padded = _type_columns(df, source, with_file, where)
    _check_values(df, source, where)
    reordered = not (
        df["symbol"].is_monotonic_increasing
        and df.groupby("symbol", sort=False)["date"].apply(lambda d: d.is_monotonic_increasing).all()
    )
    df = df.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    if accepted_moves is None:
        accepted_moves = default_config()["data"]["accepted_moves"]
    accepted = accepted_moves if isinstance(accepted_moves, set) else parse_accepted_moves(accepted_moves)
    try:
        accepted_found = check_price_moves(df, source, accepted, split_check)
    except PriceMoveError as exc:
        if not with_file:
            raise
        rows = np.zeros(len(df), dtype=bool)
        rows[[exc.row - 1, exc.row]] = True
        raise ScenarioInputError(f"{exc} [rows{where(rows)}]") from None
    seven_day = check_weekend_sessions(df, source)
    if with_file:
        df = df.drop(columns=FILE_COLUMN)
    report: dict[str, Any] = {"rows": len(df), "rows_reordered": bool(reordered)}
    if files:
        report |= {"files_read": files, "files_skipped": [f"{name} ({why})" for name, why in skipped]}
    if renamed:
        report["columns_renamed"] = renamed
    if padded:
        report["symbols_stripped"] = dict(sorted(padded.items()))
    if seven_day:
        report["seven_day_symbols"] = seven_day
    if accepted_found:
        report["accepted_moves"] = accepted_found
    return df, report


def data_version(df: pd.DataFrame) -> str:
    """Content hash of validated OHLCV rows: equal data gives an equal version, whatever the file layout.

    Parameters
    ----------
    df : pandas.DataFrame
        Validated rows (:func:`validate_ohlcv`), in their sorted order; only the contract columns count.

    Returns
    -------
    str
        The first 16 hex digits of the SHA-256 of the rows' pandas hashes (the index does not count).
    """
    hashed = pd.util.hash_pandas_object(df.loc[:, list(OHLCV_COLUMNS)], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class MarketData:
    """Aligned daily panel of the universe (dates x symbols) plus the reference index used for calibration.

    ``close`` and ``volume`` share one trading calendar of business days (``core.data.source_calendars``: the sessions
    of the exchange-calendar symbols; a seven-day symbol's other days are folded into the next session); a
    cell is NaN before a symbol's first and after its last session. ``reference`` is the market index (``SPX`` by
    default) over the full history, kept even when the scenario universe is a subset of symbols.

    ``high`` and ``low``: the sessions' recorded bar range on the same dates and symbols, float32 (4 bytes a
    cell: 0.5 MB each on the bundled 28 symbols x 8,844 sessions), NaN where the source has closes only
    (``data/README.md``, close-only rule), on a forward-filled session and for a folded seven-day row set
    without any bar; None when the source has no bar at all. A folded session's bar spans its folded rows
    (high: their highest high, low: their lowest low). Replays carry them (``engines.replay.replay_window``).

    Parameters
    ----------
    close : pandas.DataFrame of shape (n_days, n_symbols), float64
        Close prices, indexed by session date; short gaps forward-filled (:data:`MAX_FILLED_SESSIONS`).
    volume : pandas.DataFrame of shape (n_days, n_symbols), float64
        Traded volume (the source's units), not filled.
    reference : pandas.Series
        Close of the reference index over its full history (named after its symbol), or an equal-weight
        index of the universe (``EQUAL_WEIGHT``, starting at 100) when the data hold no reference symbol.
    data_version : str
        Content hash of the rows the panel was built from (:func:`data_version`).
    source : str
        The source's name (a PostgreSQL URL without its password).
    report : dict, default {}
        What loading found and did (rows, files, renames, calendars, filled sessions, dropped symbols, load
        seconds).
    high, low : pandas.DataFrame of shape (n_days, n_symbols), float32, optional
        Intraday high and low prices (see above).
    """

    close: pd.DataFrame
    volume: pd.DataFrame
    reference: pd.Series
    data_version: str
    source: str
    report: dict = field(default_factory=dict)
    high: pd.DataFrame | None = None
    low: pd.DataFrame | None = None

    @property
    def symbols(self) -> list[str]:
        """The panel's symbols, in column order."""
        return list(self.close.columns)

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The panel's sessions (the index of ``close``)."""
        return self.close.index

    def log_returns(self) -> pd.DataFrame:
        """Daily log returns of every symbol (NaN outside a symbol's history).

        Returns
        -------
        pandas.DataFrame of shape (n_days, n_symbols), float64
            ln(close_t / close_{t-1}); the first row is NaN.
        """
        return np.log(self.close).diff()

    def long_run_drift(self) -> pd.Series:
        """Mean daily log return of each symbol over its whole history in the panel.

        Returns
        -------
        pandas.Series of shape (n_symbols,), float64
            Mean daily log return (not annualised), NaN skipped.
        """
        return self.log_returns().mean()

    def summary(self) -> dict:
        """A JSON-ready description of the panel, with the loading report.

        Returns
        -------
        dict
            ``symbols``, ``start_date`` and ``end_date`` (ISO), ``trading_days`` (sessions), ``observations``
            (non-NaN closes), ``reference`` (its name), ``data_version``, ``first_date_by_symbol`` and
            ``last_date_by_symbol``, and every key of ``report``.
        """
        first = self.close.apply(pd.Series.first_valid_index)
        last = self.close.apply(pd.Series.last_valid_index)
        return {
            "symbols": self.symbols,
            "start_date": str(self.dates[0].date()),
            "end_date": str(self.dates[-1].date()),
            "trading_days": len(self.dates),
            "observations": int(self.close.notna().sum().sum()),
            "reference": self.reference.name,
            "data_version": self.data_version,
            "first_date_by_symbol": {s: str(d.date()) for s, d in first.items()},
            "last_date_by_symbol": {s: str(d.date()) for s, d in last.items()},
            **self.report,
        }


def build_market_data(
    ohlcv: pd.DataFrame,
    source: str,
    *,
    symbols: list[str] | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    lookback_years: float | None = None,
    reference_symbol: str = "SPX",
    report: dict | None = None,
    available_symbols: list[str] | None = None,
) -> MarketData:
    """Panel of validated OHLCV rows, restricted to the requested symbols and dates.

    The rows are put on one trading calendar (``core.data.source_calendars``), pivoted to dates x symbols,
    gaps of up to :data:`MAX_FILLED_SESSIONS` sessions inside a symbol's history forward-filled, then cut to
    the date window; symbols without data in the window are dropped (and reported).

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (:func:`validate_ohlcv`).
    source : str
        The source's name, for the messages.
    symbols : list of str, optional
        The universe; None or empty: every symbol available.
    start_date, end_date : str, optional
        Window bounds, inclusive (anything ``pandas.Timestamp`` parses; YYYY-MM-DD). None: the data's.
    lookback_years : float, optional
        Keep at most this many calendar years before the end date.
    reference_symbol : str, default "SPX"
        The market index used for calibration, kept over its full history.
    report : dict, optional
        :func:`validate_ohlcv`'s report, merged into the panel's.
    available_symbols : list of str, optional
        Every symbol the source holds when ``ohlcv`` is a selection of it (see :func:`load_market_data`); a
        requested one without rows here is then reported as without data, not unknown.

    Returns
    -------
    MarketData
        The panel, its ``report`` also holding the calendar report, ``filled_sessions`` and
        ``dropped_without_data``.

    Raises
    ------
    ScenarioInputError
        When a requested symbol is unknown, a date does not parse or the end is before the start, the window
        holds no session or no symbol with data, or a symbol has a gap longer than
        :data:`MAX_FILLED_SESSIONS` sessions.
    """
    version = data_version(ohlcv)
    available = sorted(ohlcv["symbol"].unique() if available_symbols is None else available_symbols)
    if symbols:
        unknown = [s for s in symbols if s not in available]
        if unknown:
            raise unknown_symbols_error(unknown, available, source)
    start = _parse_date(start_date, "start date")
    end = _parse_date(end_date, "end date")
    if start is not None and end is not None and end < start:
        raise ScenarioInputError(f"end date {end.date()} is before start date {start.date()}")

    # validate_ohlcv's report already holds the seven-day symbols (its "rows" says it ran); else find them.
    seven_day = report.get("seven_day_symbols", []) if report and "rows" in report else check_weekend_sessions(ohlcv, source)
    sessions = market_calendar(ohlcv, seven_day)
    on_calendar, calendar_report = fold_to_calendar(ohlcv, sessions)
    close, volume = _wide(on_calendar, ("close", "volume"))
    close.columns.name = volume.columns.name = None
    close.index.name = volume.index.name = "date"
    high, low = _bars(on_calendar, close)
    close, filled = _fill_short_gaps(close, source)

    if reference_symbol in close.columns:
        reference = close[reference_symbol].dropna().rename(reference_symbol)
    else:  # no index in the data: an equal-weight index of the universe stands in, and says so
        ew = np.exp(np.log(close).diff().mean(axis=1).fillna(0).cumsum()) * 100.0
        reference = ew.rename("EQUAL_WEIGHT")

    keep = symbols or available
    close, volume = close.reindex(columns=keep), volume.reindex(columns=keep)
    lo = close.index[0] if start is None else start
    hi = close.index[-1] if end is None else end
    if lookback_years:
        lo = max(lo, hi - pd.DateOffset(years=float(lookback_years)))
    window = (close.index >= lo) & (close.index <= hi)
    if not window.any():
        first, last = close.index[0].date(), close.index[-1].date()
        what = (f"end date {hi.date()} is before the first session" if hi < close.index[0] else
                f"start date {lo.date()} is after the last session" if lo > close.index[-1] else
                f"date range {lo.date()}..{hi.date()} holds no trading day")
        raise ScenarioInputError(f"{what} of market data '{source}' ({first}..{last})")
    close, volume = close.loc[window], volume.loc[window]
    empty = [s for s in close.columns if close[s].isna().all()]
    close, volume = close.drop(columns=empty), volume.drop(columns=empty)
    if close.empty or close.shape[1] == 0:
        raise ScenarioInputError(f"no symbol of market data '{source}' has data in {lo.date()}..{hi.date()}")
    close = close.loc[close.notna().any(axis=1)]
    volume = volume.reindex(close.index)
    if high is not None and low is not None:
        high, low = (frame.reindex(index=close.index, columns=close.columns) for frame in (high, low))
    full_report = {**(report or {}), **calendar_report, "filled_sessions": filled, "dropped_without_data": empty}
    return MarketData(close, volume, reference, version, source, full_report, high, low)


def _bars(rows: pd.DataFrame, close: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """float32 (dates x symbols) high and low panels of the rows on the calendar (aligned with ``close``,
    before its short gaps are filled, so a filled session has no bar), or (None, None) when no row has
    both. A row with one of the two is treated as having neither; each is bounded by its close (the input
    check accepts a close up to 1e-6 outside [low, high])."""
    both = rows["high"].notna() & rows["low"].notna()
    if not both.any():
        return None, None
    bars = rows.loc[:, ["symbol", "date"]].assign(high=rows["high"].where(both), low=rows["low"].where(both))
    high, low = _wide(bars, ("high", "low"))
    high = high.reindex(index=close.index, columns=close.columns).to_numpy()
    low = low.reindex(index=close.index, columns=close.columns).to_numpy()
    has = np.isfinite(high) & np.isfinite(low)
    high, low = np.fmax(high, close.to_numpy()), np.fmin(low, close.to_numpy())
    return tuple(pd.DataFrame(np.where(has, v, np.nan).astype(np.float32), index=close.index, columns=close.columns)
                 for v in (high, low))


def _wide(ohlcv: pd.DataFrame, columns: tuple[str, ...]) -> list[pd.DataFrame]:
    """Dates x symbols panels of ``columns`` (sorted both ways; NaN where a symbol has no row), as
    ``DataFrame.pivot`` gives them for validated rows (unique per symbol and date), without its sort-based
    reshape: one scatter per column, ~10x faster on a million rows."""
    date_codes, dates = pd.factorize(ohlcv["date"], sort=True)
    symbol_codes, symbols = pd.factorize(ohlcv["symbol"], sort=True)
    panels = []
    for column in columns:
        values = np.full((len(dates), len(symbols)), np.nan)
        values[date_codes, symbol_codes] = ohlcv[column].to_numpy(dtype="float64", na_value=np.nan)
        panels.append(pd.DataFrame(values, index=pd.DatetimeIndex(dates, name="date"), columns=pd.Index(symbols)))
    return panels


def _parse_date(value: str | None, what: str) -> pd.Timestamp | None:
    if value in (None, ""):
        return None
    try:
        return pd.Timestamp(value).normalize()
    except (ValueError, TypeError):
        raise ScenarioInputError(f"{what} '{value}' is not a date (use YYYY-MM-DD)") from None


def _fill_short_gaps(close: pd.DataFrame, source: str) -> tuple[pd.DataFrame, int]:
    """Forward-fill up to MAX_FILLED_SESSIONS missing sessions inside each symbol's history; longer holes fail."""
    seen = close.notna()
    inside = seen.cummax() & seen[::-1].cummax()[::-1]
    filled = close.ffill(limit=MAX_FILLED_SESSIONS).where(inside)
    hole = filled.isna() & inside
    if hole.to_numpy().any():
        symbol = hole.any()[lambda s: s].index[0]
        days = hole.index[hole[symbol].to_numpy()]
        before = close[symbol].loc[: days[0]].dropna().index[-1]
        after = close[symbol].loc[days[0]:].dropna().index[0]
        gap = int(((close.index > before) & (close.index < after)).sum())
        raise ScenarioInputError(
            f"market data '{source}': symbol {symbol} has a gap of {gap} trading days between "
            f"{before.date()} and {after.date()} (at most {MAX_FILLED_SESSIONS} missing sessions are filled); "
            "supply the missing rows or remove the symbol"
        )
    return filled, int((inside & ~seen).to_numpy().sum())


def constant_columns(returns: np.ndarray) -> np.ndarray:
    """The columns of a return block whose every finite return is exactly 0.

    A price that never moved in the window, e.g. a money-market fund at 1.00. Such a symbol is simulated
    with zero volatility and zero drift, so its paths stay at its last close: no fitted or borrowed
    volatility is put on it.

    Parameters
    ----------
    returns : array_like of shape (n_days, n_symbols)
        Daily returns (simple or log: only zero or not counts); NaN where a symbol has no data.

    Returns
    -------
    ndarray of shape (n_symbols,), bool
        True for a column with at least one finite return and no finite non-zero one.
    """
    block = np.asarray(returns, dtype=np.float64)
    finite = np.isfinite(block)
    return finite.any(axis=0) & ~(finite & (block != 0)).any(axis=0)


def select_rows(
    ohlcv: pd.DataFrame,
    symbols: list[str] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    reference_symbol: str | None = None,
) -> pd.DataFrame:
    """The rows a selection needs: the requested symbols plus the reference index, on the requested dates.

    The reference is kept over its whole history, for calibration.
    :func:`~scenarios_assets.core.data.database.select_query` is the same predicate in SQL.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (:func:`validate_ohlcv`).
    symbols : list of str, optional
        The requested symbols; None or empty: every symbol.
    start, end : pandas.Timestamp, optional
        Date bounds, inclusive.
    reference_symbol : str, optional
        The reference index's symbol.

    Returns
    -------
    pandas.DataFrame
        ``ohlcv`` itself when every row is selected, else the selected rows with a fresh index.
    """
    mask = pd.Series(True, index=ohlcv.index)
    if symbols:
        mask &= ohlcv["symbol"].isin([*symbols, *([reference_symbol] if reference_symbol else [])])
    if start is not None or end is not None:
        window = pd.Series(True, index=ohlcv.index)
        if start is not None:
            window &= ohlcv["date"] >= start
        if end is not None:
            window &= ohlcv["date"] <= end
        if reference_symbol:
            window |= ohlcv["symbol"] == reference_symbol
        mask &= window
    return ohlcv if mask.all() else ohlcv.loc[mask].reset_index(drop=True)


def market_source(explicit: str | Path | None = None) -> str:
    """The market-data source in force: the explicit one, else $SCENARIOS_MARKET_DATA, else the bundled data.

    Parameters
    ----------
    explicit : str or Path, optional
        A source given by the caller (a flag, a config value); empty counts as not given.

    Returns
    -------
    str
        A path or a ``postgresql://`` URL.
    """
    return str(explicit or os.environ.get("SCENARIOS_MARKET_DATA") or BUNDLED_OHLCV)


def load_configured_market_data(source: str | Path, data: DataConfig) -> MarketData:
    """The panel that a config's ``data`` section selects from ``source``: what ``market_data/ohlcv`` holds
    (the asset, the schedule's freshness check and the CLI's preflight all load it through here).

    Parameters
    ----------
    source : str or Path
        As in :func:`load_market_data`.
    data : DataConfig
        The typed ``data`` section (``ScenarioConfig.data``): ``symbols_universe``, ``start_date``,
        ``end_date``, ``lookback_years``, ``reference_symbol``, ``accepted_moves`` and ``split_check``.

    Returns
    -------
    MarketData
        The selected panel.

    Raises
    ------
    ScenarioInputError
        As :func:`load_market_data`.
    """
    return load_market_data(
        source,
        symbols=list(data.symbols_universe) or None,
        start_date=data.start_date,
        end_date=data.end_date,
        lookback_years=data.lookback_years,
        reference_symbol=data.reference_symbol,
        accepted_moves=list(data.accepted_moves),
        split_check=data.split_check,
    )


def load_market_data(source: str | Path, **selection) -> MarketData:
    """Read, validate and select: the one call from a source to the panel.

    Only the rows the selection needs (``select_rows``) enter the panel and its data version, whatever the
    source: a ``postgresql://`` source gets the selection in its SQL query (``core.data.database``), a file is read
    and validated whole, then selected. The same rows thus give the same panel and data version from either.

    Parameters
    ----------
    source : str or Path
        A Parquet/CSV file, a directory of them, or a ``postgresql://`` URL (:func:`read_ohlcv`).
    **selection
        ``symbols`` (list of str; requested names are matched to the source's case-insensitively),
        ``start_date``, ``end_date``, ``lookback_years``, ``reference_symbol`` (default ``"SPX"``), as in
        :func:`build_market_data`; ``accepted_moves`` and ``split_check`` as in :func:`validate_ohlcv`.

    Returns
    -------
    MarketData
        The panel; its ``report`` adds ``rows`` (rows selected), ``symbols_requested`` and
        ``load_seconds`` (wall time to read, validate and align).

    Raises
    ------
    ScenarioInputError
        When the source cannot be read or breaks the contract, a requested symbol is unknown, or the
        selection has no rows (see :func:`read_ohlcv`, :func:`validate_ohlcv`, :func:`build_market_data`).
    """
    started = time.perf_counter()
    checks = {
        "accepted_moves": selection.pop("accepted_moves", None),
        "split_check": bool(selection.pop("split_check", True)),
    }
    symbols = selection.get("symbols") or None
    start = _parse_date(selection.get("start_date"), "start date")
    end = _parse_date(selection.get("end_date"), "end date")
    reference = selection.get("reference_symbol", "SPX")
    if str(source).startswith(("postgresql://", "postgres://")):
        from scenarios_assets.core.data.database import read_ohlcv_postgres, source_name

        name = source_name(str(source))
        raw = read_ohlcv_postgres(str(source), symbols, start, end, reference)  # resolves the symbols' case
        symbols = raw.attrs.get("symbols", symbols)
        if raw.empty and (symbols or start is not None or end is not None):
            raise ScenarioInputError(f"market data '{name}' has no rows for the requested symbols and dates")
        ohlcv, report = validate_ohlcv(raw, name, **checks)
        available = sorted({*symbols, *ohlcv["symbol"].unique()}) if symbols else None
    else:
        name = str(source)
        ohlcv, report = validate_ohlcv(read_ohlcv(source), name, **checks)
        available = sorted(ohlcv["symbol"].unique()) if symbols else None
        if symbols:
            symbols = resolve_symbols(symbols, available or [], name)
        ohlcv = select_rows(ohlcv, symbols, start, end, reference)
        if ohlcv.empty:
            raise ScenarioInputError(f"market data '{name}' has no rows for the requested symbols and dates")
    report = {**report, "rows": len(ohlcv), **({"symbols_requested": symbols} if symbols else {})}
    selection = {**selection, "symbols": symbols}
    market = build_market_data(ohlcv, name, report=report, available_symbols=available, **selection)
    market.report["load_seconds"] = round(time.perf_counter() - started, 3)  # read, validate, align
    return market


def read_economic(source: str | Path) -> pd.DataFrame:
    """Daily VIX and Treasury yields (wide, indexed by date); any column may be partial.

    Parameters
    ----------
    source : str or Path
        A Parquet file (or dataset directory) or a ``.csv`` file with a ``date`` column and value columns
        (``vix``, ``ust_*``), read as written.

    Returns
    -------
    pandas.DataFrame
        The value columns, indexed by normalised date, sorted.

    Raises
    ------
    ScenarioInputError
        When ``source`` does not exist or has no ``date`` column.
    """
    path = Path(source)
    if not path.exists():
        raise ScenarioInputError(f"economic data '{source}' does not exist")
    frame = pads.dataset(path).to_table().to_pandas() if path.suffix != ".csv" else pd.read_csv(path)
    if "date" not in frame.columns:
        raise ScenarioInputError(f"economic data '{source}': missing column 'date'")
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
    return frame.set_index("date").sort_index()


def build_economic(market: MarketData, raw: pd.DataFrame | None) -> pd.DataFrame:
    """VIX and rates on the market calendar; VIX gaps filled with the reference index's realised volatility.

    The proxy is the 21-session realised volatility of the reference index's daily log returns,
    annualised (x sqrt(252)) and in VIX points (x100). ``vix_source`` says per date which one was used.

    Parameters
    ----------
    market : MarketData
        The panel whose sessions and reference index are used.
    raw : pandas.DataFrame, optional
        :func:`read_economic`'s frame; None: no economic data (VIX is the proxy throughout).

    Returns
    -------
    pandas.DataFrame
        Indexed by the panel's sessions: ``realised_vol_21d`` (annualised, VIX points; at least 10 returns
        in the window), ``vix`` (VIX points, gaps filled with the proxy), ``vix_source`` (``"vix"``,
        ``"realised_vol_proxy"`` or ``"none"``) and each ``ust_*`` column of ``raw`` (its units, forward-filled
        over at most :data:`MAX_FILLED_SESSIONS` sessions).
    """
    calendar = market.dates
    ref_returns = np.log(market.reference).diff()
    realised = (ref_returns.rolling(21, min_periods=10).std() * np.sqrt(ANNUALISATION) * 100).reindex(calendar)
    out = pd.DataFrame(index=calendar)
    out["realised_vol_21d"] = realised
    raw = raw if raw is not None else pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
    vix = raw["vix"].reindex(calendar) if "vix" in raw.columns else pd.Series(np.nan, index=calendar)
    out["vix"] = vix.fillna(realised)
    out["vix_source"] = np.where(vix.notna(), "vix", np.where(realised.notna(), "realised_vol_proxy", "none"))
    for col in sorted(c for c in raw.columns if c.startswith("ust_")):
        out[col] = raw[col].reindex(calendar, method=None).ffill(limit=MAX_FILLED_SESSIONS)
    out.index.name = "date"
    return out
