"""Naturalness of speech: DNSMOS, its P.808 model a ``naturalness_judge`` of the pretrained catalogue
named by ``eval.naturalness_judge`` (default ``dnsmos-p808``, the onnx file in speechmos's wheel).

speechmos's ``DNSMOS`` class takes its two onnx models by path, so the named P.808 file is resolved
like any component (cache, storage root, the wheel's copy) and handed to it; the P.835 model behind
``dnsmos_ovrl`` (signal/background/overall) stays speechmos's own. Pre-processing (the 120-band
mel of the P.808 input) and post-processing (P.835's polynomial fit) are speechmos's, not copied.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from imagintalk.errors import ArtifactError

ARCHITECTURE = "speechmos.dnsmos"
P835_MODEL = "dnsmos_models/sig_bak_ovr.onnx"   # in speechmos's package


class NaturalnessJudge:
    """DNSMOS with the named P.808 model: (P.808 MOS, P.835 OVRL) of a clip, 1-5."""

    def __init__(self, name: str, model):
        self.name = name
        self.model = model   # speechmos.dnsmos.DNSMOS

    def score(self, audio: np.ndarray, sr: int = 16000) -> tuple[float, float]:
        """A clip shorter than the model's 9.01 s window is looped to fill it, as DNSMOS does, but to
        exactly one window (speechmos doubles it and then scores every 1 s hop of the copies: same
        audio, 7× the time). NaN for silence or under 0.1 s: no score, not a crash."""
        from speechmos.dnsmos import INPUT_LENGTH

        x = np.clip(np.nan_to_num(np.asarray(audio, np.float32)), -1.0, 1.0)
        if len(x) < sr // 10 or not np.any(x):
            return float("nan"), float("nan")
        window = int(INPUT_LENGTH * sr)
        if len(x) < window:
            x = np.tile(x, -(-window // len(x)))[:window]
        out = self.model(x, sr, False)
        return float(out["p808_mos"]), float(out["ovrl_mos"])


def load_naturalness_judge(name: str, params=None, setting: str = "eval.naturalness_judge") -> NaturalnessJudge:
    """The judge the catalogue entry ``name`` gives. ConfigError when it is no naturalness_judge of
    DNSMOS's form; ArtifactError (naming the command that gets it) when its weights are not
    available or are not an onnx model speechmos can run."""
    from imagintalk.pretrained.cache import resolve_loadable

    path = resolve_loadable(setting, name, "naturalness_judge", ARCHITECTURE, params)
    return NaturalnessJudge(name, _dnsmos(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _dnsmos(p808_path: str, _mtime_ns: int):
    import speechmos
    from speechmos.dnsmos import DNSMOS

    primary = Path(next(iter(speechmos.__path__))) / P835_MODEL
    try:
        return DNSMOS(str(primary), p808_path)
    except Exception as exc:  # onnxruntime raises its own kinds (InvalidProtobuf, Fail, ...)
        reason = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise ArtifactError(p808_path, f"not a DNSMOS onnx model onnxruntime can load: {reason}") from None


@functools.lru_cache(maxsize=1)
def default_naturalness_judge() -> NaturalnessJudge:
    """The judge ``eval.naturalness_judge`` of the current params names."""
    from imagintalk.config import load_params

    params = load_params()
    return load_naturalness_judge(params.eval.naturalness_judge, params)
