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
    # Speaker-hash split fractions for corpora that give no split (a corpus card may override).
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    workers: int = 4                      # threads probing and hashing files
    hash_chunk_bytes: int = 1 << 20
    # A demuxed stream ending this many frames before its declared duration is "truncated".
    truncation_tolerance_frames: float = 2.0
    # A separate audio file longer/shorter than its video by more than this is a wrong pairing.
    max_pair_mismatch_s: float = 0.5


class FaceConfig(Section):
    """Face track, mouth ROI and identity (imagintalk/preprocess)."""

    detector: str = Field("dlib", pattern="^dlib$")  # FaceDetector backend
    detect_every: int = Field(10, ge=1)   # key-frame interval for dlib detection
    upsample: int = 0               # dlib HOG upsampling; 1 for small faces
    smooth_window: int = 5          # frames for landmark smoothing
    roi_size: int = 96
    face_size: int = 150            # dlib descriptor chip
    descriptor_frames: int = Field(3, ge=1)  # frames sampled for the mean identity embedding
    min_face_ratio: float = 0.8     # below: quarantine "face lost"
    max_gap: int = 5                # missed frames up to this run length are filled by interpolation
    # Tracked landmarks that move more than this × the inter-ocular distance in one frame mean the
    # tracker has lost the face: detect again on that frame instead of trusting the predictor.
    max_drift: float = 0.25
    ref_size: int = 256             # mean-face canvas side (auto_avsr's 256×256 reference)
    ref_face_scale: float = 160.0   # px per unit of dlib's mean face on that canvas (mouth ≈ 75 px)
    chip_padding: float = 0.25      # dlib.get_face_chip padding the descriptor was trained with


class AudioFeatureConfig(Section):
    """Log-mel / MFCC features and the silence and clipping checks (imagintalk/features)."""

    sample_rate: int = 16000        # must equal media.sample_rate
    n_fft: int = 640
    win_length: int = 640
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    power: float = 1.0              # magnitude mel (HiFi-GAN convention); 2.0 for power
    log_floor: float = 1e-5         # log(max(mel, floor))
    n_mfcc: int = 13
    griffin_lim_iters: int = 32
    silence_rms: float = 1e-3       # below: quarantine "silent audio"
    clip_level: float = 0.999       # |sample| at or above: counted as clipped


class TokenizerConfig(Section):
    """Semantic unit tokenizer: k-means over 50 Hz frame features of the train split."""

    k: int = Field(200, ge=2, le=32767)  # codes are stored as int16
    features: str = Field("mfcc", pattern="^(mfcc|logmel|hubert)$")
    checkpoint: str | None = None   # local path for hubert/wavlm features
    layer: int | None = None        # transformer layer of the checkpoint (None: last)
    max_frames: int = 200_000
    batch_size: int = 4096          # MiniBatchKMeans
    max_iter: int = 100
    n_init: int = 1
    seed: int = 0


class CodecConfig(Section):
    """Residual k-means codec over 50 Hz log-mel frames."""

    levels: int = Field(8, ge=1, le=12)
    codebook_size: int = Field(256, ge=2, le=32767)
    max_frames: int = 200_000
    batch_size: int = 4096          # MiniBatchKMeans
    max_iter: int = 100
    n_init: int = 1
    seed: int = 0


class ShardConfig(Section):
    samples_per_shard: int = 64
    workers: int = 1                # Ray Data concurrency; 1 runs in-process unless Ray is up
    jpeg_quality: int = 95          # face.jpg
    tar_mtime: int = 0              # fixed member mtime so identical content gives identical bytes


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


class TrainConfig(Section):
    """Ray Train jobs (one per model stage); see imagintalk/train/."""

    num_workers: int = 2            # Ray Train workers (DDP ranks); shards are split among them
    cpus_per_worker: int = 1
    ray_num_cpus: int | None = None  # local Ray only (ray.init(num_cpus=...)); None = all cores
    max_steps: int = 200
    stage_steps: dict[str, int] = Field(default_factory=dict)  # per-stage override of max_steps
    checkpoint_every: int = 50      # steps between checkpoints reported to Ray Train
    checkpoints_to_keep: int = 2
    log_every: int = 1              # steps between MLflow metric batches (rank 0)
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    batch_size: int | None = None   # None = loader.batch_size
    seed: int = 0
    max_failures: int = 0           # Ray Train retries of a failed worker group (resume from checkpoint)
    fail_at_step: int | None = None  # test hook: crash once, right before this step, in a fresh run
    # Stage versions the dependent stages build on: "latest", a version number or "@alias".
    pins: dict[str, str] = Field(default_factory=dict)
    run_suffix: str = ""            # appended to the Ray run name to force a fresh run


class GateMetric(Section):
    name: str                       # read from the version tag eval.<name>
    higher_is_better: bool
    margin: float = 0.0             # required improvement over the champion (negative = tolerance)


class PromoteConfig(Section):
    """The promotion gate (pipelines/promote.py)."""

    metrics: list[GateMetric] = Field(default_factory=lambda: [
        GateMetric(name="wer", higher_is_better=False, margin=0.0),
        GateMetric(name="speaker_sim", higher_is_better=True, margin=0.0),
    ])
    require_strict_improvement: bool = True   # at least one gate metric strictly better
    require_audit: bool = True
    require_same_eval_data: bool = False      # eval.data_version of both versions must match
    audit_result: str = "audit/result.json"   # fallback: relative to the shard root tagged data.shards
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    previous_alias: str = "previous-champion"


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
    train: TrainConfig = TrainConfig()
    promote: PromoteConfig = PromoteConfig()
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
