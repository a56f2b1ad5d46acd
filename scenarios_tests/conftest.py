"""Shared fixtures: the bundled real market data and generation contexts built from it."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from scenarios_assets.core.config import config_hash, load_config  # noqa: E402
from scenarios_assets.core.families import GenerationContext  # noqa: E402
from scenarios_assets.core.market import build_economic, load_market_data, read_economic  # noqa: E402
from scenarios_assets.core.paths import BUNDLED_ECONOMIC, BUNDLED_OHLCV  # noqa: E402


@pytest.fixture(scope="session")
def market():
    """The bundled real market data (all symbols, full history)."""
    return load_market_data(BUNDLED_OHLCV)


@pytest.fixture(scope="session")
def economic(market):
    return build_economic(market, read_economic(BUNDLED_ECONOMIC))


@pytest.fixture(scope="session")
def make_ctx(market, economic):
    """make_ctx(severity, overrides=None, market=None) -> GenerationContext on the bundled data."""

    def make(severity: str, overrides: dict | None = None, market_data=None) -> GenerationContext:
        config = load_config(None, overrides)
        return GenerationContext(market_data or market, economic, config, config_hash(config), severity)

    return make
