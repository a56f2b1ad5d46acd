"""Symbols as the user types them: `spx` is SPX where that is the only name it can mean, from files and PostgreSQL."""

import io

import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.service.preflight import preflight
from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.market import load_market_data
from scenarios_assets.core.data.symbols import resolve_symbols
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_tests.pg_helpers import temporary_database

AVAILABLE = ["AAPL", "MSFT", "SPX", "brk.b"]


def test_resolve_symbols_exact_then_ignoring_case():
    assert resolve_symbols(["spx", "Aapl", "MSFT", "BRK.B", "SPX"], AVAILABLE, "src") == ["SPX", "AAPL", "MSFT", "brk.b"]
    with pytest.raises(ScenarioInputError, match=r"^unknown symbol\(s\) FOO in market data 'src' \(available: AAPL, "):
        resolve_symbols(["spx", "FOO"], AVAILABLE, "src")
    both = ["SPX", "spx"]
    assert resolve_symbols(["spx", "SPX"], both, "src") == ["spx", "SPX"]  # an exact name always wins
    with pytest.raises(ScenarioInputError, match=r"symbol\(s\) Spx \(SPX or spx\) of market data 'src' differ only in case"):
        resolve_symbols(["Spx"], both, "src")


def test_lower_case_symbols_load_the_same_panel():
    lower = load_market_data(BUNDLED_OHLCV, symbols=["spx", "aapl"])
    upper = load_market_data(BUNDLED_OHLCV, symbols=["SPX", "AAPL"])
    assert lower.symbols == upper.symbols == ["SPX", "AAPL"] and lower.data_version == upper.data_version


def test_cli_respells_symbols_before_anything_runs():
    """One selection, one config hash: --symbols spx,aapl builds what --symbols SPX,AAPL builds."""
    parse = cli.build_parser().parse_args
    plans = [cli.plan_from_args(parse(["--symbols", s])) for s in ("spx,aapl", "SPX,AAPL")]
    for plan in plans:
        preflight(plan)
    assert plans[0].config["data"]["symbols_universe"] == ["SPX", "AAPL"]
    assert config_hash(plans[0].config) == config_hash(plans[1].config)
    assert plans[0].settings["overrides_json"] == plans[1].settings["overrides_json"]


def test_postgres_source_respells_symbols_in_sql():
    from scenarios_assets.cli.db import load_market_data_main

    with temporary_database() as url:
        assert load_market_data_main(["--to", url], out=io.StringIO()) == 0
        market = load_market_data(url, symbols=["msft", "Spx"], start_date="2019-01-01", end_date="2019-12-31")
        assert market.symbols == ["MSFT", "SPX"]
        files = load_market_data(BUNDLED_OHLCV, symbols=["MSFT", "SPX"], start_date="2019-01-01", end_date="2019-12-31")
        assert market.data_version == files.data_version
        with pytest.raises(ScenarioInputError, match=r"unknown symbol\(s\) nope in market data"):
            load_market_data(url, symbols=["nope"])
