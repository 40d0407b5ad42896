"""Semantic speech units: k-means (K = 200, lip2speech-unit's KM200) over 50 Hz frame features of
the train split. ``encode`` turns T·640 samples of 16 kHz audio into 2T int16 unit ids, the lip
aligner's targets.

Features are standardised per dimension with the training frames' mean and std before k-means
(MFCC c0 and deltas live on very different scales); the statistics travel in the artifact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagintalk.config import AudioFeatureConfig, Params, TokenizerConfig
from imagintalk.errors import ArtifactError, DataError
from imagintalk.tokenizers.artifact import content_version, file_sha256, load_artifact, save_artifact
from imagintalk.tokenizers.extractors import FeatureExtractor, ResolvedCheckpoint, make_extractor, resolve_checkpoint
from imagintalk.tokenizers.kmeans import assign, cap_rows, fit_kmeans

KIND = "unit_tokenizer"
# The audio settings that shape the features (silence/clipping thresholds do not: changing them
# must not change the tokenizer's version).
FEATURE_FIELDS = {"sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max",
                  "power", "log_floor", "n_mfcc"}


@dataclass
class UnitTokenizer:
    centroids: np.ndarray           # float32 (K, D), in standardised feature space
    mean: np.ndarray                # float32 (D,)
    std: np.ndarray                 # float32 (D,)
    meta: dict[str, Any]            # features, k, seed, frames, audio config, checkpoint, inertia
    version: str = ""
    _extractor: FeatureExtractor | None = field(default=None, repr=False, compare=False)
    # where a checkpoint named by a pretrained component is resolved (cache, storage root, catalogue)
    params: Params | None = field(default=None, repr=False, compare=False)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def fit(cls, audios: Iterable[np.ndarray], cfg: TokenizerConfig, audio_cfg: AudioFeatureConfig | None = None,
            params: Params | None = None) -> UnitTokenizer:
        """Fit on an iterable of float32 16 kHz clips (the train split only: the caller's job).
        ``params`` resolves a checkpoint given by component name (default: params.yaml's)."""
        audio_cfg = audio_cfg or AudioFeatureConfig()
        ckpt = resolve_checkpoint(cfg.checkpoint, params) if cfg.features == "hubert" and cfg.checkpoint else None
        extractor = make_extractor(cfg.features, audio_cfg, ckpt, cfg.layer)
        chunks = [normalize_utterance(extractor(a).T, cfg.normalize) for a in audios]
        chunks = [c for c in chunks if len(c)]
        if not chunks:
            raise DataError("tokenizer", "no audio frames to fit the unit tokenizer on")
        n_seen = sum(len(c) for c in chunks)
        x = cap_rows(np.concatenate(chunks).astype(np.float32), cfg.max_frames, cfg.seed)
        mean = x.mean(0).astype(np.float32)
        std = np.maximum(x.std(0), 1e-5).astype(np.float32)
        centroids, inertia = fit_kmeans((x - mean) / std, cfg.k, cfg.seed, cfg.batch_size, cfg.max_iter,
                                        cfg.n_init, what="tokenizer.k")
        meta: dict[str, Any] = {
            "kind": KIND, "features": cfg.features, "normalize": cfg.normalize, "k": cfg.k, "seed": cfg.seed,
            "layer": cfg.layer,
            "frames_seen": int(n_seen), "frames_fit": int(len(x)), "frame_rate_hz": 50,
            "mean_sq_dist": round(inertia, 6), "audio": audio_cfg.model_dump(mode="json", include=FEATURE_FIELDS),
            **_checkpoint_meta(ckpt),
        }
        tok = cls(centroids, mean, std, meta, params=params)
        tok.version = content_version(tok._arrays(), meta)
        tok._extractor = extractor
        return tok

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids, "mean": self.mean, "std": self.std}

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            name, path = self.meta.get("checkpoint_name"), self.meta.get("checkpoint_path")
            # a named component is resolved again here (on a Ray worker: from its cache or the storage
            # root); a path must exist on this machine
            ckpt = (resolve_checkpoint(name, self.params) if name else
                    ResolvedCheckpoint(Path(path)) if path is not None else None)
            if ckpt is not None and not ckpt.path.is_file():
                raise ArtifactError(ckpt.path, "the checkpoint this tokenizer was fitted with is missing")
            if ckpt is not None and file_sha256(ckpt.path) != self.meta["checkpoint_sha256"]:
                raise ArtifactError(ckpt.path, "checkpoint differs from the one the tokenizer was fitted with")
            self._extractor = make_extractor(self.meta["features"], AudioFeatureConfig(**self.meta["audio"]),
                                             ckpt, self.meta.get("layer"))
        return self._extractor

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Standardised 50 Hz features, float32 (2T, D)."""
        x = normalize_utterance(self.extractor(audio).T, self.meta.get("normalize", "none"))
        return ((x - self.mean) / self.std).astype(np.float32)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Unit ids, int16 (2T,) for T·640 samples."""
        f = self.features(np.asarray(audio, np.float32).reshape(-1))
        if len(f) == 0:
            return np.zeros(0, np.int16)
        return assign(f, self.centroids)[0].astype(np.int16)

    def save(self, path: str | Path) -> Path:
        """``path`` (.npz) + .json; byte-identical for identical content."""
        save_artifact(path, self._arrays(), self.meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, params: Params | None = None) -> UnitTokenizer:
        """``params``: where a checkpoint named by component is resolved (default: params.yaml's)."""
        arrays, meta = load_artifact(path)
        if meta.get("kind") != KIND:
            raise ArtifactError(path, f"not a unit tokenizer artifact (kind {meta.get('kind')!r})")
        return cls(arrays["centroids"], arrays["mean"], arrays["std"],
                   {k: v for k, v in meta.items() if k != "version"}, meta["version"], params=params)


_CMVN_MIN_STD = 0.1


def normalize_utterance(x: np.ndarray, mode: str) -> np.ndarray:
    """(N, D) frame features, mean/variance-normalised over the utterance when ``mode`` is
    "utterance" (cepstral mean and variance normalisation, CMVN).

    Why: k-means over raw MFCCs splits the same sound into different units for different voices,
    so lips cannot predict the units of a voice the aligner never heard. Measured on SynthTalk
    (16 speakers, the 4 unseen val+test speakers), normalised mutual information between unit and
    speaker: K=200 raw 0.167 -> CMVN 0.151; K=50 raw 0.151 -> CMVN 0.082 (results/README.md).
    """
    if mode != "utterance" or len(x) < 2:
        return x
    # an absolute floor on the spread: a near-constant dimension (digital silence) stays constant
    # instead of having its rounding noise blown up to unit variance
    return (x - x.mean(0, keepdims=True)) / np.maximum(x.std(0, keepdims=True), _CMVN_MIN_STD)


def _checkpoint_meta(ckpt: ResolvedCheckpoint | None) -> dict[str, str | None]:
    """Content hash (part of the version), local path and component name (not): a different
    checkpoint at the same path must not pass unnoticed, and the same one elsewhere or by another
    name must give the same version. The name is only recorded when there is one, so artefacts
    fitted on a path keep the version they had."""
    if ckpt is None:
        return {"checkpoint_sha256": None, "checkpoint_path": None}
    meta = {"checkpoint_sha256": file_sha256(ckpt.path), "checkpoint_path": str(ckpt.path.resolve())}
    return {**meta, "checkpoint_name": ckpt.name} if ckpt.name else meta
