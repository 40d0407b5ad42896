"""The oracle ladder and the ablations: the test clips' speech, made by each variant of
imagintalk/eval/catalog.py with the composite's own code paths (no model logic here).

- ``ground_truth``: the clip's audio and mel as recorded in the shard;
- ``resynthesis``: ``ImaginTalk.decode_codes`` on the clip's ground-truth codec tokens;
- ``oracle_units``: ``ImaginTalk.generate_from_units`` (ground-truth units, the clip's own face
  conditions, c_lip by the refiner's teacher path);
- ``no_refinement`` (alias ``no_error_detector``), ``full``, ``no_id``, ``no_emo``:
  ``ImaginTalk.generate`` with ``rounds=0`` / defaults / ``drop=("id",)`` / ``drop=("emo",)``;
- ``label_emotion``: ``ImaginTalk.generate`` with the clip's corpus label as the emotion override
  (the only variant that reads a label: an oracle for the face's emotion, like ``oracle_units``
  for its words).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from imagintalk.config import EvalConfig
from imagintalk.emotions import EMOTIONS
from imagintalk.eval.catalog import canonical

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps video
GENERATE_KW: dict[str, dict] = {"full": {}, "no_refinement": {"rounds": 0}, "no_id": {"drop": ("id",)},
                                "no_emo": {"drop": ("emo",)}, "label_emotion": {}}


@dataclass
class Clip:
    """One test clip's ground truth and what the judges compare against."""

    key: str
    speaker: str
    audio: np.ndarray            # 16 kHz float
    mel: np.ndarray              # n_mels × 4T
    units: np.ndarray            # 2T ground-truth units
    mouth: np.ndarray            # T mouth opening (sync judge)
    transcript: str | None       # as the corpus wrote it; graded where the ASR judge takes it
    emotion: str | None


@dataclass
class Rendered:
    """One variant's output for one clip."""

    audio: np.ndarray
    mel: np.ndarray
    units: np.ndarray | None     # the units the variant spoke from, where it has any


def variants_for(cfg: EvalConfig) -> list[str]:
    """The variants to compute, ladder order then ablations, aliases folded (each computed once)."""
    out: list[str] = []
    for v in (*cfg.ladder, "full", *cfg.ablations):
        v = canonical(v)
        if v not in out:
            out.append(v)
    order = {"ground_truth": 0, "resynthesis": 1, "oracle_units": 2, "no_refinement": 3, "full": 4}
    return sorted(out, key=lambda v: order.get(v, 5))


def clips_from_batch(batch: Mapping, metas: Mapping[str, dict]) -> list[Clip]:
    clips = []
    for b, key in enumerate(batch["keys"]):
        t = int(batch["lengths"][b])
        meta = metas.get(key, {})
        e = int(batch["emotion"][b]) if batch["emotion"].dim() == 1 else -1
        clips.append(Clip(key=key, speaker=str(meta.get("speaker", key.split("/")[-2] if "/" in key else key)),
                          audio=batch["audio"][b, : t * SAMPLES_PER_FRAME].numpy(),
                          mel=batch["mel"][b, :, : 4 * t].float().numpy(),
                          units=batch["units"][b, : 2 * t].numpy(), mouth=batch["mouth"][b, :t].numpy(),
                          transcript=meta.get("transcript") or None, emotion=EMOTIONS[e] if e >= 0 else None))
    return clips


def _labels(batch: Mapping) -> torch.Tensor:
    """The clips' corpus emotion labels (B, -1 where a clip has none: the DiT's null emotion)."""
    e = batch["emotion"]
    return e.long() if e.dim() == 1 else torch.full((e.shape[0],), -1, dtype=torch.long)


def render_batch(net, batch: Mapping, variants: Iterable[str], cfg: EvalConfig) -> dict[str, list[Rendered]]:
    """Every variant's speech for one loader batch (clips cut to their own lengths)."""
    from imagintalk.models.batch import token_mask

    lengths = [int(x) for x in batch["lengths"]]
    kw = {"steps": cfg.steps, "seed": cfg.seed,
          "guidance": {"lip": cfg.guidance_lip, "id": cfg.guidance_id, "emo": cfg.guidance_emo}}
    out: dict[str, list[Rendered]] = {}
    for v in variants:
        if v == "ground_truth":
            out[v] = [Rendered(batch["audio"][b, : t * SAMPLES_PER_FRAME].numpy(),
                               batch["mel"][b, :, : 4 * t].float().numpy(), None) for b, t in enumerate(lengths)]
            continue
        with torch.inference_mode():
            if v == "resynthesis":
                mask = token_mask(batch)
                codes = torch.where(mask[:, None, :], batch["codes"][:, :, : mask.shape[1]], 0)
                wave, wl, mel = net.decode_codes(codes, mask.sum(dim=1))
                units = None
            else:
                # the emotion comes from the clip's face (expression model), never from its label,
                # except in the label_emotion oracle
                extra = {"emotion": _labels(batch)} if v == "label_emotion" else {}
                o = (net.generate_from_units(batch, **kw) if v == "oracle_units" else
                     net.generate_batch(batch, **kw, **GENERATE_KW[v], **extra))
                wave, wl, mel, units = o.waveforms, o.lengths, o.mel, o.units
        out[v] = [Rendered(wave[b, : int(wl[b])].cpu().numpy(), mel[b, :, : 4 * t].float().cpu().numpy(),
                           None if units is None else units[b, : 2 * t].cpu().numpy())
                  for b, t in enumerate(lengths)]
    return out
