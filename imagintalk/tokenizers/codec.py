"""Acoustic codec tokens: residual k-means over 50 Hz log-mel frame pairs (the embedded default of
DESIGN.md §2; a neural EnCodec/DAC-style codec is the pluggable alternative).

One 50 Hz token stands for two 100 Hz mel frames, stacked into one 160-d vector (``stack_pairs``),
so decoding gives both frames back with their own values. (The first codec quantised the *mean*
of each pair and repeated it twice: blocky 50 Hz frames that no vocoder could turn into clean
harmonics.) Level 1 quantises the stacked vector, level 2 what level 1 left over, and so on for L
levels, each with its own codebook of ``codebook_size`` centroids. ``encode`` gives int16 (L, 2T)
for an (80, 4T) log-mel; ``decode`` sums the chosen codewords and unstacks them to (80, 4T), so
codes -> mel -> Griffin-Lim (or a trained vocoder) -> audio. Fitting takes seconds, and the
per-level reconstruction report shows what each level buys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagintalk.config import CodecConfig
from imagintalk.errors import ArtifactError, DataError
from imagintalk.features.audio import stack_pairs, unstack_pairs
from imagintalk.tokenizers.artifact import content_version, load_artifact, save_artifact
from imagintalk.tokenizers.kmeans import assign, cap_rows, fit_kmeans

KIND = "residual_codec"


def _frames(mel: np.ndarray) -> np.ndarray:
    """(n_mels, 4T) log-mel (any float dtype) -> (2T, 2·n_mels) float32 rows at 50 Hz."""
    return stack_pairs(np.asarray(mel, np.float32)).T


@dataclass
class ResidualCodec:
    codebooks: np.ndarray           # float32 (L, C, n_mels)
    meta: dict[str, Any]            # levels, codebook size, seed, frames, per-level train mse
    version: str = ""

    @property
    def levels(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def codebook_size(self) -> int:
        return int(self.codebooks.shape[1])

    @classmethod
    def fit(cls, mels: Iterable[np.ndarray], cfg: CodecConfig) -> ResidualCodec:
        """Fit on an iterable of (n_mels, 4T) log-mels of the train split."""
        chunks = [_frames(m) for m in mels]
        chunks = [c for c in chunks if len(c)]
        if not chunks:
            raise DataError("codec", "no mel frames to fit the codec on")
        n_seen = sum(len(c) for c in chunks)
        x = cap_rows(np.concatenate(chunks), cfg.max_frames, cfg.seed)
        residual = x.astype(np.float64)
        books, level_mse = [], []
        for level in range(cfg.levels):
            # a distinct seed per level: the same seed would start every level from the same rows
            book, _ = fit_kmeans(residual, cfg.codebook_size, cfg.seed + level, cfg.batch_size,
                                 cfg.max_iter, cfg.n_init, what="codec.codebook_size")
            idx, _ = assign(residual, book)
            residual -= book[idx]
            books.append(book)
            level_mse.append(round(float((residual ** 2).mean()), 6))
        meta = {"kind": KIND, "levels": cfg.levels, "codebook_size": cfg.codebook_size, "seed": cfg.seed,
                "n_mels": int(x.shape[1]) // 2, "mels_per_token": 2, "frame_rate_hz": 50, "frames_seen": int(n_seen),
                "frames_fit": int(len(x)), "train_mse_per_level": level_mse}
        codec = cls(np.stack(books).astype(np.float32), meta)
        codec.version = content_version(codec._arrays(), meta)
        return codec

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"codebooks": self.codebooks}

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """int16 (L, 2T) codes for an (n_mels, 4T) log-mel (float16 from the shards is fine)."""
        x = _frames(mel).astype(np.float64)
        if x.shape[1] != self.codebooks.shape[2] and len(x):
            raise ArtifactError("codec", f"mel has {x.shape[1] // 2} bands, the codec {self.codebooks.shape[2] // 2}")
        codes = np.zeros((self.levels, len(x)), np.int16)
        for level, book in enumerate(self.codebooks):
            if not len(x):
                break
            idx, _ = assign(x, book)
            codes[level] = idx
            x = x - book[idx]
        return codes

    def encode_clip(self, audio: np.ndarray, mel: np.ndarray, sample_rate: int) -> np.ndarray:
        """The shard step's call, shared with the pretrained codec (which reads the waveform): this
        codec quantises the clip's log-mel."""
        return self.encode(mel)

    def decode(self, codes: np.ndarray, n_levels: int | None = None) -> np.ndarray:
        """float32 (n_mels, 4T) log-mel from (L', 2T) codes, using the first ``n_levels`` levels."""
        codes = np.asarray(codes)
        n = min(n_levels or codes.shape[0], codes.shape[0], self.levels)
        frames = np.zeros((codes.shape[1], self.codebooks.shape[2]), np.float64)
        for level in range(n):
            frames += self.codebooks[level][codes[level].astype(np.int64)]
        return unstack_pairs(frames.T.astype(np.float32))

    def reconstruction_report(self, mels: Iterable[np.ndarray]) -> dict[int, float]:
        """Mean squared log-mel error at 100 Hz against the input, for 1..L levels used."""
        err = np.zeros(self.levels)
        count = 0
        for mel in mels:
            m = np.asarray(mel, np.float32)
            m = m[:, : 2 * (m.shape[1] // 2)]
            if not m.shape[1]:
                continue
            codes = self.encode(m)
            for n in range(1, self.levels + 1):
                err[n - 1] += float(((self.decode(codes, n) - m) ** 2).sum())
            count += m.size
        if count == 0:
            raise DataError("codec", "no mel frames to report on")
        return {n: float(err[n - 1] / count) for n in range(1, self.levels + 1)}

    def save(self, path: str | Path) -> Path:
        save_artifact(path, self._arrays(), self.meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ResidualCodec:
        arrays, meta = load_artifact(path)
        if meta.get("kind") != KIND:
            raise ArtifactError(path, f"not a residual codec artifact (kind {meta.get('kind')!r})")
        return cls(arrays["codebooks"], {k: v for k, v in meta.items() if k != "version"}, meta["version"])
