"""Block bootstrap family: block structure, whole-date resampling, correlation, severity, seasonality and
reproducibility."""

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.families import bootstrap as bs
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.engines.blocks import draw_block_indices
from scenarios_assets.core.engines.calibration import calibration_window
from scenarios_assets.core.models.severity import SEVERITIES, scenario_rng, scenario_seed
from scenarios_assets.core.library.validation import collect, generate_family, validate_set

N = 40


def overrides(**keys) -> dict:
    return {"generation": {"stochastic": {"bootstrap": {"num_scenarios": N, **keys}}}}


@pytest.fixture(scope="module")
def sets(make_ctx):
    return {sev: generate_family("bootstrap", make_ctx(sev, overrides())) for sev in SEVERITIES}


def history_rows(market, ss, start=None) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Daily simple returns (float32) of the scenario's symbols from ``start`` to the window end."""
    window = ss.metadata["calibration_window"]
    symbols = ss.scenarios[0].symbols
    close = market.close[symbols].loc[: window["end"]]
    rets = (np.log(close).diff()).loc[start or window["start"] :]
    return rets.index, np.expm1(rets.to_numpy()).astype(np.float32)


def blocks_of(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


# --- the index-drawing function -------------------------------------------------------------------

def test_circular_blocks_are_exact_wrap_and_fill_the_horizon():
    n, horizon, size = 30, 252, 20
    wrapped = 0
    for seed in range(200):
        idx, starts, lengths = draw_block_indices(scenario_rng(seed), n, horizon, size, "circular_block")
        assert idx.shape == (horizon,) and idx.min() >= 0 and idx.max() < n
        assert lengths.tolist() == [20] * 12 + [12]
        for k, block in enumerate(blocks_of(idx, size)):
            assert block[0] == starts[k]
            assert np.array_equal(block, (starts[k] + np.arange(len(block))) % n)  # consecutive, wrapping
            wrapped += int(np.any(np.diff(block) == -(n - 1)))
    assert wrapped > 100  # with 30 rows most blocks wrap; the wrap goes from row n-1 to row 0


def test_stationary_blocks_and_allowed_starts():
    n, horizon, size = 500, 252, 20
    all_lengths = []
    for seed in range(300):
        idx, starts, lengths = draw_block_indices(scenario_rng(seed), n, horizon, size, "stationary")
        assert lengths.sum() == horizon and (lengths >= 1).all()
        pos = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for p, s, length in zip(pos, starts, lengths):
            assert np.array_equal(idx[p : p + length], (s + np.arange(length)) % n)
        all_lengths += lengths[:-1].tolist()  # the last block is cut at the horizon
    assert np.mean(all_lengths) == pytest.approx(size, rel=0.1)
    assert len(set(all_lengths)) > 10  # random lengths, not fixed blocks
    allowed = np.array([3, 97, 250])
    idx, starts, _ = draw_block_indices(scenario_rng(1), n, horizon, size, "circular_block", allowed)
    assert set(starts.tolist()) <= set(allowed.tolist())
    with pytest.raises(ScenarioInputError):
        draw_block_indices(scenario_rng(1), n, horizon, size, "moving_block")


# --- generated scenarios ----------------------------------------------------------------------------

def test_every_day_is_one_historical_date_for_all_symbols(sets, market):
    ss = sets["moderate"]
    dates, hist = history_rows(market, ss)
    lookup = {row.tobytes(): i for i, row in enumerate(hist)}
    assert len(lookup) == len(hist)  # rows are distinct, so a match identifies the date
    size = ss.metadata["block_size_days"]
    assert size == 20
    for s in ss.scenarios[:10]:
        rows = np.array([lookup[r.tobytes()] for r in s.returns])  # KeyError if symbols were mixed
        for k, block in enumerate(blocks_of(rows, size)):
            assert np.array_equal(block, (block[0] + np.arange(len(block))) % len(hist))
            assert str(dates[block[0]].date()) == s.metadata["block_starts"][k]
        # paths start at the window end with that date's closes (changed by issue 10: SPX and NVDA started
        # from their 2025 closes while the paths were dated from 2025-02-17)
        last = market.close[s.symbols].loc["2022-12-28"].to_numpy()
        np.testing.assert_allclose(s.prices[-1], last * np.prod(1.0 + s.returns.astype(np.float64), axis=0), rtol=1e-5)
        assert s.start_date == "2022-12-29" and np.datetime64("2023-01-02") not in s.dates  # XNYS sessions
    assert ss.metadata["start_state"]["date"] == "2022-12-28" and ss.metadata["preserve_seasonality"]
    validate_set(ss)
    assert not [n for n, r in ss.validation.items() if r["blocking"] and not r["passed"]]
    assert ss.scenarios[3].id == "bootstrap.circular_block_0003.moderate"
    assert ss.scenarios[3].seed == scenario_seed(42, "bootstrap", "moderate", 3)


def test_correlation_structure_is_kept(sets, market):
    ss = sets["moderate"]
    _, hist = history_rows(market, ss)
    c_hist = np.corrcoef(hist, rowvar=False)
    sim = np.stack([s.returns for s in ss.scenarios]).reshape(-1, hist.shape[1])
    c_sim = np.corrcoef(sim, rowvar=False)
    off = ~np.eye(len(c_hist), dtype=bool)
    measured = 1.0 - np.abs(c_sim[off] - c_hist[off]).mean()
    assert measured >= 0.8 and ss.metadata["correlation_stability"] == pytest.approx(measured, abs=0.01)
    # shuffling each symbol's days independently (different blocks per symbol) would destroy it
    rng = np.random.default_rng(0)
    shuffled = np.column_stack([rng.permutation(sim[:, j]) for j in range(sim.shape[1])])
    assert 1.0 - np.abs(np.corrcoef(shuffled, rowvar=False)[off] - c_hist[off]).mean() < 0.7


def test_severity_is_monotone_and_extreme_uses_high_volatility_blocks(sets, market):
    vol = [sets[s].metadata["annualised_volatility_median"] for s in SEVERITIES]
    mdd = [sets[s].metadata["max_drawdown_median"] for s in SEVERITIES]
    assert vol[0] < vol[1] < vol[2]
    assert mdd[0] > mdd[1] > mdd[2]
    extreme = sets["extreme"]
    pool = extreme.metadata["pool"]
    dates, hist = history_rows(market, extreme, start=pool["pool_start"])
    assert str(dates[0].date()) == pool["pool_start"] and len(hist) == pool["pool_sessions"]
    port = hist.astype(np.float64).mean(axis=1)
    starts = {str(d.date()): i for i, d in enumerate(dates)}
    size = extreme.metadata["block_size_days"]
    for s in extreme.scenarios:
        for day in s.metadata["block_starts"]:
            i = starts[day]
            block = port[np.arange(i, i + size) % len(port)]
            assert block.std() * np.sqrt(252) >= pool["block_volatility_threshold"] - 1e-6
    assert pool["eligible_start_share"] <= 0.06  # the top 5 % of blocks


def test_chunks_and_seeds_reproduce(make_ctx):
    ctx = make_ctx("severe", overrides(sampling_method="stationary"))
    whole = collect(bs.stream_bootstrap(ctx, indices=range(20)))
    chunked = make_ctx("severe", {**overrides(sampling_method="stationary"), "performance": {"paths_per_chunk": 3}})
    parts = collect(bs.stream_bootstrap(chunked, indices=range(10))).scenarios + collect(bs.stream_bootstrap(chunked, indices=range(10, 20))).scenarios
    for a, b in zip(whole.scenarios, parts):
        assert a.id == b.id and a.seed == b.seed
        assert np.array_equal(a.returns, b.returns) and np.array_equal(a.prices, b.prices)
        assert a.metadata["block_lengths"] == b.metadata["block_lengths"]
    other = collect(bs.stream_bootstrap(make_ctx("severe", {**overrides(sampling_method="stationary"), "seed": 7}), indices=[0]))
    assert not np.array_equal(other.scenarios[0].returns, whole.scenarios[0].returns)


def test_seasonal_blocks_start_at_the_calendar_phase(make_ctx):
    ss = generate_family("bootstrap", make_ctx("moderate", overrides(preserve_seasonality=True, num_scenarios=10)))
    size, tol = ss.metadata["block_size_days"], ss.metadata["seasonality_tolerance_days"]
    assert ss.metadata["seasonal_fallback_positions"] == 0
    for s in ss.scenarios:
        targets = pd.DatetimeIndex(s.dates[::size]).dayofyear.to_numpy()
        got = pd.DatetimeIndex(s.metadata["block_starts"]).dayofyear.to_numpy()
        d = np.abs(got - targets)
        assert (np.minimum(d, 365.25 - d) <= tol).all()
    plain = generate_family("bootstrap", make_ctx("moderate", overrides(num_scenarios=10, preserve_seasonality=False)))
    d = np.abs(pd.DatetimeIndex(plain.scenarios[0].metadata["block_starts"]).dayofyear.to_numpy()
               - pd.DatetimeIndex(plain.scenarios[0].dates[::size]).dayofyear.to_numpy())
    assert (np.minimum(d, 365.25 - d) > tol).any()  # without it, blocks come from any time of year


def test_automatic_block_size_and_universe(make_ctx, market):
    ss = generate_family("bootstrap", make_ctx("moderate", overrides(block_size_days=None, num_scenarios=5)))
    assert ss.metadata["block_size_rule"].startswith("auto") and 2 <= ss.metadata["block_size_days"] <= 252
    # the universe: complete data over the two years before the last session with >= half the symbols
    window = calibration_window(market.close, years=2, min_coverage=1.0, min_symbols_share=0.5)
    assert str(window.end.date()) == "2022-12-28" and window.symbols == ss.scenarios[0].symbols
    assert "IXIC" not in window.symbols and {"MTUM", "SPX", "NVDA"} <= set(window.symbols)
