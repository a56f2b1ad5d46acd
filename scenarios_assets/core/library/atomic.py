"""Atomic replacement of a file or a symbolic link: written under a temporary name in the same directory,
then renamed over the target (``rename(2)`` replaces atomically within one file system), so a reader sees
the old content or the new one, never a part.

Used by the build store (the ``current`` link and the top-level links), the API's request records and the
report screenshot; one implementation of the temp-then-rename step.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; when the block ends without an exception it becomes
    ``path`` (replacing any file there). On an exception the temporary file is removed and ``path`` is left
    as it was.

    Parameters
    ----------
    path : Path
        The target file; its directory must exist.
    suffix : str
        Suffix of the temporary name (``.<name>.<random><suffix>``), e.g. for tools that infer a format.

    Yields
    ------
    Path
        The temporary file (created empty) to write.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : Path
        The target file; its directory must exist.
    text : str
        The new content.
    encoding : str, default "utf-8"
        The text encoding.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_symlink(target: str, path: Path, tmp_suffix: str = "link") -> None:
    """Make ``path`` a symbolic link to ``target`` in one step, replacing a link or file already there.

    The new link is made as ``.<name>.<tmp_suffix>`` beside ``path`` (a stale one from a crash is removed
    first) and renamed over ``path``. Not for replacing a directory: ``rename(2)`` refuses that.

    Parameters
    ----------
    target : str
        What the link points to (relative to the link's directory, or absolute).
    path : Path
        The link.
    tmp_suffix : str, default "link"
        Suffix of the temporary link's name (distinct per concurrent writer).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{tmp_suffix}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
