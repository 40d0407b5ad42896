"""``ImaginTalk``: the inference object — mouth crops + face + emotion in, waveform out.

lips → lip aligner → error detector + lip-conditioned unit BERT (refined units, c_lip)
face landmarks → expression model → per-frame emotion probabilities (or a caller's override)
face, identity, emotion → face-style adapter (c_id, c_emo)
(c_lip, c_id, c_emo) → style-DiT sampler → codec tokens → codec decoder → log-mel → vocoder,
or, with a pretrained neural codec (``WaveformCodec``), codec tokens → its decoder → waveform
(no vocoder; the output's mel is then the waveform's log-mel, for callers that read one).

Batched, on CPU or GPU, deterministic for a seed (each clip of a batch draws from its own
generator seeded with the call's seed, over its own tokens, so a clip's speech does not depend on
its batch-mates; the network runs in eval mode). ``save(dir)`` writes the config as JSON and one state dict per part
(plus the codec: a pretrained codec as the record that names its weights, resolved again from the
pretrained cache or the storage root on load), ``load(dir)`` rebuilds it exactly.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from imagintalk.config import Params
from imagintalk.emotions import EMOTIONS
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.models.batch import Batch, frame_mask
from imagintalk.models.codec_decoder import CodecDecoder, ResidualCodebookDecoder, WaveformCodec, decode_batch
from imagintalk.models.config import ModelConfig
from imagintalk.models.error_detector import ErrorDetector, LipRefiner
from imagintalk.models.expression import ExpressionModel
from imagintalk.models.face_style import FaceStyleAdapter
from imagintalk.models.lip_aligner import LipAligner
from imagintalk.models.style_dit import CONDITIONS, StyleDiT
from imagintalk.models.unit_bert import UnitBert
from imagintalk.models.vocoder import LogMel, build_vocoder

FORMAT_VERSION = 1
CONFIG_FILE = "imagintalk.json"


@dataclass
class GenerateOutput:
    waveforms: Tensor  # B×S float32 at ``sample_rate`` (zeros past each length)
    lengths: Tensor    # B valid samples
    units: Tensor      # B×2T refined semantic units
    codes: Tensor      # B×L×2T sampled codec tokens
    mel: Tensor        # B×n_mels×4T decoded log-mel
    sample_rate: int
    emotion: Tensor | None = None               # B×T×E probabilities read from the face (None: given)
    emotion_interpolated: Tensor | None = None  # B×T bool: face lost there, probabilities interpolated


class ImaginTalk(nn.Module):
    def __init__(self, cfg: ModelConfig, codec: CodecDecoder | WaveformCodec, refiner: LipRefiner | None = None,
                 face_style: FaceStyleAdapter | None = None, dit: StyleDiT | None = None,
                 vocoder: nn.Module | None = None, expression: ExpressionModel | None = None):
        super().__init__()
        waveform = isinstance(codec, WaveformCodec)
        if not waveform and not isinstance(codec, CodecDecoder):
            raise TypeError(f"codec {type(codec).__name__} has no decode(codes) or decode_waveform method")
        self.cfg = cfg
        self.refiner = refiner or LipRefiner(cfg)
        self.face_style = face_style or FaceStyleAdapter(cfg)
        self.dit = dit or StyleDiT(cfg, self.refiner.bert.dim)
        # a codec that decodes to a waveform needs no vocoder (none is trained for it)
        self.vocoder = None if waveform else (vocoder or build_vocoder(cfg))
        self.codec = codec  # registered as a submodule when it is one (moves with .to(device))
        # reads the emotion from the face; None (a model saved before the expression stage): the
        # emotion is unknown unless the caller gives one
        self.expression = expression
        if expression is not None:
            expression.check_vocabulary(EMOTIONS, "imagintalk generator")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.inference_mode()
    def face_emotion(self, landmarks: Tensor | None, face_found: Tensor | None,
                     lip_mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """The emotion the face shows: (B×T×E probabilities, B×T interpolated flags) from the
        expression model; unknown labels (B of -1, no flags) without a model or landmarks."""
        if self.expression is None or landmarks is None:
            return torch.full((lip_mask.shape[0],), -1, dtype=torch.long, device=lip_mask.device), None
        landmarks = torch.as_tensor(landmarks, device=lip_mask.device)
        found = (torch.isfinite(landmarks).all(dim=-1) if face_found is None
                 else torch.as_tensor(face_found, device=lip_mask.device).bool())
        labels = self.expression.label(torch.nan_to_num(landmarks), found, lip_mask)
        return labels.probs, labels.interpolated

    @torch.inference_mode()
    def generate(self, lips: Tensor, lip_mask: Tensor | None, identity: Tensor, face: Tensor,
                 emotion: Tensor | None = None, steps: int | None = None,
                 guidance: Mapping[str, float] | None = None, seed: int = 0, rounds: int | None = None,
                 temperature: float | None = None, drop: Sequence[str] = (), landmarks: Tensor | None = None,
                 face_found: Tensor | None = None) -> GenerateOutput:
        """Speech for a batch of clips.

        lips B×T×88×88 float, lip_mask B×T (None = all valid), identity B×128, face B×3×H×W
        (uint8 or [0,1] float). The emotion is read from the face: ``landmarks`` B×T×136 (NaN or
        ``face_found`` False where the face was lost) through the expression model; ``emotion``
        (B labels, <0 unknown, or B×T×E probabilities) overrides it.
        ``guidance`` weights per condition ({"lip", "id", "emo"}); ``drop`` generates without the
        named conditions (ablations: ``drop=("id",)``; all three = unconditional).
        """
        self.eval()
        dev = self.device
        lips = torch.as_tensor(lips, device=dev)  # uint8 or [0,1] float: the aligner scales it
        lip_mask = (torch.ones(lips.shape[:2], dtype=torch.bool, device=dev) if lip_mask is None
                    else torch.as_tensor(lip_mask, device=dev).bool())
        identity, face = (torch.as_tensor(x, device=dev) for x in (identity, face))
        read, flags = (None, None) if emotion is not None else self.face_emotion(landmarks, face_found, lip_mask)
        ref = self.refiner.refine(lips, lip_mask, rounds=rounds)
        out = self._speak(ref.units, ref.c_lip, ref.mask, lip_mask, identity, face,
                          torch.as_tensor(emotion, device=dev) if emotion is not None else read, steps=steps,
                          guidance=guidance, seed=seed, temperature=temperature, drop=drop)
        return _with_emotion(out, read, flags)

    def _speak(self, units: Tensor, c_lip: Tensor, mask: Tensor, lip_mask: Tensor, identity: Tensor, face: Tensor,
               emotion: Tensor, steps: int | None, guidance: Mapping[str, float] | None, seed: int,
               temperature: float | None, drop: Sequence[str]) -> GenerateOutput:
        """c_lip (B×2T×C over ``mask``) + the clip's face conditions → style-DiT → decoder → vocoder."""
        unknown = set(drop) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"unknown condition(s) to drop: {sorted(unknown)}")
        gens = [torch.Generator(device=self.device).manual_seed(int(seed)) for _ in range(mask.shape[0])]
        style = self.face_style(identity, face, emotion, lip_mask)
        codes = self.dit.sample(
            mask, c_lip=None if "lip" in drop else c_lip, c_id=None if "id" in drop else style.c_id,
            c_emo=None if "emo" in drop else style.c_emo, emo_known=style.emo_known, steps=steps,
            guidance=guidance, generator=gens, temperature=temperature,
        )
        wave, lengths, mel = self.decode_codes(codes, mask.sum(dim=1))
        return GenerateOutput(waveforms=wave, lengths=lengths, units=units, codes=codes, mel=mel,
                              sample_rate=self.cfg.vocab.sample_rate)

    @torch.inference_mode()
    def decode_codes(self, codes: Tensor, token_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Codec tokens B×L×N (valid up to ``token_lengths``) → (waveforms B×S, sample lengths B,
        log-mel B×n_mels×(m·N)): the codec decoder and vocoder tail of ``generate``. On a clip's
        ground-truth codes it is the evaluation ladder's ``resynthesis`` rung."""
        v = self.cfg.vocab
        per_token = v.mels_per_frame // v.units_per_frame
        codes, token_lengths = torch.as_tensor(codes, device=self.device), torch.as_tensor(token_lengths,
                                                                                           device=self.device)
        if self.vocoder is None:  # a pretrained codec: its decoder makes the waveform
            wave, lengths = self.codec.decode_waveform(codes, token_lengths, v.sample_rate)
            mel = LogMel(v).to(wave.device)(wave)[:, :, : codes.shape[2] * per_token]
            valid = torch.arange(mel.shape[2], device=mel.device)[None] < (token_lengths * per_token)[:, None]
            return wave.float(), lengths, mel * valid[:, None, :]
        mel = decode_batch(self.codec, codes, token_lengths, v.n_mels, per_token)
        wave, lengths = self.vocoder(mel, token_lengths * per_token)
        return wave.float(), lengths, mel

    @torch.inference_mode()
    def generate_from_units(self, batch: Batch, steps: int | None = None,
                            guidance: Mapping[str, float] | None = None, seed: int = 0,
                            temperature: float | None = None, drop: Sequence[str] = ()) -> GenerateOutput:
        """Speech from a loader batch's ground-truth ``units`` (instead of the lips' predicted ones),
        with the clip's own lips, face, identity and facial expression (never its emotion label):
        c_lip is the refiner's teacher path
        (``LipRefiner.teacher_c_lip``, what the style-DiT sees with ``c_lip_source: teacher``). The
        evaluation ladder's ``oracle_units`` rung: what the style-DiT and decoder make of perfect units."""
        self.eval()
        dev = self.device
        batch = {k: torch.as_tensor(v, device=dev) for k, v in batch.items() if isinstance(v, Tensor)}
        lip_mask = frame_mask(batch)
        c_lip, mask = self.refiner.teacher_c_lip(batch)
        units = torch.where(mask, batch["units"][:, : mask.shape[1]].long(), 0)
        read, flags = self.face_emotion(batch.get("landmarks"), batch.get("face_found"), lip_mask)
        out = self._speak(units, c_lip, mask, lip_mask, batch["identity"], batch["face"], read,
                          steps=steps, guidance=guidance, seed=seed, temperature=temperature, drop=drop)
        return _with_emotion(out, read, flags)

    def generate_batch(self, batch: Batch, **kwargs) -> GenerateOutput:
        """``generate`` on a loader batch (keys lips, lip_mask, identity, face, landmarks,
        face_found). The batch's ``emotion`` labels are never read: the face says the emotion."""
        return self.generate(batch["lips"], frame_mask(batch), batch["identity"], batch["face"],
                             landmarks=batch.get("landmarks"), face_found=batch.get("face_found"), **kwargs)

    # -- persistence ---------------------------------------------------------------------------
    def _parts(self) -> dict[str, nn.Module]:
        parts = {"lip_aligner": self.refiner.aligner, "unit_bert": self.refiner.bert,
                 "error_detector": self.refiner.detector, "face_style": self.face_style, "style_dit": self.dit}
        if self.vocoder is not None and self.cfg.vocoder.kind == "neural":
            parts["vocoder"] = self.vocoder
        if self.expression is not None:
            parts["expression"] = self.expression
        return parts

    def save(self, directory: str | Path) -> Path:
        """Config JSON + one state dict per part + the codec, into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, module in self._parts().items():
            torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, out / f"{name}.pt")
        if isinstance(self.codec, ResidualCodebookDecoder):
            torch.save(self.codec.codebooks.cpu(), out / "codec.pt")
            codec = {"kind": "codebook", "file": "codec.pt", "mels_per_token": self.codec.mels_per_token,
                     "stacked": self.codec.stacked}
        elif hasattr(self.codec, "save") and hasattr(type(self.codec), "load"):
            self.codec.save(out / "codec.npz")
            cls = type(self.codec)
            codec = {"kind": "object", "file": "codec.npz", "class": f"{cls.__module__}:{cls.__qualname__}"}
        else:
            raise TypeError(f"codec {type(self.codec).__name__} cannot be saved (needs save(path) and load(path))")
        meta = {"format": FORMAT_VERSION, "model": self.cfg.model_dump(mode="json"), "codec": codec,
                "parts": sorted(self._parts())}
        if self.expression is not None:
            meta["emotions"] = list(self.expression.vocabulary)
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu",
             params: Params | None = None) -> ImaginTalk:
        """``params``: where a pretrained codec's weights are resolved
        (its cache, storage root and catalogue; default params.yaml's)."""
        src = Path(directory)
        meta_path = src / CONFIG_FILE
        if not meta_path.is_file():
            raise ConfigError(src, f"not an ImaginTalk model directory ({CONFIG_FILE} missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ConfigError(meta_path, f"unsupported format {meta.get('format')!r}")
        cfg = ModelConfig.from_saved(meta["model"])
        # Weights come from the state dicts; do not reach for the original pretrained files.
        build_cfg = cfg.with_updates(lip_aligner={"pretrained_frontend": None, "load_pretrained": False})
        codec = _load_codec(src, meta["codec"], params)
        aligner, bert = LipAligner(build_cfg), UnitBert(build_cfg)
        refiner = LipRefiner(build_cfg, aligner, bert, ErrorDetector(build_cfg, aligner.feature_dim, bert.dim))
        expression = (ExpressionModel(build_cfg, meta.get("emotions", EMOTIONS))
                      if "expression" in meta.get("parts", ()) else None)
        model = cls(cfg, codec, refiner=refiner, expression=expression)
        for name, module in model._parts().items():
            path = src / f"{name}.pt"
            if not path.is_file():
                raise ConfigError(path, "part missing from the model directory")
            try:
                module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except RuntimeError as exc:  # torch lists every mismatch over many lines: keep the first
                first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
                raise ArtifactError(path, "weights do not match the model config saved beside them "
                                          "(a model saved by an older ImaginTalk whose defaults have changed? "
                                          f"retrain it, or load it with the version that saved it): {first}") from None
        return model.to(device).eval()


def _with_emotion(out: GenerateOutput, probs: Tensor | None, flags: Tensor | None) -> GenerateOutput:
    """The output with the emotion read from the face (when it was read, not given)."""
    if probs is not None and probs.ndim == 3:
        out.emotion, out.emotion_interpolated = probs, flags
    return out


def _load_codec(src: Path, spec: dict, params: Params | None = None) -> CodecDecoder | WaveformCodec:
    path = src / spec["file"]
    if spec["kind"] == "codebook":
        return ResidualCodebookDecoder(torch.load(path, map_location="cpu", weights_only=True),
                                       spec["mels_per_token"], stacked=spec.get("stacked", False))
    module_name, _, qualname = spec["class"].partition(":")
    try:
        obj = importlib.import_module(module_name)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(path, f"codec class {spec['class']} not importable") from exc
    if "params" in inspect.signature(obj.load).parameters:  # a pretrained codec resolves its weights
        return obj.load(path, params=params)
    return obj.load(path)


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per part (the big parts are built on the meta device: no memory, any preset)."""
    with torch.device("meta"):
        build_cfg = cfg.with_updates(lip_aligner={"pretrained_frontend": None, "load_pretrained": False},
                                     vocoder={"kind": "neural", "adversarial": False})
        refiner = LipRefiner(build_cfg)
        parts = {"lip_aligner": refiner.aligner, "unit_bert": refiner.bert, "error_detector": refiner.detector,
                 "face_style": FaceStyleAdapter(build_cfg), "style_dit": StyleDiT(build_cfg, refiner.bert.dim),
                 "expression": ExpressionModel(build_cfg)}
    parts["vocoder"] = build_vocoder(build_cfg)  # small; torchaudio's mel filters cannot be built on meta
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}
    counts["total"] = sum(counts.values())
    return counts
