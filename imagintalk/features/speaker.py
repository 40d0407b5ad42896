"""Speaker embedding of speech: resemblyzer's GE2E encoder (256-d, unit norm; weights ship in its wheel).

One encoder per process, loaded on first use: the shard workers embed every clip's ground-truth
audio with it (``speaker.npy``, the target of the face-style adapter's auxiliary loss) and the
evaluation judges speaker similarity with it, so both read the same voice space.
resemblyzer imports ``webrtcvad``, which imports ``pkg_resources``: keep ``setuptools<81``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

SPEAKER_DIM = 256


@functools.lru_cache(maxsize=1)
def speaker_encoder():
    with warnings.catch_warnings():  # webrtcvad imports pkg_resources
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """float32 (256,) embedding of an utterance; silence trimmed first unless almost all is silent."""
    encoder = speaker_encoder()  # first: its import silences webrtcvad's pkg_resources warning
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(np.asarray(audio, np.float32), sr)
    if len(wav) < sr // 10:  # resemblyzer trims silence; a silent clip keeps its raw samples
        wav = np.asarray(audio, np.float32)
    return np.asarray(encoder.embed_utterance(wav), np.float32)


def speaker_similarity(ref: np.ndarray, gen: np.ndarray, sr: int = 16000) -> float:
    """Cosine similarity of the two utterances' GE2E embeddings."""
    a, b = speaker_embedding(ref, sr), speaker_embedding(gen, sr)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
