"""Config files as users write them (issue 15, point 8): every problem is one line naming the file and each
dotted key, all at once; hostile files (alias bombs, huge or binary files) are refused before parsing
expands them; the seed pipeline's own config gets what to write instead, key by key."""

from __future__ import annotations

import resource

import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.core.models.config import default_config
from scenarios_assets.core.data.config_file import NULLABLE_TYPES, SEED_KEYS, load_config
from scenarios_assets.core.models.errors import ScenarioInputError

# The seed's config/scenarios_pipeline.yaml as its documentation (docs/pipelines/SCENARIOS_PIPELINE.md of the
# seed, "Pipeline Configuration") gives it.
SEED_CONFIG = """\
scenarios_pipeline:
  generation:
    historical:
      enabled: true
      events: ["covid_crash", "svb_collapse", "gme_squeeze"]
      include_context_days: 30
    regime:
      enabled: true
      min_regime_days: 60
      regime_types: ["bull", "bear", "high_vol", "ranging"]
    stochastic:
      enabled: true
      monte_carlo:
        num_scenarios: 1000
        confidence_levels: [0.95, 0.99]
      bootstrap:
        num_scenarios: 500
        block_size: 20
    stress:
      enabled: true
      scenarios: ["flash_crash", "correlation_breakdown", "liquidity_crisis"]
      severity_levels: ["moderate", "severe", "extreme"]
  data:
    lookback_years: 10
    symbols_universe: "sp500"
  performance:
    parallel_workers: 8
    batch_size: 100
    cache_enabled: true
"""

# What the one message tells the seed's user to write instead.
SEED_CONFIG_FIXED = """\
scenarios_pipeline:
  generation:
    historical:
      enabled: true
      events: ["covid_crash", "svb_collapse", "gme_squeeze"]
      include_context_days: 30
    regime:
      enabled: true
      min_regime_days: {bull: 60, bear: 60, high_volatility: 60, ranging: 60}
    stochastic:
      enabled: true
      monte_carlo:
        num_scenarios: 1000
        confidence_levels: [0.95, 0.99]
      bootstrap:
        num_scenarios: 500
        block_size_days: 20
    stress:
      enabled: true
      include: ["flash_crash", "correlation_breakdown", "liquidity_crisis"]
  data:
    lookback_years: 10
    symbols_universe: []
  performance:
    workers: 8
"""


def one_line_error(path) -> str:
    with pytest.raises(ScenarioInputError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"config file '{path}'"), message
    return message


def test_seed_config_gets_every_differing_key_in_one_message(tmp_path):
    path = tmp_path / "scenarios_pipeline.yaml"
    path.write_text(SEED_CONFIG)
    message = one_line_error(path)
    for key in SEED_KEYS:
        assert f"'scenarios_pipeline.{key}' is the seed's key" in message, key
    assert "'scenarios_pipeline.generation.regime.min_regime_days: 60' is the seed's form: write one minimum per type" in message
    assert "write generation.stochastic.bootstrap.block_size_days: 20" in message
    assert "'scenarios_pipeline.data.symbols_universe: sp500' is the seed's form" in message
    # The keys that mean the same are not mentioned.
    assert "historical.events" not in message and "num_scenarios" not in message and "lookback_years" not in message


def test_seed_config_written_as_advised_means_what_the_seed_meant(tmp_path):
    path = tmp_path / "fixed.yaml"
    path.write_text(SEED_CONFIG_FIXED)
    cfg = load_config(path)
    gen = cfg["generation"]
    assert gen["historical"]["events"] == ["covid_crash", "svb_collapse", "gme_squeeze"]
    assert gen["regime"]["min_regime_days"] == {"bull": 60, "bear": 60, "high_volatility": 60, "ranging": 60}
    assert gen["stochastic"]["monte_carlo"]["num_scenarios"] == 1000
    assert gen["stochastic"]["bootstrap"]["block_size_days"] == 20
    assert gen["stress"]["include"] == ["flash_crash", "correlation_breakdown", "liquidity_crisis"]
    assert cfg["data"]["lookback_years"] == 10 and cfg["performance"]["workers"] == 8
    from scenarios_assets.core.families.historical import load_events

    assert [e.key for e in load_events(False, gen["historical"]["events"])] == ["covid_crash", "svb_collapse", "gme_squeeze"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"scenarios_pipeline: 5\n", "'scenarios_pipeline' must be a mapping of sections (seed, generation, data, performance), got int 5"),
        (b"", "is empty (expected 'scenarios_pipeline:' and the keys to override)"),
        (b"# nothing but a comment\n", "is empty"),
        (b"scenarios_pipeline:\n  seed: 7\n  # caf\xe9\n", "is not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8"),
        (b"scenarios_pipeline:\n  data:\n    lookback_years: \"ten\"\n",
         "config key 'scenarios_pipeline.data.lookback_years' must be a number, got str 'ten'"),
        (b"scenarios_pipeline:\n  data:\n    start_date: 2015-13-01\n",
         "config key 'scenarios_pipeline.data.start_date' must be a date YYYY-MM-DD, got str '2015-13-01'"),
        (b"scenarios_pipeline:\n  performance:\n    paths_per_chunk: 2.5\n",
         "config key 'scenarios_pipeline.performance.paths_per_chunk' must be a whole number, got float 2.5"),
        (b"scenarios_pipeline:\n  generation: [1, 2]\n", "config key 'scenarios_pipeline.generation' must be a mapping, got list"),
        (b"scenarios_pipeline:\n  seed: [1\n", "is not valid YAML: "),
        (b"other: 1\n", "must have the single top-level key 'scenarios_pipeline' (found: other)"),
    ],
)
def test_bad_files_get_one_line_naming_the_key(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    assert message in one_line_error(path)


def test_every_unknown_key_and_wrong_type_is_reported_at_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "scenarios_pipeline:\n  sed: 1\n  generation:\n    historical:\n      include_context_day: 10\n"
        "      min_coverage: high\n  data:\n    lookback_year: 3\n"
    )
    message = one_line_error(path)
    assert "unknown config key 'scenarios_pipeline.sed' (known keys here: data, generation, performance, seed)" in message
    assert "unknown config key 'scenarios_pipeline.generation.historical.include_context_day'" in message
    assert "config key 'scenarios_pipeline.generation.historical.min_coverage' must be float, got str 'high'" in message
    assert "unknown config key 'scenarios_pipeline.data.lookback_year'" in message


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["scenarios_pipeline:", "  generation:", "    stress:", '      a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"      a{i}: &a{i} [{', '.join([prev] * 9)}]")
    lines.append("      include: *a8")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = one_line_error(path)
    assert "uses the YAML alias *a0 (line 5); aliases and anchors are not accepted" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB: nothing was expanded


def test_a_huge_file_is_not_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"scenarios_pipeline:\n" + b"# padding\n" * 120_000)
    assert "is 1,200,020 bytes (at most 1,048,576)" in one_line_error(path)


def test_every_null_default_has_a_declared_type():
    def nulls(mapping, prefix=""):
        for key, value in mapping.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                yield from nulls(value, dotted + ".")
            elif value is None:
                yield dotted

    assert set(nulls(default_config())) == set(NULLABLE_TYPES)


def test_unquoted_yaml_dates_are_read_as_iso_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios_pipeline:\n  data:\n    start_date: 2015-01-02\n")
    assert load_config(path)["data"]["start_date"] == "2015-01-02"


def test_cli_exits_2_on_a_bad_config_and_on_an_unknown_event(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios_pipeline: 5\n")
    assert cli.main(["--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'scenarios_pipeline' must be a mapping" in err
    path.write_text("scenarios_pipeline:\n  generation:\n    historical:\n      events: [covid_crash, covid_krash]\n")
    assert cli.main(["--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "generation.historical.events: unknown event(s) covid_krash (known: covid_crash, svb_collapse" in err


def _leaf_keys(mapping: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "data.symbol_calendars" and key != "min_regime_days":
            keys |= _leaf_keys(value, dotted + ".")
        else:
            keys.add(dotted)
    return keys


def _typed_keys(obj, prefix: str = "") -> set[str]:
    import dataclasses

    keys = set()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys |= _typed_keys(value, f"{prefix}{f.name}.")
        else:
            keys.add(f"{prefix}{f.name}")
    return keys


def test_the_typed_config_has_exactly_the_yaml_keys_and_is_frozen(tmp_path):
    """ScenarioConfig mirrors default_config.yaml key for key (a key added to one but not the other fails),
    lists become tuples, and nothing can be assigned."""
    import dataclasses
    import pickle

    from scenarios_assets.core.models.config import FrozenMapping, ScenarioConfig

    typed = ScenarioConfig.from_mapping(default_config())
    assert _typed_keys(typed) == _leaf_keys(default_config())
    mc = typed.generation.stochastic.monte_carlo
    assert (mc.num_scenarios, mc.volatility_model, mc.confidence_levels) == (50, "gjr_garch", (0.95, 0.99))
    assert isinstance(typed.data.symbol_calendars, FrozenMapping) and typed.data.symbol_calendars == {}
    with pytest.raises(TypeError):
        typed.generation.regime.min_regime_days["bull"] = 1  # type: ignore[index]
    assert pickle.loads(pickle.dumps(typed)) == typed  # multiprocess steps and dask workers receive it
    with pytest.raises(dataclasses.FrozenInstanceError):
        mc.num_scenarios = 5
    user = tmp_path / "c.yaml"
    user.write_text("scenarios_pipeline:\n  generation:\n    stochastic:\n      bootstrap:\n        block_size_days: null\n")
    assert ScenarioConfig.from_mapping(load_config(user)).generation.stochastic.bootstrap.block_size_days is None
    extra = default_config()
    extra["generation"]["historical"]["surprise"] = 1
    with pytest.raises(TypeError, match="generation.historical"):
        ScenarioConfig.from_mapping(extra)


@pytest.mark.parametrize("value", ["20220103", "2022-W01-1", "2022-1-3", "2022-02-30"])
def test_config_dates_follow_the_one_date_rule_of_the_cli_and_api(tmp_path, value):
    """Config dates are parsed by core.data.dates.parse_iso_date, as the CLI's flags and the API's fields are:
    compact, week and unpadded forms that date.fromisoformat would take are refused with the key named."""
    user = tmp_path / "c.yaml"
    user.write_text(f"scenarios_pipeline:\n  data:\n    start_date: '{value}'\n")
    with pytest.raises(ScenarioInputError, match=r"'scenarios_pipeline.data.start_date' must be a date YYYY-MM-DD"):
        load_config(user)
