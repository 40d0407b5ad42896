"""The audit suites: plain functions from tables + params to structured results.

``audit_manifest`` and ``audit_shards`` are what the CLI (pipelines/audit.py) and the Dagster asset
checks call; each builds GX expectation suites over the tables (plus a few computed columns, so
that checks GX has no built-in for, such as speaker-disjoint splits, are still GX expectations
that show in the data docs) and runs them in one :class:`GXSession`.

Decisions recorded here because the tables alone do not settle them:
- Rates. The manifest records the *source* fps and sample rate; the media readers resample every
  clip to 25 fps / 16 kHz. So the manifest suite expects the source fps in the range the resampler
  is meant for and a source sample rate of at least the target (params.media.sample_rate): audio
  below it would be upsampled with an empty top band. The resampled values are checked on the
  shards: frames vs duration at params.media.fps, units/codes at 2 per frame, mel at 4 per frame.
- Label distribution. Training needs every class it will be evaluated on: the train split must
  contain every emotion label that appears in val or test.
- Speaker identity is (corpus, speaker): two corpora may both number their speakers "s1".
- Which corpora must carry transcripts / emotion labels is read from their corpus cards
  (``has_transcripts`` / ``has_emotions`` in datasets/*.yaml), not repeated in params; a corpus
  without a card is a ConfigError (the pipeline only knows corpora by their cards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import great_expectations as gx
import pandas as pd

from imagintalk.audits.gx_session import ExpectationSpec, GXSession, SuiteSpec, make_expectation
from imagintalk.audits.results import Offender, SuiteResult
from imagintalk.audits.targets import ManifestTables, ShardTables
from imagintalk.config import AUDIT_SEVERITY_DEFAULTS, Params
from imagintalk.conventions import SPLITS
from imagintalk.corpora.cards import load_card
from imagintalk.emotions import EMOTIONS

E = gx.expectations
MANIFEST_REQUIRED = ("clip_id", "corpus", "speaker", "split", "video_path", "duration_s", "fps",
                     "sample_rate", "sha256")
SHARD_REQUIRED = ("key", "split", "speaker", "duration_s", "n_frames", "face_ratio", "lip_sharpness",
                  "lip_brightness", "audio_rms", "clipping_ratio", "silence_ratio", "av_mismatch_s",
                  "units_per_s", "codes_shape", "mel_frames", "speaker_norm")


class _Builder:
    """Collects the expectations of one suite, each tagged with its id and severity from params."""

    def __init__(self, name: str, frame: pd.DataFrame, id_column: str, params: Params):
        self.suite = SuiteSpec(name=name, frame=frame, id_column=id_column)
        self.params = params

    def add(self, audit_id: str, description: str, cls: type, *, detail: Iterable[str] = (),
            offenders: Callable[[pd.DataFrame], list[Offender]] | None = None, **kwargs: Any) -> None:
        if audit_id not in AUDIT_SEVERITY_DEFAULTS:  # the catalogue in config.py is the one list of ids
            raise KeyError(f"audit id {audit_id!r} missing from AUDIT_SEVERITY_DEFAULTS")
        severity = self.params.audit.severity[audit_id]
        self.suite.expectations.append(ExpectationSpec(
            id=audit_id, severity=severity, description=description,
            expectation=make_expectation(cls, audit_id, severity, description, **kwargs),
            detail_columns=tuple(detail), offenders=offenders,
        ))

    def where(self, condition: str) -> dict[str, str]:
        """GX row_condition (pandas query syntax) restricting an expectation to some rows."""
        return {"row_condition": condition, "condition_parser": "pandas"}


# ------------------------------------------------------------------------------ public entries
def audit_manifest(tables: ManifestTables, params: Params, session: GXSession | None = None) -> list[SuiteResult]:
    """Run the manifest suites (clips, ingest outcome) and return their results."""
    session = session or GXSession()
    return [session.validate(s) for s in manifest_suites(tables, params)]


def audit_shards(tables: ShardTables, params: Params, session: GXSession | None = None) -> list[SuiteResult]:
    """Run the shard suites (samples, shard files, splits, quarantine) and return their results."""
    session = session or GXSession()
    return [session.validate(s) for s in shard_suites(tables, params)]


def manifest_suites(tables: ManifestTables, params: Params) -> list[SuiteSpec]:
    return [manifest_clip_suite(tables.clips, params),
            quarantine_suite("manifest_ingest", "manifest.quarantine_rate", tables.clips["clip_id"],
                             tables.quarantine, params)]


def shard_suites(tables: ShardTables, params: Params) -> list[SuiteSpec]:
    return [shard_sample_suite(tables.samples, params), shard_file_suite(tables.shards, params),
            shard_split_suite(tables.splits, params),
            quarantine_suite("shard_quarantine", "shards.quarantine_rate", tables.samples["clip_id"],
                             tables.quarantine, params)]


# ------------------------------------------------------------------------------------- manifest
def manifest_clip_suite(clips: pd.DataFrame, params: Params) -> SuiteSpec:
    cfg = params.audit
    frame = _with_common_columns(clips, MANIFEST_REQUIRED)
    frame["transcript_text"] = frame["transcript"].map(lambda t: (t.strip() or None) if isinstance(t, str) else None)
    b = _Builder("manifest_clips", frame, "clip_id", params)
    b.add("manifest.not_empty", "the manifest has at least one clip", E.ExpectTableRowCountToBeBetween,
          min_value=1)
    b.add("manifest.row_valid", "safe corpus/speaker/clip names, a known split, absolute media paths, "
          "positive numbers (what the shard step requires)", E.ExpectColumnValuesToBeInSet,
          column="row_problem", value_set=[""], detail=("row_problem",))
    _add_common(b, "manifest")
    b.add("manifest.sha256_unique", "no two clips share a content hash (duplicate media)",
          E.ExpectColumnValuesToBeUnique, column="sha256", detail=("sha256",))
    b.add("manifest.duration_in_range", f"clip duration within [{cfg.min_duration_s}, {cfg.max_duration_s}] s",
          E.ExpectColumnValuesToBeBetween, column="duration_s", min_value=cfg.min_duration_s,
          max_value=cfg.max_duration_s)
    b.add("manifest.source_fps_supported",
          f"source fps within [{cfg.min_source_fps}, {cfg.max_source_fps}] (resampled to {params.media.fps})",
          E.ExpectColumnValuesToBeBetween, column="fps", min_value=cfg.min_source_fps,
          max_value=cfg.max_source_fps)
    b.add("manifest.sample_rate_sufficient",
          f"source sample rate >= {cfg.min_source_sample_rate} Hz (resampled to {params.media.sample_rate})",
          E.ExpectColumnValuesToBeBetween, column="sample_rate", min_value=cfg.min_source_sample_rate)
    cards = {c: load_card(c) for c in sorted(set(frame["corpus"].dropna().astype(str)))}
    b.add("manifest.transcript_present", "a transcript for every clip of a corpus whose card has text",
          E.ExpectColumnValuesToNotBeNull, column="transcript_text", detail=("corpus",),
          **b.where(_in("corpus", [c for c, card in cards.items() if card.has_transcripts])))
    b.add("manifest.emotion_present", "an emotion label for every clip of a corpus whose card has labels",
          E.ExpectColumnValuesToNotBeNull, column="emotion", detail=("corpus",),
          **b.where(_in("corpus", [c for c, card in cards.items() if card.has_emotions])))
    return b.suite


# --------------------------------------------------------------------------------------- shards
def shard_sample_suite(samples: pd.DataFrame, params: Params) -> SuiteSpec:
    cfg, fps = params.audit, float(params.media.fps)
    frame = _with_common_columns(samples, SHARD_REQUIRED)
    n_frames = pd.to_numeric(frame["n_frames"], errors="coerce")
    shapes = frame["codes_shape"].map(lambda s: list(s) if isinstance(s, list | tuple) and len(s) == 2 else None)
    # 50 Hz units/codes and 100 Hz mel are fixed multiples of the video rate (DESIGN.md §2).
    steps_per_frame = cfg.units_per_s / fps
    mel_per_frame = params.media.sample_rate / params.audio.hop_length / fps
    frame["codes_levels"] = shapes.map(lambda s: s[0] if s else None)
    frame["codes_steps"] = shapes.map(lambda s: s[1] if s else None)
    frame["expected_codes_steps"] = n_frames * steps_per_frame
    frame["expected_mel_frames"] = n_frames * mel_per_frame
    frame["duration_error_s"] = (n_frames / fps - pd.to_numeric(frame["duration_s"], errors="coerce")).abs()
    frame["abs_av_mismatch_s"] = pd.to_numeric(frame["av_mismatch_s"], errors="coerce").abs()

    b = _Builder("shard_samples", frame, "clip_id", params)
    b.add("shards.not_empty", "the shard root holds at least one sample", E.ExpectTableRowCountToBeBetween,
          min_value=1)
    _add_common(b, "shards")
    min_face = params.face.min_face_ratio
    b.add("shards.face_ratio_min", f"face found on >= {min_face:.0%} of frames",
          E.ExpectColumnValuesToBeBetween, column="face_ratio", min_value=min_face, max_value=1.0)
    b.add("shards.lip_sharpness_range",
          f"mouth-crop sharpness (variance of Laplacian) in [{cfg.min_lip_sharpness:g}, {cfg.max_lip_sharpness:g}]",
          E.ExpectColumnValuesToBeBetween, column="lip_sharpness", min_value=cfg.min_lip_sharpness,
          max_value=cfg.max_lip_sharpness)
    b.add("shards.lip_brightness_range",
          f"mouth-crop mean brightness in [{cfg.min_lip_brightness:g}, {cfg.max_lip_brightness:g}]",
          E.ExpectColumnValuesToBeBetween, column="lip_brightness", min_value=cfg.min_lip_brightness,
          max_value=cfg.max_lip_brightness)
    b.add("shards.audio_rms_min", f"audio RMS >= {params.audio.silence_rms} (not silent)",
          E.ExpectColumnValuesToBeBetween, column="audio_rms", min_value=params.audio.silence_rms)
    b.add("shards.clipping_ratio_max", f"clipped samples <= {cfg.max_clipping_ratio:.1%}",
          E.ExpectColumnValuesToBeBetween, column="clipping_ratio", min_value=0.0,
          max_value=cfg.max_clipping_ratio)
    b.add("shards.silence_ratio_max", f"silent frames <= {cfg.max_silence_ratio:.0%}",
          E.ExpectColumnValuesToBeBetween, column="silence_ratio", min_value=0.0,
          max_value=cfg.max_silence_ratio)
    b.add("shards.units_per_s", f"units per second {cfg.units_per_s} +/- {cfg.units_per_s_tolerance}",
          E.ExpectColumnValuesToBeBetween, column="units_per_s",
          min_value=cfg.units_per_s - cfg.units_per_s_tolerance,
          max_value=cfg.units_per_s + cfg.units_per_s_tolerance)
    b.add("shards.codes_levels", f"codec tokens have params.codec.levels = {params.codec.levels} levels",
          E.ExpectColumnValuesToBeInSet, column="codes_levels", value_set=[params.codec.levels])
    b.add("shards.codes_steps", f"codec tokens have {steps_per_frame:g} steps per video frame (L x 2T)",
          E.ExpectColumnPairValuesToBeEqual, column_A="codes_steps", column_B="expected_codes_steps",
          detail=("n_frames",))
    b.add("shards.mel_frames", f"log-mel has {mel_per_frame:g} frames per video frame",
          E.ExpectColumnPairValuesToBeEqual, column_A="mel_frames", column_B="expected_mel_frames",
          detail=("n_frames",))
    b.add("shards.frames_match_duration", f"n_frames / {fps:g} fps agrees with duration_s",
          E.ExpectColumnValuesToBeBetween, column="duration_error_s", min_value=0.0,
          max_value=cfg.max_duration_error_s, detail=("n_frames", "duration_s"))
    max_mismatch = params.media.max_av_mismatch_frames / fps
    b.add("shards.av_mismatch", f"audio and video lengths agree within {max_mismatch:.3g} s",
          E.ExpectColumnValuesToBeBetween, column="abs_av_mismatch_s", min_value=0.0, max_value=max_mismatch)
    return b.suite


def shard_file_suite(shards: pd.DataFrame, params: Params) -> SuiteSpec:
    b = _Builder("shard_files", shards.copy(), "shard", params)
    b.add("shards.sidecar_count", "a sidecar lists as many samples as it declares (n_samples)",
          E.ExpectColumnPairValuesToBeEqual, column_A="listed_samples", column_B="n_samples")
    b.add("shards.tar_complete", "a shard tar holds every sample its sidecar declares (short shard)",
          E.ExpectColumnPairValuesToBeEqual, column_A="tar_samples", column_B="n_samples",
          detail=("missing_keys",))
    if params.audit.verify_tar_sha256:
        b.add("shards.tar_sha256", "a shard tar's sha256 equals its sidecar's",
              E.ExpectColumnPairValuesToBeEqual, column_A="tar_sha256", column_B="sidecar_sha256")
    b.add("shards.index_sha256", "the dataset index lists each shard with its sidecar's sha256",
          E.ExpectColumnPairValuesToBeEqual, column_A="index_sha256", column_B="sidecar_sha256")
    return b.suite


def shard_split_suite(splits: pd.DataFrame, params: Params) -> SuiteSpec:
    b = _Builder("shard_splits", splits.copy(), "split", params)
    b.add("shards.index_counts", "the dataset index counts per split equal the sidecars' totals",
          E.ExpectColumnPairValuesToBeEqual, column_A="index_count", column_B="sidecar_count")
    return b.suite


# ------------------------------------------------------------------------------------ shared
def quarantine_suite(name: str, audit_id: str, kept_ids: pd.Series, quarantine: pd.DataFrame,
                     params: Params) -> SuiteSpec:
    """One row per input (kept 0, quarantined 1): the quarantine rate is the mean of that column."""
    rate = params.audit.max_quarantine_rate
    frame = pd.concat([
        pd.DataFrame({"id": kept_ids.astype(str), "quarantined": 0, "kind": "", "reason": ""}),
        quarantine.assign(quarantined=1)[["id", "quarantined", "kind", "reason"]],
    ], ignore_index=True)
    frame["quarantined"] = frame["quarantined"].astype(int)

    def quarantined(f: pd.DataFrame) -> list[Offender]:
        bad = f[f["quarantined"] == 1]
        return [Offender(str(r.id), f"{r.kind}: {r.reason}") for r in bad.itertuples()]

    b = _Builder(name, frame, "id", params)
    b.add(audit_id, f"share of inputs quarantined <= {rate:.0%}", E.ExpectColumnMeanToBeBetween,
          column="quarantined", min_value=0.0, max_value=rate, offenders=quarantined)
    return b.suite


def _with_common_columns(table: pd.DataFrame, required: tuple[str, ...]) -> pd.DataFrame:
    """Copy with the computed columns both clip-level suites use."""
    frame = table.reset_index(drop=True).copy()
    for col in (*required, "emotion", "corpus", "transcript"):
        if col not in frame.columns:
            frame[col] = None
    missing = frame[list(required)].isna()
    frame["missing_fields"] = missing.apply(lambda r: ",".join(c for c in required if r[c]), axis=1) \
        if len(frame) else pd.Series(dtype=object)
    frame["speaker_id"] = frame["corpus"].fillna("").astype(str) + "/" + frame["speaker"].fillna("").astype(str)
    frame["speaker_split_count"] = (frame.groupby("speaker_id")["split"].transform("nunique")
                                    if len(frame) else pd.Series(dtype=int))
    frame["speaker_splits"] = (frame.groupby("speaker_id")["split"].transform(
        lambda s: ",".join(sorted(set(s.dropna().astype(str))))) if len(frame) else pd.Series(dtype=object))
    return frame


def _add_common(b: _Builder, prefix: str) -> None:
    """Clip-level expectations shared by the manifest and the shards (same ids under each prefix)."""
    frame = b.suite.frame
    train_labels = sorted(set(frame.loc[frame["split"] == "train", "emotion"].dropna().astype(str)))
    b.add(f"{prefix}.fields_complete", "every required field is present", E.ExpectColumnValuesToBeInSet,
          column="missing_fields", value_set=[""])
    b.add(f"{prefix}.clip_id_unique", "each clip id is unique", E.ExpectColumnValuesToBeUnique,
          column="clip_id")
    b.add(f"{prefix}.split_valid", f"split is one of {list(SPLITS)}", E.ExpectColumnValuesToBeInSet,
          column="split", value_set=list(SPLITS))
    b.add(f"{prefix}.speaker_disjoint_splits", "no speaker appears in two splits (unseen-speaker protocol)",
          E.ExpectColumnValuesToBeBetween, column="speaker_split_count", min_value=1, max_value=1,
          detail=("speaker_id", "speaker_splits"))
    b.add(f"{prefix}.emotion_in_vocabulary", "emotion labels are in the shared vocabulary (or null)",
          E.ExpectColumnValuesToBeInSet, column="emotion", value_set=list(EMOTIONS))
    b.add(f"{prefix}.train_covers_labels", "train contains every emotion label that val/test contain",
          E.ExpectColumnValuesToBeInSet, column="emotion", value_set=train_labels, detail=("split",),
          **b.where('split != "train"'))


def _in(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join(repr(str(v)) for v in values)
    return f"{column} in [{quoted}]"
