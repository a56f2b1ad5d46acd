"""The visual scenario report: PNG charts and one self-contained HTML page, from a loaded catalog.

Pure core (no Dagster): matplotlib's Agg canvas only, no pyplot state, no network. Every chart is
generic over what the catalog holds: a family or severity that is absent is skipped and named in the
report, never faked. Charts read each scenario's equal-weight, daily-rebalanced portfolio path (the
same portfolio as the scenario's ``expected_return`` and ``max_drawdown``), starting at 1.0.

    scenario_report.html               every chart embedded as base64 PNG, plus the metrics tables
    scenario_report_<chart>.png        each chart, next to the catalog files

Files are written atomically (staged under temporary names in the output directory, then renamed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scenarios_assets.core.library.builds import METADATA_FILE, REPORT_FILE, TIMESERIES_FILE
from scenarios_assets.core.families.registry import FAMILIES
from scenarios_assets.core.models.severity import SEVERITIES

CHART_PREFIX = "scenario_report_"
# Dagster UI 1.13 (ui-core MetadataEntry.tsx): Markdown metadata shorter than this renders inline in the asset's
# metadata panel; longer values show as a "[Show Markdown]" link to a dialog.
INLINE_MARKDOWN_LIMIT = 1000

SEVERITY_COLORS = {"moderate": "#3b7dd8", "severe": "#e08a1e", "extreme": "#c0392b"}
SEVERITY_MARKERS = {"moderate": "o", "severe": "s", "extreme": "^"}
FAMILY_COLORS = {
    "historical": "#1f77b4",
    "regime": "#2ca02c",
    "monte_carlo": "#9467bd",
    "bootstrap": "#8c564b",
    "stress": "#d62728",
}
FAMILY_TITLES = {
    "historical": "Historical events",
    "regime": "Market regimes",
    "monte_carlo": "Monte Carlo",
    "bootstrap": "Block bootstrap",
    "stress": "Stress tests",
}
# Families whose scenarios are listed one per row in the metrics table (bigger ones are summarised).
MAX_ROWS_PER_FAMILY = 100
MAX_STRESS_PANELS = 24
MAX_LINES_PER_PANEL = 40
DPI = 96


@dataclass
class Chart:
    """One rendered chart of the report.

    Parameters
    ----------
    key : str
        File stem after :data:`CHART_PREFIX`, e.g. ``"monte_carlo_fan"``.
    title : str
        The chart's title.
    caption : str
        What it shows, one or two sentences.
    png : bytes
        The PNG image (matplotlib Agg, :data:`DPI` dots per inch).
    """

    key: str  # file stem after the prefix, e.g. "monte_carlo_fan"
    title: str
    caption: str
    png: bytes

    @property
    def filename(self) -> str:
        """The PNG's file name, ``scenario_report_<key>.png``."""
        return f"{CHART_PREFIX}{self.key}.png"

    def data_uri(self) -> str:
        """The PNG as a ``data:image/png;base64,...`` URI (RFC 2397).

        Returns
        -------
        str
            The URI, for an ``<img src>`` or Markdown image.
        """
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def markdown(self) -> str:
        """Markdown with the image embedded (the Dagster UI shows it only in a dialog: see linked_markdown).

        Returns
        -------
        str
            Bold title, the image as a data URI, and the caption.
        """
        return f"**{self.title}**\n\n![{self.title}]({self.data_uri()})\n\n{self.caption}"

    def linked_markdown(self, url: str, thumbnail_url: str | None = None) -> str:
        """Markdown showing the image at ``thumbnail_url`` (default ``url``), a link to ``url``. The Dagster UI (1.13)
        renders a Markdown metadata value in place only when it is shorter than INLINE_MARKDOWN_LIMIT characters,
        else behind a "[Show Markdown]" link: an embedded PNG never fits, a link to the image does (the caption
        is cut to fit).

        Parameters
        ----------
        url : str
            Where the full image is served.
        thumbnail_url : str, optional
            The image shown in place; default ``url``.

        Returns
        -------
        str
            At most ``INLINE_MARKDOWN_LIMIT - 1`` characters (the caption cut with an ellipsis if needed).
        """
        head = f"**{self.title}**\n\n[![{self.title}]({thumbnail_url or url})]({url})\n\n"
        room = INLINE_MARKDOWN_LIMIT - 1 - len(head)
        caption = self.caption if len(self.caption) <= room else self.caption[: max(room - 1, 0)] + "…"
        return head + caption


@dataclass
class ReportData:
    """What the report reads: the catalog's records and each scenario's portfolio path.

    Parameters
    ----------
    records : list of dict
        Scenario records (:meth:`~scenarios_assets.core.models.scenario.Scenario.record`; possibly slimmed).
    generated_at, data_version, config_hash : str, default ""
        The build's provenance.
    wealth : dict of str to ndarray of shape (n_days + 1,), float64, default {}
        Scenario id -> value of the equal-weight portfolio, starting at 1.0 (``wealth[0] == 1``).
    has_timeseries : bool, default False
        Whether the build has time series (else path charts are omitted).
    metrics : pandas.DataFrame, optional
        Per scenario (x symbol) metrics with a ``scenario_id`` column.
    """

    records: list[dict]
    generated_at: str = ""
    data_version: str = ""
    config_hash: str = ""
    wealth: dict[str, np.ndarray] = field(default_factory=dict)  # scenario id -> value path, wealth[0] == 1
    has_timeseries: bool = False
    metrics: pd.DataFrame | None = None  # optional per scenario (x symbol) metrics with a scenario_id column

    @property
    def families(self) -> list[str]:
        """The families present, in registry order, then any other ones sorted."""
        present = {r["family"] for r in self.records}
        return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


@dataclass
class Report:
    """A rendered report.

    Parameters
    ----------
    data : ReportData
        What it was rendered from.
    charts : list of Chart
        The charts, overview first.
    html : str
        The self-contained HTML page.
    notes : list of str
        What is missing and why (absent families, no time series).
    """

    data: ReportData
    charts: list[Chart]
    html: str
    notes: list[str]


# --- inputs ----------------------------------------------------------------------------------------

def wealth_paths(scenario_id, date, returns) -> dict[str, np.ndarray]:
    """Portfolio value paths from long rows (scenario x symbol x date): equal weight over the symbols with a
    finite return on each date, compounded from 1.0. Vectorised: one sort and one grouped cumprod.

    Parameters
    ----------
    scenario_id : array_like of shape (n_rows,)
        Scenario id of each row.
    date : array_like of shape (n_rows,)
        Date of each row.
    returns : array_like of shape (n_rows,)
        Daily simple return of each row (a symbol's, or already a portfolio's); NaN skipped.

    Returns
    -------
    dict of str to ndarray of shape (n_dates + 1,), float64
        Scenario id -> wealth path, 1.0 first, then after each date (a date without a finite return
        counts 0).
    """
    frame = pd.DataFrame({"scenario_id": np.asarray(scenario_id, dtype=object), "date": np.asarray(date),
                          "r": np.asarray(returns, dtype=np.float64)})
    if frame.empty:
        return {}
    daily = frame.groupby(["scenario_id", "date"], sort=True)["r"].mean().fillna(0.0)  # mean skips NaN
    growth = (1.0 + daily).groupby(level="scenario_id", sort=False).cumprod()
    ids = growth.index.get_level_values("scenario_id")
    values = growth.to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bounds = np.r_[starts, len(values)]
    return {ids[a]: np.concatenate([[1.0], values[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])}


def from_library(library, metrics: pd.DataFrame | None = None) -> ReportData:
    """ReportData from a :class:`~scenarios_assets.core.library.storage.ScenarioLibrary` (``load_scenarios``);
    loaded with ``timeseries=True`` it carries the paths, without it the report has no path charts.

    Parameters
    ----------
    library : ScenarioLibrary
        A loaded library.
    metrics : pandas.DataFrame, optional
        Per scenario x symbol metrics (:func:`~scenarios_assets.core.library.metrics.load_scenario_metrics`).

    Returns
    -------
    ReportData
        The records and the wealth paths (:func:`wealth_paths`).
    """
    ts = library.timeseries
    wealth = {} if ts is None else wealth_paths(ts["scenario_id"], ts["date"], ts["returns"])
    return ReportData(
        records=list(library.records),
        generated_at=library.generated_at,
        data_version=library.data_version,
        config_hash=library.config_hash,
        wealth=wealth,
        has_timeseries=ts is not None,
        metrics=metrics,
    )


def from_directory(output_dir: str | Path, metrics: pd.DataFrame | None = None) -> ReportData:
    """ReportData from a build directory (or an output directory: its current build): the records of
    ``scenario_metadata.json`` and the portfolio path of every scenario from the build's small
    ``scenario_portfolio.parquet`` dataset (one row per scenario and date), never the whole time series.

    Parameters
    ----------
    output_dir : str or Path
        A build directory (also one being written: its ``build.json`` header is enough) or an output
        directory (local or fsspec).
    metrics : pandas.DataFrame, optional
        Per scenario x symbol metrics.

    Returns
    -------
    ReportData
        Slimmed records and the portfolio wealth paths.

    Raises
    ------
    FileNotFoundError
        When an output directory has no build.
    """
    import pyarrow.dataset as ds

    from scenarios_assets.core.library.builds import BUILD_FILE, CURRENT_FILE, PORTFOLIO_FILE, resolve
    from scenarios_assets.core.library.storage import PARTITIONING
    from scenarios_assets.core.library.store import arrow_location, location

    root = location(output_dir)
    in_build = (root / METADATA_FILE).is_file() or (root / BUILD_FILE).is_file()  # a build being written has its header first
    if not in_build or (root / CURRENT_FILE).exists() or (root / "current").exists():
        root = resolve(root)
    document, records = _slim_records(root)
    wealth, has_ts = {}, (root / TIMESERIES_FILE).exists()
    portfolio = root / PORTFOLIO_FILE
    if portfolio.is_dir():
        where, fs = arrow_location(portfolio)
        table = ds.dataset(where, format="parquet", partitioning=PARTITIONING, filesystem=fs).to_table(
            columns=["scenario_id", "date", "returns"])
        if table.num_rows:
            wealth = wealth_paths(table["scenario_id"].cast("string").to_numpy(zero_copy_only=False),
                                  table["date"].to_numpy(), table["returns"].to_numpy(zero_copy_only=False))
    return ReportData(records, document.get("generated_at", ""), document.get("data_version", ""),
                      document.get("config_hash", ""), wealth, has_ts, metrics)


REPORT_METADATA = ("regime", "kind", "model", "annualised_volatility")  # the record metadata the report reads


def _slim_records(root: Path) -> tuple[dict, list[dict]]:
    """The build's header and its scenario records with only what the report reads (symbols as a count,
    metadata cut to REPORT_METADATA), read slice by slice from ``slices/*/*/records.jsonl`` so that a
    library of thousands of 500-symbol scenarios is never parsed whole; a legacy directory from its
    metadata file."""
    from scenarios_assets.core.library.builds import BUILD_FILE, SLICES_DIR
    from scenarios_assets.core.library.slices import RECORDS_FILE

    if (root / BUILD_FILE).is_file():
        header = json.loads((root / BUILD_FILE).read_text())
        slim: list[dict] = []
        for key in header.get("families", {}):
            with (root / SLICES_DIR / key / RECORDS_FILE).open() as fh:
                slim.extend(_slim(json.loads(line)) for line in fh)
        return header, slim
    with (root / METADATA_FILE).open("rb") as fh:
        document = json.load(fh)
    return document, [_slim(r) for r in document["scenarios"]]


def _slim(record: dict) -> dict:
    slim = {k: v for k, v in record.items() if k not in ("symbols", "metadata")}
    slim["num_symbols"] = len(record.get("symbols") or [])
    slim["metadata"] = {k: v for k, v in (record.get("metadata") or {}).items() if k in REPORT_METADATA}
    return slim


# --- charts ----------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _ordered(values, order) -> list:
    present = set(values)
    return [v for v in order if v in present] + sorted(present - set(order))


def _by_family(data: ReportData, family: str) -> list[dict]:
    return [r for r in data.records if r["family"] == family and r["id"] in data.wealth]


def _percent_axis(ax, decimals: int = 0) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def _stack(paths: list[np.ndarray]) -> np.ndarray:
    """(days, paths) matrix, shorter paths padded with NaN."""
    length = max(len(p) for p in paths)
    matrix = np.full((length, len(paths)), np.nan)
    for j, p in enumerate(paths):
        matrix[: len(p), j] = p
    return matrix


def _grid(data: ReportData, family: str):
    """Rows: the family's scenario types; columns: its severities; cells: (records, paths)."""
    records = _by_family(data, family)
    types = _ordered([r["scenario_type"] for r in records], [])
    severities = _ordered([r["severity"] for r in records], SEVERITIES)
    cells = {
        (t, s): [r for r in records if r["scenario_type"] == t and r["severity"] == s]
        for t in types for s in severities
    }
    return records, types, severities, cells


def _band_chart(data: ReportData, family: str, key: str, bands, samples: int, title: str, caption: str) -> Chart | None:
    records, types, severities, cells = _grid(data, family)
    if not records:
        return None
    fig = _figure(4.2 * len(severities) + 0.6, 3.2 * len(types) + 0.4)
    axes = fig.subplots(len(types), len(severities), squeeze=False, sharey=True)
    for i, stype in enumerate(types):
        for j, severity in enumerate(severities):
            ax = axes[i][j]
            cell = cells[(stype, severity)]
            color = SEVERITY_COLORS.get(severity, "#555555")
            if not cell:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="#888888")
            else:
                matrix = _stack([data.wealth[r["id"]] for r in cell]) - 1.0
                days = np.arange(matrix.shape[0])
                with np.errstate(all="ignore"):
                    for lo, hi, alpha in bands:
                        low, high = np.nanquantile(matrix, [lo, hi], axis=1)
                        ax.fill_between(days, low, high, color=color, alpha=alpha, linewidth=0,
                                        label=f"{lo:.0%}–{hi:.0%}")
                    for k in range(min(samples, matrix.shape[1])):
                        ax.plot(days, matrix[:, k], color="#333333", linewidth=0.6, alpha=0.6,
                                label="sample paths" if k == 0 else None)
                    ax.plot(days, np.nanmedian(matrix, axis=1), color=color, linewidth=2.0, label="median")
                ax.legend(loc="upper left", fontsize=7, frameon=False)
            ax.axhline(0.0, color="#999999", linewidth=0.6)
            _percent_axis(ax)
            ax.set_title(f"{severity} · {stype} · {len(cell)} paths", fontsize=10)
            ax.grid(alpha=0.25)
            if i == len(types) - 1:
                ax.set_xlabel("trading days")
            if j == 0:
                ax.set_ylabel("portfolio return")
    fig.suptitle(title, fontsize=13)
    return Chart(key, title, caption, _png(fig))


def monte_carlo_fan(data: ReportData) -> Chart | None:
    """Monte Carlo fan charts by severity: 5-95 % and 25-75 % quantile bands and the median of the paths'
    cumulative portfolio return.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Chart or None
        The chart, None when no scenario of the family has a wealth path.
    """
    return _band_chart(
        data, "monte_carlo", "monte_carlo_fan",
        bands=[(0.05, 0.95, 0.18), (0.25, 0.75, 0.35)], samples=0,
        title="Monte Carlo fan charts by severity",
        caption="Cumulative equal-weight portfolio return of every Monte Carlo path: 5–95 % and 25–75 % "
        "quantile bands and the median, per severity (and scenario type).",
    )


def bootstrap_bands(data: ReportData) -> Chart | None:
    """Block-bootstrap path bands by severity: 10-90 % band, median and five sample paths of the cumulative
    portfolio return.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Chart or None
        The chart, None when no scenario of the family has a wealth path.
    """
    return _band_chart(
        data, "bootstrap", "bootstrap_bands",
        bands=[(0.10, 0.90, 0.25)], samples=5,
        title="Block-bootstrap path bands by severity",
        caption="Cumulative equal-weight portfolio return of the bootstrap paths: 10–90 % band, median "
        "and five sample paths, per severity (and scenario type).",
    )


def historical_drawdowns(data: ReportData) -> Chart | None:
    """Historical event drawdown curves: each event's portfolio drawdown from its running peak, per scenario
    type and severity.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Chart or None
        The chart, None when no scenario of the family has a wealth path.
    """
    records, types, severities, cells = _grid(data, "historical")
    if not records:
        return None
    fig = _figure(4.0 * len(severities) + 3.2, 3.0 * len(types) + 0.4)
    axes = fig.subplots(len(types), len(severities), squeeze=False, sharey="row")
    cmap = _qualitative(max(len({r["name"] for r in records}), 1))
    names = _ordered([r["name"] for r in records], [])
    colors = {name: cmap[k % len(cmap)] for k, name in enumerate(names)}
    for i, stype in enumerate(types):
        for j, severity in enumerate(severities):
            ax = axes[i][j]
            for rec in cells[(stype, severity)]:
                path = data.wealth[rec["id"]]
                drawdown = path / np.maximum.accumulate(path) - 1.0
                ax.plot(np.arange(len(path)), drawdown, color=colors[rec["name"]], linewidth=1.2, label=rec["name"])
            _percent_axis(ax)
            ax.grid(alpha=0.25)
            ax.set_title(f"{severity} · {stype}", fontsize=10)
            if i == len(types) - 1:
                ax.set_xlabel("trading days from window start")
            if j == 0:
                ax.set_ylabel("drawdown")
        handles, labels = axes[i][0].get_legend_handles_labels()
        for j in range(1, len(severities)):
            more_h, more_l = axes[i][j].get_legend_handles_labels()
            for h, lab in zip(more_h, more_l):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            axes[i][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.suptitle("Historical events: drawdown of the equal-weight portfolio", fontsize=13)
    return Chart(
        "historical_drawdowns", "Historical event drawdown curves",
        "Drawdown from the running peak of each event's equal-weight portfolio over the event window "
        "(with context days), per scenario type and severity.",
        _png(fig),
    )


def stress_paths(data: ReportData) -> Chart | None:
    """Stress paths side by side: one panel per stress scenario (at most :data:`MAX_STRESS_PANELS`), one
    line per severity.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Chart or None
        The chart, None when no scenario of the family has a wealth path.
    """
    records = _by_family(data, "stress")
    if not records:
        return None
    names = _ordered([r["name"] for r in records], [])
    shown = names[:MAX_STRESS_PANELS]
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig = _figure(3.6 * cols + 0.4, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for k, name in enumerate(shown):
        ax = axes[k // cols][k % cols]
        for rec in sorted((r for r in records if r["name"] == name), key=lambda r: _rank(r["severity"])):
            path = data.wealth[rec["id"]] - 1.0
            ax.plot(np.arange(len(path)), path, color=SEVERITY_COLORS.get(rec["severity"], "#555555"),
                    linewidth=1.6, label=rec["severity"])
        ax.axhline(0.0, color="#999999", linewidth=0.6)
        _percent_axis(ax)
        ax.grid(alpha=0.25)
        ax.set_title(_shorten(name, 38), fontsize=9)
    for k in range(len(shown), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    _severity_legend(fig, [r["severity"] for r in records])
    fig.supxlabel("trading days")
    fig.supylabel("portfolio return")
    more = f" (first {MAX_STRESS_PANELS} of {len(names)})" if len(names) > len(shown) else ""
    fig.suptitle(f"Stress scenarios side by side{more}", fontsize=13)
    return Chart(
        "stress_paths", "Stress paths side by side",
        f"Cumulative equal-weight portfolio return of each stress scenario{more}, one panel per scenario, "
        "one line per severity.",
        _png(fig),
    )


def _severity_legend(fig, severities) -> None:
    from matplotlib.lines import Line2D

    present = _ordered(severities, SEVERITIES)
    handles = [Line2D([], [], color=SEVERITY_COLORS.get(s, "#555555"), linewidth=2, label=s) for s in present]
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8, frameon=False)


def _panel_of(records: list[dict]):
    """What splits a family into panels: its scenario types, or, when it has one type only, a label its
    scenarios carry in their metadata (e.g. a regime family's `regime`: bull, bear, ...)."""
    if len({r["scenario_type"] for r in records}) > 1:
        return lambda r: r["scenario_type"]
    for key in ("regime", "kind", "model"):
        values = {str((r.get("metadata") or {}).get(key)) for r in records}
        if len(values) > 1:
            return lambda r, key=key: str((r.get("metadata") or {}).get(key))
    return lambda r: r["scenario_type"]


def family_paths(data: ReportData, family: str) -> Chart | None:
    """The generic chart of any family without a dedicated one (e.g. regimes): paths per scenario type (or
    metadata label), coloured by severity (at most MAX_LINES_PER_PANEL per severity, evenly sampled).

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.
    family : str
        The family.

    Returns
    -------
    Chart or None
        The chart, None when no scenario of the family has a wealth path.
    """
    records = _by_family(data, family)
    if not records:
        return None
    panel = _panel_of(records)
    types = _ordered([panel(r) for r in records], [])
    cols = min(4, len(types))
    rows = -(-len(types) // cols)
    fig = _figure(3.8 * cols + 0.4, 3.0 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for k, stype in enumerate(types):
        ax = axes[k // cols][k % cols]
        for severity in _ordered([r["severity"] for r in records], SEVERITIES):
            cell = [r for r in records if panel(r) == stype and r["severity"] == severity]
            if len(cell) > MAX_LINES_PER_PANEL:
                cell = [cell[i] for i in np.linspace(0, len(cell) - 1, MAX_LINES_PER_PANEL).astype(int)]
            for rec in cell:
                path = data.wealth[rec["id"]] - 1.0
                ax.plot(np.arange(len(path)), path, color=SEVERITY_COLORS.get(severity, "#555555"), linewidth=0.9,
                        alpha=0.7)
        ax.axhline(0.0, color="#999999", linewidth=0.6)
        _percent_axis(ax)
        ax.grid(alpha=0.25)
        count = sum(1 for r in records if panel(r) == stype)
        ax.set_title(f"{stype} · {count} scenarios", fontsize=10)
    for k in range(len(types), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    _severity_legend(fig, [r["severity"] for r in records])
    fig.supxlabel("trading days")
    fig.supylabel("portfolio return")
    title = f"{FAMILY_TITLES.get(family, family)}: paths by type and severity"
    fig.suptitle(title, fontsize=13)
    return Chart(
        f"{family}_paths", title,
        f"Cumulative equal-weight portfolio return of the {family} scenarios, one panel per kind (scenario type, "
        f"or e.g. the regime), coloured by severity; at most {MAX_LINES_PER_PANEL} paths per severity and panel.",
        _png(fig),
    )


def overview(data: ReportData) -> Chart | None:
    """Every scenario's total return against its maximum drawdown (from the records: needs no time series).

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Chart or None
        The scatter chart, None when no record has both figures.
    """
    rows = [r for r in data.records if r.get("expected_return") is not None and r.get("max_drawdown") is not None]
    if not rows:
        return None
    fig = _figure(9.0, 5.2)
    ax = fig.subplots()
    for family in _ordered([r["family"] for r in rows], FAMILIES):
        for severity in _ordered([r["severity"] for r in rows], SEVERITIES):
            cell = [r for r in rows if r["family"] == family and r["severity"] == severity]
            if cell:
                ax.scatter([r["max_drawdown"] for r in cell], [r["expected_return"] for r in cell],
                           color=FAMILY_COLORS.get(family, "#555555"), marker=SEVERITY_MARKERS.get(severity, "o"),
                           s=26, alpha=0.75, edgecolors="none", label=f"{family} · {severity}")
    ax.axhline(0.0, color="#999999", linewidth=0.6)
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    _percent_axis(ax)
    ax.set_xlabel("maximum drawdown")
    ax.set_ylabel("total return")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Every scenario: total return vs maximum drawdown (equal-weight portfolio)", fontsize=12)
    return Chart(
        "overview", "Return vs drawdown of every scenario",
        "Each point is one scenario's equal-weight portfolio: total return over its window against its "
        "maximum drawdown; colour = family, marker = severity.",
        _png(fig),
    )


def _qualitative(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i) for i in range(cmap.N)]


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# Families with a chart of their own: family -> (chart key, renderer); any other family gets family_paths.
DEDICATED = {
    "historical": ("historical_drawdowns", historical_drawdowns),
    "monte_carlo": ("monte_carlo_fan", monte_carlo_fan),
    "bootstrap": ("bootstrap_bands", bootstrap_bands),
    "stress": ("stress_paths", stress_paths),
}


def chart_key(family: str) -> str:
    """The key (file stem after the prefix) of a family's chart.

    Parameters
    ----------
    family : str
        The family.

    Returns
    -------
    str
        The dedicated chart's key, else ``<family>_paths``.
    """
    return DEDICATED[family][0] if family in DEDICATED else f"{family}_paths"


def render_charts(data: ReportData) -> list[Chart]:
    """Overview, then one chart per family present (in the catalog's family order).

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    list of Chart
        The charts that could be drawn (family charts only with wealth paths).
    """
    charts = [overview(data)]
    if data.wealth:
        for family in data.families:
            charts.append(DEDICATED[family][1](data) if family in DEDICATED else family_paths(data, family))
    return [c for c in charts if c is not None]


# --- tables ----------------------------------------------------------------------------------------

def _pct(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.1%}"


def _num(value, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.{digits}f}" if np.isfinite(value) else ""


def _checks(rec: dict) -> tuple[int, int]:
    validation = rec.get("validation") or {}
    return sum(1 for v in validation.values() if v.get("passed")), len(validation)


def family_summary_rows(data: ReportData) -> list[dict]:
    """One row per family and severity for the summary table: count, median and 5th-percentile total return,
    median and worst max drawdown (percent text), median volatility multiplier, scenarios with failed checks.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    list of dict
        Column name -> display text.
    """
    rows = []
    for family in data.families:
        for severity in _ordered([r["severity"] for r in data.records if r["family"] == family], SEVERITIES):
            cell = [r for r in data.records if r["family"] == family and r["severity"] == severity]
            ret = np.array([r["expected_return"] for r in cell if r.get("expected_return") is not None], dtype=float)
            mdd = np.array([r["max_drawdown"] for r in cell if r.get("max_drawdown") is not None], dtype=float)
            vol = np.array([r["volatility_multiplier"] for r in cell if r.get("volatility_multiplier") is not None],
                           dtype=float)
            failing = sum(1 for r in cell if _checks(r)[0] < _checks(r)[1])
            rows.append({
                "family": family,
                "severity": severity,
                "scenarios": str(len(cell)),
                "median return": _pct(np.median(ret)) if ret.size else "",
                "5th pct return": _pct(np.quantile(ret, 0.05)) if ret.size else "",
                "median max drawdown": _pct(np.median(mdd)) if mdd.size else "",
                "worst max drawdown": _pct(mdd.min()) if mdd.size else "",
                "median vol ×": _num(float(np.median(vol))) if vol.size else "",
                "with failed checks": str(failing),
            })
    return rows


def scenario_rows(data: ReportData) -> tuple[list[dict], list[str]]:
    """One row per scenario of the families small enough to list; the others are named in the notes.

    A family is listed when it has at most :data:`MAX_ROWS_PER_FAMILY` scenarios; with metrics, each
    numeric metric averaged over the scenario's symbols is added as ``<metric> (mean)``.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    rows : list of dict
        Column name -> display text (returns, drawdowns and volatility as percent text).
    notes : list of str
        One line per family summarised instead.
    """
    counts = pd.Series([r["family"] for r in data.records]).value_counts() if data.records else pd.Series(dtype=int)
    listed = [f for f in data.families if counts.get(f, 0) <= MAX_ROWS_PER_FAMILY]
    notes = [
        f"{f}: {counts[f]} scenarios, summarised by severity above (not listed one by one)"
        for f in data.families if f not in listed
    ]
    extra = _metrics_by_scenario(data.metrics)
    rows = []
    for family in listed:
        cell = sorted((r for r in data.records if r["family"] == family),
                      key=lambda r: (r["scenario_type"], r["name"], _rank(r["severity"])))
        for r in cell:
            passed, total = _checks(r)
            row = {
                "id": r["id"],
                "name": r["name"],
                "type": r["scenario_type"],
                "severity": r["severity"],
                "start": r["start_date"],
                "end": r["end_date"],
                "days": str(r.get("num_days", "")),
                "symbols": str(r.get("num_symbols", len(r.get("symbols") or []))),
                "total return": _pct(r.get("expected_return")),
                "max drawdown": _pct(r.get("max_drawdown")),
                "ann. vol": _pct((r.get("metadata") or {}).get("annualised_volatility")),
                "vol ×": _num(r.get("volatility_multiplier")),
                "checks": f"{passed}/{total}",
            }
            if extra is not None and r["id"] in extra.index:
                for col, value in extra.loc[r["id"]].items():
                    row[f"{col} (mean)"] = _num(float(value), 4)
            rows.append(row)
    return rows, notes


def _metrics_by_scenario(metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """Numeric metrics averaged over symbols, indexed by scenario id (None when there are none)."""
    if metrics is None or "scenario_id" not in metrics.columns:
        return None
    numeric = metrics.select_dtypes("number").columns.tolist()
    if not numeric:
        return None
    return metrics.assign(scenario_id=metrics["scenario_id"].astype(str)).groupby("scenario_id")[numeric].mean()


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px 32px; color: #1d2330; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #dde;
padding-bottom: 4px; } .meta { color: #556; font-size: 13px; } .note { color: #6a5300; background: #fff8e0;
padding: 6px 10px; border-radius: 4px; font-size: 13px; margin: 4px 0; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ee; }
figcaption { font-size: 13px; color: #445; margin-top: 4px; }
.table { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 11px; margin: 8px 0 16px; }
th, td { border: 1px solid #dfe3eb; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f1f4f9; } .text { text-align: left; } tr:nth-child(even) td { background: #fafbfd; }
"""

# Counts the charts the browser decoded (a headless-browser test reads it from the DOM).
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img.chart"), ok = 0;
  for (var i = 0; i < images.length; i++) { if (images[i].complete && images[i].naturalWidth > 0) { ok++; } }
  document.body.setAttribute("data-charts-loaded", ok + "/" + images.length);
});
"""

_TEXT_COLUMNS = {"id", "name", "type", "family", "severity", "start", "end"}


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p class=\"meta\">none</p>"
    headers = list(dict.fromkeys(h for row in rows for h in row))
    head = "".join(f"<th class=\"text\">{html.escape(h)}</th>" if h in _TEXT_COLUMNS else f"<th>{html.escape(h)}</th>"
                   for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td class=\"text\">{html.escape(str(row.get(h, '')))}</td>" if h in _TEXT_COLUMNS
            else f"<td>{html.escape(str(row.get(h, '')))}</td>"
            for h in headers
        ) + "</tr>"
        for row in rows
    )
    return f"<div class=\"table\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def render_html(data: ReportData, charts: list[Chart], notes: list[str]) -> str:
    """The self-contained HTML page: provenance, notes, the family summary table, the charts (base64 PNG)
    and the scenario table.

    Parameters
    ----------
    data : ReportData
        The catalog's records and paths.
    charts : list of Chart
        The charts to embed.
    notes : list of str
        Notes shown at the top (with the scenario table's notes).

    Returns
    -------
    str
        The HTML document (UTF-8, no external resources).
    """
    esc = html.escape
    summary_rows = family_summary_rows(data)
    scenario_table, table_notes = scenario_rows(data)
    figures = "".join(
        f"<figure id=\"{esc(c.key)}\"><img class=\"chart\" alt=\"{esc(c.title)}\" src=\"{c.data_uri()}\">"
        f"<figcaption>{esc(c.caption)}</figcaption></figure>"
        for c in charts
    )
    note_html = "".join(f"<p class=\"note\">{esc(n)}</p>" for n in [*notes, *table_notes])
    metrics_source = (
        "scenario records, with per-symbol metrics from scenario_metrics.parquet averaged per scenario"
        if data.metrics is not None else "scenario records (equal-weight portfolio)"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Scenario library report</title>
<style>{_CSS}</style></head>
<body data-charts="{len(charts)}">
<h1>Scenario library report</h1>
<p class="meta">generated at {esc(data.generated_at)} · data version {esc(data.data_version)} ·
config hash {esc(data.config_hash)} · {len(data.records)} scenarios ·
families: {esc(", ".join(data.families) or "none")}</p>
{note_html}
<h2>Scenario families by severity</h2>
{_table(summary_rows)}
<h2>Charts</h2>
{figures}
<h2>Scenario metrics</h2>
<p class="meta">Source: {esc(metrics_source)}.</p>
{_table(scenario_table)}
<script>{_SCRIPT}</script>
</body></html>
"""


def build_report(data: ReportData) -> Report:
    """Render the charts and the HTML page, with notes for absent families and missing time series.

    Parameters
    ----------
    data : ReportData
        The catalog's records and portfolio paths.

    Returns
    -------
    Report
        The charts, the HTML and the notes.
    """
    charts = render_charts(data)
    notes = []
    absent = [f for f in FAMILIES if f not in data.families]
    if absent:
        notes.append("Not in this catalog (no chart): " + ", ".join(absent) + ".")
    if not data.has_timeseries:
        notes.append("The catalog was built without time series (--no-save-timeseries): path charts are omitted.")
    return Report(data, charts, render_html(data, charts, notes), notes)


def write_report(build_dir: str | Path, metrics: pd.DataFrame | None = None, data: ReportData | None = None
                 ) -> tuple[Report, dict[str, Path]]:
    """Render the report of the build in ``build_dir`` and write it into that directory (before the build
    is published: a build directory is never changed after; local or on an fsspec store).

    Parameters
    ----------
    build_dir : str or Path
        The build directory.
    metrics : pandas.DataFrame, optional
        Per scenario x symbol metrics (used when ``data`` is not given).
    data : ReportData, optional
        What to render; default :func:`from_directory` of ``build_dir``.

    Returns
    -------
    report : Report
        The rendered report.
    files : dict of str to Path
        File name -> written path: ``scenario_report.html`` and each chart's PNG.
    """
    from scenarios_assets.core.library.store import location

    out = location(build_dir)
    report = build_report(data if data is not None else from_directory(out, metrics))
    files = {REPORT_FILE: report.html.encode("utf-8"), **{c.filename: c.png for c in report.charts}}
    written = {}
    for name, payload in files.items():
        (out / name).write_bytes(payload)
        written[name] = out / name
    return report, written
