"""The training loader over shards (issue 3 part 7): WebDataset pipeline → padded batches.

Stages: shard list (this Ray Train worker's part, shuffled for training) → split among DataLoader
workers → tar members (``audio.flac`` skipped unless asked for: it is the largest member and only
the vocoder needs it) → shuffle buffer (train) → decode + 88×88 lip crop (random for train, centre
for eval, as auto_avsr) → batches padded to the longest clip with masks.

Works on local paths and ``s3://`` (importing :mod:`imagintalk.storage` registers the opener).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from imagintalk import storage
from imagintalk.config import LoaderConfig, StorageConfig
from imagintalk.conventions import EMOTION_INDEX, UNKNOWN_EMOTION
from imagintalk.errors import ConfigError, DataError
from imagintalk.shards.index import INDEX_NAME, shard_urls
from imagintalk.shards.record import decode_field, key_to_clip_id

UNITS_PER_FRAME = 2    # 50 Hz tokens per 25 fps video frame
MELS_PER_FRAME = 4     # 100 Hz mel frames per video frame

# Batch layout (B clips, T = longest clip in frames, L codec levels):
#   keys list[str]; lengths long B (frames); lips uint8 B×T×C×C; lip_mask bool B×T;
#   mouth float32 B×T; units long B×2T; unit_mask bool B×2T; codes long B×L×2T;
#   mel float32 B×80×4T; mel_mask bool B×4T; identity float32 B×128; face float32 B×3×H×W in [0,1];
#   speaker float32 B×256 (GE2E embedding of the clip's ground-truth audio: c_id's auxiliary target);
#   emotion long B (UNKNOWN_EMOTION where unlabelled); intensity float32 B (0 where unknown);
#   emotion_frames long B×T (per-frame argmax of the probabilities, else the clip label);
#   landmarks float32 B×T×136 (mean-face coordinates, 0 where lost), face_found bool B×T (the
#   expression model's input: imagintalk.preprocess.expression_features);
#   with cfg.audio: audio float32 B×640T, audio_mask bool B×640T.
# With cfg.fields set, only those optional fields (LOADER_FIELDS) are read and decoded; keys,
# lengths, lip_mask, mouth and the emotion fields are always there.


def resolve_shards(root_or_urls: str | Sequence[str], split: str,
                   storage_cfg: StorageConfig | None = None) -> list[str]:
    """Shard URLs of ``split``: from ``{root}/index.json``, else by glob; or the URLs given."""
    if not isinstance(root_or_urls, str):
        urls = [str(u) for u in root_or_urls]
    elif root_or_urls.endswith(".tar") or "{" in root_or_urls:
        import braceexpand

        urls = list(braceexpand.braceexpand(root_or_urls))
    elif storage.exists(storage.join(root_or_urls, INDEX_NAME), storage_cfg):
        urls = shard_urls(root_or_urls, split, storage_cfg)
    else:
        urls = storage.glob(storage.join(root_or_urls, "*", split, f"{split}-*.tar"), storage_cfg)
    if not urls:
        raise DataError(str(root_or_urls), f"no shards for split {split!r}")
    return urls


# Optional record fields (LoaderConfig.fields) and the tar member each is read from. The clip's
# key, length (from mouth.npy, T floats), mouth openness and emotion label are always read.
LOADER_FIELDS: dict[str, str] = {
    "lips": "lips.npy", "units": "units.npy", "codes": "codes.npy", "mel": "mel.npy",
    "identity": "identity.npy", "speaker": "speaker.npy", "face": "face.jpg", "landmarks": "landmarks.npy",
}


class CropLips:
    """Decode the fields the model reads (``fields``; None = all) and crop the 96×96 lip ROI to ``size``."""

    def __init__(self, size: int, train: bool, seed: int, audio: bool, fields: Sequence[str] | None = None,
                 flip_prob: float = 0.0, time_mask_frames: int = 0):
        self.size, self.train, self.audio = size, train, audio
        self.fields = None if fields is None else frozenset(fields)
        self.rng = np.random.default_rng(seed)
        self.flip_prob, self.time_mask_frames = flip_prob, time_mask_frames

    def _crop(self, sample: dict[str, Any]) -> np.ndarray:
        lips = decode_field("lips.npy", sample["lips.npy"], copy=False)
        _, h, w = lips.shape
        if h < self.size or w < self.size:
            raise ValueError(f"{sample['__key__']}: lips {h}×{w} smaller than crop {self.size}")
        if self.train:
            y, x = (int(self.rng.integers(0, h - self.size + 1)), int(self.rng.integers(0, w - self.size + 1)))
        else:
            y, x = (h - self.size) // 2, (w - self.size) // 2
        crop = lips[:, y:y + self.size, x:x + self.size]
        return self._augment(crop) if self.train else crop

    def _augment(self, crop: np.ndarray) -> np.ndarray:
        """auto_avsr's video transform beyond the crop (LoaderConfig.flip_prob, time_mask_frames):
        mirrored left-right, and per second of video (25 frames) one span of up to
        ``time_mask_frames`` frames replaced by the clip's mean frame."""
        if self.flip_prob and self.rng.random() < self.flip_prob:
            crop = crop[:, :, ::-1]
        if self.time_mask_frames:
            crop = crop.copy()
            t = len(crop)
            mean = crop.mean(axis=0).round().astype(crop.dtype)
            for _ in range(max(1, t // 25)):
                width = int(self.rng.integers(0, self.time_mask_frames + 1))
                start = int(self.rng.integers(0, max(1, t - width)))
                crop[start:start + width] = mean
        return crop

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        want = (lambda name: True) if self.fields is None else self.fields.__contains__
        mouth = decode_field("mouth.npy", sample["mouth.npy"], copy=False)
        t = len(mouth)
        emotion = decode_field("emotion.json", sample["emotion.json"])
        label = EMOTION_INDEX.get(emotion.get("label") or "", UNKNOWN_EMOTION)
        probs = emotion.get("probs")
        frames = (np.asarray(probs, np.float32).argmax(axis=1) if probs is not None
                  else np.full(t, label, np.int64))
        out: dict[str, Any] = {
            "key": key_to_clip_id(sample["__key__"]), "length": t, "mouth": mouth,
            "emotion": label, "intensity": float(emotion.get("intensity") or 0.0),
            "emotion_frames": frames.astype(np.int64),
        }
        for name, member in LOADER_FIELDS.items():
            if want(name):
                out[name] = (self._crop(sample) if name == "lips"
                              else decode_field(member, _member(sample, member), copy=False))
        if self.audio:
            out["audio"] = decode_field("audio.flac", sample["audio.flac"])[0]
        return out


def _member(sample: dict[str, Any], name: str) -> bytes:
    if name not in sample:
        raise DataError(key_to_clip_id(sample["__key__"]), f"sample has no {name} (shards of an older "
                                                              "pipeline version: shard the corpus again)")
    return sample[name]


def pad_stack(arrays: Sequence[np.ndarray], length: int, axis: int, dtype: np.dtype | type,
         fill: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stack arrays padded with ``fill`` on ``axis`` to ``length``; mask B×length (True = real).

    Padding and casting are done in numpy and wrapped by ``torch.from_numpy`` at the end: torch's
    intra-op threads make small element-wise copies many times slower on a busy few-core host,
    and numpy's single-threaded casts are what the loader's throughput rests on.
    """
    shape = list(arrays[0].shape)
    shape[axis] = length
    out = np.full((len(arrays), *shape), fill, dtype=dtype)
    mask = np.zeros((len(arrays), length), dtype=bool)
    for i, a in enumerate(arrays):
        n = a.shape[axis]
        index = [slice(None)] * a.ndim
        index[axis] = slice(0, n)
        out[(i, *index)] = a
        mask[i, :n] = True
    return out, mask


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad to the longest clip in the batch; masks mark real steps (see the batch layout above).
    Fields the loader was not asked for (``LoaderConfig.fields``) are absent from the batch."""
    lengths = np.array([s["length"] for s in samples], dtype=np.int64)
    t = int(lengths.max())
    arrays: dict[str, np.ndarray] = {
        "lengths": lengths, "lip_mask": np.arange(t)[None, :] < lengths[:, None],
        "mouth": pad_stack([s["mouth"] for s in samples], t, 0, np.float32)[0],
        "emotion_frames": pad_stack([s["emotion_frames"] for s in samples], t, 0, np.int64,
                               fill=UNKNOWN_EMOTION)[0],
        "emotion": np.array([s["emotion"] for s in samples], dtype=np.int64),
        "intensity": np.array([s["intensity"] for s in samples], dtype=np.float32),
    }
    first = samples[0]
    if "lips" in first:  # uint8: the model scales to [0, 1]
        arrays["lips"] = pad_stack([s["lips"] for s in samples], t, 0, np.uint8)[0]
    if "landmarks" in first:
        arrays.update(_landmarks([s["landmarks"] for s in samples], t))
    if "units" in first:
        arrays["units"], arrays["unit_mask"] = pad_stack([s["units"] for s in samples], UNITS_PER_FRAME * t, 0,
                                                         np.int64)
    if "codes" in first:
        arrays["codes"] = pad_stack([s["codes"] for s in samples], UNITS_PER_FRAME * t, 1, np.int64)[0]
    if "mel" in first:
        arrays["mel"], arrays["mel_mask"] = pad_stack([s["mel"] for s in samples], MELS_PER_FRAME * t, 1, np.float32)
    for name in ("identity", "speaker"):
        if name in first:
            arrays[name] = np.stack([s[name] for s in samples]).astype(np.float32)
    if "face" in first:
        faces = np.stack([s["face"] for s in samples]).transpose(0, 3, 1, 2).astype(np.float32)
        faces *= np.float32(1.0 / 255.0)
        arrays["face"] = faces
    if "audio" in first:
        spf = first["audio"].shape[0] // max(int(first["length"]), 1)
        arrays["audio"], arrays["audio_mask"] = pad_stack([s["audio"] for s in samples], spf * t, 0, np.float32)
    batch: dict[str, Any] = {"keys": [s["key"] for s in samples]}
    batch.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return batch


def _landmarks(arrays: Sequence[np.ndarray], t: int) -> dict[str, np.ndarray]:
    """Face landmarks padded to ``t`` frames: NaN rows (face lost) become zeros with
    ``face_found`` False, so no NaN reaches a model."""
    lm, _ = pad_stack(arrays, t, 0, np.float32, fill=np.nan)
    found = np.isfinite(lm).all(axis=2)
    return {"landmarks": np.where(found[..., None], lm, np.float32(0.0)), "face_found": found}


def _member_filter(audio: bool, fields: Sequence[str] | None) -> Callable[[str], bool] | None:
    """Which tar members to read: all but audio.flac (unless ``audio``) and the members of fields
    not asked for."""
    skip = {".audio.flac"} if not audio else set()
    if fields is not None:
        skip |= {"." + member for name, member in LOADER_FIELDS.items() if name not in fields}
    if not skip:
        return None
    return lambda member: not member.endswith(tuple(skip))


def _shuffled_urls(urls: list[str], seed: int) -> Callable[..., Iterator[dict[str, str]]]:
    """A new shard order every epoch, the same sequence of orders for the same seed."""
    rng = random.Random(seed)

    def stage(_src: Any = None) -> Iterator[dict[str, str]]:
        order = list(urls)
        rng.shuffle(order)
        for url in order:
            yield {"url": url}

    return stage


def _of_speakers(speakers: frozenset[str]) -> Callable[[dict[str, Any]], bool]:
    """Keep samples whose key ``{corpus}/{speaker}/{clip}`` names one of ``speakers``."""
    def keep(sample: dict[str, Any]) -> bool:
        parts = key_to_clip_id(sample["__key__"]).split("/")
        return len(parts) == 3 and parts[1] in speakers
    return keep


def _every_nth(index: int, n: int) -> Callable[[Iterator[dict[str, Any]]], Iterator[dict[str, Any]]]:
    def stage(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for i, sample in enumerate(src):
            if i % n == index:
                yield sample
    return stage


def make_dataset(root_or_urls: str | Sequence[str], split: str, train: bool, cfg: LoaderConfig,
                 shard_index: int = 0, num_shards: int = 1,
                 storage_cfg: StorageConfig | None = None) -> IterableDataset:
    """The batched WebDataset pipeline (an IterableDataset yielding padded batch dicts).

    ``(shard_index, num_shards)`` gives this Ray Train worker its part: whole shards when there
    are at least as many shards as workers, else every ``num_shards``-th sample of all of them
    (tiny splits must still feed every worker). A speaker subset (``cfg.speakers``) is always
    dealt out by sample: its clips may all sit in one shard.
    """
    if not 0 <= shard_index < num_shards:
        raise ConfigError("shard_index", f"{shard_index} not in [0, {num_shards})")
    urls = resolve_shards(root_or_urls, split, storage_cfg)
    by_shard = len(urls) >= num_shards and cfg.speakers is None
    mine = urls[shard_index::num_shards] if by_shard else urls
    seed = cfg.seed + shard_index
    stages: list[Any] = [_shuffled_urls(mine, seed) if train else wds.SimpleShardList(mine)]
    stages.append(wds.split_by_worker)
    keep_audio = cfg.audio
    stages.append(wds.tarfile_to_samples(select_files=_member_filter(keep_audio, cfg.fields)))
    if cfg.speakers is not None:
        stages.append(wds.select(_of_speakers(frozenset(cfg.speakers))))
    if not by_shard and num_shards > 1:
        stages.append(_every_nth(shard_index, num_shards))
    if train and cfg.shuffle_buffer > 1:
        stages.append(wds.shuffle(cfg.shuffle_buffer, initial=cfg.shuffle_buffer,
                                  rng=random.Random(seed)))
    stages.append(wds.map(CropLips(cfg.crop, train, seed, keep_audio, cfg.fields, cfg.flip_prob,
                                   cfg.time_mask_frames)))
    stages.append(wds.batched(cfg.batch_size, collation_fn=collate, partial=not cfg.drop_last))
    return wds.DataPipeline(*stages)


def make_loader(root_or_urls: str | Sequence[str], split: str, train: bool, cfg: LoaderConfig,
                shard_index: int = 0, num_shards: int = 1,
                storage_cfg: StorageConfig | None = None) -> DataLoader:
    """A torch DataLoader of padded batches (see the batch layout above) over the shards of
    ``split`` under a shard root (local or s3://), or over explicit shard URLs."""
    dataset = make_dataset(root_or_urls, split, train, cfg, shard_index, num_shards, storage_cfg)
    return DataLoader(dataset, batch_size=None, num_workers=cfg.num_workers,
                      persistent_workers=False, pin_memory=False)
