"""``imagintalk models pull|list|publish``: pretrained weight files by name, into this machine's
cache and out to the storage root that Ray workers resolve them from (imagintalk/pretrained/).
Thin wrappers that return results with one summary line, like every stage in pipelines/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagintalk.config import Params, load_params
from imagintalk.pretrained.cache import CacheEntry, cache_listing, cache_root, cached_path, recorded_sha256
from imagintalk.pretrained.cache import publish as publish_file
from imagintalk.pretrained.cache import pull as pull_file
from imagintalk.pretrained.catalog import component
from imagintalk.settings import given_setting


def _mb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


@dataclass(frozen=True)
class PullSummary:
    name: str
    kind: str
    path: Path
    sha256: str | None
    fetched: bool

    def summary_line(self) -> str:
        how = "pulled" if self.fetched else "already cached:"
        return (f"{how} {self.name} ({self.kind}, {_mb(self.path.stat().st_size)}, "
                f"sha256 {(self.sha256 or '?')[:12]}) -> {self.path}")


@dataclass(frozen=True)
class PublishSummary:
    name: str
    url: str

    def summary_line(self) -> str:
        return f"published {self.name} -> {self.url} (workers resolve it from there)"


@dataclass(frozen=True)
class ComponentTable:
    """``models list``: printed as a table, then its footer (no summary_line: not a stage result)."""

    entries: tuple[CacheEntry, ...]
    cache: Path

    def rows(self) -> list[str]:
        width = max([len(e.component.name) for e in self.entries] + [4])
        head = f"{'name':<{width}}  {'kind':<17}  {'cached':<6}  {'size':>9}  licence"
        return [head] + [f"{e.component.name:<{width}}  {e.component.kind:<17}  {'yes' if e.cached else 'no':<6}  "
                         f"{_mb(e.size):>9}  {e.component.licence}" for e in self.entries]

    def footer(self) -> str:
        n_cached = sum(e.cached for e in self.entries)
        return f"{len(self.entries)} components, {n_cached} cached in {self.cache}"


def pull_component(name: str, source: str | None = None, cache_dir: str | Path | None = None,
                   params: Params | None = None) -> PullSummary:
    params = params or load_params()
    comp = component(name, params)
    before = cached_path(comp, cache_dir, params)
    mtime = before.stat().st_mtime_ns if before.is_file() else None
    path = pull_file(name, source, cache_dir, params)
    fetched = mtime is None or path.stat().st_mtime_ns != mtime
    return PullSummary(name, comp.kind, path, recorded_sha256(path), fetched)


def list_components(cache_dir: str | Path | None = None, params: Params | None = None) -> ComponentTable:
    params = params or load_params()
    return ComponentTable(tuple(cache_listing(cache_dir, params)), cache_root(cache_dir, params))


def publish_component(name: str, storage_root: str | None = None, cache_dir: str | Path | None = None,
                      params: Params | None = None) -> PublishSummary:
    """Default root: the one stages resolve from ($IMAGINTALK_STORAGE_ROOT, else storage.root)."""
    params = params or load_params()
    root = storage_root or given_setting("storage_root") or params.storage.root
    return PublishSummary(name, publish_file(name, root, cache_dir, params))
