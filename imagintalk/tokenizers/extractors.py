"""Frame features at 50 Hz (2 per video frame) for the unit tokenizer, behind one interface.

- ``mfcc``: 13 MFCC + deltas + delta-deltas (39-d), HuBERT's first-iteration k-means targets;
- ``logmel``: the 80-d log-mel;
- ``hubert``: a transformer layer of a HuBERT / WavLM / wav2vec 2.0 checkpoint (torchaudio models;
  nothing is downloaded here): a local file, or a pretrained component named in the catalogue
  (``hubert-base-ls960``), resolved from the cache or the storage root (imagintalk/pretrained/), so
  every Ray worker finds the same verified file without a path that must exist on each of them.

Checkpoint files (``torch.save``) are one of:
1. ``{"arch": "hubert"|"wav2vec2"|"wavlm", "config": {<torchaudio factory kwargs>}, "state_dict": ...}``
   — self-describing; ``config`` goes to ``torchaudio.models.wav2vec2_model`` (or ``wavlm_model``);
2. ``{"factory": "hubert_base", "state_dict": ...}`` — a named ``torchaudio.models`` factory;
3. a bare state_dict of such a model (e.g. ``torchaudio.pipelines.HUBERT_BASE.get_model()``, the
   upstream files of the catalogue), built with the component's ``torchaudio.models`` builder when
   it was named, else matched against the base/large factories by loading it strictly.
A ``HuBERTPretrainModel`` state_dict (keys under ``wav2vec2.``) is accepted in all three forms.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imagintalk.config import AudioFeatureConfig, Params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.features.audio import deltas, frames_50hz, log_mel, mfcc
from imagintalk.tokenizers.artifact import file_sha256

# A 16 kHz wav2vec 2.0-family conv stack: stride 320 (20 ms), receptive field 400 samples. Padding
# (400 - 320) / 2 on each side centres output frame j on the middle of the 20 ms slot j, so
# T·640 samples give 2T frames, like the MFCC path.
_W2V_STRIDE, _W2V_FIELD = 320, 400
_FACTORIES = ("hubert_base", "wavlm_base", "hubert_large", "wavlm_large", "wav2vec2_large_lv60k",
              "wav2vec2_large", "hubert_xlarge")
# builders a catalogue entry may name (``torchaudio.models.<builder>``) for a bare state_dict
_BUILDERS = frozenset(_FACTORIES) | {"wav2vec2_base", "wav2vec2_model", "wavlm_model"}
_BUILDER_MODULE = "torchaudio.models."


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A checkpoint file, with the builder of the pretrained component it is when it was named."""

    path: Path
    name: str | None = None
    builder: str | None = None
    builder_config: dict[str, Any] = field(default_factory=dict)


def resolve_checkpoint(value: str, params: Params | None = None) -> ResolvedCheckpoint:
    """``tokenizer.checkpoint``: a pretrained component's name (a unit extractor of the catalogue,
    fetched from the cache or the storage root) or a local path."""
    from imagintalk.config import load_params
    from imagintalk.pretrained import catalogue, resolve

    params = params if params is not None else load_params()
    known = catalogue(params)
    comp = known.get(value)
    if comp is None:
        if not Path(value).expanduser().exists() and "/" not in value and os.sep not in value \
                and not Path(value).suffix:
            extractors = ", ".join(n for n, c in known.items() if c.kind == "unit_extractor")
            raise ConfigError(value, f"tokenizer.checkpoint is neither a file nor a pretrained component "
                                     f"(unit extractors: {extractors})")
        return ResolvedCheckpoint(Path(value).expanduser())
    if comp.kind != "unit_extractor":
        raise ConfigError(value, f"tokenizer.checkpoint names a {comp.kind}, not a unit_extractor")
    if not comp.architecture.startswith(_BUILDER_MODULE) or \
            comp.architecture.removeprefix(_BUILDER_MODULE) not in _BUILDERS:
        raise ConfigError(value, f"architecture {comp.architecture!r} is not a torchaudio wav2vec 2.0-family "
                                 f"builder ({', '.join(sorted(_BUILDER_MODULE + b for b in _BUILDERS))})")
    return ResolvedCheckpoint(resolve(value, params=params), value,
                              comp.architecture.removeprefix(_BUILDER_MODULE), dict(comp.config))


class FeatureExtractor(Protocol):
    name: str

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """float32 (D, N // 2) for N = len(audio) // hop: two frames per video frame."""
        ...


class MfccExtractor:
    name = "mfcc"

    def __init__(self, audio_cfg: AudioFeatureConfig):
        self.cfg = audio_cfg

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        c = mfcc(audio, self.cfg)
        d = deltas(c)
        return frames_50hz(np.concatenate([c, d, deltas(d)], axis=0))


class LogMelExtractor:
    name = "logmel"

    def __init__(self, audio_cfg: AudioFeatureConfig):
        self.cfg = audio_cfg

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return frames_50hz(log_mel(audio, self.cfg))


class HubertExtractor:
    """Layer ``layer`` (1-based; None = last) of a wav2vec 2.0-family checkpoint (a local path, or
    one resolved from a component name by :func:`resolve_checkpoint`)."""

    name = "hubert"

    def __init__(self, checkpoint: str | Path | ResolvedCheckpoint, audio_cfg: AudioFeatureConfig,
                 layer: int | None = None):
        ckpt = checkpoint if isinstance(checkpoint, ResolvedCheckpoint) else ResolvedCheckpoint(Path(checkpoint))
        self.checkpoint = str(ckpt.path)
        self.cfg = audio_cfg
        self.model = load_ssl_checkpoint(self.checkpoint, ckpt.builder, ckpt.builder_config)
        n_layers = len(self.model.encoder.transformer.layers)
        if layer is not None and not 1 <= layer <= n_layers:
            raise ConfigError(self.checkpoint, f"layer {layer} out of range 1..{n_layers}")
        self.layer = layer or n_layers

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import torch

        n_out = len(audio) // self.cfg.hop_length // 2
        if n_out == 0:
            return np.zeros((self.model.encoder.feature_projection.projection.out_features, 0), np.float32)
        pad = (_W2V_FIELD - _W2V_STRIDE) // 2
        x = np.pad(np.asarray(audio, np.float32)[: n_out * 2 * self.cfg.hop_length], (pad, pad))
        with torch.inference_mode():
            feats, _ = self.model.extract_features(torch.from_numpy(x)[None], num_layers=self.layer)
        f = feats[-1][0].numpy().T.astype(np.float32)  # (D, frames)
        if f.shape[1] < n_out:  # a conv stack with another stride: hold the last frame
            f = np.concatenate([f, np.repeat(f[:, -1:], n_out - f.shape[1], axis=1)], axis=1)
        return f[:, :n_out]


def make_extractor(name: str, audio_cfg: AudioFeatureConfig, checkpoint: str | ResolvedCheckpoint | None = None,
                   layer: int | None = None) -> FeatureExtractor:
    if name == "mfcc":
        return MfccExtractor(audio_cfg)
    if name == "logmel":
        return LogMelExtractor(audio_cfg)
    if name == "hubert":
        if not checkpoint:
            raise ConfigError("tokenizer.checkpoint", "hubert features need a local checkpoint path or a "
                                                      "pretrained component name")
        return HubertExtractor(checkpoint, audio_cfg, layer)
    raise ConfigError("tokenizer.features", f"unknown feature extractor {name!r} (mfcc, logmel, hubert)")


def load_ssl_checkpoint(path: str | Path, builder: str | None = None, builder_config: dict[str, Any] | None = None):
    """A torchaudio Wav2Vec2Model in eval mode from one of the checkpoint forms (module docstring);
    ``builder`` (a ``torchaudio.models`` function) and its keyword arguments build the model of a
    bare state_dict. Cached per process by path and content, so Ray workers load it once and a
    replaced file is not served from the cache."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(p, "checkpoint file does not exist")
    if builder is not None and builder not in _BUILDERS:
        raise ArtifactError(p, f"unknown torchaudio builder {builder!r}")
    return _load_ssl_checkpoint(str(p.resolve()), file_sha256(p), builder,
                                json.dumps(builder_config or {}, sort_keys=True))


@functools.lru_cache(maxsize=2)
def _load_ssl_checkpoint(path: str, sha256: str, builder: str | None = None, builder_config: str = "{}"):
    import torch
    import torchaudio

    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for a bad file
        raise ArtifactError(p, f"not a torch checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise ArtifactError(p, "checkpoint must be a dict (state_dict or {config, state_dict})")
    models = torchaudio.models
    if "state_dict" in obj:
        state = _strip_pretrain_prefix(obj["state_dict"])
        if "config" in obj:
            arch = obj.get("arch", "hubert")
            factory = models.wavlm_model if arch == "wavlm" else models.wav2vec2_model
            model = _build(p, lambda: factory(**obj["config"]), state)
        elif "factory" in obj:
            name = obj["factory"]
            if name not in _FACTORIES:
                raise ArtifactError(p, f"unknown torchaudio factory {name!r}")
            model = _build(p, getattr(models, name), state)
        else:
            model = _from_builder(p, state, builder, builder_config)
    else:
        model = _from_builder(p, _strip_pretrain_prefix(obj), builder, builder_config)
    return model.eval()


def _from_builder(path: Path, state: dict[str, Any], builder: str | None, builder_config: str):
    """A bare state_dict: the named component's builder, else the factory whose shapes fit."""
    if builder is None:
        return _match_factory(path, state)
    import torchaudio

    kwargs = json.loads(builder_config)
    return _build(path, lambda: getattr(torchaudio.models, builder)(**kwargs), state)


def _strip_pretrain_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """HuBERTPretrainModel keeps the encoder under ``wav2vec2.``; the rest is training-only."""
    if any(k.startswith("wav2vec2.") for k in state):
        return {k.removeprefix("wav2vec2."): v for k, v in state.items() if k.startswith("wav2vec2.")}
    return dict(state)


def _build(path: Path, factory, state: dict[str, Any]):
    try:
        model = factory()
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise ArtifactError(path, f"state_dict does not fit the model ({str(exc).splitlines()[0][:120]})") from exc
    return model


def _match_factory(path: Path, state: dict[str, Any]):
    import torchaudio

    proj = state.get("encoder.feature_projection.projection.weight")
    layers = {k.split(".")[3] for k in state if k.startswith("encoder.transformer.layers.")}
    if proj is None or not layers:
        raise ArtifactError(path, "not a wav2vec 2.0 / HuBERT / WavLM state_dict")
    dim, n_layers = int(proj.shape[0]), len(layers)
    dims = {"base": (768, 12), "large": (1024, 24), "xlarge": (1280, 48)}
    wavlm = any("rel_attn_embed" in k for k in state)
    for name in _FACTORIES:
        size = name.split("_")[1]
        if dims.get(size) != (dim, n_layers) or name.startswith("wavlm") != wavlm:
            continue
        try:
            return _build(path, getattr(torchaudio.models, name), state)
        except ArtifactError:
            continue
    raise ArtifactError(path, f"state_dict (dim {dim}, {n_layers} layers) matches no torchaudio factory; "
                            "save it as {'arch', 'config', 'state_dict'}")
