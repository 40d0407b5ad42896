"""Speech-emotion judge: a classifier trained on ground-truth audio of the train split, then
applied to generated speech. Prosody carries emotion in SynthTalk (pitch level and range, rate,
volume) as in acted corpora, so utterance-level prosodic and spectral statistics suffice and the
judge trains in seconds with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def prosody_features(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """F0 level/range (YIN on energetic frames), energy level/range, voiced fraction, MFCC means/stds."""
    import librosa

    y = audio.astype(np.float32)
    rms = librosa.feature.rms(y=y, frame_length=640, hop_length=160)[0]
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=160)
    n = min(len(rms), len(f0))
    rms, f0 = rms[:n], f0[:n]
    voiced = rms > max(1e-4, 0.1 * rms.max())
    lf0 = np.log(f0[voiced]) if voiced.any() else np.zeros(1)
    lrms = np.log(rms[voiced] + 1e-6) if voiced.any() else np.zeros(1)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=640, hop_length=160)
    return np.concatenate([
        [lf0.mean(), lf0.std(), np.percentile(lf0, 90) - np.percentile(lf0, 10)],
        [lrms.mean(), lrms.std(), voiced.mean(), len(y) / sr],
        mfcc.mean(1), mfcc.std(1),
    ]).astype(np.float64)


@dataclass
class EmotionJudge:
    labels: list[str]
    model: object
    n_fit: int = 0      # clips it was fitted on

    @classmethod
    def fit(cls, audios: list[np.ndarray], labels: list[str], sr: int = 16000, seed: int = 0) -> EmotionJudge:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = np.stack([prosody_features(a, sr) for a in audios])
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
        clf.fit(X, labels)
        return cls(labels=sorted(set(labels)), model=clf, n_fit=len(audios))

    def predict(self, audios: list[np.ndarray], sr: int = 16000) -> list[str]:
        X = np.stack([prosody_features(a, sr) for a in audios])
        return [str(p) for p in self.model.predict(X)]

    def accuracy(self, audios: list[np.ndarray], labels: list[str], sr: int = 16000) -> float:
        pred = self.predict(audios, sr)
        return float(np.mean([p == t for p, t in zip(pred, labels, strict=True)]))
