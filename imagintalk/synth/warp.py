"""Smooth dense displacement fields from sparse landmark displacements, applied with cv2.remap.

The field at a point is a Gaussian-kernel (Nadaraya-Watson) average of the landmark
displacements plus a constant "background" weight of zero displacement:

    d(p) = sum_i w_i(p) d_i / (sum_i w_i(p) + b),   w_i(p) = exp(-|p - c_i|^2 / 2 s_i^2)

which stays well-posed where landmarks crowd (inner and outer lips, eyelids), leaves the
background still without anchor points, and is linear in the displacements. The weights are
computed once per face on a coarse grid, so the fields of a whole clip are one matrix product;
each frame then needs one bilinear upsampling and one remap (PiecewiseAffineTransform per frame
would cost ~100× more).

The coarse grid has one extra cell on every side, placed so that cv2.resize's half-pixel
convention lands every cell centre exactly on its pixel: anything linear in x, y (a head pose,
a light gradient) rides along in the same upsampling without error, border included.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class WarpBasis:
    weights: np.ndarray      # (cells*cells, N) float32 normalised kernel weights
    grid: np.ndarray         # (cells, cells, 2) float32 pixel position (x, y) of each cell centre
    step: int                # pixels per cell
    size: int                # output side in pixels

    @property
    def cells(self) -> int:
        return self.grid.shape[0]


def coarse_grid(size: int, step: int) -> np.ndarray:
    if size % step:
        raise ValueError(f"frame size {size} must be a multiple of the warp step {step}")
    n = size // step + 2
    axis = (np.arange(n, dtype=np.float32) - 0.5) * step - 0.5  # cell i ↔ pixel (i - 0.5)·step - 0.5
    gx, gy = np.meshgrid(axis, axis)
    return np.stack([gx, gy], axis=-1)


def make_warp_basis(centers: np.ndarray, sigmas: np.ndarray, size: int, step: int = 4,
                    background: float = 0.05) -> WarpBasis:
    """Kernel weights of N centres (x, y in pixels) with per-centre widths."""
    grid = coarse_grid(size, step)
    pts = grid.reshape(-1, 2)
    d2 = ((pts[:, None, :] - centers[None, :, :].astype(np.float32)) ** 2).sum(-1)  # (G, N)
    w = np.exp(-d2 / (2.0 * np.asarray(sigmas, np.float32)[None, :] ** 2))
    w /= w.sum(axis=1, keepdims=True) + background
    return WarpBasis(w.astype(np.float32), grid, step, size)


def coarse_fields(basis: WarpBasis, displacements: np.ndarray) -> np.ndarray:
    """(T, N, 2) landmark displacements → (T, cells, cells, 2) coarse fields (one matmul)."""
    t, n, _ = displacements.shape
    flat = displacements.transpose(1, 0, 2).reshape(n, t * 2).astype(np.float32)
    field = basis.weights @ flat                                          # (G, T*2)
    c = basis.cells
    return field.reshape(c, c, t, 2).transpose(2, 0, 1, 3)


def upsample(basis: WarpBasis, coarse: np.ndarray) -> np.ndarray:
    """(cells, cells[, C]) coarse values → ((cells·step)², C) pixels, exact for anything linear in
    x, y; ``crop`` takes the frame out of it (remapping the margin too costs less than a copy)."""
    big = basis.cells * basis.step
    return cv2.resize(coarse, (big, big), interpolation=cv2.INTER_LINEAR)


def crop(basis: WarpBasis, full: np.ndarray) -> np.ndarray:
    """The frame's view of an upsampled array."""
    s = basis.step
    return full[s:s + basis.size, s:s + basis.size]


def warp_image(image: np.ndarray, source_xy: np.ndarray) -> np.ndarray:
    """Backward warp: output(q) = image(source_xy(q)); borders reflect (no black edge on motion)."""
    return cv2.remap(image, source_xy, None, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT_101)
