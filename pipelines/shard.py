"""Stage `shard`: a manifest → WebDataset shards + stats sidecars + dataset index (DESIGN.md §3).

Flow: read the fitted unit tokenizer and codec (their own stages fit them: `fit_unit_tokenizer`,
`fit_codec`, or `imagintalk tokenizers`; by default from ``tokenizers/`` beside the manifest), copy
them into the shard root's ``_tokenizers/`` (the shards carry what tokenised them) → plan shards from the
manifest → skip shards already complete → preprocess the remaining clips in parallel on Ray Data
(or in-process for one local worker) → write each shard as soon as all its clips are back →
index + quarantine table. Same manifest, params and seeds → same bytes → same content hash.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from imagintalk import storage
from imagintalk.config import DEFAULT_SPEAKER_ENCODER, Params, load_params
from imagintalk.conventions import SHARD_TOKENIZER_DIR
from imagintalk.corpora.manifest import ManifestRow, read_manifest
from imagintalk.errors import ArtifactError, ConfigError, DataError
from imagintalk.ray_session import start_ray
from imagintalk.settings import get_settings
from imagintalk.shards.index import build_index, invalidate_index, quarantine_rows, write_index
from imagintalk.shards.process import (
    ClipOutcome,
    ClipProcessor,
    RayClipMapper,
    manifest_row_dict,
    read_tokenizer_blobs,
)
from imagintalk.shards.writer import (
    ShardSpec,
    plan_shards,
    read_sidecar,
    remove_leftover_temps,
    remove_stale_shards,
    sha256_json,
    stale_shards,
    write_shard,
)

log = logging.getLogger(__name__)

# Sections whose values change the bytes of a shard (loader/storage/audit settings do not).
SHARD_PARAM_SECTIONS = ("media", "face", "audio", "tokenizer", "codec", "shards")


@dataclass(frozen=True)
class ShardSummary:
    root: str
    index_url: str
    clips_total: int          # manifest rows
    clips_ok: int             # samples in the shards (written now or before)
    quarantined: int
    processed: int            # clips preprocessed in this run
    shards_written: int
    shards_skipped: int
    hours: float
    content_hash: str
    workers: int
    used_ray: bool
    seconds: float            # whole stage
    process_s: float = 0.0    # from the start of preprocessing to the last clip
    first_clip_s: float = 0.0  # ... to the first clip back (worker start-up: Ray, imports, tokenizers)

    def summary_line(self) -> str:
        return (f"shard: {self.clips_ok} clips ok, {self.quarantined} quarantined, "
                f"{self.shards_written} shards written, {self.shards_skipped} skipped, "
                f"{self.hours:.4f} h, content {self.content_hash[:12]} -> {self.index_url}")


def params_hash(params: Params) -> str:
    sections = {s: getattr(params, s).model_dump(mode="json") for s in SHARD_PARAM_SECTIONS}
    # settings added after shards existed: at their default the hash of those shards (and reruns) hold
    if params.codec.component is None:
        del sections["codec"]["component"]
    if params.shards.speaker_encoder == DEFAULT_SPEAKER_ENCODER:
        del sections["shards"]["speaker_encoder"]
    return sha256_json(sections)


def shard_manifest(manifest: Path, out: str, workers: int | None = None, params: Params | None = None,
                   tokenizer_dir: str | None = None) -> ShardSummary:
    """Preprocess every clip of ``manifest`` into shards under ``out`` (local path or s3://)."""
    started = time.perf_counter()
    params = params or load_params()
    workers = int(workers if workers is not None else params.shards.workers)
    if workers < 1:
        raise ConfigError("--workers", f"must be >= 1, got {workers}")
    scfg = params.storage
    out = str(out).rstrip("/") if storage.is_remote(out) else str(Path(out).resolve())
    if not storage.is_remote(out) and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(out, "the shard root must be a directory (it is a file)")
    rows = read_manifest(manifest)
    if not rows:
        raise DataError(manifest, "manifest has no clips")
    by_id = {r.clip_id: r for r in rows}
    if len(by_id) != len(rows):
        raise DataError(manifest, "clip_id is not unique")

    tok_dir = tokenizer_dir or str(default_tokenizer_dir(manifest))
    try:
        blobs = read_tokenizer_blobs(tok_dir, scfg)
    except ArtifactError as exc:
        raise ArtifactError(tok_dir, f"{exc.reason}: fit them first (`imagintalk tokenizers {manifest} --out "
                                     f"{tok_dir}`, or the fit_unit_tokenizer and fit_codec stages)") from exc
    processor = ClipProcessor(params, blobs)  # also the in-process worker; gives the versions
    versions = processor.versions
    p_hash = params_hash(params)
    specs = plan_shards(rows, params.shards.samples_per_shard, {"params_hash": p_hash, **versions})

    sidecars: dict[str, dict] = {}
    pending: list[ShardSpec] = []
    for spec in specs:
        done = read_sidecar(out, spec, scfg)
        if done is None:
            pending.append(spec)
        else:
            sidecars[spec.tar_path] = done
    skipped = len(sidecars)
    remove_leftover_temps(out, specs)
    if pending or stale_shards(out, specs, scfg):
        invalidate_index(out, scfg)   # before the first change: a killed run leaves no stale index
    publish_tokenizers(out, blobs, params)
    todo = [by_id[c] for spec in pending for c in spec.clip_ids]
    use_ray = _wants_ray(workers)
    log.info("shard: %d clips in %d shards, %d complete, %d clips to process (%s)", len(rows),
             len(specs), skipped, len(todo), f"Ray x{workers}" if use_ray else "in-process")

    timer = _FirstItemTimer()
    outcomes = (_run_ray(todo, workers, params, blobs) if use_ray else (processor(r) for r in todo))
    for spec, results in _complete_shards(pending, timer.watch(outcomes), total=len(todo)):
        sidecars[spec.tar_path] = _write(out, spec, results, by_id, versions, params)
    process_s = time.perf_counter() - timer.start
    remove_stale_shards(out, specs, scfg)

    ordered = [sidecars[s.tar_path] for s in specs]
    index = build_index(ordered, versions, p_hash)
    index_url = write_index(out, index, quarantine_rows(ordered), scfg)
    return ShardSummary(
        root=out, index_url=index_url, clips_total=len(rows), clips_ok=index["n_samples"],
        quarantined=index["n_quarantined"], processed=len(todo), shards_written=len(pending),
        shards_skipped=skipped, hours=index["hours"], content_hash=index["content_hash"],
        workers=workers, used_ray=use_ray, seconds=time.perf_counter() - started,
        process_s=process_s, first_clip_s=timer.first_s,
    )


def default_tokenizer_dir(manifest: str | Path) -> Path:
    """Where the pipeline fits a corpus's tokenizers: ``tokenizers/`` beside its manifest."""
    return Path(manifest).resolve().parent / "tokenizers"


def publish_tokenizers(out: str, blobs: dict[str, bytes], params: Params) -> None:
    """The shard root carries the tokenizers its shards were made with (``_tokenizers/``): the
    register stage and the vocoder's training find the codec there, whatever the layout."""
    tok_url = storage.join(out, SHARD_TOKENIZER_DIR)
    for name, data in blobs.items():
        url = storage.join(tok_url, name)
        if not (storage.exists(url, params.storage) and storage.read_bytes(url, params.storage) == data):
            storage.write_bytes(url, data, params.storage)


class _FirstItemTimer:
    """Time to the first item of a stream: separates worker start-up from throughput."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_s = 0.0

    def watch(self, items: Iterator[ClipOutcome]) -> Iterator[ClipOutcome]:
        for i, item in enumerate(items):
            if i == 0:
                self.first_s = time.perf_counter() - self.start
            yield item


def _wants_ray(workers: int) -> bool:
    """Ray for more than one worker, for a cluster (RAY_ADDRESS), or when the caller started Ray;
    one local worker runs in-process (no ~30 s Ray start-up for small jobs and tests)."""
    if workers > 1 or get_settings().ray_address:
        return True
    import ray

    return ray.is_initialized()


def _run_ray(rows: Sequence[ManifestRow], workers: int, params: Params,
             blobs: dict[str, bytes]) -> Iterator[ClipOutcome]:
    """Stream outcomes from a Ray Data map over an actor pool of ``workers`` clip processors."""
    if not rows:
        return
    import ray

    started_here = start_ray(num_cpus=workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own tqdm counts clips
        ds = ray.data.from_items([manifest_row_dict(r) for r in rows], override_num_blocks=len(rows))
        ds = ds.map(RayClipMapper, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, fn_constructor_kwargs={
            "params": params, "tokenizer_blobs": blobs})
        for row in ds.iter_rows():
            yield ClipOutcome.from_row(row)
    finally:
        if started_here:
            ray.shutdown()


def _complete_shards(pending: Sequence[ShardSpec], outcomes: Iterator[ClipOutcome],
                     total: int) -> Iterator[tuple[ShardSpec, list[ClipOutcome]]]:
    """Group streamed outcomes by shard; yield a shard as soon as all its clips are back."""
    owner = {c: spec for spec in pending for c in spec.clip_ids}
    waiting: dict[str, list[ClipOutcome]] = defaultdict(list)
    with tqdm(total=total, desc="shard", unit="clip") as bar:
        for outcome in outcomes:
            bar.update(1)
            spec = owner[outcome.clip_id]
            waiting[spec.tar_path].append(outcome)
            if len(waiting[spec.tar_path]) == len(spec.clip_ids):
                yield spec, waiting.pop(spec.tar_path)
    for spec in pending:  # shards whose clips were all handled before (none) or empty plans
        if spec.tar_path in waiting:
            raise RuntimeError(f"{spec.tar_path}: {len(waiting[spec.tar_path])} of "
                               f"{len(spec.clip_ids)} clips came back from the workers")


def _write(out: str, spec: ShardSpec, results: list[ClipOutcome], by_id: dict[str, ManifestRow],
           versions: dict[str, str], params: Params) -> dict:
    ok = [r for r in results if r.ok]
    bad = [r.quarantine_row(by_id[r.clip_id]) for r in results if not r.ok]
    for q in bad:
        log.warning("quarantined %s: %s (%s)", q["clip_id"], q["reason"], q["kind"])
    return write_shard(out, spec, [r.sample for r in ok], [r.stats for r in ok], bad, versions,
                       params.shards, params.storage)
