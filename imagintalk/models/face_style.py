"""Face-style adapter: who is speaking (c_id) and how they feel over time (c_emo).

- c_id, by default (``id_source: voice``, below): a linear map of the voice the face implies, a
  GE2E embedding predicted from the face-identity descriptor. Or (``id_source: face``) MLP(concat(
  face-identity descriptor, trainable face-crop CNN)), learnt end to end: the dlib descriptor
  (ArcFace-like, fixed) says who the face is; the trainable encoder (FaceNet-like) can pick up what
  the descriptor was trained to ignore but the voice correlates with (age, build, expression).
- c_emo = embedding of the per-frame emotion (a label broadcast over the clip, or per-frame
  probabilities), smoothed over 0.5 s by a fixed box/Gaussian window — emotion in speech drifts
  slowly, so frame-level jitter from an expression classifier should not reach the prosody — and
  upsampled to the 50 Hz token rate. ``emotion_temperature`` < 1 sharpens the smoothed
  probabilities first (0: each window's most likely emotion).

The adapter is trained end to end with the style-DiT, plus one auxiliary loss (as the paper's
follow-up) toward the speaker's GE2E embedding (from ``speaker.npy`` in the records; the speaker's
running mean by default, ``voice_target``): on the face path c_id, through a linear projection
that serves only that loss, is pulled (L1) toward it; on the voice path it is the voice MLP's
target. Inference never uses it.

``id_source: voice`` routes c_id through the voice instead (a bottleneck): a small MLP predicts
the GE2E embedding from the face-identity descriptor alone (trained only by the L1 loss above), and
c_id is a linear map of that unit-norm embedding. During training each clip's DiT reads, with
probability ``voice_teacher``, the speaker's voice in place of the prediction (``voice_target``:
the running mean of the speaker's clip embeddings, :class:`SpeakerVoices`, or the clip's own), so the
DiT learns "this voice embedding → this voice" over every training speaker, and the face → voice
map is a separate regression that carries to a new face as far as the face predicts the voice.
Why it is the default: with c_id learnt end to end from 104 faces the DiT learns the faces, and on
unseen faces c_id carried almost nothing (the fifth quality run: ``no_id`` as close to the real
voice as ``full``). On validation speakers the bottleneck's voice is closer to the real one and
further from ``no_id`` (results/README.md, "Voice from the face, again").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagintalk.models.batch import emotion_frames, face_float, upsample_mask
from imagintalk.models.config import FaceStyleConfig, ModelConfig


class FaceEncoder(nn.Module):
    """A small strided CNN over the aligned face crop → one vector."""

    def __init__(self, widths: tuple[int, ...], dim: int):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU(),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU()]
            cin = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(cin, dim)

    def forward(self, face: Tensor) -> Tensor:
        return self.out(self.body(face))


def smoothing_kernel(cfg: FaceStyleConfig, fps: int) -> Tensor:
    """Odd-length window spanning ``smooth_s`` seconds (0.5 s at 25 fps → 13 frames), sum 1."""
    n = max(1, round(cfg.smooth_s * fps))
    n += 1 - n % 2
    if cfg.smoothing == "box":
        k = torch.ones(n)
    else:
        x = torch.arange(n) - n // 2
        k = torch.exp(-0.5 * (x / (n / 4.0)) ** 2)
    return k / k.sum()


def sharpen(probs: Tensor, temperature: float) -> Tensor:
    """Probabilities B×T×E raised to 1/``temperature`` and renormalised; 0 = one-hot of the most
    likely class. All-zero rows (padding, a clip without a face) stay zero."""
    valid = probs.sum(dim=-1, keepdim=True) > 0
    if temperature == 0.0:
        out = F.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype)
    else:
        out = probs.clamp_min(1e-12) ** (1.0 / temperature)
        out = out / out.sum(dim=-1, keepdim=True)
    return out * valid


class SpeakerVoices:
    """Each speaker's voice as the running mean of the unit GE2E embeddings of its training clips
    seen so far (``face_style.voice_target: speaker``), keyed by ``{corpus}/{speaker}`` from the
    sample keys ``{corpus}/{speaker}/{clip}``. The voice teacher and the speaker loss then use the
    speaker's voice rather than the clip's own embedding, which also carries the clip's emotion.
    Training-only state: never saved, rebuilt within the first pass over the data."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}

    def __call__(self, keys: list[str] | None, embeddings: Tensor) -> Tensor:
        """B×D unit-norm speaker voices for the clips ``keys`` with embeddings B×D: the batch's
        clips are added first, so clips of one speaker in one batch get the same voice; a key
        without a speaker part keeps its own embedding."""
        unit = F.normalize(embeddings.detach().float(), dim=-1)
        if keys is None or len(keys) != unit.shape[0]:
            return unit.to(embeddings.dtype)
        speakers = [f"{p[0]}/{p[1]}" if len(p := str(key).split("/")) == 3 else None for key in keys]
        for spk, e in zip(speakers, unit, strict=True):
            if spk is not None:
                self.sums[spk] = e.clone() if spk not in self.sums else self.sums[spk] + e
        out = [e if spk is None else self.sums[spk] for spk, e in zip(speakers, unit, strict=True)]
        return F.normalize(torch.stack(out), dim=-1).to(embeddings.dtype)


@dataclass
class StyleOutput:
    c_id: Tensor       # B×C
    c_emo: Tensor      # B×2T×C at 50 Hz (zeros at padding)
    emo_known: Tensor  # B bool: False → the DiT uses its null emotion
    voice: Tensor | None = None  # B×D: the voice bottleneck's GE2E prediction (id_source "voice")


class FaceStyleAdapter(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        f, v = cfg.face_style, cfg.vocab
        self.vocab = v
        self.emo_embed = nn.Embedding(v.num_emotions, f.dim)
        self.id_source, self.voice_teacher = f.id_source, f.voice_teacher
        # each identity path builds only its own parts (a part no loss reaches would train nothing
        # and still be saved and loaded)
        if f.id_source == "face":
            self.face_encoder = FaceEncoder(f.face_channels, f.dim)
            self.id_mlp = nn.Sequential(nn.Linear(v.identity_dim + f.dim, f.dim), nn.SiLU(), nn.Dropout(f.dropout),
                                        nn.Linear(f.dim, f.dim))
            self.speaker_proj = nn.Linear(f.dim, v.speaker_dim)
        else:
            # standardised input: the descriptor's coordinates are ~0.09 apart, and unscaled the MLP
            # learns the voice far slower (validation cosine 0.83 vs 0.86 after 750 steps)
            self.voice_pred = nn.Sequential(nn.BatchNorm1d(v.identity_dim, affine=False),
                                            nn.Linear(v.identity_dim, f.dim), nn.SiLU(), nn.Dropout(f.dropout),
                                            nn.Linear(f.dim, v.speaker_dim))
            self.voice_in = nn.Linear(v.speaker_dim, f.dim)
        self.speaker_weight, self.emotion_temperature = f.speaker_weight, f.emotion_temperature
        self.register_buffer("kernel", smoothing_kernel(f, v.fps), persistent=False)

    def identity_style(self, identity: Tensor, face: Tensor, speaker: Tensor | None = None
                       ) -> tuple[Tensor, Tensor | None]:
        """(c_id B×C, the voice bottleneck's predicted GE2E embedding B×D or None). ``speaker`` (the
        ground-truth audio's embedding, training only) is what the bottleneck's DiT reads in place
        of the face's prediction, for a random ``voice_teacher`` share of the clips."""
        if self.id_source == "voice":
            norm, single = self.voice_pred[0], self.training and identity.shape[0] == 1
            if single:  # a batch of one cannot be standardised by itself: its running statistics do
                norm.eval()
            pred = self.voice_pred(identity.float())
            norm.train(self.training)
            voice = F.normalize(pred.detach(), dim=-1)
            if self.training and speaker is not None and self.voice_teacher > 0:
                teach = torch.rand(voice.shape[0], 1, device=voice.device) < self.voice_teacher
                voice = torch.where(teach, F.normalize(speaker.to(voice.dtype), dim=-1), voice)
            return self.voice_condition(voice), pred
        face_vec = self.face_encoder(face_float(face, self.vocab.face_size))
        return self.id_mlp(torch.cat([identity.float(), face_vec], dim=-1)), None

    def voice_condition(self, voice: Tensor) -> Tensor:
        """c_id B×C of unit-norm voice embeddings B×D (the voice path), scaled by √D so each
        element has unit RMS."""
        return self.voice_in(voice * math.sqrt(voice.shape[-1]))

    def smooth(self, x: Tensor, mask: Tensor) -> Tensor:
        """Masked moving average over time (B×T×C): padded frames neither contribute nor change
        valid outputs; near the clip ends the window is renormalised over the frames it covers."""
        b, t, c = x.shape
        n = self.kernel.numel()
        m = mask[..., None].to(x.dtype)
        k = self.kernel.to(x.dtype).view(1, 1, n)
        num = F.conv1d((x * m).transpose(1, 2).reshape(b * c, 1, t), k, padding=n // 2)
        den = F.conv1d(m.transpose(1, 2), k, padding=n // 2)
        out = num.view(b, c, t) / den.clamp_min(1e-6)
        return out.transpose(1, 2) * m

    def emotion_style(self, emotion: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        probs, known = emotion_frames(emotion, frame_mask.shape[1], self.vocab.num_emotions)
        if probs.shape[1] < frame_mask.shape[1]:  # per-frame predictions shorter than the clip
            probs = F.pad(probs, (0, 0, 0, frame_mask.shape[1] - probs.shape[1]))
        probs = probs.to(self.emo_embed.weight.dtype)
        if self.emotion_temperature == 1.0:  # smoothing is linear: smooth(p) @ W = smooth(p @ W)
            emb = self.smooth(probs @ self.emo_embed.weight, frame_mask)
        else:
            emb = sharpen(self.smooth(probs, frame_mask), self.emotion_temperature) @ self.emo_embed.weight
        return upsample_mask(emb, self.vocab.units_per_frame), known

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A model saved before the speaker loss existed has no projection; it serves training only,
        # so such a model still loads (strictly) and keeps a fresh one.
        if self.id_source == "face":
            for name, tensor in self.speaker_proj.state_dict().items():
                state_dict.setdefault(f"{prefix}speaker_proj.{name}", tensor)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def speaker_loss(self, style: StyleOutput, speaker: Tensor | None) -> tuple[Tensor, dict[str, float]]:
        """Weighted L1 between ``speaker_proj(c_id)`` (the voice bottleneck: its prediction from the
        face) and the (unit-norm) GE2E embeddings B×D,
        scaled by √D so each target element has unit RMS and the weight reads against the DiT's
        cross-entropy; zero when the weight is 0 or the batch carries no embeddings."""
        if self.speaker_weight == 0 or speaker is None:
            return style.c_id.new_zeros(()), {}
        target = F.normalize(speaker.to(style.c_id.dtype), dim=-1) * math.sqrt(speaker.shape[-1])
        pred = style.voice if style.voice is not None else self.speaker_proj(style.c_id)
        l1 = (pred - target).abs().mean()
        cos = F.cosine_similarity(pred.detach(), target, dim=-1).mean()
        return self.speaker_weight * l1, {"speaker_l1": float(l1.detach()), "speaker_cos": float(cos)}

    def forward(self, identity: Tensor, face: Tensor, emotion: Tensor, frame_mask: Tensor,
                speaker: Tensor | None = None) -> StyleOutput:
        c_emo, known = self.emotion_style(emotion, frame_mask.bool())
        c_id, voice = self.identity_style(identity, face, speaker)
        return StyleOutput(c_id=c_id, c_emo=c_emo, emo_known=known, voice=voice)

