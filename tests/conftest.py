"""Shared fixtures. Real media is made in tmp_path; nothing is downloaded.

One small SynthTalk corpus → manifest → shards chain is made once per session (lazily: a test that
needs only the raw corpus does not pay for the shards) and shared by the integration tests, so the
suite does not synthesise a corpus per module. Tests read it; a test that changes data copies it."""

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


@pytest.fixture(scope="session")
def synthtalk_params():
    """Tiny params with the session corpus's synth section (tests/synthtalk_support.py)."""
    from synthtalk_support import synthtalk_params

    return synthtalk_params()


@pytest.fixture(scope="session")
def synthtalk_raw(tmp_path_factory, synthtalk_params):
    """The session's raw SynthTalk corpus (``imagintalk synth``'s layout). Read-only."""
    from synthtalk_support import N_CLIPS

    from pipelines.synth import synth_corpus

    out = tmp_path_factory.mktemp("synthtalk") / "raw"
    summary = synth_corpus(out, params=synthtalk_params)
    assert summary.clips == N_CLIPS
    return out


@pytest.fixture(scope="session")
def synthtalk_manifest(synthtalk_raw, synthtalk_params):
    """The session corpus ingested (``imagintalk ingest synthtalk``). Read-only."""
    from pipelines.ingest import ingest_corpus

    out = synthtalk_raw.parent / "manifest.parquet"
    ingest_corpus("synthtalk", synthtalk_raw, out, params=synthtalk_params)
    return out


@pytest.fixture(scope="session")
def synthtalk_shards(synthtalk_manifest, synthtalk_params) -> str:
    """The session manifest sharded (``imagintalk shard``, tokenizers fitted on its train split). Read-only."""
    from shards_support import fit_tokenizers_beside
    from synthtalk_support import N_CLIPS

    from pipelines.shard import shard_manifest

    fit_tokenizers_beside(synthtalk_manifest, synthtalk_params)
    out = synthtalk_manifest.parent / "shards"
    summary = shard_manifest(synthtalk_manifest, str(out), workers=1, params=synthtalk_params)
    assert summary.clips_ok == N_CLIPS, summary.summary_line()
    return str(out)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for a module's Ray Train tests (start-up costs seconds per init), shut down
    after the module: the shard step takes Ray whenever it is up, so a later module's in-process
    shard runs would otherwise change path."""
    import ray
    from train_support import tiny_params

    from imagintalk.train.placement import ensure_ray

    started = not ray.is_initialized()
    ensure_ray(tiny_params())
    yield
    if started:
        ray.shutdown()
