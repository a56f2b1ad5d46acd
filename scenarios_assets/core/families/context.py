"""What a family generator reads: the market data, the economic series, the config and the severity."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from scenarios_assets.core.data.market import MarketData
from scenarios_assets.core.models.config import ScenarioConfig


@dataclass(frozen=True)
class GenerationContext:
    """Everything a family generator may read; generators are pure functions of it.

    ``config`` is the checked ``scenarios_pipeline`` mapping (the form that is hashed and travels in run
    config); families read it through :attr:`settings`, its typed view.
    """

    market: MarketData
    economic: pd.DataFrame  # dates x (VIX, rates ...) of the market data's sessions
    config: dict
    config_hash: str
    severity: str  # moderate | severe | extreme

    @cached_property
    def settings(self) -> ScenarioConfig:
        """The typed config (frozen dataclasses, ``core.models.config``)."""
        return ScenarioConfig.from_mapping(self.config)

    @property
    def seed(self) -> int:
        """The base seed of every random draw (``scenarios_pipeline.seed``)."""
        return self.settings.seed
