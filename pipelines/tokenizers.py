"""Stages ``fit_unit_tokenizer`` and ``fit_codec``: fit on the train split's audio, save the
versioned artifacts into a directory (``unit_tokenizer.npz``/``.json``, ``codec.npz``/``.json``).

Train split only, so val/test speakers never shape the vocabulary the model is scored with. Clips
are read in a seeded order until ``max_frames`` 50 Hz frames are collected, so a large corpus
costs bounded time and memory and still samples many speakers. Unreadable clips are skipped and
counted (the shard stage quarantines them with their reason).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imagintalk.config import Params, load_params
from imagintalk.corpora.manifest import ManifestRow, read_manifest
from imagintalk.errors import DataError, MediaError
from imagintalk.features.audio import log_mel
from imagintalk.media import read_audio
from imagintalk.tokenizers import CODEC_FILE, UNIT_TOKENIZER_FILE, ResidualCodec, UnitTokenizer

log = logging.getLogger(__name__)


@dataclass
class _Reader:
    """Streams aligned 16 kHz audio of manifest rows, counting what it read and what it skipped."""

    rows: list[ManifestRow]
    params: Params
    max_frames: int
    desc: str
    clips: int = 0
    frames: int = 0
    skipped: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        spf = self.params.media.sample_rate // self.params.media.fps
        per_50hz = spf // 2
        for row in tqdm(self.rows, desc=self.desc, unit="clip"):
            if self.frames >= self.max_frames:
                break
            try:
                audio = read_audio(row.audio_path or row.video_path, self.params.media.sample_rate)
            except MediaError as exc:
                log.warning("skipping %s", exc)
                self.skipped.append(str(exc))
                continue
            audio = audio[: len(audio) // spf * spf]  # whole video frames, as the shards will hold
            self.clips += 1
            self.frames += len(audio) // per_50hz
            yield audio


def _split_rows(manifest: Path, split: str, seed: int) -> list[ManifestRow]:
    rows = sorted((r for r in read_manifest(manifest) if r.split == split), key=lambda r: r.clip_id)
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


def _train_rows(manifest: Path, seed: int) -> list[ManifestRow]:
    rows = _split_rows(manifest, "train", seed)
    if not rows:
        raise DataError(manifest, "no train-split clips to fit on")
    return rows


@dataclass(frozen=True)
class TokenizerSummary:
    path: Path
    k: int
    features: str
    n_clips: int
    n_frames: int
    version: str
    skipped: tuple[str, ...] = ()

    def summary_line(self) -> str:
        return (f"unit tokenizer: K={self.k} {self.features} over {self.n_frames} frames of "
                f"{self.n_clips} train clips ({len(self.skipped)} skipped) -> {self.path} "
                f"version {self.version[:12]}")


@dataclass(frozen=True)
class CodecSummary:
    path: Path
    levels: int
    codebook_size: int
    n_clips: int
    n_frames: int
    version: str
    recon_mse: dict[int, float]
    report_split: str
    skipped: tuple[str, ...] = ()
    component: str | None = None    # a pretrained codec, recorded instead of fitted

    def summary_line(self) -> str:
        if self.component is not None:
            return (f"codec: pretrained {self.component}, {self.levels} codebooks x {self.codebook_size} "
                    f"(nothing fitted; decodes to waveform, no vocoder) -> {self.path} version {self.version[:12]}")
        per_level = " ".join(f"L{n}={v:.3f}" for n, v in self.recon_mse.items())
        return (f"codec: {self.levels}x{self.codebook_size} over {self.n_frames} frames of {self.n_clips} "
                f"train clips ({len(self.skipped)} skipped); {self.report_split} log-mel mse {per_level} "
                f"-> {self.path} version {self.version[:12]}")


def fit_unit_tokenizer(manifest: Path, out: Path, params: Params | None = None) -> TokenizerSummary:
    """Fit K-means units on the train split of ``manifest``; write ``out/unit_tokenizer.npz``."""
    params = params or load_params()
    cfg = params.tokenizer
    reader = _Reader(_train_rows(Path(manifest), cfg.seed), params, cfg.max_frames, "unit tokenizer")
    tok = UnitTokenizer.fit(reader, cfg, params.audio, params=params)
    path = tok.save(Path(out) / UNIT_TOKENIZER_FILE)
    return TokenizerSummary(path, tok.k, cfg.features, reader.clips, int(tok.meta["frames_fit"]),
                            tok.version, tuple(reader.skipped))


def fit_codec(manifest: Path, out: Path, params: Params | None = None) -> CodecSummary:
    """Fit the residual k-means codec on the train split; write ``out/codec.npz`` and report the
    log-mel error per number of levels on the val split (train when there is none).

    With ``codec.component`` naming a pretrained codec, nothing is fitted: the same artifact
    records the choice (component, weight sha256, levels), resolved from the pretrained cache or
    the storage root, so the shard step and everything after it find the codec where they always do."""
    params = params or load_params()
    cfg = params.codec
    if cfg.component is not None:
        from imagintalk.tokenizers.neural_codec import NeuralCodec

        neural = NeuralCodec.create(params)
        path = neural.save(Path(out) / CODEC_FILE)
        return CodecSummary(path, neural.levels, neural.codebook_size, 0, 0, neural.version, {}, "none",
                            component=cfg.component)
    reader = _Reader(_train_rows(Path(manifest), cfg.seed), params, cfg.max_frames, "codec")
    codec = ResidualCodec.fit((log_mel(a, params.audio) for a in reader), cfg)
    path = codec.save(Path(out) / CODEC_FILE)

    report_split = "val" if _split_rows(Path(manifest), "val", cfg.seed) else "train"
    report_reader = _Reader(_split_rows(Path(manifest), report_split, cfg.seed), params,
                            cfg.report_frames, f"codec report ({report_split})")
    recon = codec.reconstruction_report(log_mel(a, params.audio) for a in report_reader)
    return CodecSummary(path, codec.levels, codec.codebook_size, reader.clips, int(codec.meta["frames_fit"]),
                        codec.version, recon, report_split, tuple(reader.skipped))
