"""One way to reach the storage root, local or ``s3://``, through fsspec.

Every room that reads or writes shards, indexes or checkpoints goes through here so that an S3
endpoint (a cluster's object store, or moto on loopback in the tests) is configured in one place:
explicit ``storage_options`` > :class:`StorageConfig` > the environment (``FSSPEC_S3_ENDPOINT_URL``
or ``AWS_ENDPOINT_URL``, read at call time so a test fixture that sets it after import is seen).

This module is also the one place that teaches WebDataset's ``gopen`` to open ``s3://`` URLs: a
plain ``s3://`` URL otherwise fails with "no gopen handler" (DESIGN.md §8). Importing
``imagintalk.storage`` registers the opener; the shard writer and the loader both import it.

Publishing is atomic everywhere: a local file is written under a temporary name in the same
directory and ``os.replace``d; an object is uploaded with a single ``put`` from a finished local
file, and S3 only makes an object visible once its upload completed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import fsspec
from fsspec.core import url_to_fs

from imagintalk.config import StorageConfig
from imagintalk.errors import ConfigError, ImaginTalkError, StorageError

T = TypeVar("T")

ENDPOINT_ENVS = ("FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REMOTE_SCHEMES = ("s3",)
_HASH_CHUNK = 1 << 20
STAGED_SUFFIX = ".tmp"   # local staging name: ".{name}.<random>.tmp" beside the destination


@contextmanager
def remote_errors(url: str | Path) -> Iterator[None]:
    """Turn any failure to reach a remote store into one StorageError naming ``url`` (a missing
    object stays FileNotFoundError for the callers that expect it; local paths are untouched)."""
    try:
        yield
    except (FileNotFoundError, ImaginTalkError):
        raise
    except Exception as exc:
        if not is_remote(url):
            raise
        raise StorageError(url, _reason(exc)) from exc


def _bounded(fn: Callable[..., T]) -> Callable[..., T]:
    """:func:`remote_errors` around a function whose first argument is the URL."""
    @functools.wraps(fn)
    def wrapper(url: Any, *args: Any, **kwargs: Any) -> T:
        with remote_errors(url):
            return fn(url, *args, **kwargs)
    return wrapper


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200] or exc.__class__.__name__
    low = f"{exc.__class__.__name__} {text}".lower()
    what = ("timed out" if "timeout" in low or "timed out" in low else
            "cannot reach the object store" if "connect" in low else "object store request failed")
    return f"{what} ({exc.__class__.__name__}: {text})"


def scheme_of(url: str | Path) -> str:
    """``"s3"`` for ``s3://...``, ``""`` for a local path (``file://`` counts as local)."""
    text = str(url)
    if "://" not in text:
        return ""
    scheme = text.split("://", 1)[0].lower()
    return "" if scheme == "file" else scheme


def is_remote(url: str | Path) -> bool:
    return scheme_of(url) != ""


def absolute(url: str | Path) -> str:
    """A local path made absolute (Ray workers run in their own working directories, so a relative
    path from the driver would point elsewhere); remote URLs unchanged."""
    return str(url) if is_remote(url) else str(Path(url).expanduser().resolve())


def storage_options(url: str | Path, cfg: StorageConfig | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """fsspec options for ``url``: only S3 needs any (endpoint, anonymity, bounded waits)."""
    if scheme_of(url) != "s3":
        return dict(overrides)
    bounds = cfg or StorageConfig()
    opts: dict[str, Any] = {"config_kwargs": {
        "connect_timeout": bounds.connect_timeout_s, "read_timeout": bounds.read_timeout_s,
        "retries": {"max_attempts": bounds.max_attempts, "mode": "standard"}}}
    endpoint = cfg.endpoint_url if cfg is not None else None
    endpoint = endpoint or next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
    if endpoint:
        opts["endpoint_url"] = endpoint
    if cfg is not None and cfg.anon:
        opts["anon"] = True
    opts.update(overrides)
    return opts


def get_fs(url: str | Path, cfg: StorageConfig | None = None,
           **overrides: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the protocol-less path of ``url``."""
    fs, path = url_to_fs(str(url), **storage_options(url, cfg, **overrides))
    if scheme_of(url) == "s3":
        fs.retries = 1   # botocore already retries max_attempts times: no second layer of retries
    return fs, path


def join(root: str | Path, *parts: str) -> str:
    """Join with ``/`` for URLs and with the OS separator for local paths."""
    if is_remote(root):
        return posixpath.join(str(root).rstrip("/"), *parts)
    return str(Path(root).joinpath(*parts))


def contained(root: str | Path, rel: str) -> str:
    """``join(root, rel)`` after proving it lies under ``root``: no ``..``, absolute or empty
    segment in ``rel``, and, for a local root, no symlink on the way that leads out of it.
    Every shard write and stale-shard delete goes through here; ConfigError otherwise."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ConfigError(join(root, rel), f"path escapes the output root {root}")
    url = join(root, *parts)
    if not is_remote(root):
        real_root = Path(os.path.realpath(root))
        if not Path(os.path.realpath(url)).is_relative_to(real_root):
            raise ConfigError(url, f"path leads out of the output root {root} (symlink)")
    return url


@_bounded
def exists(url: str | Path, cfg: StorageConfig | None = None) -> bool:
    fs, path = get_fs(url, cfg)
    return fs.exists(path)


@_bounded
def read_bytes(url: str | Path, cfg: StorageConfig | None = None) -> bytes:
    fs, path = get_fs(url, cfg)
    return fs.cat_file(path)


def read_text(url: str | Path, cfg: StorageConfig | None = None) -> str:
    return read_bytes(url, cfg).decode("utf-8")


@_bounded
def open_file(url: str | Path, mode: str = "rb", cfg: StorageConfig | None = None) -> IO[bytes]:
    fs, path = get_fs(url, cfg)
    return fs.open(path, mode)


@_bounded
def remove(url: str | Path, cfg: StorageConfig | None = None) -> None:
    fs, path = get_fs(url, cfg)
    if fs.exists(path):
        fs.rm_file(path)


@_bounded
def glob(pattern: str, cfg: StorageConfig | None = None) -> list[str]:
    """Matches of ``pattern`` as full URLs (or local paths), sorted."""
    fs, path = get_fs(pattern, cfg)
    scheme = scheme_of(pattern)
    found = sorted(fs.glob(path))
    return [f"{scheme}://{p}" if scheme else p for p in found]


@_bounded
def file_sizes(root: str | Path, suffix: str, cfg: StorageConfig | None = None) -> dict[str, int]:
    """``{relative path with '/': size}`` of every file under ``root`` ending in ``suffix``."""
    fs, base = get_fs(root, cfg)
    if not fs.exists(base):
        return {}
    base = base.rstrip("/")
    found = fs.find(base, detail=True)
    return {p[len(base) + 1:].replace(os.sep, "/"): int(info["size"]) for p, info in found.items()
            if p.endswith(suffix) and p.startswith(base + "/")}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def staged_file(url: str | Path, cfg: StorageConfig | None = None) -> Iterator[Path]:
    """Yield a local path to write; publish it at ``url`` only if the block finishes.

    An exception inside the block (an interrupted shard) leaves nothing at ``url`` and no temporary
    file behind. Local targets are staged beside the destination so the final ``os.replace`` is an
    atomic rename on one filesystem; remote targets are staged in the system temp dir and uploaded
    in one ``put``.
    """
    remote = is_remote(url)
    if remote:
        fd, tmp_name = tempfile.mkstemp(prefix="imagintalk-", suffix=".part")
    else:
        dest = Path(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=STAGED_SUFFIX, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish_file(tmp, url, cfg)
    finally:
        tmp.unlink(missing_ok=True)


def staged_leftovers(directory: str | Path, name_glob: str) -> list[Path]:
    """Local staging files of ``name_glob`` destinations in ``directory`` that a killed process
    left behind (an exception cleans its own; SIGKILL cannot)."""
    if is_remote(directory) or not Path(directory).is_dir():
        return []
    return sorted(Path(directory).glob(f".{name_glob}.*{STAGED_SUFFIX}"))


def publish_file(local: str | Path, url: str | Path, cfg: StorageConfig | None = None) -> None:
    """Move/upload a finished local file to ``url`` in one step."""
    if is_remote(url):
        with remote_errors(url):
            fs, path = get_fs(url, cfg)
            fs.put_file(str(local), path)
    else:
        os.replace(local, url)


def write_bytes(url: str | Path, data: bytes, cfg: StorageConfig | None = None) -> None:
    """Atomically write ``data`` at ``url`` (see :func:`staged_file`)."""
    with staged_file(url, cfg) as tmp:
        tmp.write_bytes(data)


def write_text(url: str | Path, text: str, cfg: StorageConfig | None = None) -> None:
    write_bytes(url, text.encode("utf-8"), cfg)


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> IO[bytes]:
    """WebDataset ``gopen`` handler for fsspec URLs (registered for ``s3``)."""
    options = kw.pop("storage_options", None) or {}
    fs, path = get_fs(url, **options)
    return fs.open(path, mode)


def register_webdataset_openers() -> None:
    """Register :func:`_gopen_fsspec` for every remote scheme in WebDataset's dispatch table."""
    # ``webdataset.gopen`` the attribute is the function; the dispatch table lives in the module.
    gopen_module = importlib.import_module("webdataset.gopen")
    for scheme in REMOTE_SCHEMES:
        gopen_module.gopen_schemes[scheme] = _gopen_fsspec


register_webdataset_openers()
