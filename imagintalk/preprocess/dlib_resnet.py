"""dlib's 128-d face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``) run by torch.

dlib-bin is built without BLAS, so its own convolutions take ~75-90 ms per 150×150 chip on one
core, more than decoding a 3 s clip. The network is small (a 29-conv ResNet, ~0.3 GMAC); torch's
CPU kernels run it several times faster with the very same weights, read here from dlib's file.

The file is dlib's own serialisation of ``anet_type`` from dlib's ``dnn_face_recognition_ex.cpp``:
layers innermost first, each introduced by its version string (``con_4``, ``affine_``, ``fc_2``,
...) and carrying its parameters as a float32 tensor. The architecture is fixed (below); the
parser checks every layer's shape against it, so a different file fails with an ArtifactError
instead of computing something else. ``tests/test_preprocess_identity.py`` checks the output against
``dlib.face_recognition_model_v1`` on real chips.

Two dlib details the port must copy: convolutions with stride 2 have no padding (dlib's default),
and ``add_prev`` adds tensors of different shapes by zero-padding the smaller one at the
bottom/right and in the extra channels (the shortcut of a down-sampling block has half the
channels, and from 8×8 on its average pool keeps one row and column more than the stride-2 conv).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from imagintalk.errors import ArtifactError

# (channels, blocks, first block downsamples) per level, input side first (dlib's alevel4..0).
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP_SIZE = 150


@dataclass(frozen=True)
class _Conv:
    weight: torch.Tensor    # out×in×k×k
    bias: torch.Tensor
    stride: int
    padding: int


class _Reader:
    """dlib's serialisation primitives: variable-length integers, dlib floats, float32 tensors."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def fail(self, reason: str) -> ArtifactError:
        return ArtifactError(self.path, f"not dlib's face-recognition ResNet: {reason} (byte {self.pos})")

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("the file ends early")
        head = self.data[self.pos]
        n = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return float(np.ldexp(float(mantissa), self.int()))

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise self.fail("unknown tensor version")
        dims = [self.int() for _ in range(4)]
        n = int(np.prod(dims))
        if self.pos + 4 * n > len(self.data):
            raise self.fail("the file ends inside a tensor")
        arr = np.frombuffer(self.data, "<f4", n, self.pos).astype(np.float32)
        self.pos += 4 * n
        return arr

    def seek_name(self, name: str) -> None:
        """Move past the next occurrence of the serialised string ``name``."""
        key = bytes([1, len(name)]) + name.encode()
        at = self.data.find(key, self.pos)
        if at < 0:
            raise self.fail(f"no layer {name!r} after this point")
        self.pos = at + len(key)


def _conv(r: _Reader, c_in: int, c_out: int, k: int, stride: int) -> _Conv:
    r.seek_name("con_4")
    params = r.tensor()
    n_filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    expected = (c_out, k, k, stride, stride, 0 if stride > 1 else k // 2)
    if (n_filters, nr, nc, sy, sx, py) != expected or px != py or params.size != c_out * (c_in * k * k + 1):
        raise r.fail(f"conv (filters, rows, cols, strides, padding) {(n_filters, nr, nc, sy, sx, py)} != {expected}")
    w = params[: c_out * c_in * k * k].reshape(c_out, c_in, k, k)
    return _Conv(torch.from_numpy(w.copy()), torch.from_numpy(params[c_out * c_in * k * k:].copy()), stride, py)


def _affine(r: _Reader, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    r.seek_name("affine_")
    params = r.tensor()
    if params.size != 2 * c:
        raise r.fail(f"affine layer with {params.size} params for {c} channels")
    return torch.from_numpy(params[:c].copy()), torch.from_numpy(params[c:].copy())


def _fold(conv: _Conv, affine: tuple[torch.Tensor, torch.Tensor]) -> _Conv:
    """conv followed by a per-channel affine = one conv (scale the filters, shift the bias); the
    filters channels-last, the layout oneDNN's CPU convolutions run fastest in (~20% here)."""
    gamma, beta = affine
    weight = (conv.weight * gamma[:, None, None, None]).contiguous(memory_format=torch.channels_last)
    return _Conv(weight, conv.bias * gamma + beta, conv.stride, conv.padding)


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, each tensor zero-padded to it."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class DlibFaceResNet:
    """The descriptor network, inference only: ``describe(chips)`` = dlib's compute_face_descriptor."""

    def __init__(self, path: str | Path):
        r = _Reader(Path(path))
        r.seek_name("input_rgb_image_sized")
        self.mean = torch.tensor([r.float() for _ in range(3)], dtype=torch.float32).view(1, 3, 1, 1)
        if not ((self.mean > 0) & (self.mean < 255)).all():
            raise r.fail(f"input layer means {self.mean.flatten().tolist()} are not pixel values")
        self.stem = _fold(_conv(r, 3, 32, 7, 2), _affine(r, 32))
        r.seek_name("max_pool_2")
        self.blocks: list[tuple[_Conv, _Conv, bool]] = []
        c_in = 32
        for c, n, down in LEVELS:
            for i in range(n):
                stride = 2 if down and i == 0 else 1
                first = _fold(_conv(r, c_in, c, 3, stride), _affine(r, c))
                second = _fold(_conv(r, c, c, 3, 1), _affine(r, c))
                self.blocks.append((first, second, stride == 2))
                c_in = c
        r.seek_name("fc_2")
        n_out, n_in = r.int(), r.int()
        fc = r.tensor()
        if (n_out, n_in, fc.size) != (128, 256, 128 * 256):
            raise r.fail(f"fc layer (outputs, inputs, params) {(n_out, n_in, fc.size)} != (128, 256, 32768)")
        self.fc = torch.from_numpy(fc.reshape(n_in, n_out).copy())  # dlib: output = input @ W

    @staticmethod
    def _run(conv: _Conv, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)

    @torch.inference_mode()
    def describe(self, chips: np.ndarray) -> np.ndarray:
        """N×150×150×3 (or one 150×150×3) uint8 RGB aligned chips -> N×128 (or 128) float32."""
        arr = np.asarray(chips)
        single = arr.ndim == 3
        batch = arr[None] if single else arr
        if batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be {CHIP_SIZE}×{CHIP_SIZE}×3, got {batch.shape[1:]}")
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
        x = ((x - self.mean) / 256.0).contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(F.relu(self._run(self.stem, x)), 3, 2)
        for first, second, down in self.blocks:
            y = self._run(second, F.relu(self._run(first, x)))
            x = F.relu(_add_padded(y, F.avg_pool2d(x, 2, 2) if down else x))
        out = (x.mean((2, 3)) @ self.fc).numpy().astype(np.float32)
        return out[0] if single else out
