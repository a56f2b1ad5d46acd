"""argparse for the project's commands (``scenarios``, ``scenarios serve``, ``scenarios builds`` ...)."""

from __future__ import annotations

import argparse

from scenarios_assets.core.models.errors import ScenarioInputError


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one ScenarioInputError line (exit 2), like every other bad input."""

    def error(self, message: str):
        raise ScenarioInputError(f"{self.prog}: {message}")
