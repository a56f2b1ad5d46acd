"""Where a job's wall time goes: named phases timed in order (no Dagster, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Phases:
    """Wall seconds of the named phases of a job, in the order they ran (``timed(name)``; a phase timed twice
    adds up). ``on_start(name)``, when given, is told as each phase begins (e.g. to log it).

    Parameters
    ----------
    on_start : callable ``(str) -> None``, optional
        Called with a phase's name as it begins.
    """

    def __init__(self, on_start: Callable[[str], None] | None = None):
        self.seconds: dict[str, float] = {}
        self._on_start = on_start

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name`` (added to ``seconds[name]``, rounded to milliseconds), even when
        it raises.

        Parameters
        ----------
        name : str
            The phase.

        Yields
        ------
        None
            While the block runs.
        """
        if self._on_start is not None:
            self._on_start(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)

    @property
    def total(self) -> float:
        """Wall seconds of all phases, rounded to milliseconds."""
        return round(sum(self.seconds.values()), 3)
