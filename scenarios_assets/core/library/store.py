"""Where a library lives: a local directory or an fsspec URL (``s3://bucket/prefix``, ``file:///dir``,
``memory://name``), as one path type that the writers and readers share.

:func:`location` turns the text of ``--output-dir`` (or the settings resource's ``output_dir``) into a path:
a local path or a ``file://`` URL becomes a :class:`pathlib.Path` (the local store keeps hard links, symbolic
links for humans and ``flock``), any other URL a :class:`upath.UPath` (universal-pathlib over fsspec; s3fs for
``s3://``). Both offer the same pathlib API (``/``, ``exists``, ``is_file``, ``iterdir``, ``glob``, ``open``,
``read_text``, ``write_text``), so a reader has one code path. pyarrow reads and writes through
:func:`arrow_location`. S3 credentials and endpoint come from the usual AWS settings (environment variables
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3`` for an S3-compatible server, or
``~/.aws``), never from the URL.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from upath import UPath

from scenarios_assets.core.models.errors import ScenarioInputError

_URL = re.compile(r"^(?P<protocol>[a-zA-Z][a-zA-Z0-9+.-]*)://")
LOCAL_PROTOCOLS = ("file", "local")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a local path.

    Parameters
    ----------
    text : str
        A path or URL (converted with ``str``).

    Returns
    -------
    bool
        True when it starts with ``<scheme>://``.
    """
    return bool(_URL.match(str(text)))


def location(text: str | os.PathLike) -> Path:
    """The library path of ``text``: :class:`pathlib.Path` for a local path or a ``file://`` URL (percent
    escapes decoded, ``~`` expanded), else a ``upath.UPath`` over the URL's fsspec file system.

    Parameters
    ----------
    text : str or os.PathLike
        A local path, a ``file://`` URL or an fsspec URL; a ``Path`` or ``UPath`` is returned as it is.

    Returns
    -------
    Path
        A :class:`pathlib.Path`, or a ``upath.UPath`` (listings not cached, except ``memory://``).

    Raises
    ------
    ScenarioInputError
        For a URL whose scheme fsspec does not know (naming the scheme), and for a ``file://`` URL with a host
        other than localhost.

    References
    ----------
    .. [1] fsspec, https://filesystem-spec.readthedocs.io/; universal-pathlib,
       https://github.com/fsspec/universal_pathlib
    """
    if isinstance(text, Path) or hasattr(text, "fs"):  # already a path (a UPath has its file system)
        return cast(Path, text)
    text = os.fspath(text)
    match = _URL.match(text)
    if match is None:
        return Path(text).expanduser()
    protocol = match["protocol"].lower()
    if protocol in LOCAL_PROTOCOLS:
        parsed = urllib.parse.urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ScenarioInputError(f"'{text}': a file:// URL names a local path (file:///dir), not host '{parsed.netloc}'")
        return Path(urllib.parse.unquote(parsed.path) or "/")
    import fsspec
    from upath import UPath

    if protocol not in fsspec.available_protocols():
        raise ScenarioInputError(f"'{text}': unknown storage scheme '{protocol}://' (use a local path, file://, s3:// "
                                 "or another fsspec protocol)")
    if protocol == "memory":
        return cast(Path, UPath(text))
    # No cached listings: other processes (the cluster's workers, the next run) add and delete builds and parts
    # under the same prefix, and a long-lived reader (the API, a worker) must see them.
    return cast(Path, UPath(text, use_listings_cache=False))


def _remote(path: Path) -> UPath:
    """``path`` as the UPath it is on a remote store (its ``fs``: the fsspec file system, ``path``: the key)."""
    return cast("UPath", path)


def is_remote(path: Path) -> bool:
    """True for a store reached through fsspec (object stores, memory://), False for a local directory.

    Parameters
    ----------
    path : Path
        A :func:`location`.

    Returns
    -------
    bool
        Whether its protocol is other than local.
    """
    return getattr(path, "protocol", "") not in ("", *LOCAL_PROTOCOLS)


def display(path: Path) -> str:
    """The address of ``path`` as a user gave it (a URL keeps its scheme; never credentials: those are not
    part of a location).

    Parameters
    ----------
    path : Path
        A :func:`location`.

    Returns
    -------
    str
        ``str(path)``.
    """
    return str(path)


def arrow_location(path: Path) -> tuple[str, object | None]:
    """(path string, file system) for pyarrow's ``filesystem=`` argument: None for a local path (pyarrow's own),
    the fsspec file system of a remote one (pyarrow wraps it).

    Parameters
    ----------
    path : Path
        A :func:`location`.

    Returns
    -------
    where : str
        The local path, or the key on the remote file system.
    filesystem : fsspec.AbstractFileSystem or None
        None for a local path.
    """
    if not is_remote(path):
        return str(path), None
    return _remote(path).path, _remote(path).fs


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old content or the new one, never a part: a
    temporary file renamed over it (rename(2)) locally; one PUT (atomic per object) on an object store.

    Parameters
    ----------
    path : Path
        The file (its directory must exist locally).
    payload : bytes
        The new content; locally fsync-ed before the rename.
    """
    if is_remote(path):
        path.write_bytes(payload)
        return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def copy_file(src: Path, dst: Path) -> None:
    """``dst`` with the bytes of ``src`` without moving them through this process where the store can: a
    hard link locally (the same inode; a copy where the file system has none), a server-side copy on an
    object store (s3fs: CopyObject). Both paths must be on the same store.

    Parameters
    ----------
    src : Path
        An existing file.
    dst : Path
        The destination (its local directory is created).
    """
    import shutil

    if not is_remote(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return
    _remote(dst).fs.copy(_remote(src).path, _remote(dst).path)


def copy_files(pairs: list[tuple[Path, Path]]) -> None:
    """:func:`copy_file` for many (source, destination) pairs on one store; on an object store one batched call
    (fsspec runs the server-side copies concurrently instead of one request after another).

    Parameters
    ----------
    pairs : list of (Path, Path)
        (source, destination) pairs, all on the store of the first destination.
    """
    if not pairs:
        return
    if not is_remote(pairs[0][1]):
        for src, dst in pairs:
            copy_file(src, dst)
        return
    fs = _remote(pairs[0][1]).fs
    fs.copy([_remote(src).path for src, _ in pairs], [_remote(dst).path for _, dst in pairs])


def remove_tree(path: Path) -> None:
    """Delete the directory (or prefix) ``path`` and everything under it; nothing when it is absent.

    Parameters
    ----------
    path : Path
        A :func:`location`; local errors are ignored.
    """
    import shutil

    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        _remote(path).fs.rm(_remote(path).path, recursive=True)
    except FileNotFoundError:
        pass


def local_lock_path(path: Path, name: str) -> Path:
    """Where the lock file ``name`` of the library ``path`` lives: in it locally; for a remote store (no
    locks) in this machine's temporary directory, named after the URL's hash.

    Parameters
    ----------
    path : Path
        The library's :func:`location`.
    name : str
        The lock file's name (e.g. ``.lock``).

    Returns
    -------
    Path
        ``<path>/<name>`` locally, else ``<tmp>/scenarios-store-<16 hex digits of SHA-256 of the URL><name>``.
    """
    import hashlib
    import tempfile

    if not is_remote(path):
        return path / name
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"scenarios-store-{digest}{name}"


PROBE_TIMEOUT_SECONDS = 10  # connect and read timeouts of the store probe (an unreachable endpoint fails fast)


def probe_store(path: Path, what: str) -> None:
    """Check up front that the remote store ``path`` can be reached and written: a probe object is written
    and deleted under it, with short timeouts and no retries. Raises ScenarioInputError, one line naming
    ``what`` (the flag or variable) and the address (never a credential), and the fix: missing credentials,
    an endpoint that cannot be reached, a bucket that does not exist, a store that refuses writes.

    Parameters
    ----------
    path : Path
        A remote :func:`location`.
    what : str
        The flag or variable the address came from, for the message.

    Raises
    ------
    ScenarioInputError
        When the probe object cannot be written or deleted (connect and read timeouts of
        :data:`PROBE_TIMEOUT_SECONDS` on S3, one attempt).
    """
    from upath import UPath

    options = dict(getattr(path, "storage_options", {}) or {})
    if _remote(path).protocol in ("s3", "s3a"):
        options.setdefault("config_kwargs", {"connect_timeout": PROBE_TIMEOUT_SECONDS, "read_timeout": PROBE_TIMEOUT_SECONDS,
                                             "retries": {"max_attempts": 1}})
        options.setdefault("skip_instance_cache", True)
    probe = UPath(str(path), **options) / f".scenarios-write-check-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"probe")
        probe.unlink()
    except Exception as exc:  # noqa: BLE001 -- classified into one line below
        raise ScenarioInputError(f"{what} '{path}': {_store_problem(exc)}") from None


def _store_problem(exc: BaseException) -> str:
    """One line for why a store probe failed (class names and the store's error code, no credentials)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc)
    if "NoCredentialsError" in names or "PartialCredentialsError" in names or "Unable to locate credentials" in text:
        return ("no credentials for the store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in "
                "~/.aws) in the environment of the run")
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text or "InvalidAccessKeyId" in text:
        return "the store refuses writes (access denied): give the run's credentials write access, or pick another prefix"
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
        return "the bucket does not exist: create it first, or fix the URL"
    if "EndpointConnectionError" in names or "ConnectTimeoutError" in names or isinstance(exc, (ConnectionError, TimeoutError)) \
            or "Could not connect" in text or "Connect timeout" in text:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the default endpoint"
        return f"the store cannot be reached at {endpoint}: start it, or fix the URL or AWS_ENDPOINT_URL_S3"
    return f"the store cannot be written ({type(exc).__name__}); check the URL and the run's access to it"
