"""Facial-expression model: per-frame probabilities over the emotion vocabulary, from the face.

Input: the 68 face landmarks of every frame in mean-face coordinates (``landmarks.npy`` in each
record, T×136, with ``face_found``; see :mod:`imagintalk.preprocess.expression_features`).

Why landmarks rather than the stored pixels: expression is geometry (mouth corners up or down,
inner brows raised or knit, lids widened or narrowed: the FACS prototypes the corpora act), and
the shards' pixels do not show it all: ``lips.npy`` is a 96×96 mouth crop (no brows, no eyes),
``face.jpg`` a single chip per clip (no time). The landmark track is computed anyway to cut the
mouth crop, is tiny (27 bytes a frame), aligned to the mean face it is free of head pose and
zoom, and ``speak``/serving compute it from a video with the same code. So a new expression model
trains, and labels every clip of every corpus, from stored features: no video is decoded again.

Network: per-frame MLP over the landmark offsets from the mean face, each frame read with the
mean of its 0.5 s window and the mean of the whole clip (``context: clip``), standardised per
coordinate → optional residual temporal convolutions → logits over the vocabulary. The clip mean
is the context an unseen face needs: an expression is a departure from how *this* face rests and
moves, and a face's resting shape varies between people as much as a mild expression moves it.
Measured on unseen SynthTalk speakers (results/README.md, "Expression"), the clip context is what
lifts window accuracy from about 0.78 (the frame's window alone) to about 0.9, and only once the
model has seen enough faces (~100 identities; with 32 it overfits them). Trained with the clip's
corpus label on every frame where the face was seen; clips without a label (LRS2/3, VoxCeleb2)
are skipped by the loss but labelled by the model.

Labelling (:meth:`ExpressionModel.label`): softmax per frame; frames where the face was lost get
probabilities interpolated from the nearest frames that saw it (held at the clip's ends) and are
flagged; a clip that never shows a face gets all-zero probabilities, which the face-style adapter
reads as "emotion unknown" (its learned null). Smoothing over 0.5 s is the face-style adapter's
(``FaceStyleConfig.smooth_s``), for training and inference alike.

The model carries the vocabulary it was trained on; :meth:`check_vocabulary` refuses another one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.emotions import EMOTIONS
from imagintalk.errors import ConfigError
from imagintalk.models.batch import Batch, frame_mask
from imagintalk.models.config import ModelConfig
from imagintalk.models.face_style import smoothing_kernel
from imagintalk.preprocess.expression_features import FEATURE_DIM
from imagintalk.preprocess.mean_face import MEAN_FACE_UNIT

# Where a landmark sits on the mean face (the jaw, absent from dlib's template, on the chin line):
# the network sees offsets from it, centred near zero.
_JAW = torch.stack([torch.linspace(0.0, 1.0, 17), 0.5 + 0.5 * torch.sin(torch.linspace(0, torch.pi, 17))], 1)
_TEMPLATE = torch.cat([_JAW, torch.as_tensor(MEAN_FACE_UNIT, dtype=torch.float32)]).reshape(-1)
FEATURE_SCALE = 20.0   # mean-face units → roughly unit-variance offsets
IGNORE = -1            # target of frames the loss skips (no label, face lost, padding)


@dataclass
class ExpressionLabels:
    probs: Tensor          # B×T×E per-frame probabilities (zeros where padded or never seen)
    interpolated: Tensor   # B×T bool: face lost on this frame, probabilities interpolated


class TemporalBlock(nn.Module):
    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.norm(x) * mask[..., None]
        return x + self.drop(F.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2)))


class ExpressionModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocabulary: Sequence[str] = EMOTIONS):
        super().__init__()
        e = cfg.expression
        self.cfg = e
        self.vocabulary = tuple(vocabulary)
        if len(self.vocabulary) != cfg.vocab.num_emotions:
            raise ConfigError("expression", f"{len(self.vocabulary)} emotions, the model config has "
                                            f"{cfg.vocab.num_emotions}")
        self.register_buffer("template", _TEMPLATE.clone(), persistent=False)
        self.register_buffer("window", smoothing_kernel(cfg.face_style, cfg.vocab.fps), persistent=False)
        n_in = FEATURE_DIM * {"clip": 3, "window": 2, "none": 1}[e.context]
        # per-coordinate standardisation over the seen frames (running statistics at inference)
        self.norm_in = nn.BatchNorm1d(n_in, affine=False)
        self.inp = nn.Sequential(nn.Linear(n_in, e.dim), nn.GELU(), nn.Dropout(e.dropout),
                                 nn.Linear(e.dim, e.dim))
        self.blocks = nn.ModuleList(TemporalBlock(e.dim, e.kernel, e.dropout) for _ in range(e.layers))
        self.head = nn.Sequential(nn.LayerNorm(e.dim), nn.Linear(e.dim, len(self.vocabulary)))

    # -- vocabulary -----------------------------------------------------------------------------
    def check_vocabulary(self, expected: Sequence[str], source: str) -> None:
        """ConfigError naming both vocabularies when ``expected`` (the shards', the generator's)
        is not the one this model was trained on."""
        if tuple(expected) != self.vocabulary:
            raise ConfigError(source, f"the expression model was trained on emotions "
                                      f"[{', '.join(self.vocabulary)}] but this needs [{', '.join(expected)}]")

    # -- network --------------------------------------------------------------------------------
    def logits(self, landmarks: Tensor, found: Tensor) -> Tensor:
        """B×T×136 landmarks (any values where ``found`` is False) → B×T×E logits."""
        found = found.bool()
        x = (landmarks.float() - self.template) * FEATURE_SCALE
        x = torch.where(found[..., None], x, torch.zeros_like(x))
        if self.cfg.context == "clip":
            x = torch.cat([x, self._window_mean(x, found), _clip_mean(x, found)], dim=-1)
        elif self.cfg.context == "window":
            x = torch.cat([self._window_mean(x, found), _clip_mean(x, found)], dim=-1)
        z = torch.zeros_like(x)
        if bool(found.any()):
            z[found] = self.norm_in(x[found])
        h = self.inp(z) * found[..., None]
        for block in self.blocks:
            h = block(h, found)
        return self.head(h)

    def _window_mean(self, x: Tensor, found: Tensor) -> Tensor:
        """Mean of the seen frames' features over the centred 0.5 s window of each frame."""
        n, d = self.window.numel(), x.shape[-1]
        ones = x.new_ones(d, 1, n)
        sums = F.conv1d(x.transpose(1, 2), ones, padding=n // 2, groups=d).transpose(1, 2)
        count = F.conv1d(found.float()[:, None], ones[:1], padding=n // 2).transpose(1, 2)
        return sums / count.clamp_min(1.0)

    def _augment(self, landmarks: Tensor) -> Tensor:
        """Training only: landmark jitter and a per-clip scale/shift (alignment noise)."""
        b = landmarks.shape[0]
        pts = landmarks.float().reshape(b, -1, 68, 2)
        centre = pts.mean(dim=2, keepdim=True)
        scale = 1 + self.cfg.warp * (2 * torch.rand(b, 1, 1, 1, device=pts.device) - 1)
        shift = self.cfg.warp * 0.5 * (2 * torch.rand(b, 1, 1, 2, device=pts.device) - 1)
        pts = centre + (pts - centre) * scale + shift + self.cfg.jitter * torch.randn_like(pts)
        return pts.reshape(landmarks.shape)

    # -- training -------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of every seen frame against its clip's label (unlabelled clips skipped);
        metrics: frame accuracy and the accuracy of 0.5 s windows (mean probabilities)."""
        valid = frame_mask(batch) & batch["face_found"].bool()
        landmarks = self._augment(batch["landmarks"]) if self.training else batch["landmarks"]
        logits = self.logits(landmarks, valid)
        target = batch["emotion"].long()[:, None].expand(-1, logits.shape[1])
        target = torch.where(valid & (target >= 0), target, torch.full_like(target, IGNORE))
        loss = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE,
                               label_smoothing=self.cfg.label_smoothing)
        if not bool((target >= 0).any()):  # no labelled frame: nothing to learn, keep the graph
            loss = logits.sum() * 0.0
        with torch.no_grad():
            probs = logits.softmax(dim=-1)
            metrics = {"loss": float(loss.detach()), **accuracy(probs, batch["emotion"], valid, self.window.numel())}
        return loss, metrics

    # -- labelling ------------------------------------------------------------------------------
    @torch.no_grad()
    def label(self, landmarks: Tensor, found: Tensor, mask: Tensor | None = None) -> ExpressionLabels:
        """Per-frame probabilities B×T×E for clips of B×T×136 landmarks; see the module doc."""
        found = found.bool()
        mask = torch.ones_like(found) if mask is None else mask.bool()
        seen = found & mask
        probs = self.logits(landmarks, seen).softmax(dim=-1)
        probs = interpolate_lost(probs, seen) * mask[..., None]
        return ExpressionLabels(probs=probs, interpolated=mask & ~seen & seen.any(dim=1, keepdim=True))

    def label_batch(self, batch: Batch) -> ExpressionLabels:
        """:meth:`label` on a loader batch (``landmarks``, ``face_found``, frame mask)."""
        return self.label(batch["landmarks"], batch["face_found"], frame_mask(batch))


def _clip_mean(x: Tensor, found: Tensor) -> Tensor:
    """Each clip's mean over its seen frames, repeated on every frame (B×T×D)."""
    count = found.float().sum(dim=1, keepdim=True).clamp_min(1.0)[..., None]
    return ((x * found[..., None]).sum(dim=1, keepdim=True) / count).expand_as(x)


def interpolate_lost(probs: Tensor, seen: Tensor) -> Tensor:
    """Probabilities on unseen frames (B×T) linearly interpolated between the nearest seen frames,
    held beyond the first/last; zeros for a clip with no seen frame."""
    b, t, _ = probs.shape
    idx = torch.arange(t, device=probs.device).expand(b, t)
    prev = torch.where(seen, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    nxt = torch.where(seen, idx, torch.full_like(idx, t)).flip(1).cummin(dim=1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < t
    p = torch.where(has_prev, prev, nxt).clamp(0, t - 1)
    n = torch.where(has_next, nxt, prev).clamp(0, t - 1)
    w = torch.where(has_prev & has_next & (n > p), (idx - p).float() / (n - p).clamp_min(1).float(),
                    torch.zeros_like(idx, dtype=torch.float))
    gather = lambda i: probs.gather(1, i[..., None].expand(-1, -1, probs.shape[-1]))  # noqa: E731
    out = (1 - w)[..., None] * gather(p) + w[..., None] * gather(n)
    out = torch.where(seen[..., None], probs, out)
    return out * seen.any(dim=1)[:, None, None]


def window_means(probs: Tensor, mask: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping ``window``-frame windows: mean probabilities B×W×E over the valid frames
    and which windows hold any (B×W)."""
    b, t, e = probs.shape
    n = -(-t // window)
    pad = n * window - t
    p = F.pad(probs * mask[..., None], (0, 0, 0, pad)).reshape(b, n, window, e).sum(2)
    count = F.pad(mask.float(), (0, pad)).reshape(b, n, window).sum(2)
    return p / count.clamp_min(1)[..., None], count > 0


def accuracy(probs: Tensor, labels: Tensor, mask: Tensor, window: int) -> dict[str, float]:
    """Frame and 0.5 s-window accuracy against clip labels (unlabelled clips left out); the counts
    let callers pool batches exactly (``window_n`` windows, ``frame_n`` frames)."""
    labels = labels.long()
    known = (labels >= 0)[:, None]
    frames = mask & known
    pred = probs.argmax(dim=-1)
    means, has = window_means(probs, mask, window)
    windows = has & known
    wpred = means.argmax(dim=-1)
    n_f, n_w = int(frames.sum()), int(windows.sum())
    return {"frame_acc": float(((pred == labels[:, None]) & frames).sum()) / max(n_f, 1),
            "window_acc": float(((wpred == labels[:, None]) & windows).sum()) / max(n_w, 1),
            "frame_n": float(n_f), "window_n": float(n_w)}


class ExpressionScore:
    """Pooled accuracy of an expression model over labelled loader batches (``evaluate``'s
    ``expression_acc``: 0.5 s windows; ``expression_frame_acc``). Without a model, or without
    any labelled clip, the result is empty."""

    def __init__(self, model: ExpressionModel | None):
        self.model = model
        self.hits = {"window": 0.0, "frame": 0.0}
        self.counts = {"window": 0.0, "frame": 0.0}

    def add(self, batch: Batch) -> None:
        if self.model is None or "landmarks" not in batch:
            return
        dev = next(self.model.parameters()).device
        batch = {k: v.to(dev) for k, v in batch.items() if isinstance(v, Tensor)}
        labels = self.model.label_batch(batch)
        seen = frame_mask(batch) & batch["face_found"].bool()
        r = accuracy(labels.probs, batch["emotion"], seen, self.model.window.numel())
        for k in self.hits:
            self.hits[k] += r[f"{k}_acc"] * r[f"{k}_n"]
            self.counts[k] += r[f"{k}_n"]

    def result(self) -> dict[str, float]:
        if not self.counts["window"]:
            return {}
        return {"expression_acc": self.hits["window"] / self.counts["window"],
                "expression_frame_acc": self.hits["frame"] / self.counts["frame"]}
