import pytest

from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.models.errors import ScenarioInputError


def test_defaults_and_overrides(tmp_path):
    cfg = load_config()
    assert cfg["generation"]["historical"]["include_context_days"] == 30
    path = tmp_path / "c.yaml"
    path.write_text("scenarios_pipeline:\n  seed: 7\n  generation:\n    historical:\n      include_context_days: 10\n")
    user = load_config(path)
    assert user["seed"] == 7 and user["generation"]["historical"]["include_context_days"] == 10
    assert user["generation"]["historical"]["min_coverage"] == 0.95  # untouched defaults survive
    assert config_hash(user) != config_hash(cfg)
    # performance settings never change what is generated, so they do not change the hash
    assert config_hash(load_config(None, {"performance": {"workers": 7}})) == config_hash(cfg)


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenarios_pipeline:\n  generation:\n    historical:\n      include_context_day: 10\n")
    with pytest.raises(ScenarioInputError, match=r"unknown config key 'scenarios_pipeline.generation.historical.include_context_day'"):
        load_config(path)


def test_wrong_type_and_bad_files(tmp_path):
    with pytest.raises(ScenarioInputError, match="'scenarios_pipeline.seed' must be int"):
        load_config(None, {"seed": "abc"})
    with pytest.raises(ScenarioInputError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "b.yaml"
    bad.write_text("other: 1\n")
    with pytest.raises(ScenarioInputError, match="single top-level key 'scenarios_pipeline'"):
        load_config(bad)
