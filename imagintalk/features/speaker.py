"""Speaker embedding of speech: a GE2E encoder of resemblyzer's architecture (256-d, unit norm),
its weights a ``speaker_encoder`` of the pretrained catalogue chosen by name.

Two settings name one: ``shards.speaker_encoder`` embeds every clip's ground-truth audio at shard
time (``speaker.npy``, the target of the face-style adapter's auxiliary loss) and
``eval.speaker_judge`` judges speaker similarity. Both default to ``resemblyzer-ge2e``, the weights
that ship in resemblyzer's wheel, so by default the target and the judge read the same voice space.
The weights are resolved like every component's (cache, storage root, the wheel's copy), so a Ray
worker needs no path of its own. An encoder is loaded once per process and file.
resemblyzer imports ``webrtcvad``, which imports ``pkg_resources``: keep ``setuptools<81``.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

from imagintalk.errors import ArtifactError

SPEAKER_DIM = 256
ARCHITECTURE = "resemblyzer.VoiceEncoder"


class SpeakerEncoder:
    """A loaded GE2E encoder and the catalogue name it was loaded as."""

    def __init__(self, name: str, net):
        self.name = name
        self.net = net

    def embed(self, audio: np.ndarray, sr: int = 16000) -> np.ndarray:
        """float32 (256,) embedding of an utterance; silence trimmed first unless almost all is silent."""
        from resemblyzer import preprocess_wav  # imported by _voice_encoder first (warnings silenced)

        wav = preprocess_wav(np.asarray(audio, np.float32), sr)
        if len(wav) < sr // 10:  # resemblyzer trims silence; a silent clip keeps its raw samples
            wav = np.asarray(audio, np.float32)
        return np.asarray(self.net.embed_utterance(wav), np.float32)

    def similarity(self, ref: np.ndarray, gen: np.ndarray, sr: int = 16000) -> float:
        """Cosine similarity of the two utterances' embeddings."""
        a, b = self.embed(ref, sr), self.embed(gen, sr)
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def load_speaker_encoder(name: str, params=None, setting: str = "shards.speaker_encoder") -> SpeakerEncoder:
    """The encoder the catalogue entry ``name`` gives (``setting``: the params field that names it,
    for the error). ConfigError when it is no speaker_encoder of resemblyzer's architecture;
    ArtifactError (naming the command that gets it) when its weights are not available."""
    from imagintalk.pretrained.cache import resolve_loadable

    path = resolve_loadable(setting, name, "speaker_encoder", ARCHITECTURE, params)
    return SpeakerEncoder(name, _voice_encoder(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _voice_encoder(path: str, _mtime_ns: int):
    """resemblyzer's VoiceEncoder on ``path``, refused in one line unless the file is a GE2E
    checkpoint of its layout (its loader reads with strict=False, so a foreign state dict would
    leave random weights in place, silently)."""
    import torch

    from imagintalk.pretrained.weights import read_weights

    with warnings.catch_warnings():  # webrtcvad imports pkg_resources
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder

    refuse = "not a resemblyzer GE2E checkpoint"
    state = read_weights(path, refuse)
    got = state.get("model_state") if isinstance(state, dict) else None
    if not isinstance(got, dict):
        raise ArtifactError(path, f"{refuse}: no 'model_state' state dict")
    try:
        net = VoiceEncoder("cpu", verbose=False, weights_fpath=Path(path))
    except RuntimeError as exc:  # a tensor of another shape
        raise ArtifactError(path, f"{refuse}: {str(exc).splitlines()[-1].strip()}") from None
    # the upstream file also keeps GE2E's training-only similarity scale and bias: extra keys are fine
    missing = sorted(k for k, v in net.state_dict().items()
                     if k not in got or torch.as_tensor(got[k]).shape != v.shape)
    if missing:
        raise ArtifactError(path, f"{refuse}: its model_state lacks {', '.join(missing)} of resemblyzer's shapes")
    return net


@functools.lru_cache(maxsize=1)
def default_speaker_encoder() -> SpeakerEncoder:
    """The encoder ``shards.speaker_encoder`` of the current params names (what shards embed with)."""
    from imagintalk.config import load_params

    params = load_params()
    return load_speaker_encoder(params.shards.speaker_encoder, params)


def speaker_embedding(audio: np.ndarray, sr: int = 16000, encoder: SpeakerEncoder | None = None) -> np.ndarray:
    """``encoder``'s embedding of an utterance (default: the shards' encoder)."""
    return (encoder or default_speaker_encoder()).embed(audio, sr)


def speaker_similarity(ref: np.ndarray, gen: np.ndarray, sr: int = 16000,
                       encoder: SpeakerEncoder | None = None) -> float:
    """Cosine similarity of the two utterances' embeddings (default: the shards' encoder)."""
    return (encoder or default_speaker_encoder()).similarity(ref, gen, sr)
