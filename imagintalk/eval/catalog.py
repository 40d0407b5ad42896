"""What the evaluation measures and on what: the metric and variant vocabulary (DESIGN.md §6).

One place for the names that params.yaml (gate floors, eval ladder), the report (a line per
metric: what it measures, which judge, which direction is better), MLflow and the version tags
share. Pure data: config validation imports it without pulling in any judge.

A *variant* is one way of producing the test clips' speech. The oracle ladder's rungs replace
fewer and fewer model parts by the truth, so the step where a metric drops is the part that loses
it; the ablations remove one condition from the full model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    what: str
    judge: str
    higher_is_better: bool | None   # None: a reference value, not a score


ASR_JUDGE = "the ASR judge named by eval.asr (grid: pocketsphinx constrained by the GRID grammar)"
ASR_METRICS: tuple[str, ...] = ("wer", "cer")   # what the ASR judge's transcripts are scored by
SYNC_METRICS: tuple[str, ...] = ("lse_c", "lse_d")  # what the lip-sync judge (eval.sync_judge) gives
SPEAKER_JUDGE = "the speaker encoder named by eval.speaker_judge (resemblyzer-ge2e: resemblyzer's GE2E)"
NATURALNESS_JUDGE = "the DNSMOS P.808 model named by eval.naturalness_judge (dnsmos-p808: speechmos's onnx)"
METRICS: dict[str, MetricInfo] = {
    # the judge is eval.asr's (imagintalk/eval/intelligibility.py); the report names the one that ran
    "wer": MetricInfo("word error rate of the recognised words against the clip's transcript (both lower-cased, "
                      "punctuation removed)", ASR_JUDGE, False),
    "cer": MetricInfo("character error rate of the recognised text against the clip's transcript (same "
                      "normalisation; spaces count): partial credit for a word heard nearly right", ASR_JUDGE, False),
    "uer": MetricInfo("unit error rate: edit distance of the semantic units used against the units of the "
                      "real audio, over their number", "the corpus's unit tokenizer (k-means)", False),
    "mcd": MetricInfo("mel-cepstral distortion (dB) to the real audio after DTW alignment", "librosa", False),
    "stoi": MetricInfo("short-time objective intelligibility against the real audio (0-1)", "pystoi", True),
    "estoi": MetricInfo("extended STOI, sensitive to modulated noise (0-1)", "pystoi", True),
    "speaker_sim": MetricInfo("cosine similarity of the voice to the real speaker's voice (read it between "
                              "the judge's floor and ceiling)", SPEAKER_JUDGE, True),
    "dnsmos_p808": MetricInfo("predicted listener naturalness score, 1-5 (ITU-T P.808)",
                              NATURALNESS_JUDGE, True),
    "dnsmos_ovrl": MetricInfo("predicted overall quality, 1-5 (P.835 OVRL)", "DNSMOS P.835 (speechmos)", True),
    "f0_rmse": MetricInfo("pitch error (Hz) on frames voiced in both", "librosa pYIN", False),
    "f0_corr": MetricInfo("correlation of the pitch contours", "librosa pYIN", True),
    "sync_offset_abs": MetricInfo("audio-video offset in video frames (|peak lag|)",
                                  "cross-correlation of mouth opening and audio energy", False),
    "sync_conf": MetricInfo("audio-video sync confidence (peak minus median correlation)",
                            "cross-correlation of mouth opening and audio energy", True),
    "lse_c": MetricInfo("lip-sync confidence LSE-C: SyncNet's median minus best mean distance over audio-video "
                        "lags of +-15 frames, against the clip's real video", "the sync judge named by eval.sync_judge "
                        "(SyncNet, syncnet_python's evaluation)", True),
    "lse_d": MetricInfo("lip-sync distance LSE-D: SyncNet's mean audio-video feature distance at the best lag",
                        "the sync judge named by eval.sync_judge", False),
    "emotion_acc": MetricInfo("accuracy of the emotion heard against the clip's label",
                              "speech-emotion classifier fitted on ground-truth training audio", True),
    "speaker_sim_floor": MetricInfo("the judge's floor: ground truth against a different test speaker's ground "
                                    "truth", SPEAKER_JUDGE, None),
    "speaker_sim_ceiling": MetricInfo("the judge's ceiling: two clips of the same speaker",
                                      SPEAKER_JUDGE, None),
}

# The oracle ladder, most oracle first; `full` is always evaluated (the gate reads it).
RUNGS: dict[str, str] = {
    "ground_truth": "the real audio",
    "resynthesis": "ground-truth codec tokens -> codec decoder -> vocoder",
    "oracle_units": "ground-truth units with the clip's real face conditions -> style-DiT -> decoder -> vocoder",
    "no_refinement": "lips -> aligner units -> style-DiT -> decoder -> vocoder (error detector off)",
    "full": "the whole model: lips -> aligner -> error detector + unit BERT -> style-DiT -> decoder -> vocoder",
}
ABLATIONS: dict[str, str] = {
    "no_error_detector": "the full model without error detector (the no_refinement rung)",
    "no_id": "the full model without the face identity condition c_id",
    "no_emo": "the full model without the emotion condition c_emo",
    "label_emotion": "the full model with c_emo from the clip's corpus emotion label instead of its face "
                     "(an oracle for the expression model: what emotion in speech reaches when the face "
                     "is read perfectly)",
}
ALIASES: dict[str, str] = {"no_error_detector": "no_refinement"}  # one computation, two names
VARIANTS: tuple[str, ...] = (*RUNGS, *(a for a in ABLATIONS if a not in ALIASES))
JUDGE_RANGE: tuple[str, ...] = ("speaker_sim_floor", "speaker_sim_ceiling")  # reported beside the rows


def canonical(variant: str) -> str:
    return ALIASES.get(variant, variant)


def split_key(key: str) -> tuple[str, str]:
    """``"wer"`` -> ("full", "wer"); ``"resynthesis.wer"`` -> ("resynthesis", "wer") (aliases resolved).
    Raises ValueError naming what is unknown."""
    variant, dot, metric = key.rpartition(".")
    variant = canonical(variant) if dot else "full"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} in {key!r} (known: {', '.join((*VARIANTS, *ALIASES))})")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} in {key!r} (known: {', '.join(METRICS)})")
    return variant, metric


def tag_key(variant: str, metric: str) -> str:
    """The name under which a row's metric is logged and tagged: bare for `full`, else ``variant.metric``."""
    return metric if variant == "full" else f"{variant}.{metric}"
