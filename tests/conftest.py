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
