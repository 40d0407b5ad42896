"""Pretrained weight files on this machine: ``pull`` fetches one into the cache, ``resolve`` finds a
verified copy (in the cache, else in the storage root), ``publish`` puts the cached copy in the
storage root.

Why the storage root: Ray workers on a cluster share it (``s3://…``), not a file system, so a stage
names a component and each worker resolves it from ``{root}/_pretrained/<name>/<filename>`` into
its own cache, instead of needing a path that exists on every worker. ``resolve`` never goes to
the internet: downloading is ``imagintalk models pull``'s job, done once, where the machine is
online.

Layout: ``<cache>/<name>/<filename>`` and beside it ``<filename>.sha256``, the hash the file was
verified with (for a component whose catalogue entry has no hash, the one seen on the first pull:
later copies must match it). A download is written to a temporary name and renamed only once its
hash matched, so no partial or corrupt file is ever published in the cache; a cached file found
corrupt is removed. The cache is ``$IMAGINTALK_PRETRAINED_CACHE``, else ``pretrained.cache_dir``.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from imagintalk import storage
from imagintalk.config import Params, load_params
from imagintalk.errors import ArtifactError, StorageError
from imagintalk.pretrained.catalog import Component, catalogue, component
from imagintalk.settings import given_setting

log = logging.getLogger(__name__)

CACHE_ENV = "IMAGINTALK_PRETRAINED_CACHE"
PUBLISHED_DIR = "_pretrained"       # under the storage root
RECORD_SUFFIX = ".sha256"
_CHUNK = 1 << 20
_HTTP_SCHEMES = ("http", "https")


def cache_root(cache_dir: str | Path | None = None, params: Params | None = None) -> Path:
    """The local cache: ``cache_dir``, else ``$IMAGINTALK_PRETRAINED_CACHE``, else params."""
    raw = cache_dir or os.environ.get(CACHE_ENV) or _params(params).pretrained.cache_dir
    return Path(raw).expanduser().absolute()


def cached_path(comp: Component, cache_dir: str | Path | None = None, params: Params | None = None) -> Path:
    return cache_root(cache_dir, params) / comp.name / comp.filename


def published_url(comp: Component, storage_root: str | Path) -> str:
    return storage.join(storage.absolute(storage_root), PUBLISHED_DIR, comp.name, comp.filename)


def pull(name: str, source: str | Path | None = None, cache_dir: str | Path | None = None,
         params: Params | None = None) -> Path:
    """Fetch ``name``'s weight file into the cache and return its path. ``source``: a local file,
    an http(s) URL or an ``s3://`` URL (a mirror); default the copy bundled in an installed wheel
    if the entry has one, else the entry's URL. A cached copy that verifies is kept as is."""
    params = _params(params)
    comp = component(name, params)
    dest = cached_path(comp, cache_dir, params)
    expected = comp.sha256 or _read_record(dest)
    if dest.is_file() and expected is not None:
        if storage.sha256_file(dest) == expected:
            return dest
        log.warning("%s: cached %s does not match sha256 %s; fetching it again", name, dest, expected)
        dest.unlink()
    _fetch(comp, str(source) if source is not None else _default_source(comp), dest, expected, params)
    return dest


def resolve(name: str, storage_root: str | Path | None = None, cache_dir: str | Path | None = None,
            params: Params | None = None) -> Path:
    """The verified local weight file of ``name``: from the cache, else copied from
    ``{storage_root}/_pretrained/<name>/`` (default root: ``$IMAGINTALK_STORAGE_ROOT``, else
    ``storage.root``), else from a copy bundled in an installed wheel. One-line ArtifactError
    naming the command that gets it when none has it."""
    params = _params(params)
    comp = component(name, params)
    dest = cached_path(comp, cache_dir, params)
    expected = comp.sha256 or _read_record(dest)
    if dest.is_file():
        _verify_cached(comp, dest, expected)
        return dest
    root = storage_root or given_setting("storage_root") or params.storage.root
    remote = published_url(comp, root)
    if storage.exists(remote, params.storage):
        if expected is None:
            expected = _published_record(remote, params)
        _fetch(comp, remote, dest, expected, params)
        return dest
    bundled = _bundled_file(comp)
    if bundled is not None:
        _fetch(comp, str(bundled), dest, expected, params)
        return dest
    raise ArtifactError(name, f"pretrained weight file missing: not in the cache ({dest}) nor in the storage "
                              f"root ({remote}); get it with: imagintalk models pull {name} [--from PATH|URL]")


def publish(name: str, storage_root: str | Path, cache_dir: str | Path | None = None,
            params: Params | None = None) -> str:
    """Copy the cached, verified weight file (and its hash record) to the storage root, where every
    worker's ``resolve`` finds it; returns its URL."""
    params = _params(params)
    comp = component(name, params)
    src = cached_path(comp, cache_dir, params)
    if not src.is_file():
        raise ArtifactError(name, f"not in the cache ({src}), nothing to publish; get it first with: "
                                  f"imagintalk models pull {name} [--from PATH|URL]")
    sha = _verify_cached(comp, src, comp.sha256 or _read_record(src))
    url = published_url(comp, storage_root)
    if storage.is_remote(url):
        with storage.remote_errors(url):  # S3 shows an object only once its upload completed
            fs, path = storage.get_fs(url, params.storage)
            fs.put_file(str(src), path)
    else:
        with storage.staged_file(url) as tmp:
            shutil.copyfile(src, tmp)
    # the record after the file: a reader that sees the record finds the file it describes
    storage.write_text(url + RECORD_SUFFIX, _record_text(sha, comp.filename), params.storage)
    return url


@dataclass(frozen=True)
class CacheEntry:
    component: Component
    path: Path
    cached: bool
    size: int | None      # the cached file's, else the catalogue's


def cache_listing(cache_dir: str | Path | None = None, params: Params | None = None) -> list[CacheEntry]:
    """Every catalogue entry and whether its file is in the cache (not re-hashed: ``resolve`` does)."""
    params = _params(params)
    out = []
    for comp in catalogue(params).values():
        path = cached_path(comp, cache_dir, params)
        cached = path.is_file()
        out.append(CacheEntry(comp, path, cached, path.stat().st_size if cached else comp.size))
    return out


def recorded_sha256(path: str | Path) -> str | None:
    """The hash a cached file was verified with (its ``.sha256`` record), if any."""
    return _read_record(Path(path))


def _params(params: Params | None) -> Params:
    return params if params is not None else load_params()


def _default_source(comp: Component) -> str:
    bundled = _bundled_file(comp)
    return str(bundled) if bundled is not None else comp.url


def _bundled_file(comp: Component) -> Path | None:
    """The identical copy an installed package ships (no network needed), if there is one."""
    if not comp.bundled:
        return None
    package, _, rel = comp.bundled.partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    return path if path.is_file() else None


def _verify_cached(comp: Component, path: Path, expected: str | None) -> str:
    if expected is None:
        raise ArtifactError(comp.name, f"{path} has no sha256 to verify it against (no catalogue hash, no "
                                       f"record); fetch it again with: imagintalk models pull {comp.name}")
    actual = storage.sha256_file(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ArtifactError(comp.name, f"sha256 mismatch in the cache: expected {expected}, got {actual}; "
                                       f"removed {path}; get it again with: imagintalk models pull {comp.name}")
    return actual


def _fetch(comp: Component, source: str, dest: Path, expected: str | None, params: Params) -> str:
    """Copy ``source`` to ``dest`` through a temporary file, publishing it only if its hash matches."""
    # any other failure of a remote source (S3 refusing mid-stream, ...) is one StorageError line too
    with storage.remote_errors(source), _opened(comp, source, params) as (stream, total):
        with storage.staged_file(dest) as tmp:
            actual, written = _copy(stream, tmp, total, comp.name, source)
            if total is not None and written != total:
                raise StorageError(source, f"download cut short: {written} of {total} bytes; nothing was kept")
            if expected is not None and actual != expected:
                raise ArtifactError(comp.name, f"sha256 mismatch: expected {expected}, got {actual} from "
                                               f"{source}; the file was discarded")
    if expected is None:
        log.warning("%s: no published sha256; recorded %s from %s, later copies must match it",
                    comp.name, actual, source)
    _write_record(dest, actual)
    return actual


@contextmanager
def _opened(comp: Component, source: str, params: Params) -> Iterator[tuple[IO[bytes], int | None]]:
    scheme = storage.scheme_of(source)
    if scheme in _HTTP_SCHEMES:
        with _http_errors(source):
            request = urllib.request.Request(source, headers={"User-Agent": "imagintalk"})
            response = urllib.request.urlopen(request, timeout=params.storage.read_timeout_s)
        with response:
            length = response.headers.get("Content-Length")
            yield response, int(length) if length and length.isdigit() else None
    elif scheme:
        with storage.remote_errors(source):
            fs, path = storage.get_fs(source, params.storage)
            try:
                size = int(fs.size(path))
                stream = fs.open(path, "rb")
            except FileNotFoundError:
                raise ArtifactError(source, f"no such object to pull {comp.name} from") from None
        with stream:
            yield stream, size
    else:
        path = Path(source.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise ArtifactError(path, f"no such file to pull {comp.name} from")
        with open(path, "rb") as stream:
            yield stream, path.stat().st_size


def _copy(stream: IO[bytes], dest: Path, total: int | None, name: str, source: str) -> tuple[str, int]:
    h, written = hashlib.sha256(), 0
    with _http_errors(source), open(dest, "wb") as out, \
            tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"pull {name}") as bar:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            out.write(chunk)
            h.update(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return h.hexdigest(), written


@contextmanager
def _http_errors(url: str) -> Iterator[None]:
    """Network failures of a download as one StorageError line naming the URL."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        raise StorageError(url, f"download refused: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise StorageError(url, f"cannot reach the server ({exc.reason})") from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise StorageError(url, f"download failed ({exc.__class__.__name__}: {exc})") from exc


def _record_text(sha: str, filename: str) -> str:
    return f"{sha}  {filename}\n"   # sha256sum's format: `sha256sum -c` checks it


def _write_record(dest: Path, sha: str) -> None:
    storage.write_text(str(dest) + RECORD_SUFFIX, _record_text(sha, dest.name))


def _read_record(dest: Path) -> str | None:
    record = Path(str(dest) + RECORD_SUFFIX)
    if not record.is_file():
        return None
    return (record.read_text().split() or [None])[0]


def _published_record(url: str, params: Params) -> str:
    record = url + RECORD_SUFFIX
    if not storage.exists(record, params.storage):
        raise ArtifactError(record, "published weight file has no sha256 record; publish it again with: "
                                    "imagintalk models publish NAME --to STORAGE_ROOT")
    return storage.read_text(record, params.storage).split()[0]


def resolve_loadable(setting: str, name: str, kind: str, architecture: str, params: Params | None = None) -> Path:
    """The local file of ``name`` for the params field ``setting``: a ConfigError (one line naming
    the field) when it is not a component of ``kind`` whose architecture this code loads
    (``architecture``, a prefix), an ArtifactError when its weights are not available."""
    from imagintalk.errors import ConfigError
    from imagintalk.pretrained.catalog import component_of_kind

    comp = component_of_kind(setting, name, kind, params)
    if not comp.architecture.startswith(architecture):
        raise ConfigError(setting, f"{name}'s architecture {comp.architecture!r} has no loader here ({architecture})")
    return resolve(name, params=params)
