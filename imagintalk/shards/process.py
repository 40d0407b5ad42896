"""One clip → one encoded WebDataset sample (or a quarantine reason): the unit of parallel work.

:class:`ClipProcessor` is what a Ray Data actor (or the in-process loop) holds: it loads the unit
tokenizer, the codec (k-means, or a pretrained one whose weights it resolves from its cache or the
storage root) and the speaker encoder once, then for each manifest row runs the per-clip
preprocessing (face track, lip ROI, identity, audio features), tokenizes, embeds the speaker, and
encodes the record to bytes in the worker, so JPEG/FLAC encoding is parallel too and the driver
only writes tars.

The tokenizer files travel as bytes in the constructor rather than as a path: a Ray worker on
another node cannot see the driver's temporary directory.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagintalk import PIPELINE_VERSION
from imagintalk.config import Params, StorageConfig
from imagintalk.conventions import CODEC_FILE, TOKENIZER_FILES, UNIT_TOKENIZER_FILE
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.errors import ArtifactError, ImaginTalkError
from imagintalk.shards.record import ShardRecord, clip_id_to_key, encode_record, to_jsonable

log = logging.getLogger(__name__)

INTERNAL_KIND = "internal"   # an unexpected exception: quarantined, logged with its traceback


@dataclass
class ClipOutcome:
    """What became of one clip: a sample and its stats, or the quarantine kind and reason."""

    clip_id: str
    ok: bool
    sample: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None
    reason: str | None = None

    def to_row(self) -> dict[str, Any]:
        """Flat row for Ray Data (arrow-friendly: the sample travels as one pickled blob)."""
        return {"clip_id": self.clip_id, "ok": self.ok, "kind": self.kind or "", "reason": self.reason or "",
                "payload": pickle.dumps((self.sample, self.stats), protocol=pickle.HIGHEST_PROTOCOL)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClipOutcome:
        sample, stats = pickle.loads(row["payload"])
        return cls(row["clip_id"], bool(row["ok"]), sample, stats, row["kind"] or None, row["reason"] or None)

    def quarantine_row(self, source: ManifestRow) -> dict[str, Any]:
        return {"clip_id": self.clip_id, "path": source.video_path, "corpus": source.corpus,
                "split": source.split, "stage": "shard", "kind": self.kind, "reason": self.reason}


def tokenizer_files(names: list[str]) -> list[str]:
    """The files that make up the two tokenizer artifacts (``.npz`` + its ``.json`` metadata)."""
    stems = {Path(f).stem for f in TOKENIZER_FILES}
    return sorted(n for n in names if Path(n).stem in stems)


def read_tokenizer_blobs(tokenizer_dir: str | Path, cfg: StorageConfig | None = None) -> dict[str, bytes]:
    """All artifact files of a tokenizer directory (local or s3://) as bytes."""
    from imagintalk import storage

    names = [u.rstrip("/").rsplit("/", 1)[-1] for u in storage.glob(storage.join(tokenizer_dir, "*"), cfg)]
    missing = [f for f in TOKENIZER_FILES if f not in names]
    if missing:
        raise ArtifactError(str(tokenizer_dir), f"missing tokenizer artifacts {missing}")
    return {n: storage.read_bytes(storage.join(tokenizer_dir, n), cfg) for n in tokenizer_files(names)}


@contextmanager
def limited_threads(n: int) -> Iterator[None]:
    """Size torch's, OpenCV's and the BLAS/OpenMP thread pools to ``n`` for the block, then restore.

    Workers process one clip each and parallelism comes from having several workers, so pools
    sized to the machine only make them fight over cores; and the same size in-process and on Ray
    keeps multi-threaded floating-point reductions, hence the shard bytes, the same.
    """
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


class ClipProcessor:
    """Callable: ``ManifestRow`` → :class:`ClipOutcome`. Loads the tokenizers and the speaker encoder once."""

    def __init__(self, params: Params, tokenizer_blobs: dict[str, bytes]):
        from imagintalk.features.speaker import load_speaker_encoder
        from imagintalk.tokenizers.locate import load_codec
        from imagintalk.tokenizers.units import UnitTokenizer

        self.params = params
        # loaded once per worker process (cached), not per clip; resolved by name like the codec
        self.speaker = load_speaker_encoder(params.shards.speaker_encoder, params)
        with tempfile.TemporaryDirectory(prefix="imagintalk-tok-") as tmp:
            for name, data in tokenizer_blobs.items():
                (Path(tmp) / name).write_bytes(data)
            self.units = UnitTokenizer.load(Path(tmp) / UNIT_TOKENIZER_FILE, params=params)
            # a pretrained codec resolves its weights here, on the worker (cache or storage root)
            self.codec = load_codec(Path(tmp) / CODEC_FILE, params)

    @property
    def versions(self) -> dict[str, str]:
        return {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": str(self.units.version),
                "codec_version": str(self.codec.version)}

    def __call__(self, row: ManifestRow) -> ClipOutcome:
        try:
            with limited_threads(self.params.shards.worker_threads):
                return self._process(row)
        except ImaginTalkError as exc:
            return ClipOutcome(row.clip_id, False, kind=exc.kind, reason=str(exc))
        except Exception as exc:  # a bug or an unforeseen library error: keep the batch going
            log.exception("unexpected failure on %s", row.clip_id)
            return ClipOutcome(row.clip_id, False, kind=INTERNAL_KIND,
                               reason=f"{row.video_path}: {exc.__class__.__name__}: {exc}")

    def _process(self, row: ManifestRow) -> ClipOutcome:
        from imagintalk.preprocess.clip import preprocess_clip

        feats = preprocess_clip(row, self.params)
        speaker = self.speaker.embed(feats.audio, self.params.media.sample_rate)
        units = self.units.encode(feats.audio)
        codes = self.codec.encode_clip(feats.audio, feats.mel, self.params.media.sample_rate)
        n_frames = int(feats.lips.shape[0])
        duration_s = n_frames / float(feats.fps)
        meta = {
            "clip_id": row.clip_id, "corpus": row.corpus, "speaker": row.speaker, "split": row.split,
            "transcript": row.transcript, "duration_s": duration_s, "source_duration_s": row.duration_s,
            "n_frames": n_frames, "fps": feats.fps, "sample_rate": self.params.media.sample_rate,
            "av_mismatch_s": feats.av_mismatch_s, "source_sha256": row.sha256,
            "source": {"video_path": row.video_path, "audio_path": row.audio_path},
            **self.versions,
        }
        record = ShardRecord(
            clip_id=row.clip_id, lips=feats.lips, face=feats.face, identity=feats.identity,
            emotion=dict(feats.emotion), mel=feats.mel, units=units, codes=codes, audio=feats.audio,
            mouth=feats.mouth_open, speaker=speaker, landmarks=feats.landmarks, meta=meta,
            sample_rate=self.params.media.sample_rate,
        )
        sample = encode_record(record, jpeg_quality=self.params.shards.jpeg_quality)
        stats = {
            **to_jsonable(dict(feats.stats)),
            "key": clip_id_to_key(row.clip_id), "clip_id": row.clip_id, "split": row.split,
            "speaker": row.speaker, "emotion": record.emotion.get("label"),
            "duration_s": duration_s, "n_frames": n_frames,
            "units_per_s": len(units) / duration_s if duration_s else 0.0,
            "codes_shape": list(codes.shape), "mel_frames": int(record.mel.shape[-1]),
            "speaker_norm": float(np.linalg.norm(speaker)),
        }
        return ClipOutcome(row.clip_id, True, sample, stats)


class RayClipMapper:
    """Ray Data actor wrapper: rows are plain dicts (``asdict(ManifestRow)``) in and out."""

    def __init__(self, params: Params, tokenizer_blobs: dict[str, bytes]):
        self.processor = ClipProcessor(params, tokenizer_blobs)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.processor(ManifestRow(**{k: row[k] for k in ManifestRow.__dataclass_fields__})).to_row()


def manifest_row_dict(row: ManifestRow) -> dict[str, Any]:
    return asdict(row)
