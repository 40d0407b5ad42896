"""Typed configuration loaded from ``params.yaml``.

One section per room; every stage reads its section from here so that DVC (which tracks the
params keys), Dagster and the CLI see the same values. Unknown keys are refused, so a typo in
params.yaml is a clear error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from imagintalk.conventions import VIDEO_SUFFIXES
from imagintalk.errors import ConfigError
from imagintalk.eval_config import EvalConfig, PromoteConfig
from imagintalk.eval_config import GateMetric as GateMetric  # re-exported: callers import configs from here
from imagintalk.eval_config import MetricFloor as MetricFloor
from imagintalk.face_config import FaceConfig as FaceConfig  # re-exported likewise
from imagintalk.lip_aligner_config import LipAlignerParams as LipAlignerParams  # re-exported likewise
from imagintalk.pretrained_config import DEFAULT_SPEAKER_ENCODER, PretrainedConfig
from imagintalk.pretrained_config import ComponentKind as ComponentKind  # re-exported likewise
from imagintalk.pretrained_config import ComponentSpec as ComponentSpec
from imagintalk.sections import Section

PARAMS_ENV = "IMAGINTALK_PARAMS"
DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


class MediaConfig(Section):
    fps: int = 25
    sample_rate: int = 16000
    # Audio/video length disagreement up to this many video frames is trimmed/padded;
    # beyond it the clip is refused (quarantined by batch jobs).
    max_av_mismatch_frames: float = 1.0
    # Frames above this many pixels are downscaled while decoding (bounds memory per frame).
    max_decode_pixels: int = Field(1280 * 720, ge=64 * 64)


class SynthConfig(Section):
    """SynthTalk generator (imagintalk/synth): GRID sentences, espeak-ng voices, animated faces."""

    speakers: int = Field(6, ge=1)
    clips_per_speaker: int = Field(4, ge=1)
    seed: int = 0
    size: int = Field(160, ge=96)         # frame side (px); even, for H.264
    val_speakers: int = Field(1, ge=0)
    test_speakers: int = Field(1, ge=0)
    emotions: list[str] = Field(
        default_factory=lambda: ["neutral", "happy", "sad", "angry", "surprised"]
    )
    intensity_levels: list[float] = Field(default_factory=lambda: [0.5, 0.75, 1.0])
    workers: int = Field(1, ge=1)         # processes; 1 = deterministic in-process generation
    # Face layout: side of dlib's face box as a fraction of the frame. dlib HOG without upsampling
    # needs a box of ~80 px, so 0.6 of 160 px leaves margin for head motion and mouth crops.
    face_box_fraction: float = Field(0.6, gt=0.3, lt=0.9)
    lead_silence_s: tuple[float, float] = (0.1, 0.35)    # uniform range before the sentence
    trail_silence_s: tuple[float, float] = (0.15, 0.4)   # and after it
    audio_gain: float = 0.75              # fixed gain: keeps espeak's loud prosody below clipping
    noise_floor: float = 3e-4             # white-noise std: no digitally silent samples
    # Animation, in units of the inter-ocular distance (IOD) unless named otherwise.
    mouth_open_max: float = 0.32          # inner-lip gap of the most open viseme
    coarticulation_s: float = 0.03        # Gaussian smoothing of viseme targets
    blink_rate_hz: float = 0.3
    head_rotation_deg: float = 2.5        # amplitude of slow head roll
    head_shift: float = 0.04              # translation amplitude (IOD)
    head_scale: float = 0.02              # relative zoom amplitude
    light_jitter: float = 0.04            # per-frame brightness gain amplitude
    light_gradient: float = 0.12          # side-light gradient amplitude across the frame
    crf: int = Field(20, ge=0, le=51)     # H.264 quality of the written clips

    @model_validator(mode="after")
    def _enough_speakers(self) -> SynthConfig:
        if self.speakers <= self.val_speakers + self.test_speakers:
            raise ValueError(f"too few speakers for the splits: {self.speakers} speakers leave none for train "
                             f"after {self.val_speakers} val + {self.test_speakers} test")
        return self


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
    # Audio longer/shorter than its video by more than this is a wrong pairing or a cut file
    # (the one-frame tolerance of media.max_av_mismatch_frames is applied later, when decoding).
    max_av_mismatch_s: float = 0.5


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
    # hubert/wavlm features: a local checkpoint path, or a pretrained component's name (e.g.
    # hubert-base-ls960; `imagintalk models list`) resolved from the cache or the storage root
    checkpoint: str | None = None
    layer: int | None = None        # transformer layer of the checkpoint (None: last)
    # "utterance": each clip's features mean/variance-normalised over the clip before k-means, which
    # removes much of the voice (channel, vocal tract) from the units; see tokenizers/units.py
    normalize: Literal["none", "utterance"] = "utterance"
    max_frames: int = 200_000
    batch_size: int = 4096          # MiniBatchKMeans
    max_iter: int = 100
    n_init: int = 1
    seed: int = 0


class CodecConfig(Section):
    """The acoustic codec: the embedded residual k-means over 50 Hz log-mel frames (fitted by
    ``fit_codec``; decodes to mel, then a vocoder), or a pretrained neural codec of the catalogue
    named by ``component`` (e.g. ``dac-16khz``: its own codebooks, decoded straight to a waveform, so
    no vocoder is trained; imagintalk/tokenizers/neural_codec.py)."""

    # a pretrained component of kind ``codec`` (`imagintalk models list`); None: the k-means codec
    component: str | None = None
    # residual levels the tokens carry: the k-means codec's levels, or how many of a pretrained
    # codec's codebooks are used (the first ones: residual VQ orders them coarse to fine)
    levels: int = Field(8, ge=1, le=12)
    # the k-means codec's; a pretrained codec's codebook size comes from the codec itself
    codebook_size: int = Field(256, ge=2, le=32767)
    max_frames: int = 200_000
    report_frames: int = 20_000     # 50 Hz frames of the reconstruction report (val split)
    batch_size: int = 4096          # MiniBatchKMeans
    max_iter: int = 100
    n_init: int = 1
    seed: int = 0


class ShardConfig(Section):
    samples_per_shard: int = 64
    workers: int = 1                # Ray Data concurrency; 1 runs in-process unless Ray is up
    jpeg_quality: int = 95          # face.jpg
    tar_mtime: int = 0              # fixed member mtime so identical content gives identical bytes
    # Library thread pools (torch, OpenCV, BLAS) while a worker processes a clip: one clip per
    # worker at a time, so parallelism comes from workers; the same count in-process and on Ray
    # also keeps floating-point reductions, hence the shard bytes, identical.
    worker_threads: int = Field(1, ge=1)
    # the speaker encoder of every clip's speaker.npy (the face-style adapter's target): a
    # speaker_encoder of the pretrained catalogue (resemblyzer's GE2E, imagintalk/features/speaker.py)
    speaker_encoder: str = Field(DEFAULT_SPEAKER_ENCODER, pattern=r"^[a-z0-9][a-z0-9._-]*$")


class LoaderConfig(Section):
    crop: int = 88
    batch_size: int = 8
    shuffle_buffer: int = 64
    seed: int = 0
    num_workers: int = 0            # DataLoader worker processes (shards are split among them)
    audio: bool = False             # also decode audio.flac (the vocoder needs it; others do not)
    drop_last: bool = False
    # only these speakers' clips (a training stage's share of the train split); None: every speaker
    speakers: list[str] | None = None
    # the record fields to read and decode (imagintalk/data/loader.py LOADER_FIELDS); None: all of
    # them. Each training stage asks for what its model reads (imagintalk/train/graph.py), so the
    # expression model never decodes a lip crop and the unit BERT never a face.
    fields: list[Literal["lips", "units", "codes", "mel", "identity", "speaker", "face", "landmarks"]] | None = None
    # Training crops only (auto_avsr's video transform; set per stage from params ``lip_aligner``):
    # each clip's crops mirrored left-right with this probability, and per second of video one span
    # of up to ``time_mask_frames`` frames replaced by the clip's mean frame (adaptive time masking)
    flip_prob: float = Field(0.0, ge=0.0, le=1.0)
    time_mask_frames: int = Field(0, ge=0)


class StorageConfig(Section):
    root: str = "artifacts"
    endpoint_url: str | None = None  # S3-compatible endpoint; else $FSSPEC_S3_ENDPOINT_URL/$AWS_ENDPOINT_URL
    anon: bool = False
    # Every object-store call is bounded: connect/read timeouts, then at most max_attempts tries.
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)


class TrainConfig(Section):
    """Ray Train jobs (one per model stage); see imagintalk/train/."""

    num_workers: int = 2            # Ray Train workers (DDP ranks); shards are split among them
    cpus_per_worker: int = 1
    # GPU workers on a cluster: "auto" uses GPUs the cluster shows now; "true" requests them even
    # when an autoscaled GPU group has no node yet (the driver on a CPU head cannot see them).
    use_gpu: Literal["auto", "true", "false"] = "auto"
    ray_num_cpus: int | None = None  # local Ray only (ray.init(num_cpus=...)); None = all cores
    max_steps: int = 200
    stage_steps: dict[str, int] = Field(default_factory=dict)  # per-stage override of max_steps
    # per-stage decay of an exponential moving average of the weights, which is what the stage
    # then registers (imagintalk/train/loop.py moving_average); a stage not named keeps none
    stage_ema: dict[str, float] = Field(default_factory=dict)
    # per-stage mixed precision: the forward pass under torch.autocast in bfloat16 (weights, the
    # optimizer and the losses' softmax stay float32), the usual setting on a GPU. On our 2-core
    # AVX512-BF16 CPU the tiny stages gain 1.03-1.22x (benchmarks/bench_train.py --autocast), too
    # little to change numerics by default. A stage not named trains in float32.
    stage_autocast: dict[str, Literal["bfloat16"]] = Field(default_factory=dict)
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
    val_batches: int = 8            # val-split batches scored after training (model card metrics)
    # Fraction of the train split's speakers the lip aligner never sees; the error detector learns
    # on the aligner's predictions for them, i.e. on mistakes like those it meets on new speakers
    # (on the aligner's own training clips it makes almost none). 0: both train on every speaker.
    detector_holdout: float = Field(0.25, ge=0.0, lt=1.0)

    @field_validator("stage_ema")
    @classmethod
    def _decays(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"an EMA decay is in [0, 1): {bad}")
        return value


class PipelineConfig(Section):
    """Where the default run (make demo, dvc repro, Dagster) reads and writes: paths are templates
    over ``{corpus}`` so every corpus card gets its own partition."""

    corpus: str = "synthtalk"
    raw_dir: str = "datasets/{corpus}/raw"
    manifest: str = "datasets/{corpus}/manifest.parquet"
    shards: str = "datasets/{corpus}/shards"
    reports: str = "reports/{corpus}"
    models: str = "artifacts/{corpus}/models"
    model_size: str = "tiny"


Severity = Literal["blocking", "warning"]

# The catalogue of audit expectations and their default severity. The ids are the ones printed in
# the failure table, result.json and the data docs; params.yaml may override any severity, and an
# unknown id there is refused (a typo must not silently leave an expectation at its default).
AUDIT_SEVERITY_DEFAULTS: dict[str, Severity] = {
    "manifest.not_empty": "blocking",
    "manifest.row_valid": "blocking",
    "manifest.fields_complete": "blocking",
    "manifest.clip_id_unique": "blocking",
    "manifest.sha256_unique": "blocking",
    "manifest.split_valid": "blocking",
    "manifest.speaker_disjoint_splits": "blocking",
    "manifest.duration_in_range": "blocking",
    "manifest.source_fps_supported": "blocking",
    "manifest.sample_rate_sufficient": "blocking",
    "manifest.transcript_present": "blocking",
    "manifest.emotion_in_vocabulary": "blocking",
    "manifest.emotion_present": "blocking",
    "manifest.train_covers_labels": "blocking",
    "manifest.quarantine_rate": "blocking",
    "shards.not_empty": "blocking",
    "shards.fields_complete": "blocking",
    "shards.clip_id_unique": "blocking",
    "shards.split_valid": "blocking",
    "shards.speaker_disjoint_splits": "blocking",
    "shards.emotion_in_vocabulary": "blocking",
    "shards.train_covers_labels": "blocking",
    "shards.face_ratio_min": "blocking",
    "shards.lip_sharpness_range": "warning",
    "shards.lip_brightness_range": "warning",
    "shards.audio_rms_min": "blocking",
    "shards.clipping_ratio_max": "blocking",
    "shards.silence_ratio_max": "warning",
    "shards.units_per_s": "blocking",
    "shards.codes_levels": "blocking",
    "shards.codes_steps": "blocking",
    "shards.mel_frames": "blocking",
    "shards.frames_match_duration": "blocking",
    "shards.av_mismatch": "blocking",
    "shards.sidecar_count": "blocking",
    "shards.tar_complete": "blocking",
    "shards.tar_sha256": "blocking",
    "shards.index_sha256": "blocking",
    "shards.index_counts": "blocking",
    "shards.quarantine_rate": "blocking",
}


class AuditConfig(Section):
    """Thresholds and severities of the data-quality audits (imagintalk/audits)."""

    max_listed_failures: int = 10       # offending ids printed per expectation (all go to result.json)
    # Manifest. Source rates: the media readers resample any rate in this range to 25 fps / 16 kHz;
    # below the sample-rate floor the 16 kHz audio would have no content above the source Nyquist.
    min_duration_s: float = 0.5
    max_duration_s: float = 60.0
    min_source_fps: float = 23.9
    max_source_fps: float = 60.1
    min_source_sample_rate: int = 16000
    # Which corpora must have transcripts / emotion labels comes from their cards (datasets/*.yaml).
    max_quarantine_rate: float = 0.1
    # Shards (per-clip statistics written by the preprocessing into the stats sidecars). The face
    # ratio, silence RMS and A/V mismatch limits are the preprocessing's own (face.min_face_ratio,
    # audio.silence_rms, media.max_av_mismatch_frames): shards made under looser params fail here.
    min_lip_sharpness: float = 1.0
    max_lip_sharpness: float = 5000.0
    min_lip_brightness: float = 20.0
    max_lip_brightness: float = 235.0
    max_clipping_ratio: float = 0.01
    max_silence_ratio: float = 0.9
    units_per_s: float = 50.0
    units_per_s_tolerance: float = 2.0
    max_duration_error_s: float = 0.04  # |n_frames / fps - duration_s|: the 25 fps resampling held
    verify_tar_sha256: bool = True      # reads every tar in full; off for a quick look at a big root
    severity: dict[str, Severity] = Field(default_factory=lambda: dict(AUDIT_SEVERITY_DEFAULTS))

    @field_validator("severity")
    @classmethod
    def _known_ids(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        unknown = sorted(set(value) - set(AUDIT_SEVERITY_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown audit expectation id(s) {unknown}")
        return {**AUDIT_SEVERITY_DEFAULTS, **value}


class SpeakConfig(Section):
    """`imagintalk speak` and the serving endpoint: what input is accepted."""

    min_duration_s: float = 0.5
    max_duration_s: float = 60.0
    extensions: list[str] = Field(default_factory=lambda: sorted(VIDEO_SUFFIXES))


class ServeConfig(Section):
    max_request_bytes: int = 50_000_000
    max_duration_s: float = 30.0
    max_batch_size: int = 4
    batch_wait_timeout_s: float = 0.05
    replicas: int = 1


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
    pretrained: PretrainedConfig = PretrainedConfig()
    audit: AuditConfig = AuditConfig()
    pipeline: PipelineConfig = PipelineConfig()
    eval: EvalConfig = EvalConfig()
    speak: SpeakConfig = SpeakConfig()
    serve: ServeConfig = ServeConfig()
    lip_aligner: LipAlignerParams = LipAlignerParams()
    train: TrainConfig = TrainConfig()
    promote: PromoteConfig = PromoteConfig()
    # corpus profiles: partitions that are a recipe with other settings (imagintalk/profiles.py)
    corpora: dict[str, dict[str, Any]] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_profiles(self) -> Params:
        from imagintalk.profiles import check_profiles

        check_profiles(self.corpora, set(type(self).model_fields))
        return self

    def for_corpus(self, corpus: str | None) -> Params:
        """These params with the profile of ``corpus`` applied (imagintalk/profiles.py)."""
        from imagintalk.profiles import for_corpus

        return for_corpus(self, corpus)


def params_file(path: str | Path | None = None) -> Path:
    """The params file read: ``path``, else ``$IMAGINTALK_PARAMS``, else the repo's params.yaml."""
    return Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)


def load_params(path: str | Path | None = None) -> Params:
    """Read params.yaml (``$IMAGINTALK_PARAMS`` or the repo's) into typed sections.

    A missing file gives the defaults; a malformed file or unknown key raises ConfigError.
    """
    path = params_file(path)
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
