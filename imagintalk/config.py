"""Typed configuration loaded from ``params.yaml``.

One section per room; every stage reads its section from here so that DVC (which tracks the
params keys), Dagster and the CLI see the same values. Unknown keys are refused, so a typo in
params.yaml is a clear error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagintalk.errors import ConfigError

PARAMS_ENV = "IMAGINTALK_PARAMS"
DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaConfig(Section):
    fps: int = 25
    sample_rate: int = 16000
    # Audio/video length disagreement up to this many video frames is trimmed/padded;
    # beyond it the clip is refused (quarantined by batch jobs).
    max_av_mismatch_frames: float = 1.0


class SynthConfig(Section):
    speakers: int = 6
    clips_per_speaker: int = 4
    seed: int = 0
    size: int = 160
    val_speakers: int = 1
    test_speakers: int = 1
    emotions: list[str] = Field(
        default_factory=lambda: ["neutral", "happy", "sad", "angry", "surprised"]
    )


class IngestConfig(Section):
    # Clips longer/shorter than this are still ingested; audits flag them.
    min_duration_s: float = 0.2
    max_duration_s: float = 60.0


class FaceConfig(Section):
    detect_every: int = 10          # key-frame interval for dlib detection
    upsample: int = 0               # dlib HOG upsampling; 1 for small faces
    smooth_window: int = 5          # frames for landmark smoothing
    roi_size: int = 96
    face_size: int = 150            # dlib descriptor chip
    descriptor_frames: int = 3      # frames sampled for the mean identity embedding
    min_face_ratio: float = 0.8     # below: quarantine "face lost"


class AudioFeatureConfig(Section):
    n_fft: int = 640
    win_length: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    silence_rms: float = 1e-3       # below: quarantine "silent audio"


class TokenizerConfig(Section):
    k: int = 200
    features: str = "mfcc"          # mfcc | logmel | hubert
    checkpoint: str | None = None   # local path for hubert/wavlm features
    max_frames: int = 200_000
    seed: int = 0


class CodecConfig(Section):
    levels: int = 8
    codebook_size: int = 256
    max_frames: int = 200_000
    seed: int = 0


class ShardConfig(Section):
    samples_per_shard: int = 64
    workers: int = 1                # Ray Data concurrency; 1 runs in-process unless Ray is up
    jpeg_quality: int = 95          # face.jpg
    tar_mtime: int = 0              # fixed member mtime so identical content gives identical bytes
    ray_batch_size: int = 1         # clips per Ray task: one clip is seconds of work already


class LoaderConfig(Section):
    crop: int = 88
    batch_size: int = 8
    shuffle_buffer: int = 64
    seed: int = 0
    num_workers: int = 0            # DataLoader worker processes (shards are split among them)
    audio: bool = False             # also decode audio.flac (the vocoder needs it; others do not)
    drop_last: bool = False


class StorageConfig(Section):
    root: str = "artifacts"
    endpoint_url: str | None = None  # S3-compatible endpoint; else $FSSPEC_S3_ENDPOINT_URL/$AWS_ENDPOINT_URL
    anon: bool = False


class Params(Section):
    media: MediaConfig = MediaConfig()
    synth: SynthConfig = SynthConfig()
    ingest: IngestConfig = IngestConfig()
    face: FaceConfig = FaceConfig()
    audio: AudioFeatureConfig = AudioFeatureConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    codec: CodecConfig = CodecConfig()
    shards: ShardConfig = ShardConfig()
    loader: LoaderConfig = LoaderConfig()
    storage: StorageConfig = StorageConfig()
    extra: dict[str, Any] = Field(default_factory=dict)


def load_params(path: str | Path | None = None) -> Params:
    """Read params.yaml (``$IMAGINTALK_PARAMS`` or the repo's) into typed sections.

    A missing file gives the defaults; a malformed file or unknown key raises ConfigError.
    """
    path = Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)
    if not path.exists():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(path, "top level must be a mapping of sections")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(path, f"{where}: {first['msg']}") from exc
