"""Generation config: the shipped YAML defaults are the schema, a user file may override any subset.

Unknown keys and wrongly typed values are errors naming the dotted key, so a typo never passes silently.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from scenarios_assets.core.errors import ScenarioInputError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
ROOT_KEY = "scenarios_pipeline"


def default_config() -> dict[str, Any]:
    """The shipped defaults (the ``scenarios_pipeline`` mapping)."""
    with DEFAULT_CONFIG_PATH.open() as fh:
        return yaml.safe_load(fh)[ROOT_KEY]


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, merged with the YAML file at ``path`` (if any), then with ``overrides``."""
    config = default_config()
    if path:
        path = Path(path)
        if not path.is_file():
            raise ScenarioInputError(f"config file '{path}' does not exist")
        try:
            with path.open() as fh:
                user = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ScenarioInputError(f"config file '{path}' is not valid YAML: {exc}") from None
        if not isinstance(user, dict) or set(user) != {ROOT_KEY}:
            raise ScenarioInputError(f"config file '{path}' must have the single top-level key '{ROOT_KEY}'")
        config = merge_config(config, user[ROOT_KEY], source=str(path))
    if overrides:
        config = merge_config(config, overrides, source="overrides")
    check_values(config)
    return config


def check_values(config: dict[str, Any]) -> None:
    """Values a type check cannot catch but that are knowable before anything runs (one line each)."""
    from scenarios_assets.core.calendar import check_calendar

    check_calendar(config["data"]["trading_calendar"])
    volatility_models = ("gjr_garch", "garch")  # monte_carlo.VOLATILITY_MODELS (not imported: keep config light)
    model = config["generation"]["stochastic"]["monte_carlo"]["volatility_model"]
    if model not in volatility_models:
        raise ScenarioInputError(
            f"config key 'scenarios_pipeline.generation.stochastic.monte_carlo.volatility_model' must be one of "
            f"{', '.join(volatility_models)}, got {model!r}"
        )


def merge_config(base: dict[str, Any], override: dict[str, Any], source: str, prefix: str = ROOT_KEY) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; every key must exist in ``base`` with a compatible type."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}.{key}"
        if key not in base:
            known = ", ".join(sorted(base)) or "none"
            raise ScenarioInputError(f"{source}: unknown config key '{dotted}' (known keys here: {known})")
        default = base[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ScenarioInputError(f"{source}: config key '{dotted}' must be a mapping")
            merged[key] = merge_config(default, value, source, dotted)
        else:
            merged[key] = _check_type(value, default, dotted, source)
    return merged


def _check_type(value: Any, default: Any, dotted: str, source: str) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            ok = value.is_integer()
            value = int(value)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ScenarioInputError(
            f"{source}: config key '{dotted}' must be {type(default).__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def family_config(config: dict[str, Any], family_section: str) -> dict[str, Any]:
    return config["generation"][family_section]


# Keys that change what is generated; `performance` (executor, workers, file options) never does.
HASHED_KEYS = ("seed", "generation", "data")


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of the generation-relevant config (canonical JSON), recorded in every output."""
    relevant = {key: config[key] for key in HASHED_KEYS}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
