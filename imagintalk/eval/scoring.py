"""One variant's row of judged metrics, and the speaker judge's own range on the test set.

Every variant is judged by the same offline judges (imagintalk/eval/metrics.py) against the same
ground truth, so that the rows of the ladder are comparable.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from imagintalk.eval import metrics as M
from imagintalk.eval.ladder import Clip, Rendered


class References:
    """What the judges extract from the ground truth, once for every variant: speaker embeddings
    (also the judge range) and F0 tracks. ``speaker``: the speaker judge (eval.speaker_judge;
    default the shards' encoder), the same for every variant."""

    def __init__(self, clips: Sequence[Clip], speaker=None):
        self.speaker = speaker
        self.vectors = [M.speaker_embedding(c.audio, encoder=speaker) for c in clips]
        self.f0 = [M.f0_track(c.audio) for c in clips]

    def similarity(self, i: int, audio: np.ndarray) -> float:
        return M.cosine(self.vectors[i], M.speaker_embedding(audio, encoder=self.speaker))


def _mean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if arr.size and np.isfinite(arr).any() else float("nan")


def score_variant(clips: Sequence[Clip], rendered: Sequence[Rendered], refs: References,
                  emotion_judge=None, asr=None, naturalness=None) -> dict[str, float]:
    """The metrics of catalog.METRICS (those that apply) averaged over the clips; WER and CER
    (corpus-level) where ``asr`` (imagintalk/eval/intelligibility.py) grades the transcripts; DNSMOS
    of ``naturalness`` (imagintalk/eval/naturalness.py; default eval.naturalness_judge's)."""
    from imagintalk.eval import intelligibility

    cols: dict[str, list[float]] = {k: [] for k in ("mcd", "stoi", "estoi", "speaker_sim", "dnsmos_p808",
                                                    "dnsmos_ovrl", "f0_rmse", "f0_corr", "sync_offset_abs",
                                                    "sync_conf")}
    uer: list[float] = []
    for i, (clip, r) in enumerate(zip(clips, rendered, strict=True)):
        cols["mcd"].append(M.mel_cepstral_distortion(clip.audio, r.audio))
        s, e = M.stoi_scores(clip.audio, r.audio)
        cols["stoi"].append(s)
        cols["estoi"].append(e)
        cols["speaker_sim"].append(refs.similarity(i, r.audio))
        p808, ovrl = M.dnsmos(r.audio, judge=naturalness)
        cols["dnsmos_p808"].append(p808)
        cols["dnsmos_ovrl"].append(ovrl)
        rmse, corr = M.f0_compare(refs.f0[i], M.f0_track(r.audio))
        cols["f0_rmse"].append(rmse)
        cols["f0_corr"].append(corr)
        off, conf = M.av_sync(clip.mouth, r.audio)
        cols["sync_offset_abs"].append(abs(off))
        cols["sync_conf"].append(conf)
        if r.units is not None:
            uer.append(M.unit_error_rate(clip.units, r.units))
    row = {k: _mean(v) for k, v in cols.items()}
    if uer:
        row["uer"] = float(np.mean(uer))
    if asr is not None:
        row.update(intelligibility.score([c.transcript for c in clips], [r.audio for r in rendered], asr))
    labelled = [(r.audio, c.emotion) for c, r in zip(clips, rendered, strict=True) if c.emotion]
    if emotion_judge is not None and labelled:
        row["emotion_acc"] = emotion_judge.accuracy([a for a, _ in labelled], [lb for _, lb in labelled])
    return row


def speaker_sim_range(clips: Sequence[Clip], refs: References) -> dict[str, float]:
    """The judge's floor (ground truth against ground truth of a different test speaker) and ceiling
    (two clips of the same speaker), each the mean over all such pairs; NaN when the test set has
    no such pair (one test speaker, or one clip per speaker)."""
    same, other = [], []
    for i, j in itertools.combinations(range(len(clips)), 2):
        sim = M.cosine(refs.vectors[i], refs.vectors[j])
        (same if clips[i].speaker == clips[j].speaker else other).append(sim)
    return {"speaker_sim_floor": _mean(other), "speaker_sim_ceiling": _mean(same)}
