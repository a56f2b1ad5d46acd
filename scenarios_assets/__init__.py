"""Market-scenario generator built as a Dagster asset graph.

The computational core lives in :mod:`scenarios_assets.core` (no Dagster import); the Dagster layer in
:mod:`scenarios_assets.defs`; downstream users load the written catalog with :func:`load_scenarios` and
its risk metrics with :func:`load_scenario_metrics`.
"""

from scenarios_assets.core.library.metrics import load_scenario_metrics
from scenarios_assets.core.library.storage import load_scenarios

__all__ = ["load_scenario_metrics", "load_scenarios"]
