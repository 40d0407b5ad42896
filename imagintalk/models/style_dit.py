"""Style-DiT: masked discrete diffusion over the L residual codec levels at 50 Hz.

Input: Linear(concat(sum of the L level embeddings of the (partly masked) tokens, c_lip)). Blocks
use "dual adaLN": LayerNorm → channel scale/shift from (c_id, t) → attention or MLP → a per-frame
temporal scale from (t, c_emo) → channel gate from (c_id, t) → residual. Speaker identity is
global (it modulates channels for the whole clip); emotion varies over time (it scales each frame).
L linear heads predict every level's token at every position.

Training (``loss``): a cosine masking schedule (MaskGIT) — the fraction masked is
γ = cos(π/2·r), r ~ U(0,1), fed to the network as the timestep — with cross-entropy on the masked
tokens only, and classifier-free-guidance dropout: each condition (lip, id, emo) is replaced by
its own learned null embedding per sample with its own probability.

Sampling (``sample``): start fully masked; at each of S steps predict all masked tokens, sample
them, keep the most confident and re-mask the rest so that cos(π/2·s/S) of the tokens stay masked.
Guidance combines one pass with all conditions and one pass per guided condition dropped:
log p = log p_full + Σ_c w_c (log p_full − log p_without_c), with separate weights per condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.models.config import ModelConfig
from imagintalk.models.layers import Attention, FeedForward, add_positions, sinusoidal
from imagintalk.models.unit_bert import force_one_per_row

CONDITIONS = ("lip", "id", "emo")


class DiTBlock(nn.Module):
    """One dual-adaLN block: an attention sub-layer and an MLP sub-layer, each modulated."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = Attention(dim, heads, dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.channel_mod = nn.Linear(dim, 6 * dim)   # (c_id, t) → shift, scale, gate for both sub-layers
        self.temporal_mod = nn.Linear(dim, 2 * dim)  # (c_emo, t) per frame → scale for both sub-layers
        for lin in (self.channel_mod, self.temporal_mod):  # start near identity modulation
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, mask: Tensor, global_cond: Tensor, frame_cond: Tensor) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.channel_mod(F.silu(global_cond))[:, None].chunk(6, dim=-1)
        ts1, ts2 = self.temporal_mod(F.silu(frame_cond)).chunk(2, dim=-1)
        h = self.attn(self.norm1(x) * (1 + sc1) + sh1, mask) * (1 + ts1)
        x = x + g1 * h
        h = self.ff(self.norm2(x) * (1 + sc2) + sh2) * (1 + ts2)
        return x + g2 * h


class StyleDiT(nn.Module):
    def __init__(self, cfg: ModelConfig, lip_dim: int):
        super().__init__()
        self.cfg, v = cfg.style_dit, cfg.vocab
        d = self.cfg.dim
        self.levels, self.vocab_size = v.codec_levels, v.codebook_size
        self.mask_id = v.codebook_size
        self.dim = d
        self.level_embed = nn.Embedding(self.levels * (self.vocab_size + 1), d)
        self.register_buffer("level_offset", torch.arange(self.levels) * (self.vocab_size + 1), persistent=False)
        self.proj_in = nn.Linear(d + lip_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.null_lip = nn.Parameter(torch.randn(lip_dim) * 0.02)
        self.null_id = nn.Parameter(torch.randn(d) * 0.02)
        self.null_emo = nn.Parameter(torch.randn(d) * 0.02)
        # optional additive path of c_id and c_emo into the token stream (zero-initialised: the
        # model starts as without it); the adaLN modulation alone can only scale and shift
        self.cond_in = nn.Linear(d, d) if self.cfg.cond_input else None
        if self.cond_in is not None:
            nn.init.zeros_(self.cond_in.weight)
            nn.init.zeros_(self.cond_in.bias)
        self.blocks = nn.ModuleList(DiTBlock(d, self.cfg.heads, self.cfg.ff_mult, self.cfg.dropout)
                                    for _ in range(self.cfg.layers))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_mod = nn.Linear(d, 2 * d)
        self.heads = nn.Linear(d, self.levels * self.vocab_size)  # L heads in one matmul

    # -- network -------------------------------------------------------------------------------
    def forward(self, codes: Tensor, t: Tensor, mask: Tensor, c_lip: Tensor | None, c_id: Tensor | None,
                c_emo: Tensor | None, keep_lip: Tensor | None = None, keep_id: Tensor | None = None,
                keep_emo: Tensor | None = None) -> Tensor:
        """Logits B×L×N×V for tokens ``codes`` (B×L×N, ``mask_id`` = masked) at mask ratio ``t`` (B).

        A condition that is None, or whose per-sample ``keep_*`` flag is False, is replaced by its
        learned null embedding (classifier-free guidance).
        """
        b, n = mask.shape
        x = self.hidden(codes, t, mask, c_lip, c_id, c_emo, keep_lip, keep_id, keep_emo)
        return self.heads(x).view(b, n, self.levels, self.vocab_size).transpose(1, 2)

    def hidden(self, codes: Tensor, t: Tensor, mask: Tensor, c_lip: Tensor | None, c_id: Tensor | None,
               c_emo: Tensor | None, keep_lip: Tensor | None = None, keep_id: Tensor | None = None,
               keep_emo: Tensor | None = None) -> Tensor:
        """The final B×N×C states that the L heads read (see :meth:`forward`)."""
        b, n = mask.shape
        tokens = torch.where(mask[:, None, :], codes.long(), torch.zeros_like(codes, dtype=torch.long))
        x = self.level_embed(tokens + self.level_offset[None, :, None]).sum(dim=1)          # B×N×C
        lip = self._cond(c_lip, keep_lip, self.null_lip, (b, n, self.null_lip.numel()))
        cid = self._cond(c_id, keep_id, self.null_id, (b, self.dim))
        emo = self._cond(c_emo, keep_emo, self.null_emo, (b, n, self.dim))
        x = add_positions(self.proj_in(torch.cat([x, lip.to(x.dtype)], dim=-1)))
        temb = self.time_mlp(sinusoidal(t.float() * 1000.0, self.dim))
        global_cond, frame_cond = cid + temb, emo + temb[:, None]
        if self.cond_in is not None:
            x = x + self.cond_in(cid[:, None] + emo)
        for blk in self.blocks:
            x = blk(x, mask, global_cond, frame_cond)
        shift, scale = self.final_mod(F.silu(global_cond))[:, None].chunk(2, dim=-1)
        return self.final_norm(x) * (1 + scale) + shift

    def masked_logits(self, x: Tensor, masked: Tensor) -> list[tuple[Tensor, tuple[Tensor, Tensor]]]:
        """Per level, the logits M×V of its masked positions only, with their (batch, position)
        indices. Training scores masked tokens only, and with a large codebook the heads dominate
        a step (8 × 1024 codes at dim 64: 4× the cost of 8 × 256), so unmasked positions, on
        average a third of them under the cosine schedule, are not projected at all."""
        w = self.heads.weight.view(self.levels, self.vocab_size, -1)
        bias = self.heads.bias.view(self.levels, self.vocab_size)
        out = []
        for level in range(self.levels):
            bi, ni = masked[:, level].nonzero(as_tuple=True)
            out.append((F.linear(x[bi, ni], w[level], bias[level]), (bi, ni)))
        return out

    @staticmethod
    def _cond(value: Tensor | None, keep: Tensor | None, null: Tensor, shape: tuple[int, ...]) -> Tensor:
        nulls = null.expand(shape)
        if value is None:
            return nulls
        if keep is None:
            return value
        keep = keep.view(-1, *([1] * (len(shape) - 1)))
        return torch.where(keep, value, nulls)

    # -- training ------------------------------------------------------------------------------
    def loss(self, codes: Tensor, mask: Tensor, c_lip: Tensor, c_id: Tensor, c_emo: Tensor,
             emo_known: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Masked-token cross-entropy under the cosine schedule with per-condition dropout."""
        b, lv, n = codes.shape
        dev = codes.device
        gamma = torch.cos(0.5 * math.pi * torch.rand(b, device=dev)).clamp_min(1.0 / (lv * n))
        valid = mask[:, None, :].expand(b, lv, n)
        u = torch.rand(codes.shape, device=dev)
        masked = force_one_per_row(((u < gamma[:, None, None]) & valid).flatten(1), valid.flatten(1),
                                   -u.flatten(1)).view(b, lv, n)
        target = torch.where(valid, codes.long(), torch.zeros_like(codes, dtype=torch.long))
        inputs = torch.where(masked, self.mask_id, target)
        c = self.cfg
        keep_lip = torch.rand(b, device=dev) >= c.drop_lip
        keep_id = torch.rand(b, device=dev) >= c.drop_id
        keep_emo = torch.rand(b, device=dev) >= c.drop_emo
        if emo_known is not None:
            keep_emo = keep_emo & emo_known
        x = self.hidden(inputs, gamma, mask, c_lip, c_id, c_emo, keep_lip, keep_id, keep_emo)
        ce_sum, correct = x.new_zeros(()), 0
        for level, (logits, (bi, ni)) in enumerate(self.masked_logits(x, masked)):
            t_level = target[bi, level, ni]
            ce_sum = ce_sum + F.cross_entropy(logits, t_level, reduction="sum")
            correct += int((logits.argmax(-1) == t_level).sum())
        count = max(int(masked.sum()), 1)
        loss = ce_sum / count
        return loss, {"loss": float(loss.detach()), "masked_acc": correct / count}

    # -- sampling ------------------------------------------------------------------------------
    def guidance_weights(self, guidance: Mapping[str, float] | None) -> dict[str, float]:
        s = self.cfg.sampler
        weights = {"lip": s.guidance_lip, "id": s.guidance_id, "emo": s.guidance_emo}
        for key, w in (guidance or {}).items():
            if key not in weights:
                raise ValueError(f"unknown guidance condition {key!r} (expected one of {CONDITIONS})")
            weights[key] = float(w)
        return weights

    def _guided_logp(self, codes: Tensor, t: Tensor, mask: Tensor, conds: dict[str, Tensor | None],
                     keep: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
        """One batched forward over the full condition set and each guided condition dropped."""
        guided = [c for c in CONDITIONS if weights[c] != 0.0 and bool(keep[c].any())]
        reps = 1 + len(guided)
        flags = {c: [keep[c]] + [keep[c] & (c != g) for g in guided] for c in CONDITIONS}

        def rep(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.repeat(reps, *([1] * (x.ndim - 1)))

        logits = self(rep(codes), rep(t), rep(mask), rep(conds["lip"]), rep(conds["id"]), rep(conds["emo"]),
                      *(torch.cat(flags[c]) for c in CONDITIONS))
        logp = F.log_softmax(logits.float(), dim=-1)
        if reps == 1:
            return logp
        logp = logp.chunk(reps)
        out = logp[0]
        for g, lp in zip(guided, logp[1:], strict=True):
            out = out + weights[g] * (logp[0] - lp)
        return F.log_softmax(out, dim=-1)

    @torch.no_grad()
    def sample(self, mask: Tensor, c_lip: Tensor | None = None, c_id: Tensor | None = None,
               c_emo: Tensor | None = None, emo_known: Tensor | None = None, steps: int | None = None,
               guidance: Mapping[str, float] | None = None,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               temperature: float | None = None) -> Tensor:
        """Confidence-ordered iterative unmasking in ``steps`` steps → codes B×L×N (0 at padding).

        Conditions left as None are generated from their null embeddings (fully unconditional
        when all three are None). ``generator``: one for the batch, or one per row; with one per
        row each row draws only over its own valid tokens, so a clip's codes do not depend on
        which other clips share its batch or how long they are (batched serving).
        """
        s = self.cfg.sampler
        steps = steps or s.steps
        temperature = s.temperature if temperature is None else temperature
        weights = self.guidance_weights(guidance)
        mask = mask.bool()
        b, n = mask.shape
        dev = mask.device
        keep = {"lip": torch.full((b,), c_lip is not None, device=dev),
                "id": torch.full((b,), c_id is not None, device=dev),
                "emo": torch.full((b,), c_emo is not None, device=dev)}
        if emo_known is not None:
            keep["emo"] = keep["emo"] & emo_known.bool()
        conds = {"lip": c_lip, "id": c_id, "emo": c_emo}
        valid = mask[:, None, :].expand(b, self.levels, n).flatten(1)
        total = valid.sum(dim=1)
        codes = torch.where(valid, self.mask_id, 0)
        size = codes.shape[1]
        for step in range(steps):
            is_masked = (codes == self.mask_id) & valid
            n_masked = is_masked.sum(dim=1)
            if int(n_masked.max()) == 0:
                break
            t = n_masked.float() / total.float()
            logp = self._guided_logp(codes.view(b, self.levels, n), t, mask, conds, keep, weights).flatten(1, 2)
            if temperature > 0:
                # Inverse-CDF sampling: one uniform per token (torch.multinomial draws one per
                # vocabulary entry and dominated the sampler's time on CPU).
                probs = logp.exp() if temperature == 1.0 else torch.softmax(logp / temperature, dim=-1)
                cdf = probs.cumsum(dim=-1)
                u = self._uniform(generator, mask)[..., None] * cdf[..., -1:]
                sampled = torch.searchsorted(cdf, u).squeeze(-1).clamp_max(self.vocab_size - 1)
            else:
                sampled = logp.argmax(-1)
            conf = logp.gather(-1, sampled[..., None]).squeeze(-1)
            frac = (step + 1) / steps
            n_next = torch.floor(total.float() * math.cos(0.5 * math.pi * frac)).long()
            n_next = torch.minimum(n_next, n_masked - 1).clamp_min(0)
            anneal = s.confidence_noise * (1.0 - frac)
            if anneal > 0:
                u = self._uniform(generator, mask)
                conf = conf + anneal * -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))
            score = torch.where(is_masked, conf, torch.full_like(conf, float("inf")))
            order = score.argsort(dim=1)
            ranks = torch.empty_like(order)
            ranks.scatter_(1, order, torch.arange(size, device=dev).expand(b, size))
            remask = ranks < n_next[:, None]
            codes = torch.where(is_masked & ~remask, sampled, codes)
        return codes.view(b, self.levels, n)

    def _uniform(self, generator: torch.Generator | Sequence[torch.Generator] | None, mask: Tensor) -> Tensor:
        """Uniforms B×(L·N) in the sampler's flattened layout: from one generator for the batch, or
        per row from that row's generator over its own L×n_valid tokens (zeros at padding)."""
        b, n = mask.shape
        if generator is None or isinstance(generator, torch.Generator):
            return torch.rand((b, self.levels * n), generator=generator, device=mask.device)
        if len(generator) != b:
            raise ValueError(f"{len(generator)} generators for a batch of {b}")
        out = torch.zeros(b, self.levels, n, device=mask.device)
        for i, (g, valid) in enumerate(zip(generator, mask.sum(dim=1).tolist(), strict=True)):
            out[i, :, :valid] = torch.rand((self.levels, int(valid)), generator=g, device=mask.device)
        return out.flatten(1)
