"""Unit BERT: a masked language model over 50 Hz speech-unit sequences.

Pre-trained on audio-derived units only (far more speech exists without video than with it), it
learns which unit sequences are plausible speech. The error-detector stage later feeds it lip
features as an additive condition (``cond``) so that it re-predicts flagged units from both the
unit context and what the lips show. Keeping the lip path outside this module means pre-training
touches every parameter here and nothing is left untrained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.models.batch import Batch, safe_tokens, token_mask
from imagintalk.models.config import ModelConfig
from imagintalk.models.layers import Encoder, check_nonempty, masked_mean


@dataclass
class BertOutput:
    logits: Tensor  # B×N×K
    hidden: Tensor  # B×N×C (the semantic features; zeros at padding)


def force_one_per_row(selected: Tensor, mask: Tensor, scores: Tensor) -> Tensor:
    """Make sure every sample has at least one selected valid position (its best-scoring one)."""
    empty = ~selected.any(dim=1)
    if bool(empty.any()):
        best = scores.masked_fill(~mask, -1.0).argmax(dim=1)
        forced = torch.zeros_like(selected)
        forced[torch.arange(len(best), device=best.device), best] = True
        selected = selected | (forced & empty[:, None])
    return selected


class UnitBert(nn.Module):
    """Masked LM over units; ``forward(units, mask, cond)`` → logits and hidden states."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.unit_bert
        self.num_units = cfg.vocab.num_units
        self.mask_id = self.num_units
        self.dim = self.cfg.encoder.dim
        self.embed = nn.Embedding(self.num_units + 1, self.dim)
        self.encoder = Encoder(self.cfg.encoder)
        self.head = nn.Linear(self.dim, self.num_units)

    def forward(self, units: Tensor, mask: Tensor, cond: Tensor | None = None) -> BertOutput:
        """``units`` may contain ``mask_id``; ``cond`` (B×N×C) is added to the token embeddings."""
        mask = mask.bool()
        check_nonempty(mask, "unit BERT")
        x = self.embed(torch.where(mask, units.long(), torch.zeros_like(units, dtype=torch.long)))
        if cond is not None:
            x = x + cond
        h = self.encoder(x, mask)
        return BertOutput(logits=self.head(h), hidden=h)

    def mask_units(self, units: Tensor, mask: Tensor,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """BERT corruption: select ``mask_prob`` of the valid positions (at least one per sample);
        of those 80 % become [MASK], 10 % a random unit, 10 % stay. Returns (inputs, selected)."""
        c = self.cfg
        units = safe_tokens(units, mask)
        scores = torch.rand(units.shape, generator=generator, device=units.device)
        selected = force_one_per_row((scores < c.mask_prob) & mask, mask, scores)
        kind = torch.rand(units.shape, generator=generator, device=units.device)
        random_units = torch.randint(0, self.num_units, units.shape, generator=generator, device=units.device)
        inputs = torch.where(selected & (kind < c.mask_token_prob), self.mask_id, units)
        use_random = selected & (kind >= c.mask_token_prob) & (kind < c.mask_token_prob + c.random_token_prob)
        inputs = torch.where(use_random, random_units, inputs)
        return inputs, selected

    def mlm_loss(self, units: Tensor, mask: Tensor, cond: Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Cross-entropy on the selected positions; returns (loss, accuracy)."""
        inputs, selected = self.mask_units(units, mask, generator)
        out = self(inputs, mask, cond)
        target = safe_tokens(units, mask)
        ce = F.cross_entropy(out.logits.transpose(1, 2), target, reduction="none")
        acc = masked_mean((out.logits.argmax(-1) == target).float(), selected)
        return masked_mean(ce, selected), acc

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The unit-BERT stage: MLM over audio-derived units (no video needed)."""
        loss, acc = self.mlm_loss(batch["units"], token_mask(batch))
        return loss, {"loss": float(loss.detach()), "mlm_acc": float(acc)}
