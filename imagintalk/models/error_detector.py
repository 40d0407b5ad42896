"""Error detector and lip-conditioned refinement of the aligner's units → c_lip.

The aligner's argmax units are often wrong where the lips are ambiguous (the visemes of /p b m/
look alike). A per-position binary head over the aligner features and the embedding of the
predicted unit flags likely-wrong units; ``LipRefiner.refine`` masks the flagged positions and
lets the unit BERT, conditioned on the lip features, re-predict them — for a few rounds, since a
corrected neighbour can make the next decision easier. With ``decision: fuse`` a flagged unit
becomes the argmax of the aligner's and the BERT's log-probabilities together: on unseen speakers
the BERT's argmax alone overturned more right units than wrong ones. The BERT's hidden states over the final
units, again conditioned on the lips, are the lip-aware semantic feature c_lip.

Stage ``error_detector`` (``LipRefiner.loss``): the aligner is frozen; the head learns BCE on
"aligner argmax ≠ target unit"; the lip conditioner (and, by default, the BERT) learn to re-predict
the true units at masked wrong (and some random) positions of the aligner's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.models.batch import Batch, frame_mask, safe_tokens, token_mask
from imagintalk.models.config import ModelConfig
from imagintalk.models.layers import Attention, Encoder, add_positions, freeze, masked_mean, zero_padding
from imagintalk.models.lip_aligner import AlignerOutput, LipAligner
from imagintalk.models.unit_bert import UnitBert, force_one_per_row


class LipConditioner(nn.Module):
    """Lip features → an additive condition on the BERT's token embeddings.

    ``add``: a linear map of the time-aligned lip feature at each position. ``cross_attention``:
    each token (embedding + position) attends over the whole lip sequence, for front-ends whose
    features are not exactly aligned with the units.
    """

    def __init__(self, mode: str, lip_dim: int, bert_dim: int, heads: int):
        super().__init__()
        self.mode = mode
        if mode == "add":
            self.proj = nn.Linear(lip_dim, bert_dim)
        else:
            self.q_norm, self.kv_norm = nn.LayerNorm(bert_dim), nn.LayerNorm(lip_dim)
            self.attn = Attention(bert_dim, heads, kv_dim=lip_dim)

    def forward(self, lip_features: Tensor, mask: Tensor, token_embeddings: Tensor) -> Tensor:
        if self.mode == "add":
            return zero_padding(self.proj(lip_features), mask)
        q = self.q_norm(add_positions(token_embeddings))
        kv = self.kv_norm(add_positions(lip_features))
        return zero_padding(self.attn(q, mask, context=kv), mask)


class ErrorDetector(nn.Module):
    """Per-position P(unit wrong) from aligner features + predicted-unit embeddings; owns the
    lip conditioner used for re-prediction (both are trained in the error-detector stage)."""

    def __init__(self, cfg: ModelConfig, lip_dim: int, bert_dim: int):
        super().__init__()
        e = cfg.error_detector.encoder
        self.unit_embed = nn.Embedding(cfg.vocab.num_units, e.dim)
        self.proj_in = nn.Linear(lip_dim + e.dim, e.dim)
        self.encoder = Encoder(e)
        self.head = nn.Linear(e.dim, 1)
        self.conditioner = LipConditioner(cfg.error_detector.conditioning, lip_dim, bert_dim,
                                          cfg.unit_bert.encoder.heads)

    def forward(self, features: Tensor, units: Tensor, mask: Tensor) -> Tensor:
        """Logits (B×N) that each unit is wrong."""
        x = torch.cat([features, self.unit_embed(safe_tokens(units, mask))], dim=-1)
        return self.head(self.encoder(self.proj_in(x), mask)).squeeze(-1)


@dataclass
class RefineOutput:
    units: Tensor          # B×2T refined units
    c_lip: Tensor          # B×2T×C lip-aware semantic features
    mask: Tensor           # B×2T valid positions
    aligner_units: Tensor  # B×2T the aligner's argmax before refinement
    flagged: Tensor        # B×2T positions flagged in any round
    error_prob: Tensor     # B×2T detector probabilities of the first round


class LipRefiner(nn.Module):
    """Aligner (frozen) + unit BERT + error detector: ``refine`` at inference, ``loss`` to train."""

    def __init__(self, cfg: ModelConfig, aligner: LipAligner | None = None, bert: UnitBert | None = None,
                 detector: ErrorDetector | None = None):
        super().__init__()
        self.cfg = cfg.error_detector
        self.aligner = freeze(aligner or LipAligner(cfg))
        self.bert = bert or UnitBert(cfg)
        if not self.cfg.finetune_bert:
            freeze(self.bert)
        self.detector = detector or ErrorDetector(cfg, self.aligner.feature_dim, self.bert.dim)
        self.train()  # frozen parts start in eval mode

    def train(self, mode: bool = True) -> LipRefiner:
        super().train(mode)
        self.aligner.eval()  # frozen: no dropout, fixed statistics
        if not self.cfg.finetune_bert:
            self.bert.eval()
        return self

    def lip_condition(self, al: AlignerOutput, inputs: Tensor) -> Tensor:
        tokens = self.bert.embed(torch.where(al.mask, inputs.long(), 0))
        return self.detector.conditioner(al.features, al.mask, tokens)

    def refine(self, lips: Tensor, lip_mask: Tensor, rounds: int | None = None,
               threshold: float | None = None) -> RefineOutput:
        """Aligner → detect → mask flagged → lip-conditioned BERT re-prediction, ``rounds`` times.

        ``rounds=0`` is the "without error detector" ablation: c_lip is then computed over the
        aligner's raw argmax.
        """
        rounds = self.cfg.rounds if rounds is None else rounds
        threshold = self.cfg.threshold if threshold is None else threshold
        al = self.aligner(lips, lip_mask)
        units = first = al.logits.argmax(-1)
        flagged_any = torch.zeros_like(al.mask)
        first_prob = torch.zeros(al.mask.shape, device=lips.device)
        for r in range(rounds):
            prob = torch.sigmoid(self.detector(al.features, units, al.mask))
            if r == 0:
                first_prob = prob
            flagged = (prob > threshold) & al.mask
            if not bool(flagged.any()):
                break
            flagged_any |= flagged
            inputs = torch.where(flagged, self.bert.mask_id, units)
            out = self.bert(inputs, al.mask, self.lip_condition(al, inputs))
            scores = out.logits.log_softmax(-1)
            if self.cfg.decision == "fuse":
                scores = scores + al.logits.log_softmax(-1)
            units = torch.where(flagged, scores.argmax(-1), units)
        c_lip = self.bert(units, al.mask, self.lip_condition(al, units)).hidden
        return RefineOutput(units=units * al.mask, c_lip=c_lip, mask=al.mask, aligner_units=first * al.mask,
                            flagged=flagged_any, error_prob=first_prob * al.mask)

    def teacher_c_lip(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """c_lip over the ground-truth units (teacher forcing for the style-DiT): (c_lip, mask)."""
        al = self.aligner(batch["lips"], frame_mask(batch))
        mask = al.mask & token_mask(batch)[:, : al.mask.shape[1]]
        units = safe_tokens(batch["units"][:, : mask.shape[1]], mask)
        return self.bert(units, mask, self.lip_condition(al, units)).hidden, mask

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """BCE of the detector on the frozen aligner's mistakes + lip-conditioned correction MLM."""
        c = self.cfg
        with torch.no_grad():
            al = self.aligner(batch["lips"], frame_mask(batch))
        mask = al.mask & token_mask(batch)[:, : al.mask.shape[1]]
        target = safe_tokens(batch["units"][:, : mask.shape[1]], mask)
        pred = al.logits.argmax(-1)
        wrong = (pred != target) & mask
        logits = self.detector(al.features, pred, mask)
        pos_weight = torch.tensor(c.pos_weight, device=logits.device)
        bce = masked_mean(F.binary_cross_entropy_with_logits(logits, wrong.float(), reduction="none",
                                                             pos_weight=pos_weight), mask)
        det_acc = masked_mean(((logits > 0) == wrong).float(), mask)
        metrics = {"bce": float(bce.detach()), "detector_acc": float(det_acc),
                   "aligner_uer": float(masked_mean(wrong.float(), mask))}
        loss = bce
        if c.mlm_weight > 0:
            r = torch.rand(mask.shape, device=mask.device)
            sel = ((wrong & (r < c.error_mask_prob)) | (torch.rand_like(r) < c.random_mask_prob)) & mask
            sel = force_one_per_row(sel, mask, r)
            inputs = torch.where(sel, self.bert.mask_id, pred)
            out = self.bert(inputs, mask, self.lip_condition(al, inputs))
            ce = F.cross_entropy(out.logits.transpose(1, 2), target, reduction="none")
            mlm = masked_mean(ce, sel)
            loss = loss + c.mlm_weight * mlm
            metrics["mlm"] = float(mlm.detach())
            metrics["correction_acc"] = float(masked_mean((out.logits.argmax(-1) == target).float(), sel))
        metrics["loss"] = float(loss.detach())
        return loss, metrics
