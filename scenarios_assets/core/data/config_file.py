"""A user's config file: read defensively, merged over the shipped defaults (``core.models.config``), checked.

The shipped YAML defaults are the schema; a user file may override any subset.

Every problem of a config file is reported in one line naming the file and each dotted key: all unknown
keys and wrongly typed values at once, so one edit fixes them all. Keys whose default is null have their
type in ``NULLABLE_TYPES``. The file itself is read defensively: at most ``MAX_CONFIG_BYTES``, UTF-8, and
YAML without anchors/aliases (an alias "bomb" of a few hundred bytes expands to gigabytes when the config
is copied or hashed). The seed pipeline's own keys (``config/scenarios_pipeline.yaml`` of the seed,
``SEED_KEYS``) get what to write instead in the same line.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.data.exchange_calendar import check_calendar
from scenarios_assets.core.models.config import ROOT_KEY, ScenarioConfig, default_config
from scenarios_assets.core.models.errors import ScenarioInputError

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kB; anything near 1 MiB is not one

# Types of the keys whose shipped default is null (the others take their default's type).
# Mappings whose keys the user chooses (symbols), merged whole rather than key by key.
OPEN_MAPPINGS = frozenset({"data.symbol_calendars"})
NULLABLE_TYPES: dict[str, str] = {
    "data.lookback_years": "number",
    "data.start_date": "date",
    "data.end_date": "date",
    "generation.stochastic.monte_carlo.calibration_end": "date",
    "generation.stochastic.bootstrap.calibration_end": "date",
    "generation.stress.anchor_date": "date",
    "performance.paths_per_chunk": "int",
    "performance.memory_limit_gib": "number",
    "performance.disk_limit_gib": "number",
}

# The seed's config keys (its documented config/scenarios_pipeline.yaml) that differ here, with what to
# write instead. The seed's other keys (historical.enabled/events/include_context_days, monte_carlo
# num_scenarios/confidence_levels, bootstrap.num_scenarios, data.lookback_years) mean the same here.
SEED_KEYS: dict[str, tuple[str, str]] = {
    # seed key: ("rename", the key here) or ("remove", why)
    "generation.regime.regime_types": ("remove", "every type is detected: bull, bear, high_volatility, ranging"),
    "generation.stochastic.bootstrap.block_size": ("rename", "generation.stochastic.bootstrap.block_size_days"),
    "generation.stress.scenarios": ("rename", "generation.stress.include"),
    "generation.stress.severity_levels": ("remove", "severities are chosen per run with --severity (default: all three)"),
    "performance.parallel_workers": ("rename", "performance.workers"),
    "performance.batch_size": (
        "remove", "or write performance.paths_per_chunk (stochastic paths generated and written together)",
    ),
    "performance.cache_enabled": (
        "remove", "GARCH fits are cached in the process and unchanged slices are carried over between builds",
    ),
}
# Values of known keys in the seed's form: (predicate on the value, what to write instead).
SEED_VALUES: dict[str, tuple] = {
    "generation.regime.min_regime_days": (
        lambda v: isinstance(v, int) and not isinstance(v, bool),
        lambda v: f"write one minimum per type, e.g. {{bull: {v}, bear: {v}, high_volatility: {v}, ranging: {v}}}",
    ),
    "data.symbols_universe": (
        lambda v: isinstance(v, str),
        lambda v: f"write a list of symbols of the market data, e.g. [SPX, AAPL], or [] for all of them ('{v}' is not a list)",
    ),
}


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (``&a`` / ``*a``) and leaves dates as written (text), so
    a bad date (``2015-13-01``) is reported against its key like any other value."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ScenarioInputError(
                f"uses the YAML alias *{event.anchor} (line {event.start_mark.line + 1}); aliases and anchors are not "
                "accepted in a config file: write the values out"
            )
        return super().compose_node(parent, index)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The ``scenarios_pipeline`` mapping of a user config file (not merged, not checked).

    Parameters
    ----------
    path : str or Path
        A YAML file with the single top-level key ``scenarios_pipeline``.

    Returns
    -------
    dict
        The mapping under ``scenarios_pipeline`` (empty when it is null).

    Raises
    ------
    ScenarioInputError
        One line, when the file is missing, larger than :data:`MAX_CONFIG_BYTES` bytes, not UTF-8, not YAML,
        uses aliases, is empty, or has another shape.

    References
    ----------
    .. [1] YAML Ain't Markup Language, version 1.1 (PyYAML's safe loader), https://yaml.org/spec/1.1/
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioInputError(f"config file '{path}' does not exist")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ScenarioInputError(f"config file '{path}' is {size:,} bytes (at most {MAX_CONFIG_BYTES:,}); is it a config file?")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioInputError(
            f"config file '{path}' is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    try:
        user = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except ScenarioInputError as exc:
        raise ScenarioInputError(f"config file '{path}' {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioInputError(f"config file '{path}' is not valid YAML: {problem}{where}") from None
    if user is None:
        raise ScenarioInputError(f"config file '{path}' is empty (expected '{ROOT_KEY}:' and the keys to override)")
    if not isinstance(user, dict) or set(user) != {ROOT_KEY}:
        found = ", ".join(map(str, user)) if isinstance(user, dict) else type(user).__name__
        raise ScenarioInputError(f"config file '{path}' must have the single top-level key '{ROOT_KEY}' (found: {found})")
    body = user[ROOT_KEY]
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ScenarioInputError(
            f"config file '{path}': '{ROOT_KEY}' must be a mapping of sections ({', '.join(default_config())}), "
            f"got {type(body).__name__} {body!r}"
        )
    return body


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checked config: the defaults, merged with the YAML file at ``path`` (if any), then with ``overrides``.

    Parameters
    ----------
    path : str or Path, optional
        A user config file (``scenarios_pipeline:`` and the keys to override).
    overrides : dict, optional
        Keys to override last (the CLI's flags, the API's request fields), in the file's nesting.

    Returns
    -------
    dict
        The ``scenarios_pipeline`` mapping with every key; ``ScenarioConfig.from_mapping`` gives its typed view.

    Raises
    ------
    ScenarioInputError
        One line naming the file and every unknown key, wrongly typed or out-of-range value.
    """
    config = default_config()
    if path:
        config = merge_config(config, read_config_file(path), source=f"config file '{Path(path)}'")
    if overrides:
        config = merge_config(config, overrides, source="overrides")
    check_values(config)
    ScenarioConfig.from_mapping(config)  # every section typed: the YAML and the dataclasses agree
    return config


def check_values(config: dict[str, Any]) -> None:
    """Values a type check cannot catch but that are knowable before anything runs (one line each).

    Parameters
    ----------
    config : dict
        A merged ``scenarios_pipeline`` mapping.

    Raises
    ------
    ScenarioInputError
        For an unknown ``data.trading_calendar`` or ``data.symbol_calendars`` name (``exchange_calendars``;
        ``24/7`` allowed per symbol), a ``performance`` memory/disk limit in GiB that is not above 0 and
        finite or a ``*_fraction`` not in (0, 1], or a Monte Carlo ``volatility_model`` other than
        ``gjr_garch`` or ``garch``.
    """
    check_calendar(config["data"]["trading_calendar"])
    for symbol, name in (config["data"].get("symbol_calendars") or {}).items():
        check_calendar(name, f"config key 'scenarios_pipeline.data.symbol_calendars.{symbol}':", seven_day=True)
    for key in ("memory_limit_gib", "disk_limit_gib", "memory_limit_fraction", "disk_limit_fraction"):
        value = config["performance"].get(key)
        fraction = key.endswith("fraction")
        if value is not None and not (0 < float(value) <= 1.0 if fraction else 0 < float(value) < float("inf")):
            raise ScenarioInputError(f"config key 'scenarios_pipeline.performance.{key}' must be above 0"
                                     + (" and at most 1" if fraction else " and finite (GiB)") + f", got {value!r}")
    volatility_models = ("gjr_garch", "garch")  # monte_carlo.VOLATILITY_MODELS (not imported: keep config light)
    model = config["generation"]["stochastic"]["monte_carlo"]["volatility_model"]
    if model not in volatility_models:
        raise ScenarioInputError(
            f"config key 'scenarios_pipeline.generation.stochastic.monte_carlo.volatility_model' must be one of "
            f"{', '.join(volatility_models)}, got {model!r}"
        )


def merge_config(base: dict[str, Any], override: dict[str, Any], source: str, prefix: str = ROOT_KEY) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; every key must exist in ``base`` with a compatible type.

    Parameters
    ----------
    base : dict
        The mapping merged into (not changed), e.g. the defaults.
    override : dict
        The user's keys.
    source : str
        Where ``override`` comes from, first in the message.
    prefix : str, default "scenarios_pipeline"
        The dotted key of ``base``, for the messages.

    Returns
    -------
    dict
        The merged copy (whole floats of integer keys made int, YAML dates made ISO text).

    Raises
    ------
    ScenarioInputError
        One, listing every problem found (unknown keys, wrong types, seed-style keys).
    """
    problems: list[str] = []
    merged = _merge(base, override, prefix, problems)
    if problems:
        raise ScenarioInputError(f"{source}: " + "; ".join(problems))
    return merged


def _merge(base: dict, override: dict, prefix: str, problems: list[str]) -> dict:
    merged = copy.deepcopy(base)
    unknown = []
    for key, value in override.items():
        dotted = f"{prefix}.{key}"
        relative = dotted.removeprefix(f"{ROOT_KEY}.")
        if key not in base:
            if relative in SEED_KEYS:
                kind, text = SEED_KEYS[relative]
                advice = f"write {text}: {_short(value)}" if kind == "rename" else f"remove it ({text})"
                problems.append(f"'{dotted}' is the seed's key: {advice}")
            else:
                unknown.append(dotted)
            continue
        default = base[key]
        seed_value = SEED_VALUES.get(relative)
        if seed_value is not None and seed_value[0](value):
            problems.append(f"'{dotted}: {value}' is the seed's form: {seed_value[1](value)}")
            continue
        if relative in OPEN_MAPPINGS:  # keys chosen by the user (symbols); values checked in check_values
            if not isinstance(value, dict):
                problems.append(f"config key '{dotted}' must be a mapping, got {type(value).__name__} {_short(value)}")
            else:
                merged[key] = {str(k): v for k, v in value.items()}
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                problems.append(f"config key '{dotted}' must be a mapping, got {type(value).__name__} {_short(value)}")
                continue
            merged[key] = _merge(default, value, dotted, problems)
        else:
            error = _type_error(value, default, relative)
            if error:
                problems.append(f"config key '{dotted}' {error}")
            else:
                merged[key] = _coerce(value, default)
    if unknown:
        known = ", ".join(sorted(map(str, base))) or "none"
        label = "unknown config key" if len(unknown) == 1 else "unknown config keys"
        problems.insert(0, f"{label} {', '.join(repr(k) for k in unknown)} (known keys here: {known})")
    return merged


def _type_error(value: Any, default: Any, relative: str) -> str | None:
    """None when ``value`` fits the key (typed by its default, or NULLABLE_TYPES for a null default)."""
    if value is None:
        return None
    if default is None:
        kind = NULLABLE_TYPES.get(relative)
        if kind is None:
            return None
        return _check_kind(value, kind)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be bool, got {type(value).__name__} {_short(value)}"
    if isinstance(default, int):
        return _check_kind(value, "int", "int")
    if isinstance(default, float):
        return _check_kind(value, "number", "float")
    if isinstance(default, list):
        return None if isinstance(value, list) else f"must be list, got {type(value).__name__} {_short(value)}"
    if not isinstance(value, type(default)):
        return f"must be {type(default).__name__}, got {type(value).__name__} {_short(value)}"
    return None


def _check_kind(value: Any, kind: str, label: str | None = None) -> str | None:
    label = label or {"number": "a number", "int": "a whole number", "date": "a date YYYY-MM-DD"}[kind]
    got = f"got {type(value).__name__} {_short(value)}"
    if kind == "date":  # the one rule for a date typed by a person (core.data.dates.parse_iso_date)
        try:
            parse_iso_date(value)
            return None
        except ValueError:
            return f"must be {label}, {got}"
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric:
        return f"must be {label}, {got}"
    if kind == "int" and isinstance(value, float) and not value.is_integer():
        return f"must be {label}, {got}"
    return None


def _coerce(value: Any, default: Any) -> Any:
    """Whole floats of an int key become ints; YAML dates (unquoted 2020-01-01) become ISO text."""
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
        return int(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
