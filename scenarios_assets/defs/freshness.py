"""What is current: the source's data version, the stored market data, and which (family, severity)
partitions were built from a given data version and config. The schedule and the sensor decide from it,
so that the same data version never produces the same work twice.

A family partition is *current* when its latest materialisation records (in its metadata) the given
market-data version and config hash; it is *in progress* when a queued or running run plans it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import AssetKey, AssetPartitionStatus, AssetRecordsFilter, DagsterInstance, EventLogEntry

from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.defs.automation import CLI_TAG, CONFIG_HASH_TAG, DATA_VERSION_TAG, TRIGGER_TAG
from scenarios_assets.defs.partitions import severity_partitions
from scenarios_assets.defs.keys import CATALOG_KEY, MARKET_KEY
from scenarios_assets.defs.scenarios import family_assets


def family_keys() -> list[AssetKey]:
    """Every registered family's asset key, in registry order (new families appear here by themselves)."""
    return [a.key for a in family_assets]


def source_market_version(settings) -> tuple[str, str]:
    """(data version, source name) that ``market_data/ohlcv`` would record now for the configured source.

    The same core.data.market call with the same selection as the asset (a test keeps them equal), so a file,
    a directory or a PostgreSQL table give exactly the version the asset records. It reads, validates and
    hashes the source (~0.3 s on the bundled data) without storing anything."""
    market = settings.load_market_data()
    return market.data_version, market.source


@dataclass
class MarketState:
    """The latest materialisation of ``market_data/ohlcv`` as the scenario runs will read it."""

    data_version: str | None  # None: a reported (runless) event or one without our metadata
    source: str | None
    run_id: str
    timestamp: float
    from_cli: bool = False

    @property
    def event_key(self) -> str:
        """Identifies the event in run keys: the run that materialised it (or `reported`) and its time."""
        return f"{self.run_id or 'reported'}@{self.timestamp:.6f}"

    @property
    def reported(self) -> bool:
        """Recorded from outside (REST report / report_runless_asset_event): no value was stored."""
        return not self.run_id


def market_state(instance: DagsterInstance) -> MarketState | None:
    """State of the latest market-data event (None: never materialised)."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=MARKET_KEY), limit=1).records
    return event_state(instance, records[0].event_log_entry) if records else None


def event_state(instance: DagsterInstance, entry: EventLogEntry) -> MarketState:
    """State of the market-data event ``entry``."""
    metadata = entry.asset_materialization.metadata if entry.asset_materialization else {}
    version = metadata.get("data_version")
    source = metadata.get("source")
    from_cli = False
    if entry.run_id:
        run = instance.get_run_by_id(entry.run_id)
        from_cli = bool(run and CLI_TAG in run.tags)
    return MarketState(
        data_version=str(version.value) if version is not None and entry.run_id else None,
        source=str(source.value) if source is not None else None,
        run_id=entry.run_id,
        timestamp=entry.timestamp,
        from_cli=from_cli,
    )


@dataclass
class BuildState:
    """Per severity: families to (re)build, families in progress; and what is current."""

    data_version: str
    config_hash: str
    stale: dict[str, list[AssetKey]] = field(default_factory=dict)
    in_progress: dict[str, list[AssetKey]] = field(default_factory=dict)
    current: dict[str, list[AssetKey]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def stale_severities(self) -> list[str]:
        return [sev for sev in SEVERITIES if self.stale.get(sev)]

    @property
    def anything_in_progress(self) -> bool:
        return any(self.in_progress.values())

    @property
    def up_to_date(self) -> bool:
        return not self.stale_severities and not self.anything_in_progress

    def describe(self) -> str:
        parts = []
        for sev in SEVERITIES:
            if self.stale.get(sev):
                parts.append(f"{sev}: build {', '.join(k.to_user_string() for k in self.stale[sev])}")
            if self.in_progress.get(sev):
                parts.append(f"{sev}: in progress {', '.join(k.to_user_string() for k in self.in_progress[sev])}")
        return "; ".join(parts) or "every family partition is current"


def build_state(instance: DagsterInstance, version: str, config_hash: str) -> BuildState:
    """Which (family, severity) partitions are current for ``version`` and ``config_hash``, in progress,
    or to be built."""
    state = BuildState(version, config_hash)
    keys = list(SEVERITIES)
    for key in family_keys():
        status = instance.get_status_by_partition(key, keys, severity_partitions) or {}
        for sev in SEVERITIES:
            if status.get(sev) == AssetPartitionStatus.IN_PROGRESS:
                state.in_progress.setdefault(sev, []).append(key)
                continue
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[sev]), limit=1
            ).records
            where = f"{key.to_user_string()}[{sev}]"
            if not records:
                state.stale.setdefault(sev, []).append(key)
                state.reasons.append(f"{where} never materialised")
                continue
            materialization = records[0].event_log_entry.asset_materialization
            md = materialization.metadata if materialization is not None else {}
            built_version = md["data_version"].value if "data_version" in md else None
            built_config = md["config_hash"].value if "config_hash" in md else None
            if built_version == version and built_config == config_hash:
                state.current.setdefault(sev, []).append(key)
            else:
                state.stale.setdefault(sev, []).append(key)
                state.reasons.append(f"{where} built from data {built_version}, config {built_config}")
    return state


def catalog_note(instance: DagsterInstance, version: str) -> str:
    """One line about the latest catalog build, for skip reasons."""
    event = instance.get_latest_materialization_event(CATALOG_KEY)
    if event is None or event.asset_materialization is None:
        return "the catalog has not been built yet"
    md = event.asset_materialization.metadata
    built = md["data_version"].value if "data_version" in md else "?"
    if built == version:
        return f"the catalog holds data version {built}"
    return f"the catalog still holds data version {built} (see the catalog's failed check or the failed family run)"


def run_tags(trigger: str, version: str, config_hash: str) -> dict[str, str]:
    return {TRIGGER_TAG: trigger, DATA_VERSION_TAG: version, CONFIG_HASH_TAG: config_hash}
