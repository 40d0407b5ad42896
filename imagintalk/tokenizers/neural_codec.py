"""A pretrained neural codec as the acoustic tokens (DESIGN.md §2's pluggable codec): the shard
step stores its codes, the style-DiT predicts them, its decoder turns them straight into a
waveform (no vocoder stage).

Selected in params: ``codec.component`` names a catalogue entry of kind ``codec`` whose
architecture is implemented in-tree (``dac-16khz``: imagintalk/models/dac.py), ``codec.levels``
how many of its codebooks the tokens carry (residual VQ orders them coarse to fine, so the first
L are a valid coarser codec). The codebook size and token rate come from the codec: DAC 16 kHz
is 12 × 1024 at 16000/320 = 50 Hz, two codes per 25 fps video frame, as the units and the k-means
codes; a codec at another rate is refused when chosen (:func:`codec_choice`).

``fit_codec`` fits nothing for it: it records the choice as the same ``codec.npz``/``.json``
artifact pair the k-means codec writes (no arrays; the metadata names the component, the weight
file's sha256 and the geometry), so the shard step, the shard index's ``codec_version``, the
register step and the composite carry it exactly as they carry the k-means codec. The weights
themselves never travel with it: whoever loads it (a Ray worker of the shard step, ``speak`` on
another machine) resolves the component from its pretrained cache or the storage root
(imagintalk/pretrained/cache.py) and checks it is the file the codes were made with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.config import Params, load_params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.models.dac import DAC, dac_kwargs, load_dac
from imagintalk.tokenizers.artifact import content_version, json_path, load_artifact, save_artifact

KIND = "pretrained_codec"
DAC_ARCHITECTURE = "imagintalk.models.dac.DAC"   # a catalogue entry's architecture this module can build
TOKENS_PER_FRAME = 2                             # 50 Hz tokens per 25 fps video frame (DESIGN.md §2)
GEOMETRY = ("n_codebooks", "codebook_size", "sample_rate", "hop_length")
# what the artifact records of where the weights came from: not part of its version (the sha256 is)
_SOURCE_FIELDS = ("kind", "url", "filename", "architecture", "config", "licence")


@dataclass(frozen=True)
class CodecChoice:
    """What ``codec.component`` + ``codec.levels`` select, known from the catalogue alone."""

    name: str
    levels: int
    n_codebooks: int
    codebook_size: int
    sample_rate: int
    hop_length: int

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop_length


def codec_choice(params: Params) -> CodecChoice | None:
    """The pretrained codec params select (None: the k-means codec). ConfigError when the name is
    no codec, has no in-tree architecture, makes codes at another rate than the tokens', or has
    fewer codebooks than ``codec.levels``."""
    from imagintalk.pretrained import catalogue

    name = params.codec.component
    if name is None:
        return None
    known = catalogue(params)
    usable = ", ".join(n for n, c in known.items() if c.kind == "codec" and c.architecture.startswith(DAC_ARCHITECTURE))
    comp = known.get(name)
    if comp is None or comp.kind != "codec":
        what = "not a pretrained component" if comp is None else f"a {comp.kind}"
        raise ConfigError("codec.component", f"{name} is {what}, not a codec (codecs: {usable})")
    if not comp.architecture.startswith(DAC_ARCHITECTURE):
        raise ConfigError("codec.component", f"{name} is a {comp.architecture} codec, which has no in-tree "
                                             f"implementation (usable codecs: {usable})")
    kw = dac_kwargs(comp.config)
    choice = CodecChoice(name, params.codec.levels, int(kw["n_codebooks"]), int(kw["codebook_size"]),
                         int(kw["sample_rate"]), int(np.prod(kw["encoder_rates"])))
    want = params.media.fps * TOKENS_PER_FRAME
    if choice.frame_rate_hz != want:
        raise ConfigError("codec.component", f"{name} makes {choice.frame_rate_hz:g} codes/s (sample rate "
                                             f"{choice.sample_rate} / hop {choice.hop_length}); the tokens are "
                                             f"{want} Hz ({TOKENS_PER_FRAME} per video frame at media.fps)")
    if choice.levels > choice.n_codebooks:
        raise ConfigError("codec.levels", f"{choice.levels} levels, but {name} has {choice.n_codebooks} codebooks")
    return choice


def codec_vocabulary(params: Params) -> tuple[int, int]:
    """(levels, codebook size) of the tokens params select: the model's codec vocabulary."""
    choice = codec_choice(params)
    if choice is None:
        return params.codec.levels, params.codec.codebook_size
    return choice.levels, choice.codebook_size


def _geometry(dac: DAC) -> dict[str, int]:
    return {"n_codebooks": dac.n_codebooks, "codebook_size": dac.codebook_size, "sample_rate": dac.sample_rate,
            "hop_length": dac.hop_length}


def _check_geometry(dac: DAC, expected: dict[str, Any], path: Path, what: str) -> None:
    found = _geometry(dac)
    diff = [k for k in GEOMETRY if int(expected[k]) != found[k]]
    if diff:
        raise ArtifactError(path, "its metadata says " + ", ".join(f"{k} {found[k]}" for k in diff) + f"; {what} "
                                  "says " + ", ".join(f"{k} {expected[k]}" for k in diff))


def _weights_sha256(name: str, path: Path, params: Params) -> str:
    """The hash ``resolve`` verified the file with (the catalogue's, else the first pull's record)."""
    from imagintalk import storage
    from imagintalk.pretrained import component
    from imagintalk.pretrained.cache import recorded_sha256

    return component(name, params).sha256 or recorded_sha256(path) or storage.sha256_file(path)


class NeuralCodec(nn.Module):
    """A pretrained codec's generator with the artifact that names it. A submodule of the
    composite model (it moves with ``.to(device)``); never trained (frozen, eval mode)."""

    def __init__(self, dac: DAC, meta: dict[str, Any], version: str = ""):
        super().__init__()
        self.dac = dac.eval().requires_grad_(False)
        self.meta, self.version = meta, version

    def train(self, mode: bool = True) -> NeuralCodec:
        super().train(mode)
        self.dac.eval()  # frozen: inside a training stage too
        return self

    @property
    def levels(self) -> int:
        return int(self.meta["levels"])

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def frame_rate_hz(self) -> float:
        return self.dac.sample_rate / self.dac.hop_length

    @classmethod
    def create(cls, params: Params) -> NeuralCodec:
        """``fit_codec`` for a pretrained codec: resolve and load the chosen weights, check they are
        the catalogue's geometry, and record them (name, sha256, geometry, levels)."""
        from imagintalk.pretrained import component, resolve

        choice = codec_choice(params)
        if choice is None:
            raise ConfigError("codec.component", "no pretrained codec selected (the k-means codec is fitted instead)")
        path = resolve(choice.name, params=params)
        dac = load_dac(path)
        _check_geometry(dac, asdict(choice), path, f"the catalogue entry {choice.name}")
        comp = component(choice.name, params)
        meta = {
            "kind": KIND, "architecture": DAC_ARCHITECTURE, "levels": choice.levels, **_geometry(dac),
            "frame_rate_hz": choice.frame_rate_hz, "dac_kwargs": dac.kwargs(),
            "weights_sha256": _weights_sha256(choice.name, path, params),
            "weights_source": {"component": choice.name, **{k: getattr(comp, k) for k in _SOURCE_FIELDS}},
        }
        return cls(dac, meta, content_version({}, meta))

    def save(self, path: str | Path) -> Path:
        """The artifact pair (``.npz`` without arrays + ``.json``): a reference, not the weights."""
        save_artifact(path, {}, self.meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, params: Params | None = None) -> NeuralCodec:
        """The codec an artifact names, its weights resolved by ``params`` (default params.yaml's:
        the cache, else the storage root) and checked against the recorded sha256."""
        from imagintalk.pretrained import resolve, with_component

        arrays, meta = load_artifact(path)
        if meta.get("kind") != KIND:
            raise ArtifactError(path, f"not a pretrained-codec artifact (kind {meta.get('kind')!r})")
        source = meta["weights_source"]
        name = source["component"]
        params = with_component(params if params is not None else load_params(), name, source)
        weights = resolve(name, params=params)
        sha = _weights_sha256(name, weights, params)
        if sha != meta["weights_sha256"]:
            raise ArtifactError(weights, f"{name}'s weights (sha256 {sha[:12]}) are not the file the codes were made "
                                         f"with ({meta['weights_sha256'][:12]}); pull that file: imagintalk models "
                                         f"pull {name} --from PATH|URL")
        dac = load_dac(weights)
        _check_geometry(dac, meta, weights, f"the codec artifact {path}")
        return cls(dac, {k: v for k, v in meta.items() if k != "version"}, meta["version"])

    @torch.inference_mode()
    def encode_clip(self, audio: np.ndarray, mel: np.ndarray | None, sample_rate: int) -> np.ndarray:
        """int16 (L, N) codes of a clip's waveform at ``sample_rate``, N = whole tokens in it (for
        T·640 samples at 16 kHz, 2T: the same count the k-means codec gives for its 4T mel frames).
        The mel is not read: the codec quantises the waveform itself."""
        x = torch.as_tensor(np.asarray(audio, np.float32).reshape(-1))
        n = int(len(x) * self.frame_rate_hz) // sample_rate
        if n == 0:
            return np.zeros((self.levels, 0), np.int16)
        if sample_rate != self.dac.sample_rate:
            import torchaudio

            x = torchaudio.functional.resample(x, sample_rate, self.dac.sample_rate)
        want = n * self.dac.hop_length
        x = F.pad(x[:want], (0, max(0, want - len(x))))
        dev = next(self.dac.parameters()).device
        codes = self.dac.encode(x.to(dev)[None, None], self.levels)[0, :, :n]
        return codes.cpu().numpy().astype(np.int16)

    @torch.inference_mode()
    def decode_waveform(self, codes: Tensor, token_lengths: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
        """Codes B×L×N (valid up to ``token_lengths``) → (waveforms B×S at ``sample_rate``, zero past
        each length; sample lengths B). Each clip is decoded over its own tokens only, so what it
        sounds like does not depend on how long its batch-mates are."""
        per_token = int(round(sample_rate / self.frame_rate_hz))
        b, _, n = codes.shape
        out = torch.zeros(b, n * per_token, device=codes.device)
        for i, length in enumerate(torch.as_tensor(token_lengths).tolist()):
            if length <= 0:
                continue
            wave = self.dac.decode(codes[i:i + 1, :, :length].long().to(out.device))[0, 0]
            if sample_rate != self.dac.sample_rate:
                import torchaudio

                wave = torchaudio.functional.resample(wave, self.dac.sample_rate, sample_rate)
            m = min(len(wave), length * per_token)  # DAC's odd rates give a few samples short of N·hop
            out[i, :m] = wave[:m]
        return out, torch.as_tensor(token_lengths, device=codes.device) * per_token


def artifact_kind(path: str | Path) -> str | None:
    """The ``kind`` recorded in a tokenizer artifact's metadata (None when it cannot be read)."""
    try:
        return json.loads(json_path(path).read_text()).get("kind")
    except (OSError, ValueError):
        return None
