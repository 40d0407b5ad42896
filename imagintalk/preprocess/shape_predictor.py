"""dlib's 68-point shape predictor (Kazemi & Sullivan's regression-tree cascade), compiled.

dlib's own predictor costs ~1.1 ms a frame in our tracker, and little of it is arithmetic: each
call walks 15 cascades × 500 trees and adds one 136-float leaf per tree, 4 MB of leaves picked at
random from a 65 MB model, so a call mostly waits on memory and on mispredicted branches. The same
algorithm and model compiled with numba, the tree descent branch-free and a cascade's leaves all
fetched before they are summed, costs ~0.4 ms a frame (the tracker calls it frame by frame: each
box comes from the previous frame's landmarks). Given many frames at once it runs cascade by
cascade, one cascade's 4 MB of leaves staying in the cache while every frame reads it (~0.26 ms a
frame; results/README.md, issue 16).

``ShapePredictor.predict(gray_frames, rects)`` follows ``dlib::shape_predictor::operator()``
(dlib/image_processing/shape_predictor.h): start from the mean shape in the unit square of the
rectangle; per cascade, place its 500 feature pixels relative to their anchor landmarks through
the similarity transform from the mean shape to the current one, read them from the image (0
outside it), and add the leaf each tree picks by comparing pixel pairs. The similarity transform
is solved in closed form (dlib's SVD gives the same transform up to float rounding, which could
move a feature pixel by one at a rounding boundary), and the points can also be had unrounded
(dlib rounds them to whole pixels).
``tests/test_preprocess_shape_predictor.py`` compares it with dlib on real frames.

The model file is dlib's serialisation of ``shape_predictor`` (version 1): the initial shape, the
forests (splits idx1, idx2, thresh; leaf vectors), the anchor indices and deltas. Parsing its 16 M
variable-length floats takes a compiled second; the arrays are then kept per process, and on disk
(derived_cache.py, keyed by the model file's content), so a fresh process — every `imagintalk
speak`, every Ray worker — maps 70 MB of arrays instead of parsing the model again (and pages in
only the leaves it reads: ~10 ms, where reading them took 0.15 s).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numba
import numpy as np

from imagintalk.errors import ArtifactError
from imagintalk.preprocess.derived_cache import cached_or_built, derived_cache_dir, fingerprint, map_arrays, save_arrays

N_POINTS = 68
ARRAYS = ("initial", "idx1", "idx2", "thresh", "leaves", "anchor", "deltas")


@numba.njit(cache=True)
def _int(buf, pos):
    head = buf[pos]
    n = head & 0x0F
    v = 0
    for k in range(n):
        v |= np.int64(buf[pos + 1 + k]) << (8 * k)
    if head & 0x80:
        v = -v
    return v, pos + 1 + n


@numba.njit(cache=True)
def _float(buf, pos):
    mantissa, pos = _int(buf, pos)
    exponent, pos = _int(buf, pos)
    return np.float32(np.float64(mantissa) * 2.0 ** exponent), pos


@numba.njit(cache=True)
def _column(buf, pos, out):
    """A matrix<float,0,1> into ``out``; returns the new position, or -1 on a size mismatch."""
    nr, pos = _int(buf, pos)
    nc, pos = _int(buf, pos)
    if -nr != out.size or nc != -1:
        return -1
    for i in range(out.size):
        v, pos = _float(buf, pos)
        out[i] = v
    return pos


@numba.njit(cache=True)
def _forests(buf, pos, idx1, idx2, thresh, leaves):
    """forests: vector(cascades) of vector(trees) of (splits, leaf_values), into the arrays."""
    n_casc, pos = _int(buf, pos)
    if n_casc != idx1.shape[0]:
        return -1
    for c in range(idx1.shape[0]):
        n_trees, pos = _int(buf, pos)
        if n_trees != idx1.shape[1]:
            return -1
        for t in range(idx1.shape[1]):
            n_splits, pos = _int(buf, pos)
            if n_splits != idx1.shape[2]:
                return -1
            for s in range(idx1.shape[2]):
                i1, pos = _int(buf, pos)
                i2, pos = _int(buf, pos)
                th, pos = _float(buf, pos)
                idx1[c, t, s] = i1
                idx2[c, t, s] = i2
                thresh[c, t, s] = th
            n_leaves, pos = _int(buf, pos)
            if n_leaves != leaves.shape[2]:
                return -1
            for leaf in range(leaves.shape[2]):
                pos = _column(buf, pos, leaves[c, t, leaf])
                if pos < 0:
                    return -1
    return pos


@numba.njit(cache=True)
def _anchors(buf, pos, anchor, deltas):
    for kind in range(2):
        n, pos = _int(buf, pos)
        if n != anchor.shape[0]:
            return -1
        for c in range(anchor.shape[0]):
            m, pos = _int(buf, pos)
            if m != anchor.shape[1]:
                return -1
            for i in range(anchor.shape[1]):
                if kind == 0:
                    k, pos = _int(buf, pos)
                    anchor[c, i] = k
                else:
                    dx, pos = _float(buf, pos)
                    dy, pos = _float(buf, pos)
                    deltas[c, i, 0] = dx
                    deltas[c, i, 1] = dy
    return pos


@numba.njit(cache=True)
def _predict(images, rects, initial, idx1, idx2, thresh, leaves, anchor, deltas, whole_pixels):
    """images B×H×W uint8, rects B×4 (left, top, right, bottom) -> B×68×2 float32 landmarks."""
    n_frames, h, w = images.shape
    n_casc, n_trees, n_splits = idx1.shape
    n_pix = anchor.shape[1]
    n = initial.size // 2
    shapes = np.empty((n_frames, initial.size), np.float32)
    for b in range(n_frames):
        shapes[b] = initial
    mean_x = 0.0
    mean_y = 0.0
    for j in range(n):
        mean_x += initial[2 * j]
        mean_y += initial[2 * j + 1]
    mean_x /= n
    mean_y /= n
    var = 0.0
    for j in range(n):
        var += (initial[2 * j] - mean_x) ** 2 + (initial[2 * j + 1] - mean_y) ** 2
    feats = np.empty((n_frames, n_pix), np.float32)
    picked = np.empty(n_trees, np.int64)
    for c in range(n_casc):
        for b in range(n_frames):
            cur = shapes[b]
            # least-squares similarity (rotation + scale) from the initial shape to the current one
            cx = 0.0
            cy = 0.0
            for j in range(n):
                cx += cur[2 * j]
                cy += cur[2 * j + 1]
            cx /= n
            cy /= n
            sa = 0.0
            sb = 0.0
            for j in range(n):
                fx, fy = initial[2 * j] - mean_x, initial[2 * j + 1] - mean_y
                tx, ty = cur[2 * j] - cx, cur[2 * j + 1] - cy
                sa += fx * tx + fy * ty
                sb += fx * ty - fy * tx
            a = np.float32(sa / var)
            bb = np.float32(sb / var)
            left, top, right, bottom = rects[b, 0], rects[b, 1], rects[b, 2], rects[b, 3]
            for i in range(n_pix):
                k = anchor[c, i]
                dx, dy = deltas[c, i, 0], deltas[c, i, 1]
                nx = a * dx - bb * dy + cur[2 * k]
                ny = bb * dx + a * dy + cur[2 * k + 1]
                px = np.int64(np.floor(left + nx * (right - left) + 0.5))
                py = np.int64(np.floor(top + ny * (bottom - top) + 0.5))
                if 0 <= px < w and 0 <= py < h:
                    feats[b, i] = images[b, py, px]
                else:
                    feats[b, i] = 0.0
        # all trees' leaves first, then their sum (in tree order, as dlib adds them): the leaf
        # reads no longer wait behind the next tree's descent, so many are in flight at once
        for b in range(n_frames):
            f = feats[b]
            for t in range(n_trees):
                node = 0
                while node < n_splits:  # branch-free descent: left child 2n+1 when diff > thresh
                    right = np.int64(f[idx1[c, t, node]] - f[idx2[c, t, node]] <= thresh[c, t, node])
                    node = 2 * node + 1 + right
                picked[t] = node - n_splits
            cur = shapes[b]
            for t in range(n_trees):
                leaf = leaves[c, t, picked[t]]
                for j in range(cur.size):
                    cur[j] += leaf[j]
    out = np.empty((n_frames, n, 2), np.float32)
    for b in range(n_frames):
        left, top, right, bottom = rects[b, 0], rects[b, 1], rects[b, 2], rects[b, 3]
        for j in range(n):
            x = left + shapes[b, 2 * j] * (right - left)
            y = top + shapes[b, 2 * j + 1] * (bottom - top)
            out[b, j, 0] = np.floor(x + 0.5) if whole_pixels else x
            out[b, j, 1] = np.floor(y + 0.5) if whole_pixels else y
    return out


class ShapePredictor:
    """A dlib 68-point shape predictor file, run on many frames at once (module docstring)."""

    def __init__(self, path: str | Path, cascades: int = 15, trees: int = 500, depth: int = 4, pixels: int = 500):
        path = Path(path)
        buf = np.frombuffer(path.read_bytes(), np.uint8)
        n_splits, n_leaves = 2 ** depth - 1, 2 ** depth
        self.initial = np.empty(2 * N_POINTS, np.float32)
        self.idx1 = np.empty((cascades, trees, n_splits), np.int32)
        self.idx2 = np.empty_like(self.idx1)
        self.thresh = np.empty((cascades, trees, n_splits), np.float32)
        self.leaves = np.empty((cascades, trees, n_leaves, 2 * N_POINTS), np.float32)
        self.anchor = np.empty((cascades, pixels), np.int32)
        self.deltas = np.empty((cascades, pixels, 2), np.float32)
        version, pos = _int(buf, 0)
        if version != 1:
            raise ArtifactError(path, f"not a dlib shape predictor (version {version})")
        for step in (lambda p: _column(buf, p, self.initial),
                     lambda p: _forests(buf, p, self.idx1, self.idx2, self.thresh, self.leaves),
                     lambda p: _anchors(buf, p, self.anchor, self.deltas)):
            pos = step(pos)
            if pos < 0:
                raise ArtifactError(path, f"not a {N_POINTS}-point dlib shape predictor of {cascades} cascades × "
                                          f"{trees} trees of depth {depth} × {pixels} feature pixels")
        if pos != buf.size or (self.idx1 >= pixels).any() or (self.idx2 >= pixels).any() \
                or (self.anchor >= N_POINTS).any():
            raise ArtifactError(path, "inconsistent dlib shape predictor (sizes or indices out of range)")

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShapePredictor:
        """A predictor from arrays a parse produced (``ARRAYS``), shapes checked against each other."""
        self = cls.__new__(cls)
        for k in ARRAYS:
            setattr(self, k, arrays[k])
        c, t, n = self.idx1.shape
        if (self.initial.shape != (2 * N_POINTS,) or self.idx2.shape != (c, t, n) or self.thresh.shape != (c, t, n)
                or self.leaves.shape != (c, t, n + 1, 2 * N_POINTS) or self.anchor.shape[0] != c
                or self.deltas.shape != (*self.anchor.shape, 2)):
            raise ValueError("inconsistent shape predictor arrays")
        return self

    def predict(self, gray: np.ndarray, rects: np.ndarray, whole_pixels: bool = True) -> np.ndarray:
        """B×68×2 float32 landmarks of the faces in ``rects`` (B×4 left, top, right, bottom; whole
        pixels as dlib's rectangles) on ``gray`` (B×H×W uint8 frames); rounded to whole pixels as
        dlib returns them, unless ``whole_pixels`` is False."""
        gray = np.ascontiguousarray(gray, np.uint8)
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        if gray.ndim != 3 or len(gray) != len(rects):
            raise ValueError(f"need B×H×W frames and B rectangles, got {gray.shape} and {rects.shape}")
        if not len(rects):
            return np.zeros((0, N_POINTS, 2), np.float32)
        return _predict(gray, rects, self.initial, self.idx1, self.idx2, self.thresh, self.leaves,
                        self.anchor, self.deltas, whole_pixels)


def warm_kernels() -> None:
    """Compile (or load from numba's on-disk cache) every kernel above on tiny inputs of the real
    types, without the model: ray_session.warm_jit_caches calls it before any Ray worker starts,
    so workers only read the cache (two processes writing it at once can corrupt it, numba#10128)."""
    buf = np.frombuffer(bytes([1, 1, 1, 0x81, 1, 0x81, 1, 0, 1, 0]), np.uint8)  # version, -1, -1 ...
    _float(buf, 0)
    _column(buf, 3, np.empty(1, np.float32))
    i32, f32 = np.zeros((1, 1, 1), np.int32), np.zeros((1, 1, 1), np.float32)
    _forests(buf, 0, i32, i32, f32, np.zeros((1, 1, 2, 2), np.float32))
    _anchors(buf, 0, np.zeros((1, 1), np.int32), np.zeros((1, 1, 2), np.float32))
    _predict(np.zeros((1, 4, 4), np.uint8), np.array([[0.0, 0.0, 3.0, 3.0]]), np.arange(4, dtype=np.float32), i32, i32,
             f32, np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1), np.int32), np.zeros((1, 1, 2), np.float32),
             True)


def _cache_file(path: Path) -> Path:
    return derived_cache_dir() / f"shape_predictor-{fingerprint(path)}.npys"


@functools.cache
def shape_predictor(path: str) -> ShapePredictor:
    """The predictor of ``path``, parsed once per process, its arrays mapped from the derived cache
    when an earlier process left them there (written there otherwise; a cache that cannot be
    read or written is passed over: the model is parsed)."""
    src = Path(path)
    return cached_or_built(_cache_file(src), lambda p: ShapePredictor.from_arrays(map_arrays(p, ARRAYS)),
                           lambda: ShapePredictor(src),
                           lambda predictor, tmp: save_arrays(tmp, {k: getattr(predictor, k) for k in ARRAYS}),
                           f"re-parsing {src}", unreadable=(OSError, KeyError, ValueError))
