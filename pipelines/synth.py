"""Stage ``synth``: generate the SynthTalk corpus (``imagintalk synth``).

Layout (LRS3-like): ``{out}/{split}/{speaker}/{clip}.mp4`` (H.264 + AAC, 25 fps, 16 kHz) and
``{clip}.txt`` (``Text:`` / ``Conf:`` lines and a word alignment), ``metadata.csv`` with the
columns the ingest recipe reads, and ``speakers.json`` with each speaker's face and voice recipe.
The same seed gives byte-identical files, in one process or many.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
from tqdm import tqdm

from imagintalk.config import MediaConfig, Params, SynthConfig, load_params
from imagintalk.conventions import SPLITS, SYNTHTALK_METADATA
from imagintalk.errors import ConfigError
from imagintalk.synth.clip import METADATA_COLUMNS, ClipResult, generate_clip
from imagintalk.synth.plan import ClipSpec, plan_corpus

METADATA = SYNTHTALK_METADATA
SPEAKERS = "speakers.json"
MARKER = ".synthtalk"   # marks a directory as ours, so a re-run may clear what an earlier run left


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    clips: int
    speakers: int
    clips_per_split: dict[str, int] = field(default_factory=dict)
    audio_s: float = 0.0
    elapsed_s: float = 0.0

    def summary_line(self) -> str:
        splits = " ".join(f"{s}={self.clips_per_split.get(s, 0)}" for s in SPLITS)
        rate = self.clips / self.elapsed_s if self.elapsed_s > 0 else float("nan")
        return (f"synth: {self.clips} clips from {self.speakers} speakers ({splits}), "
                f"{self.audio_s / 60:.1f} min of speech in {self.elapsed_s:.1f} s ({rate:.2f} clips/s) "
                f"-> {self.out}")


def synth_corpus(out: Path, speakers: int | None = None, clips_per_speaker: int | None = None,
                 seed: int | None = None, params: Params | None = None) -> SynthSummary:
    """Generate the corpus under ``out``; ``None`` arguments take ``params.synth``'s values."""
    params = params or load_params()
    cfg = params.synth
    speakers = cfg.speakers if speakers is None else speakers
    clips_per_speaker = cfg.clips_per_speaker if clips_per_speaker is None else clips_per_speaker
    seed = cfg.seed if seed is None else seed
    if params.media.sample_rate % params.media.fps:
        raise ConfigError("media", "sample_rate must be a whole number of samples per video frame")
    plan = plan_corpus(speakers, clips_per_speaker, seed, cfg)
    out = Path(out)
    _prepare_out(out)
    start = time.perf_counter()
    results = _generate(plan, out, cfg, params.media)
    _write_metadata(out / METADATA, [r.row for r in results])
    roster = {c.speaker.speaker: c.speaker for c in plan}
    _write_json(out / SPEAKERS, {
        name: {"split": s.split, "identity": s.identity.as_dict(), "voice": asdict(s.voice)}
        for name, s in roster.items()})
    return SynthSummary(
        out=out, clips=len(results), speakers=len(roster),
        clips_per_split=dict(Counter(r.row["split"] for r in results)),
        audio_s=sum(r.duration_s for r in results), elapsed_s=time.perf_counter() - start)


def _generate(plan: list[ClipSpec], out: Path, cfg: SynthConfig, media: MediaConfig) -> list[ClipResult]:
    """In-process by default; with ``workers > 1`` one task per speaker (its face is built once)
    on a spawn pool (the espeak server and OpenCV state are not fork-safe). Results keep plan order."""
    by_speaker: dict[str, list[ClipSpec]] = {}
    for spec in plan:
        by_speaker.setdefault(spec.speaker.speaker, []).append(spec)
    progress = tqdm(total=len(plan), desc="synth", unit="clip")
    results: list[ClipResult] = []
    try:
        if cfg.workers <= 1:
            with _single_threaded_opencv():
                for spec in plan:
                    results.append(generate_clip(spec, out, cfg, media))
                    progress.update()
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(min(cfg.workers, len(by_speaker)), mp_context=ctx,
                                     initializer=cv2.setNumThreads, initargs=(1,)) as pool:
                tasks = [pool.submit(_generate_speaker, specs, out, cfg, media) for specs in by_speaker.values()]
                for task in tasks:
                    done = task.result()
                    results.extend(done)
                    progress.update(len(done))
    finally:
        progress.close()
    return results


def _generate_speaker(specs: list[ClipSpec], out: Path, cfg: SynthConfig, media: MediaConfig) -> list[ClipResult]:
    return [generate_clip(spec, out, cfg, media) for spec in specs]


class _single_threaded_opencv:
    """One OpenCV thread while generating: 160-px frames gain nothing from a pool, and a corpus
    job should occupy the one core it is given."""

    def __enter__(self):
        self.before = cv2.getNumThreads()
        cv2.setNumThreads(1)

    def __exit__(self, *exc):
        cv2.setNumThreads(self.before)


def _prepare_out(out: Path) -> None:
    """Refuse a non-empty directory that is not a SynthTalk corpus; clear a previous corpus's clips
    (only files of our own layout) so no stale clip outlives the new metadata."""
    if out.exists() and not out.is_dir():
        raise ConfigError(out, "exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists() and not (out / METADATA).exists():
            raise ConfigError(out, "not empty and not a SynthTalk corpus; refusing to write into it")
        for split in SPLITS:
            for path in sorted((out / split).glob("spk*/[0-9]*.*")):
                if path.suffix in (".mp4", ".txt"):
                    path.unlink()
            for folder in sorted((out / split).glob("spk*"), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            if (out / split).is_dir() and not any((out / split).iterdir()):
                (out / split).rmdir()
        for name in (METADATA, SPEAKERS):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("SynthTalk corpus: written by `imagintalk synth`\n")


def _write_metadata(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(METADATA_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "intensity": f"{row['intensity']:.2f}"})
    _atomic_write(path, buf.getvalue())


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
