"""Test data for the shard/loader/storage tests: synthetic records and tiny real clip manifests.

Not a test module (no ``test_`` prefix); imported by tests/test_shards*.py, test_loader*.py and
test_storage*.py.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from imagintalk import PIPELINE_VERSION
from imagintalk.corpora.manifest import ManifestRow, write_manifest
from imagintalk.emotions import EMOTIONS
from imagintalk.media import write_mp4
from imagintalk.shards.record import ShardRecord

SPF = 640  # audio samples per video frame
_BUCKETS = itertools.count()


def _smooth_face(rng: np.random.Generator) -> np.ndarray:
    """A smooth colour image (JPEG keeps it within a few levels, unlike noise)."""
    yy, xx = np.mgrid[0:150, 0:150] / 150.0
    phase = rng.random(3) * 2 * np.pi
    chans = [127 + 100 * np.sin(2 * np.pi * (xx + yy) + p) for p in phase]
    return np.stack(chans, axis=-1).astype(np.uint8)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def random_landmarks(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """T×136 float16 face landmarks as the shard step stores them: the mean face plus jitter."""
    from imagintalk.preprocess.mean_face import MEAN_FACE_UNIT

    base = np.concatenate([np.linspace([0.0, 0.2], [1.0, 0.2], 17), MEAN_FACE_UNIT])  # jaw: a line
    return (base[None] + 0.01 * rng.standard_normal((n_frames, 68, 2))).reshape(n_frames, -1).astype(np.float16)


def make_record(clip_id: str, n_frames: int, rng: np.random.Generator, levels: int = 3,
                emotion: str | None = "happy", per_frame_probs: bool = False, split: str = "train",
                roi: int = 96) -> ShardRecord:
    """A record with the documented shapes and dtypes and random content."""
    corpus, speaker, _ = clip_id.split("/", 2)
    probs = None
    if per_frame_probs:
        p = rng.random((n_frames, len(EMOTIONS))).astype(np.float32)
        probs = (p / p.sum(axis=1, keepdims=True)).tolist()
    t = np.arange(n_frames * SPF) / 16000
    return ShardRecord(
        clip_id=clip_id,
        lips=rng.integers(0, 256, (n_frames, roi, roi), dtype=np.uint8),
        face=_smooth_face(rng),
        identity=rng.standard_normal(128).astype(np.float32),
        emotion={"label": emotion, "intensity": 0.5 if emotion else None, "probs": probs},
        mel=rng.standard_normal((80, 4 * n_frames)).astype(np.float16),
        units=rng.integers(0, 200, 2 * n_frames).astype(np.int16),
        codes=rng.integers(0, 256, (levels, 2 * n_frames)).astype(np.int16),
        audio=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
        mouth=rng.random(n_frames).astype(np.float32),
        speaker=_unit(rng.standard_normal(256)),
        landmarks=random_landmarks(n_frames, rng),
        meta={"corpus": corpus, "speaker": speaker, "split": split, "transcript": "bin blue at f two now",
              "duration_s": n_frames / 25, "fps": 25, "pipeline_version": PIPELINE_VERSION},
    )


def record_stats(rec: ShardRecord, split: str = "train") -> dict:
    from imagintalk.shards.record import clip_id_to_key

    return {"key": clip_id_to_key(rec.clip_id), "clip_id": rec.clip_id, "split": split,
            "speaker": rec.clip_id.split("/")[1], "emotion": rec.emotion["label"],
            "duration_s": rec.n_frames / 25, "n_frames": rec.n_frames, "units_per_s": 50.0,
            "codes_shape": list(rec.codes.shape), "speaker_norm": float(np.linalg.norm(rec.speaker))}


def small_tokens_params_file(directory: Path, params, k: int, levels: int, codebook_size: int,
                            per_shard: int) -> Path:
    """``params`` with small unit/codec vocabularies (a test corpus has a few hundred 50 Hz frames,
    not K=200's worth) and ``per_shard`` clips per shard, written as a params.yaml the CLI reads."""
    import yaml

    p = params.model_copy(update={
        "tokenizer": params.tokenizer.model_copy(update={"k": k}),
        "codec": params.codec.model_copy(update={"levels": levels, "codebook_size": codebook_size}),
        "shards": params.shards.model_copy(update={"samples_per_shard": per_shard}),
    })
    path = Path(directory) / "params.yaml"
    path.write_text(yaml.safe_dump(p.model_dump(mode="json")))
    return path


def fit_tokenizers_beside(manifest: Path, params) -> Path:
    """Fit the unit tokenizer and codec on ``manifest``'s train split where `shard` looks for them
    by default (``tokenizers/`` beside the manifest): their own stages, as the pipeline runs them."""
    from pipelines.shard import default_tokenizer_dir
    from pipelines.tokenizers import fit_codec, fit_unit_tokenizer

    out = default_tokenizer_dir(manifest)
    fit_unit_tokenizer(Path(manifest), out, params)
    fit_codec(Path(manifest), out, params)
    return out


def make_clip_manifest(root: Path, spec: list[tuple[str, str, str, str]], n_frames: int = 20,
                       size: int = 64) -> Path:
    """Real mp4 clips and their manifest. spec: (speaker, clip, split, kind) with kind in
    ``ok`` (moving square + tone), ``silent`` (zero audio), ``blank`` (uniform frames: no face)."""
    rows: list[ManifestRow] = []
    for i, (speaker, clip, split, kind) in enumerate(spec):
        rng = np.random.default_rng(i)
        frames = np.full((n_frames, size, size, 3), 40, np.uint8)
        if kind != "blank":
            for f in range(n_frames):
                y = 8 + (f % 10)
                frames[f, y:y + 24, 16:48] = rng.integers(100, 255, 3, dtype=np.uint8)
        t = np.arange(n_frames * SPF) / 16000
        audio = (np.zeros_like(t) if kind == "silent"
                 else 0.2 * np.sin(2 * np.pi * (180 + 20 * i) * t)).astype(np.float32)
        path = write_mp4(root / "raw" / speaker / f"{clip}.mp4", frames, audio=audio)
        rows.append(ManifestRow(
            clip_id=f"synthtalk/{speaker}/{clip}", corpus="synthtalk", speaker=speaker, split=split,
            video_path=str(path), audio_path=None, transcript=f"clip {clip}", emotion="happy",
            intensity=0.5, duration_s=n_frames / 25, fps=25.0, sample_rate=16000,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        ))
    return write_manifest(rows, root / "manifest.parquet")


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on an ephemeral loopback port (real HTTP), credentials and endpoint in the
    environment as a deployment would set them; yields ``s3://<fresh bucket>`` (moto keeps its
    state per process, so each server gets a bucket name of its own)."""
    bucket = f"imagintalk-test-{next(_BUCKETS)}"
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "FSSPEC_S3_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        s3fs.S3FileSystem(endpoint_url=env["FSSPEC_S3_ENDPOINT_URL"]).mkdir(bucket)
        yield f"s3://{bucket}"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


# (speaker, clip, split, photo, kind): kind ok | silent | noface | mismatch
TALKING_SPEC = [
    ("astro", "c0", "train", "astronaut", "ok"),
    ("astro", "c1", "train", "astronaut", "ok"),
    ("hopper", "c0", "train", "grace_hopper", "ok"),
    ("hopper", "c1", "train", "grace_hopper", "ok"),
    ("astro2", "c0", "val", "astronaut", "ok"),
    ("hopper2", "c0", "test", "grace_hopper", "ok"),
    ("astro", "c2silent", "train", "astronaut", "silent"),
    ("hopper", "c3noface", "train", "grace_hopper", "noface"),
    ("astro2", "c4cut", "val", "astronaut", "mismatch"),
]
TEXTS = ["bin blue at f two now", "lay green by d one soon", "place red in a nine again",
         "set white with z four please"]


def make_talking_manifest(root: Path, n_frames: int = 25, spec=TALKING_SPEC) -> Path:
    """Real talking-face mp4s (packaged photos + espeak-ng speech) and bad ones, with a manifest.

    Bad clips: ``silent`` (zero audio), ``noface`` (flat grey frames), ``mismatch`` (audio 10
    frames longer than the video: a cut file)."""
    from sample_media import envelope_openings, espeak, photo, talking_frames

    rows: list[ManifestRow] = []
    for i, (speaker, clip, split, face, kind) in enumerate(spec):
        speech = espeak(TEXTS[i % len(TEXTS)])
        extra = 10 if kind == "mismatch" else 0
        audio = np.zeros((n_frames + extra) * SPF, np.float32)
        n = min(len(speech), len(audio))
        audio[:n] = speech[:n]
        frames = talking_frames(photo(face), envelope_openings(audio[: n_frames * SPF], n_frames), seed=i)
        if kind == "silent":
            audio[:] = 0.0
        if kind == "noface":
            frames[:] = 128
        path = write_mp4(root / "raw" / speaker / f"{clip}.mp4", frames, 25, audio, 16000)
        rows.append(ManifestRow(
            clip_id=f"synthtalk/{speaker}/{clip}", corpus="synthtalk", speaker=speaker, split=split,
            video_path=str(path), audio_path=None, transcript=TEXTS[i % len(TEXTS)], emotion="happy",
            intensity=0.5, duration_s=n_frames / 25, fps=25.0, sample_rate=16000,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        ))
    return write_manifest(rows, root / "manifest.parquet")
