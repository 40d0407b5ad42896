"""The trainable stages, each an ``nn.Module`` with ``loss(batch) -> (loss, metrics)``.

The training room wraps any stage in the same Ray Train loop without knowing its internals:
build it with :func:`build_stage`, optimise ``[p for p in stage.parameters() if p.requires_grad]``
(frozen upstream parts have ``requires_grad=False`` and stay in eval mode), call ``loss(batch)``.

Which trained parts each stage builds on is declared once, in :mod:`imagintalk.train.graph`.
The style-DiT stage trains the face-style adapter jointly; its c_emo comes from the frozen
expression model's per-frame probabilities over the clip's face landmarks (never from the corpus
label, which only the expression stage learns from). ``StyleDiTConfig.c_lip_source`` picks c_lip from the refined
units (what inference sees, default) or from the ground-truth units (teacher forcing).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from imagintalk.models.batch import Batch, frame_mask, token_mask
from imagintalk.models.codec_decoder import CodecDecoder, decode_batch
from imagintalk.models.config import ModelConfig
from imagintalk.models.error_detector import LipRefiner
from imagintalk.models.expression import ExpressionModel
from imagintalk.models.face_style import FaceStyleAdapter, SpeakerVoices
from imagintalk.models.layers import freeze
from imagintalk.models.lip_aligner import LipAligner
from imagintalk.models.style_dit import StyleDiT
from imagintalk.models.unit_bert import UnitBert
from imagintalk.models.vocoder import NeuralVocoder

STAGES = ("vocoder", "unit_bert", "lip_aligner", "error_detector", "expression", "style_dit")


class StyleStage(nn.Module):
    """Style-DiT stage: frozen refiner → c_lip; frozen expression model → per-frame emotion
    probabilities (c_emo's input); trainable face-style adapter + DiT."""

    def __init__(self, cfg: ModelConfig, refiner: LipRefiner | None = None,
                 face_style: FaceStyleAdapter | None = None, dit: StyleDiT | None = None,
                 expression: ExpressionModel | None = None):
        super().__init__()
        self.source = cfg.style_dit.c_lip_source
        self.refiner = freeze(refiner or LipRefiner(cfg))
        self.expression = freeze(expression or ExpressionModel(cfg))
        self.face_style = face_style or FaceStyleAdapter(cfg)
        self.dit = dit or StyleDiT(cfg, self.refiner.bert.dim)
        self.voice_target, self.voices = cfg.face_style.voice_target, SpeakerVoices()
        self.train()  # the frozen refiner starts in eval mode

    def train(self, mode: bool = True) -> StyleStage:
        super().train(mode)
        self.refiner.eval()
        self.expression.eval()
        return self

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        fmask = frame_mask(batch)
        with torch.no_grad():
            if self.source == "refined":
                ref = self.refiner.refine(batch["lips"], fmask)
                c_lip, mask = ref.c_lip, ref.mask
            else:
                c_lip, mask = self.refiner.teacher_c_lip(batch)
        n = mask.shape[1]
        mask = mask & token_mask(batch)[:, :n]
        emotion = self.expression.label_batch(batch).probs  # the face's, not the corpus label
        voice = batch.get("speaker")
        if voice is not None and self.voice_target == "speaker":
            voice = self.voices(batch.get("keys"), voice)  # the speaker's voice, not the clip's
        style = self.face_style(batch["identity"], batch["face"], emotion, fmask, voice)
        loss, metrics = self.dit.loss(batch["codes"][:, :, :n], mask, c_lip, style.c_id, style.c_emo[:, :n],
                                      style.emo_known)
        aux, aux_metrics = self.face_style.speaker_loss(style, voice)
        total = loss + aux
        return total, {**metrics, **aux_metrics, "dit_loss": metrics["loss"], "loss": float(total.detach())}


class VocoderStage(nn.Module):
    """Vocoder stage: learns on the codec decoder's output, the mel it receives at inference.

    A vocoder trained on ground-truth mels meets quantised codec mels at inference and turns their
    quantisation error into noise; decoding the clip's own codec tokens (frozen codec) before the
    vocoder's loss removes that mismatch. Without a codec (``vocoder.input = "mel"``, or a smoke
    test that supplies none) it learns on the ground-truth mel. The composite uses ``.vocoder``.
    """

    def __init__(self, cfg: ModelConfig, codec: CodecDecoder | None = None, vocoder: nn.Module | None = None):
        super().__init__()
        self.vocab = cfg.vocab
        self.vocoder = vocoder or NeuralVocoder(cfg)
        if codec is None or cfg.vocoder.input != "codec":
            codec = None
        self.codec = freeze(codec) if isinstance(codec, nn.Module) else codec

    def vocoder_input(self, batch: Batch) -> Tensor:
        """The mel the vocoder learns from: the decoded codec tokens, or the ground truth."""
        if self.codec is None:
            return batch["mel"]
        v = self.vocab
        m = v.mels_per_frame // v.units_per_frame
        with torch.no_grad():
            tokens = frame_mask(batch).sum(dim=1) * v.units_per_frame
            mel = decode_batch(self.codec, batch["codes"], tokens, v.n_mels, m)
        return mel[:, :, : batch["mel"].shape[2]]

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        return self.vocoder.loss({**batch, "mel": self.vocoder_input(batch)})


def build_stage(stage: str, cfg: ModelConfig, parts: Mapping[str, nn.Module] | None = None) -> nn.Module:
    """A fresh trainable stage. ``parts`` supplies trained upstream modules by name:
    ``lip_aligner`` and ``unit_bert`` for ``error_detector``; ``refiner`` (a trained LipRefiner)
    and ``expression`` (a trained ExpressionModel) for ``style_dit``; ``codec`` (the shards' codec
    decoder) for ``vocoder``. Missing parts are built fresh, and a vocoder without a codec learns on
    ground-truth mels (smoke tests only)."""
    parts = dict(parts or {})
    if stage == "vocoder":
        return VocoderStage(cfg, codec=parts.get("codec"))
    if stage == "unit_bert":
        return UnitBert(cfg)
    if stage == "lip_aligner":
        return LipAligner(cfg)
    if stage == "error_detector":
        return LipRefiner(cfg, aligner=parts.get("lip_aligner"), bert=parts.get("unit_bert"))
    if stage == "expression":
        return ExpressionModel(cfg)
    if stage == "style_dit":
        return StyleStage(cfg, refiner=parts.get("refiner"), expression=parts.get("expression"))
    raise ValueError(f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")


def trainable_parameters(stage: nn.Module) -> list[nn.Parameter]:
    return [p for p in stage.parameters() if p.requires_grad]
