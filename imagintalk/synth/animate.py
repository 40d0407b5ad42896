"""Animate an identity: per 40 ms frame, landmark displacements from the visemes, the emotion and
blinks; a small head motion; side-light jitter; the mouth cavity and teeth painted where the lips
part. One dense warp per frame (``warp.py``) moves the photo's pixels with the landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imagintalk.config import SynthConfig
from imagintalk.synth import landmarks as lm
from imagintalk.synth.identity import Identity
from imagintalk.synth.visemes import MouthTrack
from imagintalk.synth.warp import coarse_fields, crop, upsample, warp_image


@dataclass(frozen=True)
class Expression:
    """Static face of an emotion at full intensity, in IOD (positive = up / outward / wider)."""

    corners_up: float = 0.0
    corners_out: float = 0.0
    brow_inner_up: float = 0.0
    brow_outer_up: float = 0.0
    brow_in: float = 0.0        # inner brows toward the midline (frown)
    upper_lid: float = 0.0      # upper lids raised (eyes wide) / lowered
    lower_lid: float = 0.0      # lower lids raised (smile squint)
    jaw_open: float = 0.0       # opening added to every viseme (0..1 of the maximum)
    articulation: float = 1.0   # gain on the viseme openings


# After FACS prototypes (Ekman & Friesen): happy AU6+12, sad AU1+4+15, angry AU4+5+7+23,
# surprised AU1+2+5+26.
EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "happy": Expression(corners_up=0.10, corners_out=0.08, brow_outer_up=0.02, lower_lid=0.035,
                        jaw_open=0.05),
    "sad": Expression(corners_up=-0.08, corners_out=-0.02, brow_inner_up=0.09, brow_outer_up=-0.03,
                      brow_in=0.02, upper_lid=-0.02, articulation=0.75),
    "angry": Expression(corners_up=-0.03, corners_out=-0.03, brow_inner_up=-0.10, brow_outer_up=-0.02,
                        brow_in=0.06, upper_lid=-0.025, lower_lid=0.025, articulation=1.1),
    "surprised": Expression(corners_out=-0.04, brow_inner_up=0.12, brow_outer_up=0.12, upper_lid=0.04,
                            lower_lid=-0.01, jaw_open=0.2, articulation=1.05),
}

UPPER_SHARE = 0.3           # of the lip gap taken by the upper lip; the jaw carries the rest
JAW_FOLLOW = {5: 0.3, 6: 0.6, 7: 0.85, 8: 1.0, 9: 0.85, 10: 0.6, 11: 0.3}  # chin with the lower lip
LIP_EDGE = {49: 0.6, 50: 1.0, 51: 1.0, 52: 1.0, 53: 0.6, 55: 0.6, 56: 1.0, 57: 1.0, 58: 1.0, 59: 0.6}
BLINK_PROFILE = (0.35, 0.85, 1.0, 0.6, 0.2)   # closure per frame at 25 fps
TEETH_MAX = 0.09            # IOD: visible height of the upper teeth
TEETH_SHARE = 0.35          # of the gap the upper teeth fill
TEETH_INSET = 0.2           # of the way from the mouth corners to the middle where teeth start
SUBPIXEL_BITS = 2           # fixed-point bits for anti-aliased polygon fills


@dataclass(frozen=True)
class Rendered:
    frames: np.ndarray      # uint8 T×H×W×3
    landmarks: np.ndarray   # float32 T×68×2, where each landmark is drawn in each frame


def render_clip(identity: Identity, track: MouthTrack, emotion: str, intensity: float,
                rng: np.random.Generator, cfg: SynthConfig, fps: int) -> Rendered:
    n = len(track.open)
    disp = landmark_displacements(identity, track, EXPRESSIONS[emotion], intensity, rng, cfg, fps)
    poses = head_poses(identity, n, rng, cfg, fps)
    gain, gradient, angle = _lighting(rng, n, cfg, fps).T
    basis = identity.basis
    size = basis.size
    # Per coarse cell and frame: where to sample the photo (head pose undone, landmark field
    # subtracted) and the light's gain; each is upsampled once per frame.
    inverse = np.stack([cv2.invertAffineTransform(p) for p in poses])[:, None, None]  # (T,1,1,2,3)
    gx, gy = basis.grid[None, ..., 0], basis.grid[None, ..., 1]
    source = np.stack([inverse[..., 0, 0] * gx + inverse[..., 0, 1] * gy + inverse[..., 0, 2],
                       inverse[..., 1, 0] * gx + inverse[..., 1, 1] * gy + inverse[..., 1, 2]], axis=-1)
    source = (source - coarse_fields(basis, disp)).astype(np.float32)
    gain, gradient, angle = (v[:, None, None] for v in (gain, gradient, angle))
    shade = (gain * (1.0 + gradient * (np.cos(angle) * (gx - size / 2) + np.sin(angle) * (gy - size / 2))
                     / size)).astype(np.float32)
    _, _, down = lm.face_axes(identity.landmarks)
    frames = np.empty((n, size, size, 3), np.uint8)
    drawn = np.empty((n, 68, 2), np.float32)
    for t in range(n):
        frame = crop(basis, warp_image(identity.image, upsample(basis, source[t])))
        drawn[t] = (identity.landmarks + disp[t]) @ poses[t][:, :2].T + poses[t][:, 2]
        down_t = poses[t][:, :2] @ down
        _paint_mouth(frame, drawn[t], down_t / np.linalg.norm(down_t), identity)
        frames[t] = cv2.convertScaleAbs(frame * crop(basis, upsample(basis, shade[t]))[..., None])
    return Rendered(frames, drawn)


def landmark_displacements(identity: Identity, track: MouthTrack, expr: Expression, intensity: float,
                           rng: np.random.Generator, cfg: SynthConfig, fps: int) -> np.ndarray:
    """(T, 68, 2) pixel displacements of the landmarks from the identity's rest face."""
    n = len(track.open)
    iod = identity.iod
    _, right, down = lm.face_axes(identity.landmarks)
    side = np.sign((identity.landmarks - identity.landmarks.mean(0)) @ right)  # -1 image-left half
    d = np.zeros((n, 68, 2), np.float32)
    # Expression, breathing a little around its level so a long clip is not a still mask.
    level = (intensity * (1.0 + 0.08 * _wobble(rng, n, fps)))[:, None]
    corners = np.array([48, 54, 60, 64])
    d[:, corners] += level[:, :, None] * (-expr.corners_up * down + 0.0)[None, None] * iod
    d[:, corners] += (level * expr.corners_out * iod)[:, :, None] * (side[corners, None] * right)[None]
    for i in (49, 53, 55, 59):
        d[:, i] += 0.4 * level * (-expr.corners_up * iod) * down
    inner_b, outer_b = np.array([20, 21, 22, 23]), np.array([17, 18, 25, 26])
    d[:, inner_b] += (level * -expr.brow_inner_up * iod)[:, :, None] * down
    d[:, inner_b] += (level * -expr.brow_in * iod)[:, :, None] * (side[inner_b, None] * right)[None]
    d[:, outer_b] += (level * -expr.brow_outer_up * iod)[:, :, None] * down
    d[:, [19, 24]] += (level * -(expr.brow_inner_up + expr.brow_outer_up) / 2 * iod)[:, :, None] * down
    d[:, lm.UPPER_LIDS] += (level * -expr.upper_lid * iod)[:, :, None] * down
    d[:, lm.LOWER_LIDS] += (level * -expr.lower_lid * iod)[:, :, None] * down
    # Visemes: the lip gap opens mostly downwards (the jaw drops), the corners spread or purse.
    opening = np.where(track.closed, 0.0,
                       track.open * expr.articulation + expr.jaw_open * intensity)
    gap = (opening * cfg.mouth_open_max * iod)[:, None]
    d[:, lm.UPPER_INNER] += (-UPPER_SHARE * gap)[:, :, None] * down
    d[:, lm.LOWER_INNER] += ((1 - UPPER_SHARE) * gap)[:, :, None] * down
    for i, w in LIP_EDGE.items():
        share = -UPPER_SHARE if i < 55 else 1 - UPPER_SHARE
        d[:, i] += (share * w * gap) * down
    for i, w in JAW_FOLLOW.items():
        d[:, i] += (0.55 * w * gap) * down
    spread = ((0.10 * track.width - 0.10 * track.round) * iod)[:, None]
    d[:, corners] += spread[:, :, None] * (side[corners, None] * right)[None]
    pout = (0.03 * track.round * iod)[:, None]
    d[:, [50, 51, 52]] -= pout[:, :, None] * down
    d[:, [56, 57, 58]] += pout[:, :, None] * down
    # Blinks: upper lids travel to the lower lids.
    closure = _blinks(rng, n, cfg.blink_rate_hz, fps)[:, None, None]
    travel = identity.landmarks[lm.LOWER_LIDS] - identity.landmarks[lm.UPPER_LIDS]
    d[:, lm.UPPER_LIDS] += 0.95 * closure * travel[None]
    return d


def head_poses(identity: Identity, n: int, rng: np.random.Generator, cfg: SynthConfig,
               fps: int) -> np.ndarray:
    """(T, 2, 3) similarity transforms face → frame: slow roll, sway and zoom about the face."""
    centre = identity.landmarks.mean(0)
    roll = cfg.head_rotation_deg * _wobble(rng, n, fps)
    zoom = 1.0 + cfg.head_scale * _wobble(rng, n, fps)
    tx = cfg.head_shift * identity.iod * _wobble(rng, n, fps)
    ty = cfg.head_shift * identity.iod * _wobble(rng, n, fps)
    poses = np.empty((n, 2, 3), np.float32)
    for t in range(n):
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(roll[t]), float(zoom[t]))
        m[:, 2] += (tx[t], ty[t])
        poses[t] = m
    return poses


def _lighting(rng: np.random.Generator, n: int, cfg: SynthConfig, fps: int) -> np.ndarray:
    """Per frame: brightness gain, side-light gradient and its direction."""
    gain = 1.0 + cfg.light_jitter * _wobble(rng, n, fps, low_hz=0.3, high_hz=2.0)
    gradient = cfg.light_gradient * (0.6 + 0.4 * _wobble(rng, n, fps))
    angle = rng.uniform(0, 2 * np.pi) + 0.3 * _wobble(rng, n, fps)
    return np.stack([gain, gradient, angle], axis=1).astype(np.float32)


def _wobble(rng: np.random.Generator, n: int, fps: int, low_hz: float = 0.1, high_hz: float = 0.7,
            parts: int = 3) -> np.ndarray:
    """Smooth random motion in [-1, 1]: a few sinusoids of random frequency and phase."""
    t = np.arange(n) / fps
    freqs = rng.uniform(low_hz, high_hz, parts)
    phases = rng.uniform(0, 2 * np.pi, parts)
    amps = rng.uniform(0.5, 1.0, parts)
    x = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return (x / amps.sum()).astype(np.float32)


def _blinks(rng: np.random.Generator, n: int, rate_hz: float, fps: int) -> np.ndarray:
    """Eyelid closure per frame: blink onsets as a Poisson process at least a second apart."""
    closure = np.zeros(n, np.float32)
    if rate_hz <= 0:
        return closure
    t = rng.exponential(1.0 / rate_hz) * fps
    while t < n:
        start = int(t)
        for k, c in enumerate(BLINK_PROFILE):
            if start + k < n:
                closure[start + k] = max(closure[start + k], c)
        t += max(rng.exponential(1.0 / rate_hz), 1.0) * fps
    return closure


def _paint_mouth(frame: np.ndarray, points: np.ndarray, down: np.ndarray, identity: Identity) -> None:
    """Dark cavity between the inner lips and the upper teeth below the upper lip, anti-aliased."""
    inner = points[lm.INNER_LIPS]
    gap = float(np.mean(np.linalg.norm(points[lm.LOWER_INNER] - points[lm.UPPER_INNER], axis=1)))
    if gap < 0.5:
        return
    h, w = frame.shape[:2]
    x0, y0 = np.floor(inner.min(0)).astype(int) - 2
    x1, y1 = np.ceil(inner.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    scale = 1 << SUBPIXEL_BITS
    origin = np.float32([x0, y0])
    cavity = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(cavity, [np.round((inner - origin) * scale).astype(np.int32)], 255,
                 lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    upper = points[[60, 61, 62, 63, 64]]
    upper = upper + TEETH_INSET * (upper[2] - upper)  # the corners show no teeth
    teeth_h = min(TEETH_SHARE * gap, TEETH_MAX * identity.iod)
    band = np.concatenate([upper, (upper + down * teeth_h)[::-1]])
    teeth = np.zeros_like(cavity)
    cv2.fillPoly(teeth, [np.round((band - origin) * scale).astype(np.int32)], 255,
                 lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    m = cavity.astype(np.float32)[..., None] / 255.0
    tm = np.minimum(teeth, cavity).astype(np.float32)[..., None] / 255.0
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    roi = roi * (1 - m) + identity.mouth_colour * m
    roi = roi * (1 - tm) + identity.teeth_colour * tm
    frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
