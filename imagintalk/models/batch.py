"""The loader batch as the model sees it: key names, derived masks, input normalisation.

A batch is a mapping of tensors with the loader's keys (B = batch, T = 25 fps frames, 2T = 50 Hz
tokens, 4T = 100 Hz mel frames):

- ``lips`` float B×T×88×88 (normalised grayscale), ``lip_mask`` bool B×T (True = valid)
- ``units`` int B×2T, ``unit_mask`` bool B×2T; ``codes`` int B×L×2T
- ``mel`` float B×80×4T, ``audio`` float B×640T (16 kHz)
- ``identity`` float B×128, ``face`` uint8/float B×3×H×W, ``emotion`` int B (index, <0 = unknown)
  or float B×T×9 per-frame probabilities
- ``landmarks`` float B×T×136 face landmarks in mean-face units, ``face_found`` bool B×T (the
  expression model's input)

Stages derive every length from ``lip_mask`` / ``unit_mask`` here, so a loader that provides
one of them is enough. :func:`random_batch` builds a batch of this shape for tests, benchmarks and
smoke runs of the training room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from imagintalk.models.config import VocabConfig
from imagintalk.models.layers import lengths_to_mask

Batch = Mapping[str, Tensor]


def frame_mask(batch: Batch) -> Tensor:
    """Valid video frames, B×T."""
    if "lip_mask" in batch:
        return batch["lip_mask"].bool()
    if "unit_mask" in batch:
        return batch["unit_mask"].bool()[:, ::2]
    if "lips" in batch:
        return torch.ones(batch["lips"].shape[:2], dtype=torch.bool, device=batch["lips"].device)
    raise KeyError("batch has neither lip_mask, unit_mask nor lips")


def token_mask(batch: Batch) -> Tensor:
    """Valid 50 Hz token positions, B×2T."""
    if "unit_mask" in batch:
        return batch["unit_mask"].bool()
    return frame_mask(batch).repeat_interleave(2, dim=1)


def upsample_mask(mask: Tensor, factor: int) -> Tensor:
    return mask.repeat_interleave(factor, dim=1)


def safe_tokens(tokens: Tensor, mask: Tensor) -> Tensor:
    """Token ids with padded positions set to 0 (loaders pad with -1/-100/anything)."""
    return torch.where(mask, tokens.long(), torch.zeros_like(tokens, dtype=torch.long))


def emotion_frames(emotion: Tensor, n_frames: int, num_emotions: int) -> tuple[Tensor, Tensor]:
    """Labels (B,) or probabilities (B×T×E) → per-frame probabilities B×T×E and a B 'known' flag.

    A negative label means the corpus has no emotion for the clip: its condition is left to the
    model's learned null embedding rather than guessed.
    """
    if emotion.ndim == 1:
        known = emotion >= 0
        onehot = F.one_hot(emotion.clamp_min(0).long(), num_emotions).float()
        probs = onehot[:, None, :].expand(-1, n_frames, -1)
        return probs, known
    if emotion.ndim != 3 or emotion.shape[-1] != num_emotions:
        raise ValueError(f"emotion must be (B,) labels or (B,T,{num_emotions}) probabilities, got "
                         f"{tuple(emotion.shape)}")
    probs = emotion.float()[:, :n_frames]
    known = torch.isfinite(probs).all(dim=(1, 2)) & (probs.sum(dim=-1) > 0).any(dim=1)
    return torch.nan_to_num(probs), known


def lips_float(lips: Tensor) -> Tensor:
    """Mouth crops in the model's [0, 1] range: the loader ships uint8 (4× less memory traffic per
    batch than float); float input is taken as already scaled."""
    return lips.float() / 255.0 if lips.dtype == torch.uint8 else lips.float()


def face_float(face: Tensor, size: int) -> Tensor:
    """uint8 or [0,1] float B×3×H×W face crops → float in [-1, 1] at ``size``×``size``."""
    x = face.float()
    if face.dtype == torch.uint8:
        x = x / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x * 2.0 - 1.0


def random_batch(vocab: VocabConfig, frames: Sequence[int], seed: int = 0,
                 device: str | torch.device = "cpu", emotion_per_frame: bool = False) -> dict[str, Tensor]:
    """A padded batch shaped like the loader's, with random content and the given lengths in frames.

    Audio is a sum of harmonics with a drifting pitch (speech-like spectra); mel is left random —
    the vocoder tests compute their own mel from the audio.
    """
    g = torch.Generator().manual_seed(seed)
    b, t = len(frames), max(frames)
    lengths = torch.tensor(frames)
    fmask = lengths_to_mask(lengths, t)
    n_tok, n_mel, n_wav = t * vocab.units_per_frame, t * vocab.mels_per_frame, t * vocab.samples_per_frame
    tmask = fmask.repeat_interleave(vocab.units_per_frame, dim=1)
    time = torch.arange(n_wav) / vocab.sample_rate
    f0 = 100 + 80 * torch.rand(b, 1, generator=g) + 30 * torch.sin(2 * torch.pi * 0.7 * time)[None]
    phase = 2 * torch.pi * torch.cumsum(f0 / vocab.sample_rate, dim=1)
    audio = sum(0.3 / h * torch.sin(h * phase) for h in range(1, 6))
    audio = audio * fmask.repeat_interleave(vocab.samples_per_frame, dim=1)
    if emotion_per_frame:
        emotion = torch.softmax(2 * torch.randn(b, t, vocab.num_emotions, generator=g), dim=-1)
    else:
        emotion = torch.randint(0, vocab.num_emotions, (b,), generator=g)
    batch = {
        "lips": torch.randn(b, t, vocab.lip_size, vocab.lip_size, generator=g) * fmask[..., None, None],
        "lip_mask": fmask,
        "units": torch.randint(0, vocab.num_units, (b, n_tok), generator=g) * tmask,
        "unit_mask": tmask,
        "codes": torch.randint(0, vocab.codebook_size, (b, vocab.codec_levels, n_tok), generator=g) * tmask[:, None],
        "mel": torch.randn(b, vocab.n_mels, n_mel, generator=g),
        "audio": audio.float(),
        "identity": F.normalize(torch.randn(b, vocab.identity_dim, generator=g), dim=-1),
        "face": torch.randint(0, 256, (b, 3, 150, 150), generator=g, dtype=torch.uint8),
        "emotion": emotion,
        "speaker": F.normalize(torch.randn(b, vocab.speaker_dim, generator=g), dim=-1),
        "landmarks": torch.rand(b, t, 136, generator=g) * fmask[..., None],
        "face_found": fmask.clone(),
    }
    return {k: v.to(device) for k, v in batch.items()}
