"""Offline metric functions (DESIGN.md §6). Each takes arrays, returns floats: pure and testable.

Judges that need a model (pocketsphinx, resemblyzer, DNSMOS) load their weights once per process;
the speaker and naturalness judges are catalogue components chosen in params (their modules).
"""

from __future__ import annotations

import math

import numpy as np

from imagintalk.features.speaker import speaker_embedding, speaker_similarity  # noqa: F401 (the judges)


def normalise_text(text: str) -> str:
    """The field's text normalisation before WER/CER (jiwer transforms): lower-case, punctuation
    removed, runs of whitespace collapsed, stripped. Applied alike to transcript and recognised text."""
    import jiwer

    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip()])(text)


def _scored_pairs(references: list[str], hypotheses: list[str]) -> tuple[list[str], list[str]]:
    # a reference with no words left after normalisation has no error rate: left out, not divided by 0
    pairs = [(normalise_text(r), normalise_text(h)) for r, h in zip(references, hypotheses, strict=True)]
    return [r for r, _ in pairs if r], [h for r, h in pairs if r]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (all word edits over all reference words) of normalised text; NaN with no reference."""
    import jiwer

    refs, hyps = _scored_pairs(references, hypotheses)
    return float(jiwer.wer(refs, hyps)) if refs else float("nan")


def char_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus CER (character edits, spaces included, over reference characters) of normalised text."""
    import jiwer

    refs, hyps = _scored_pairs(references, hypotheses)
    return float(jiwer.cer(refs, hyps)) if refs else float("nan")


def unit_error_rate(reference: np.ndarray, hypothesis: np.ndarray) -> float:
    """Levenshtein distance between unit sequences over the reference length (like WER on units)."""
    import jiwer

    ref = " ".join(f"u{int(u)}" for u in reference)
    hyp = " ".join(f"u{int(u)}" for u in hypothesis)
    return float(jiwer.wer(ref, hyp)) if ref else 0.0


def _mel_cepstrum(y: np.ndarray, sr: int, n_mfcc: int) -> np.ndarray:
    """Mel-cepstrum scaled as SPTK's: cepstrum of the natural-log mel *amplitude* (MCD's 10/ln10·√2
    factor assumes it; librosa's default MFCC is of dB power, 8.7× larger), DCT rescaled from
    orthonormal to 1/N-style (÷√(n_mels/2)), a −100 dB power floor so silence does not dominate,
    and c0 (energy) dropped."""
    import librosa

    n_mels = 80
    mel = librosa.feature.melspectrogram(y=y.astype(np.float32), sr=sr, n_fft=640, hop_length=160, n_mels=n_mels)
    log_amp = 0.5 * np.log(np.maximum(mel, 1e-10 * max(float(mel.max()), 1e-10)))
    return librosa.feature.mfcc(S=log_amp, n_mfcc=n_mfcc)[1:] / math.sqrt(n_mels / 2)


def mel_cepstral_distortion(ref: np.ndarray, gen: np.ndarray, sr: int = 16000, n_mfcc: int = 25) -> float:
    """MCD (dB) over DTW-aligned mel-cepstra, c0 excluded, as in lip2speech papers."""
    import librosa

    a, b = _mel_cepstrum(ref, sr, n_mfcc), _mel_cepstrum(gen, sr, n_mfcc)
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    diff = a[:, path[:, 0]] - b[:, path[:, 1]]
    return float(10.0 / math.log(10) * np.mean(np.sqrt(2.0 * np.sum(diff**2, axis=0))))


def stoi_scores(ref: np.ndarray, gen: np.ndarray, sr: int = 16000) -> tuple[float, float]:
    """(STOI, ESTOI); the shorter signal sets the length."""
    from pystoi import stoi

    n = min(len(ref), len(gen))
    return float(stoi(ref[:n], gen[:n], sr, extended=False)), float(stoi(ref[:n], gen[:n], sr, extended=True))


def f0_track(audio: np.ndarray, sr: int = 16000, fmin: float = 60.0, fmax: float = 400.0) -> np.ndarray:
    """F0 in Hz at 100 Hz frames, NaN where unvoiced (librosa pYIN)."""
    import librosa

    f0, voiced, _ = librosa.pyin(audio.astype(np.float32), fmin=fmin, fmax=fmax, sr=sr,
                                 frame_length=1024, hop_length=160)
    return np.where(voiced, f0, np.nan)


def f0_metrics(ref: np.ndarray, gen: np.ndarray, sr: int = 16000) -> tuple[float, float]:
    """(F0 RMSE in Hz, Pearson correlation) over frames voiced in both."""
    return f0_compare(f0_track(ref, sr), f0_track(gen, sr))


def f0_compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``f0_metrics`` on two F0 tracks (so a reference's track is computed once for many candidates)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 3:
        return float("nan"), float("nan")
    rmse = float(np.sqrt(np.mean((a[both] - b[both]) ** 2)))
    corr = float(np.corrcoef(a[both], b[both])[0, 1]) if np.std(a[both]) > 0 and np.std(b[both]) > 0 else 0.0
    return rmse, corr


def audio_energy_25hz(audio: np.ndarray, sr: int = 16000, fps: int = 25) -> np.ndarray:
    spf = sr // fps
    n = len(audio) // spf
    frames = audio[: n * spf].reshape(n, spf)
    return np.log(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-8)


def av_sync(mouth_open: np.ndarray, audio: np.ndarray, sr: int = 16000, fps: int = 25,
            max_offset: int = 5) -> tuple[int, float]:
    """(offset in video frames, confidence) from cross-correlating mouth opening with audio energy.

    Confidence is SyncNet's: peak correlation minus the median over the searched offsets. A positive
    offset means the audio lags the video.
    """
    energy = audio_energy_25hz(audio, sr, fps)
    n = min(len(mouth_open), len(energy))
    m = _z(np.asarray(mouth_open[:n], np.float64))
    e = _z(energy[:n])
    corrs = []
    for off in range(-max_offset, max_offset + 1):
        if off >= 0:
            x, y = m[: n - off], e[off:]
        else:
            x, y = m[-off:], e[: n + off]
        corrs.append(float(np.mean(x * y)) if len(x) > 2 else 0.0)
    corrs = np.asarray(corrs)
    best = int(np.argmax(corrs))
    return best - max_offset, float(corrs[best] - np.median(corrs))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (speaker similarity from precomputed embeddings)."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-8)


def dnsmos(audio: np.ndarray, sr: int = 16000, judge=None) -> tuple[float, float]:
    """(DNSMOS P.808, DNSMOS P.835 OVRL), 1-5, of ``judge`` (imagintalk/eval/naturalness.py; default:
    the one ``eval.naturalness_judge`` names, the onnx models of the ``speechmos`` wheel). NaN for silence."""
    from imagintalk.eval.naturalness import default_naturalness_judge

    return (judge or default_naturalness_judge()).score(audio, sr)
