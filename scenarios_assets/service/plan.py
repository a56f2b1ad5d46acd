"""A generation request, typed, and the plan it resolves to: the one path from the CLI's flags and from the
API's JSON body to the Dagster runs.

Errors are :class:`~scenarios_assets.core.models.errors.ScenarioInputError` with one line naming the
problem by the CLI flag that carries it (``--end-date ... is before --start-date ...``): the CLI exits 2
with it, the API answers 422 with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.data.database import PASSWORD_ENV, split_password
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.data.price_moves import parse_accepted_moves
from scenarios_assets.core.families.registry import FAMILY_SPECS, enabled, families_for_type
from scenarios_assets.core.models.config import ScenarioConfig, default_config
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.severity import SEVERITIES, parse_severities

if TYPE_CHECKING:
    from scenarios_assets.core.library.footprint import Sizes

# Config keys that num_scenarios (--num-scenarios) sets: the scenario count of every family that has one.
NUM_SCENARIOS_KEYS = (("stochastic", "monte_carlo", "num_scenarios"), ("stochastic", "bootstrap", "num_scenarios"))


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, from which data, into where: the CLI's flags, typed (the API's body maps onto it).

    Attributes
    ----------
    types : tuple of str
        Scenario types (``registry.CLI_TYPES``: a family, ``stochastic`` ... or ``all``); several select the
        union of their families.
    severities : tuple of str
        ``moderate``, ``severe``, ``extreme`` or ``all``; several select each named one (in severity order).
    num_scenarios : int or None
        Scenarios per severity of every stochastic family (None: the config's).
    symbols : tuple of str or None
        The universe (None: every symbol of the market data); an empty tuple is refused.
    start_date, end_date : str or None
        First and last date of market data to use, ``YYYY-MM-DD``.
    include_full_cycles : bool
        Also replay the full market cycles (historical family).
    seed : int or None
        Base seed of every random draw (None: the config's).
    save_timeseries : bool or None
        Write the time-series dataset (None: the config's ``performance.save_timeseries``).
    dry_run : bool
        Generate and validate, write nothing into the library.
    output_dir : str or None
        The library: a directory or an fsspec URL (None: $SCENARIOS_OUTPUT_DIR, else data/scenarios).
    config_file : str or None
        YAML config overriding the shipped defaults.
    market_data : str or None
        OHLCV Parquet/CSV file or directory, or a ``postgresql://`` URL (None: the config's source).
    accept_moves : tuple of str
        ``SYMBOL:YYYY-MM-DD`` one-session moves to accept despite the split check (added to the config's).
    parallel : bool
        Run a severity's family steps as parallel processes (also when the config says so).
    workers : int or None
        Processes for a parallel or Dask executor (None: the config's ``performance.workers``).
    executor : str or None
        ``in_process``, ``multiprocess`` or ``dask`` (None: from ``parallel`` and ``dask_scheduler``).
    dask_scheduler : str or None
        Address of a running dask scheduler (implies the ``dask`` executor).
    memory_limit_gib, disk_limit_gib : float or None
        Refuse up front a request estimated to need more (GiB; None: config, else the machine's).
    verbose : bool
        Show Dagster's logs.
    """

    types: tuple[str, ...] = ("all",)
    severities: tuple[str, ...] = ("all",)
    num_scenarios: int | None = None
    symbols: tuple[str, ...] | None = None
    start_date: str | None = None
    end_date: str | None = None
    include_full_cycles: bool = False
    seed: int | None = None
    save_timeseries: bool | None = None
    dry_run: bool = False
    output_dir: str | None = None
    config_file: str | None = None
    market_data: str | None = None
    accept_moves: tuple[str, ...] = ()
    parallel: bool = False
    workers: int | None = None
    executor: str | None = None
    dask_scheduler: str | None = None
    memory_limit_gib: float | None = None
    disk_limit_gib: float | None = None
    verbose: bool = False


@dataclass
class Plan:
    """What one generation runs, resolved and validated before any Dagster run starts."""

    families: list[str]
    severities: list[str]
    settings: dict
    config: dict
    output_dir: Path
    parallel: bool
    workers: int
    verbose: bool
    executor: str = "in_process"
    dask_scheduler: str | None = None
    # Environment variables the run's processes need but Dagster must not store (a database password).
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)  # one line each, printed before anything runs
    memory_limit_gib: float | None = None  # --memory-limit / --disk-limit (core.library.footprint.limits)
    disk_limit_gib: float | None = None
    sizes: Sizes | None = None  # core.library.footprint.Sizes of the loaded market data, set by preflight

    def apply_secrets(self) -> None:
        """Put ``secrets`` into this process's environment, which the run's steps inherit."""
        os.environ.update(self.secrets)


def build_plan(request: GenerationRequest) -> Plan:
    """The plan of a generation request: its config (the shipped defaults, the config file, the request's
    overrides), families, severities, output directory and executor, validated.

    Parameters
    ----------
    request : GenerationRequest
        What to generate (see its attributes).

    Returns
    -------
    Plan
        Ready for ``preflight.preflight`` (checks against the market data) and ``run.run_plan``.

    Raises
    ------
    ScenarioInputError
        A bad request, in one line naming the flag: dates in the wrong order, no symbols, a config file or
        override that does not validate, no enabled family of the types, an output directory that is a file
        or not writable, a scheduler without the dask executor. The CLI exits 2 with it; the API answers 422.
    """
    if request.start_date and request.end_date and request.end_date < request.start_date:
        raise ScenarioInputError(f"--end-date {request.end_date} is before --start-date {request.start_date}")
    overrides = _overrides(request)
    config = load_config(request.config_file, overrides)
    if request.accept_moves:
        parse_accepted_moves(list(request.accept_moves), "--accept-move")
        moves = list(dict.fromkeys([*ScenarioConfig.from_mapping(config).data.accepted_moves, *request.accept_moves]))
        overrides.setdefault("data", {})["accepted_moves"] = moves
        config = load_config(request.config_file, overrides)
    families = _families(request.types, config)
    severities = _severities(request.severities)
    performance = ScenarioConfig.from_mapping(config).performance
    parallel = request.parallel or performance.parallel
    workers = int(request.workers or performance.workers)
    output_dir = check_output_dir(request.output_dir)
    settings = {
        "config_file": str(Path(request.config_file).resolve()) if request.config_file else "",
        "overrides_json": json.dumps(overrides, sort_keys=True),
        "output_dir": str(output_dir),
        "families": families,
        "severities": severities,
        "dry_run": bool(request.dry_run),
    }
    secrets = _market_source(request.market_data, settings)
    executor = request.executor or ("dask" if request.dask_scheduler else "multiprocess" if parallel else "in_process")
    if request.dask_scheduler and executor != "dask":
        raise ScenarioInputError(f"--dask-scheduler needs --executor dask, not --executor {executor}")
    notes = []
    if request.workers is not None and executor == "in_process":
        notes.append(f"note: --workers {request.workers} has no effect: the steps run in this process; add --parallel "
                     f"(or --executor multiprocess/dask) to run them on {request.workers} processes")
    return Plan(families, severities, settings, config, output_dir, executor != "in_process", workers, request.verbose,
                executor, request.dask_scheduler, secrets, notes, request.memory_limit_gib, request.disk_limit_gib)


def _overrides(request: GenerationRequest) -> dict:
    """The config overrides the request's fields make (the run config's ``overrides_json``)."""
    overrides: dict = {}
    if request.seed is not None:
        overrides["seed"] = request.seed
    data: dict = {}
    if request.symbols is not None:
        symbols = [s.strip() for s in request.symbols if s.strip()]
        if not symbols:
            raise ScenarioInputError("--symbols is empty (give e.g. --symbols SPX,AAPL)")
        data["symbols_universe"] = symbols
    if request.start_date:
        data["start_date"] = request.start_date
    if request.end_date:
        data["end_date"] = request.end_date
    if data:
        overrides["data"] = data
    generation: dict = {}
    if request.include_full_cycles:
        generation["historical"] = {"include_full_cycles": True}
    if request.num_scenarios is not None:
        defaults = default_config()["generation"]
        present = [keys for keys in NUM_SCENARIOS_KEYS if _has_path(defaults, keys)]
        if not present:
            raise ScenarioInputError("--num-scenarios: no stochastic family is available in this version")
        for keys in present:
            _set_path(generation, keys, request.num_scenarios)
    if generation:
        overrides["generation"] = generation
    if request.save_timeseries is not None:
        overrides["performance"] = {"save_timeseries": request.save_timeseries}
    return overrides


def _families(types: tuple[str, ...], config: dict) -> list[str]:
    """The enabled families of the types (one type: its families; several: the union, in registry order)."""
    wanted = list(dict.fromkeys(types or ("all",)))
    if len(wanted) == 1:
        families = [f for f in families_for_type(wanted[0]) if enabled(FAMILY_SPECS[f], config)]
        if not families:
            raise ScenarioInputError(f"--type {wanted[0]}: no enabled scenario family of that type in this version")
        return families
    union = {f for t in wanted for f in families_for_type(t)}
    families = [f for f in FAMILY_SPECS if f in union and enabled(FAMILY_SPECS[f], config)]
    if not families:
        raise ScenarioInputError(f"types {', '.join(wanted)}: no enabled scenario family of these types in this version")
    return families


def _severities(names: tuple[str, ...]) -> list[str]:
    """One name (or ``all``): ``parse_severities``; several: each named one, in severity order."""
    wanted = list(dict.fromkeys(names or ("all",)))
    if len(wanted) == 1:
        return parse_severities(wanted[0])
    return [s for s in SEVERITIES if "all" in wanted or s in wanted]


def _market_source(source: str | None, settings: dict) -> dict[str, str]:
    """Set ``settings["market_data"]`` from the request's source (a local path resolved; a URL without its
    password); returns the secrets the run's processes need (the password, by environment variable)."""
    secrets: dict[str, str] = {}
    if source is None:
        return secrets
    if not source.strip():
        raise ScenarioInputError("--market-data is empty (give a Parquet/CSV file or directory, or a postgresql:// URL)")
    if "://" in source:
        # The password never enters the run config Dagster stores: the run's process gets it from the
        # environment (core.data.database.PASSWORD_ENV).
        source, password = split_password(source)
        if password is not None:
            secrets[PASSWORD_ENV] = password
        settings["market_data"] = source
    else:
        settings["market_data"] = str(Path(source).resolve())
    return secrets


def check_output_dir(given: str | None) -> Path:
    """The library directory, checked before anything runs.

    Parameters
    ----------
    given : str or None
        ``--output-dir`` (None: $SCENARIOS_OUTPUT_DIR, else data/scenarios). A ``file://`` URL is its local
        path; another fsspec URL (``s3://bucket/prefix``) is probed with an object written and deleted
        (``core.library.store.probe_store``).

    Returns
    -------
    Path
        The resolved local directory (not created), or the remote location.

    Raises
    ------
    ScenarioInputError
        Naming the flag or variable: empty, a file, or not creatable/writable (a probe file is created and
        removed in it, or in its nearest existing parent).
    """
    import tempfile

    env = os.environ.get("SCENARIOS_OUTPUT_DIR")
    what, text = ("--output-dir", given) if given is not None else ("SCENARIOS_OUTPUT_DIR", env) if env is not None else (
        "the default output directory", str(DEFAULT_OUTPUT_DIR))
    if not text.strip():
        raise ScenarioInputError(f"{what} is empty (give the library's directory, e.g. data/scenarios)")
    from scenarios_assets.core.library.store import is_remote, is_url, location, probe_store

    if is_url(text):
        path = location(text)  # file:// -> the local path; unknown schemes refused here
        if is_remote(path):
            probe_store(path, what)
            return path
        text = str(path)
    path = Path(text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ScenarioInputError(f"{what} '{text}' is a file, not a directory (give the library's directory)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ScenarioInputError(f"{what} '{text}': '{existing}' is a file, so the directory cannot be created")
    try:
        fd, probe = tempfile.mkstemp(prefix=".scenarios-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "" if existing == path else f" (its nearest existing parent '{existing}')"
        raise ScenarioInputError(f"{what} '{text}' is not writable{where}: {reason}") from None
    return path


def _has_path(mapping: dict, keys: tuple[str, ...]) -> bool:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def _set_path(mapping: dict, keys: tuple[str, ...], value) -> None:
    for key in keys[:-1]:
        mapping = mapping.setdefault(key, {})
    mapping[keys[-1]] = value
