"""Shared fixtures. Real media is made in tmp_path; nothing is downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tone() -> np.ndarray:
    """Three seconds of a 220 Hz tone at 16 kHz, float32."""
    t = np.arange(48000) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture
def noise_frames(rng) -> np.ndarray:
    return rng.integers(0, 255, (75, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def one_torch_thread():
    """2 shared cores: one intra-op torch thread avoids oversubscription stalls in model tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cfg():
    """The tiny model preset over the default params."""
    from imagintalk.config import Params
    from imagintalk.models.config import model_config

    return model_config("tiny", Params())
