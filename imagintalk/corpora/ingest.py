"""The ingest step every recipe shares: scan result -> validated, hashed ManifestRows + quarantine.

Each clip is checked on its own (containment in the root, media integrity, audio present and of
the video's length, hash) in a thread pool; a failure becomes a quarantine row with the typed
error's kind and reason and never stops the batch. Results keep the scan's order, so the same
tree always gives the same manifest bytes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
from tqdm.auto import tqdm

from imagintalk.config import IngestConfig
from imagintalk.conventions import SPLITS
from imagintalk.corpora.base import OUTSIDE_ROOT, ClipSource, ScanResult, is_inside, resolve_split
from imagintalk.corpora.cards import CorpusCard
from imagintalk.corpora.checks import inspect_media, sha256_files
from imagintalk.corpora.manifest import ManifestRow, QuarantineRow, id_problem
from imagintalk.errors import AudioQualityError, CorpusLayoutError, ImaginTalkError, MediaError


@dataclass
class IngestOutcome:
    rows: list[ManifestRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    skipped: int = 0


def _quarantine(src: ClipSource, exc: ImaginTalkError | OSError | av.error.FFmpegError) -> QuarantineRow:
    if isinstance(exc, ImaginTalkError):
        path, kind, reason = exc.path or str(src.video_path), exc.kind, exc.reason
    else:  # an OS or FFmpeg failure that escaped the media layer's own translation
        path = getattr(exc, "filename", None) or str(src.video_path)
        kind, reason = "media", " ".join(str(exc).split()) or exc.__class__.__name__
    return QuarantineRow(path=str(path), corpus=src.corpus, stage="ingest", kind=kind, reason=reason)


def inspect_clip(src: ClipSource, split: str, root: Path, cfg: IngestConfig) -> ManifestRow:
    """Validate one clip's files and describe them as a ManifestRow; raises a typed error."""
    files = [src.video_path] + ([src.audio_path] if src.audio_path is not None else [])
    for p in files:
        if not is_inside(p, root):
            raise CorpusLayoutError(p, f"{OUTSIDE_ROOT} ({os.path.realpath(p)})")
    video = inspect_media(src.video_path, need_video=True,
                          truncation_tolerance_frames=cfg.truncation_tolerance_frames)
    assert video.video is not None  # need_video guarantees it
    audio = video
    if src.audio_path is not None:
        audio = inspect_media(src.audio_path, need_video=False,
                              truncation_tolerance_frames=cfg.truncation_tolerance_frames)
        if audio.audio is None:
            raise MediaError(src.audio_path, "no audio stream")
    elif video.audio is None:
        raise MediaError(src.video_path, "missing audio track")
    assert audio.audio is not None
    duration = video.video.duration_s
    if not cfg.min_duration_s <= duration <= cfg.max_duration_s:
        raise MediaError(src.video_path, f"clip lasts {duration:.2f} s, outside ingest's "
                                         f"[{cfg.min_duration_s:g}, {cfg.max_duration_s:g}] s")
    gap = audio.audio.duration_s - video.video.duration_s
    if abs(gap) > cfg.max_av_mismatch_s:
        raise AudioQualityError(src.audio_path or src.video_path,
                                f"audio lasts {audio.audio.duration_s:.2f} s but the video "
                                f"{video.video.duration_s:.2f} s (wrong pairing or cut file)")
    return ManifestRow(
        clip_id=src.clip_id, corpus=src.corpus, speaker=src.speaker, split=split,
        video_path=os.path.abspath(src.video_path),
        audio_path=os.path.abspath(src.audio_path) if src.audio_path is not None else None,
        transcript=src.transcript, emotion=src.emotion, intensity=src.intensity,
        duration_s=round(video.video.duration_s, 6), fps=float(video.fps or 0.0),
        sample_rate=int(audio.sample_rate or 0),
        sha256=sha256_files(files, cfg.hash_chunk_bytes),
    )


def _check_one(job: tuple[ClipSource, str], root: Path, cfg: IngestConfig) -> ManifestRow | QuarantineRow:
    src, split = job
    try:
        return inspect_clip(src, split, root, cfg)
    except (ImaginTalkError, OSError, av.error.FFmpegError) as exc:
        return _quarantine(src, exc)


def build_manifest(scan: ScanResult, card: CorpusCard, cfg: IngestConfig,
                   desc: str | None = None) -> IngestOutcome:
    """Every scanned clip into a row or a quarantine row; speaker-disjoint splits enforced."""
    out = IngestOutcome(quarantine=list(scan.rejects), skipped=scan.skipped)
    jobs: list[tuple[ClipSource, str]] = []
    seen: set[str] = set()
    for src in scan.sources:
        if src.clip_id in seen:
            out.quarantine.append(_quarantine(src, CorpusLayoutError(
                src.video_path, f"duplicate clip id {src.clip_id}")))
            continue
        seen.add(src.clip_id)
        problem = id_problem(src.corpus, src.speaker, src.clip)
        if problem:   # names become shard paths: never let one climb out of the shard root
            out.quarantine.append(_quarantine(src, CorpusLayoutError(src.video_path, problem)))
            continue
        try:
            jobs.append((src, resolve_split(src, card, cfg)))
        except CorpusLayoutError as exc:
            out.quarantine.append(_quarantine(src, exc))
    def check(job: tuple[ClipSource, str]) -> ManifestRow | QuarantineRow:
        return _check_one(job, scan.root, cfg)

    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        # map() yields in submission order: deterministic output whatever finishes first
        for res in tqdm(pool.map(check, jobs), total=len(jobs), desc=desc or f"ingest {scan.corpus}",
                        unit="clip"):
            (out.rows if isinstance(res, ManifestRow) else out.quarantine).append(res)
    out.rows, leaked = enforce_speaker_disjoint(out.rows)
    out.quarantine.extend(leaked)
    return out


def enforce_speaker_disjoint(rows: list[ManifestRow]) -> tuple[list[ManifestRow], list[QuarantineRow]]:
    """A speaker whose clips the corpus put in two splits keeps only the most protected one
    (test, then val): a test speaker must never be seen in training. The others are quarantined."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        splits_of[r.speaker].add(r.split)
    rank = {s: i for i, s in enumerate(reversed(SPLITS))}   # test 0, val 1, train 2
    keep_split = {spk: min(s, key=rank.__getitem__) for spk, s in splits_of.items()}
    kept, leaked = [], []
    for r in rows:
        if r.split == keep_split[r.speaker]:
            kept.append(r)
        else:
            leaked.append(QuarantineRow(
                path=r.video_path, corpus=r.corpus, stage="ingest", kind="layout",
                reason=f"speaker {r.speaker} is also in the {keep_split[r.speaker]} split "
                       f"(splits must be speaker-disjoint); dropped from {r.split}"))
    return kept, leaked
