"""Advisory locks that refuse a second holder at once and name the first (fcntl.flock on a lock file).

The kernel releases a flock when its holder's process ends, however it ends (SIGKILL, OOM), so a dead
holder never blocks anyone; the file's text (who holds it, since when) is only read to name the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from scenarios_assets.core.models.errors import ScenarioInputError


class LockHeldError(ScenarioInputError):
    """The lock is held by another process; the message names it."""


@contextlib.contextmanager
def exclusive(path: Path, holder: str, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` (created with its parents) while the block runs, writing ``holder`` into
    it, followed by the UTC time; emptied on release.

    Parameters
    ----------
    path : Path
        The lock file.
    holder : str
        Who holds it (e.g. a pid and a command), written into the file.
    what : str
        What the lock guards, for the message.

    Yields
    ------
    None
        While the lock is held.

    Raises
    ------
    LockHeldError
        One line naming ``what`` is locked and the current holder's text, when another open file holds it
        (no waiting).

    References
    ----------
    .. [1] flock(2), Linux man-pages.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            current = " ".join(fh.read().split()) or "another process"
            raise LockHeldError(f"{what} is in use by another scenarios run ({current}); wait for it to finish") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{holder}, since {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()  # a released lock names nobody
    finally:
        fh.close()  # releases the lock
