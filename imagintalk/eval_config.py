"""Typed configuration of the evaluation and the promotion gate (params.yaml ``eval`` and
``promote``): which variants and metrics are computed, and the floors and comparisons a challenger
must pass. Kept apart from imagintalk/config.py, which re-exports these classes."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from imagintalk.pretrained_config import DEFAULT_NATURALNESS_JUDGE, DEFAULT_SPEAKER_ENCODER
from imagintalk.sections import Section


def _eval_key(key: str) -> str:
    """A metric name of the evaluation (``wer``, ``resynthesis.wer``): imagintalk/eval/catalog.py."""
    from imagintalk.eval.catalog import split_key

    split_key(key)  # ValueError naming the unknown variant or metric
    return key


class GateMetric(Section):
    name: str                       # read from the version tag eval.<name>
    higher_is_better: bool
    margin: float = 0.0             # required improvement over the champion (negative = tolerance)

    @field_validator("name")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        return _eval_key(v)


class MetricFloor(Section):
    """A bound the challenger's own evaluation must meet (inclusive), checked before any champion
    comparison. ``metric`` is an eval key (``wer``, ``resynthesis.wer``); with ``relative_to``
    (another key of the same evaluation, e.g. ``ground_truth.dnsmos_p808``) min/max are offsets
    from that metric's value."""

    metric: str
    min: float | None = None
    max: float | None = None
    relative_to: str | None = None

    @field_validator("metric", "relative_to")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        return v if v is None else _eval_key(v)

    @model_validator(mode="after")
    def _bounded(self) -> MetricFloor:
        if self.min is None and self.max is None:
            raise ValueError(f"floor on {self.metric} needs min or max")
        return self


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
    # corpus (the evaluation's eval.corpus tag) -> bounds; "default" applies to a corpus without its
    # own entry; empty = no floors (imagintalk/registry/gate.py check_floors)
    floors: dict[str, list[MetricFloor]] = Field(default_factory=dict)


class EvalConfig(Section):
    """Offline evaluation on the test split (unseen speakers)."""

    max_clips: int = 16             # test clips generated and judged (0 = all)
    steps: int = 16                 # style-DiT sampler steps
    # classifier-free guidance weights (0: off; on validation speakers 1 and 3 raised WER)
    guidance_lip: float = 0.0
    guidance_id: float = 0.0
    guidance_emo: float = 0.0
    seed: int = 0
    # labelled train clips the speech-emotion judge is fitted on (0 = all). Fitted on 200 (the first
    # 25 SynthTalk speakers) it read validation speakers' real audio at 0.59; on all 832 at 0.81
    # (results/README.md): with few voices it learns the speakers instead of the emotion
    emotion_judge_clips: int = Field(0, ge=0)
    # the oracle ladder's rungs besides `full` (always): imagintalk/eval/catalog.py RUNGS
    ladder: list[str] = Field(default_factory=lambda: ["ground_truth", "resynthesis", "oracle_units",
                                                       "no_refinement"])
    ablations: list[str] = Field(default_factory=lambda: ["no_error_detector", "no_id", "no_emo", "label_emotion"])
    report_clips: int = Field(4, ge=0)  # test clips with audio players and mel plots in report.html
    # the ASR judge of WER/CER (imagintalk/eval/intelligibility.py): "grid" (pocketsphinx + GRID grammar,
    # GRID-grammar corpora such as SynthTalk), an asr_judge of the pretrained catalogue for open
    # vocabulary (e.g. wav2vec2-asr-base-960h), or null (WER/CER reported as not computed)
    asr: str | None = Field("grid", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    # the lip-sync judge of LSE-C/LSE-D (imagintalk/eval/sync.py): a sync_judge of the pretrained
    # catalogue (syncnet-v2), or null (LSE reported as not computed; sync_conf, our own mouth-energy
    # correlation, is always there)
    sync_judge: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    # the speaker judge of speaker_sim and its floor/ceiling: a speaker_encoder of the catalogue
    # (imagintalk/features/speaker.py); the naturalness judge of dnsmos_p808: a naturalness_judge
    # (imagintalk/eval/naturalness.py). Always on; a name that is not usable is a ConfigError and
    # weights not available an ArtifactError, before anything is generated
    speaker_judge: str = Field(DEFAULT_SPEAKER_ENCODER, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    naturalness_judge: str = Field(DEFAULT_NATURALNESS_JUDGE, pattern=r"^[a-z0-9][a-z0-9._-]*$")

    @field_validator("ladder", "ablations")
    @classmethod
    def _known_variants(cls, v: list[str], info) -> list[str]:
        from imagintalk.eval.catalog import ABLATIONS, RUNGS

        known = RUNGS if info.field_name == "ladder" else ABLATIONS
        bad = [x for x in v if x not in known]
        if bad:
            raise ValueError(f"unknown {info.field_name} entry {bad[0]!r} (known: {', '.join(known)})")
        return v
