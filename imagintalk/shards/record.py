"""The sample record of DESIGN.md §3: one WebDataset sample = one clip.

Field names are the tar member suffixes (``{key}.lips.npy`` ...). Encoding is deterministic
(``np.save`` without pickles, sorted compact JSON, JPEG and FLAC from fixed libraries) so the same
features give the same bytes, which the shard hashes and the dataset's content hash rely on.

Keys: ``__key__`` is the clip id ``{corpus}/{speaker}/{clip}``. WebDataset splits a member name at
the first dot *after the last slash* into key and field, and keeps ``/`` in keys, so a dot inside
the clip name would corrupt the key; dots (and ``%``, to stay reversible) are percent-escaped in the
key and :func:`key_to_clip_id` undoes it. ``meta.json`` carries the clip id verbatim as well.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import soundfile as sf

from imagintalk.errors import CorpusLayoutError, MediaError

# field -> (dtype, rank) for the arrays; shapes relative to T (video frames at 25 fps):
# lips T×96×96, identity 128, speaker 256, mel 80×4T, units 2T, codes L×2T, mouth T,
# landmarks T×136 (mean-face coordinates, NaN rows where the face was lost: the expression
# model's input, see imagintalk.preprocess.expression_features).
ARRAY_FIELDS: dict[str, tuple[np.dtype, int]] = {
    "lips.npy": (np.dtype(np.uint8), 3),
    "identity.npy": (np.dtype(np.float32), 1),
    "speaker.npy": (np.dtype(np.float32), 1),
    "mel.npy": (np.dtype(np.float16), 2),
    "units.npy": (np.dtype(np.int16), 1),
    "codes.npy": (np.dtype(np.int16), 2),
    "mouth.npy": (np.dtype(np.float32), 1),
    "landmarks.npy": (np.dtype(np.float16), 2),
}
JSON_FIELDS = ("emotion.json", "meta.json")
FIELDS: tuple[str, ...] = (*ARRAY_FIELDS, "face.jpg", "audio.flac", *JSON_FIELDS)


@dataclass
class ShardRecord:
    """One clip's training sample, decoded."""

    clip_id: str
    lips: np.ndarray          # uint8 T×96×96 grayscale mouth ROI
    face: np.ndarray          # uint8 H×W×3 RGB aligned face
    identity: np.ndarray      # float32 (128,) mean face descriptor
    emotion: dict[str, Any]   # {label, intensity, probs: T×len(EMOTIONS) list or None}
    mel: np.ndarray           # float16 80×4T log-mel
    units: np.ndarray         # int16 (2T,) semantic units at 50 Hz
    codes: np.ndarray         # int16 L×2T codec tokens at 50 Hz
    audio: np.ndarray         # float32 (T·640,) 16 kHz mono
    mouth: np.ndarray         # float32 (T,) mouth-opening series (sync metrics)
    speaker: np.ndarray       # float32 (256,) GE2E speaker embedding of ``audio`` (c_id's target)
    landmarks: np.ndarray     # float16 T×136 normalised face landmarks (NaN rows: face lost)
    meta: dict[str, Any] = field(default_factory=dict)
    sample_rate: int = 16000

    @property
    def n_frames(self) -> int:
        return int(self.lips.shape[0])


# ----------------------------------------------------------------------------------------- keys
def clip_id_to_key(clip_id: str) -> str:
    """Escape a clip id into a WebDataset key (no dots; ``/`` kept)."""
    parts = clip_id.split("/")
    if clip_id.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CorpusLayoutError(clip_id, "clip id must be a relative '{corpus}/{speaker}/{clip}' path")
    return clip_id.replace("%", "%25").replace(".", "%2E")


def key_to_clip_id(key: str) -> str:
    return key.replace("%2E", ".").replace("%25", "%")


# ------------------------------------------------------------------------------------- encoding
def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays and tuples into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def dump_json(value: Any) -> bytes:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":")).encode("utf-8")


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


# The header np.save writes for a plain C-order array; anything else goes through np.load.
_NPY_HEADER = re.compile(r"\{'descr': '([<>|=]?[a-zA-Z]\d*)', 'fortran_order': False, "
                         r"'shape': \(([\d, ]*)\), *\}")


def decode_npy(data: bytes, copy: bool = True) -> np.ndarray:
    """``.npy`` bytes → array. ``copy=False`` returns a read-only view of ``data``.

    np.load parses the header with ``ast.literal_eval``, which costs more than reading a whole
    lips array; the loader decodes seven arrays per sample, so the plain header is parsed here.
    """
    if data[:6] == b"\x93NUMPY" and len(data) > 10:
        major = data[6]
        size_fmt, start = ("<H", 10) if major == 1 else ("<I", 12)
        (header_len,) = struct.unpack(size_fmt, data[8:start])
        m = _NPY_HEADER.match(data[start:start + header_len].decode("latin1"))
        if m is not None:
            shape = tuple(int(x) for x in m.group(2).split(",") if x.strip())
            dtype = np.dtype(m.group(1))
            array = np.frombuffer(data, dtype, count=math.prod(shape), offset=start + header_len)
            array = array.reshape(shape)
            return array.copy() if copy else array
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_jpg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise MediaError("face.jpg", "JPEG encoding failed")
    return buf.tobytes()


def decode_jpg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError("face.jpg", "not a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(audio, np.float32), -1.0, 1.0), sample_rate,
             format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    return audio, int(sr)


def _checked(name: str, array: np.ndarray, clip_id: str) -> np.ndarray:
    dtype, rank = ARRAY_FIELDS[name]
    array = np.asarray(array)
    if array.ndim != rank:
        raise MediaError(clip_id, f"{name} must have rank {rank}, got shape {array.shape}")
    return array.astype(dtype, copy=False)


def encode_record(rec: ShardRecord, jpeg_quality: int = 95) -> dict[str, Any]:
    """Record → WebDataset sample (``__key__`` plus field → bytes). Checks the documented shapes."""
    t = rec.n_frames
    arrays = {
        "lips.npy": rec.lips, "identity.npy": rec.identity, "mel.npy": rec.mel,
        "units.npy": rec.units, "codes.npy": rec.codes, "mouth.npy": rec.mouth,
        "speaker.npy": rec.speaker, "landmarks.npy": rec.landmarks,
    }
    arrays = {k: _checked(k, v, rec.clip_id) for k, v in arrays.items()}
    expected = {"mel.npy": (1, 4 * t), "units.npy": (0, 2 * t), "codes.npy": (1, 2 * t),
                "mouth.npy": (0, t), "landmarks.npy": (0, t)}
    for name, (axis, length) in expected.items():
        if arrays[name].shape[axis] != length:
            raise MediaError(rec.clip_id, f"{name} has {arrays[name].shape[axis]} steps on axis "
                                          f"{axis}, expected {length} for {t} frames")
    sample: dict[str, Any] = {"__key__": clip_id_to_key(rec.clip_id)}
    sample.update({k: encode_npy(v) for k, v in arrays.items()})
    sample["face.jpg"] = encode_jpg(np.asarray(rec.face, np.uint8), jpeg_quality)
    sample["audio.flac"] = encode_flac(rec.audio, rec.sample_rate)
    sample["emotion.json"] = dump_json(rec.emotion)
    sample["meta.json"] = dump_json({**rec.meta, "clip_id": rec.clip_id})
    return sample


# ------------------------------------------------------------------------------------- decoding
def decode_field(name: str, data: bytes, copy: bool = True) -> Any:
    """Decode one member by its field name (the loader decodes only the fields it needs;
    ``copy=False`` gives read-only arrays over the member bytes, which it copies when batching)."""
    if name in ARRAY_FIELDS:
        return decode_npy(data, copy=copy)
    if name in JSON_FIELDS:
        return json.loads(data)
    if name == "face.jpg":
        return decode_jpg(data)
    if name == "audio.flac":
        return decode_flac(data)
    raise KeyError(f"unknown record field {name!r}")


def decode_record(sample: dict[str, Any]) -> ShardRecord:
    """WebDataset sample (bytes per field, as read from a tar) → :class:`ShardRecord`."""
    missing = [f for f in FIELDS if f not in sample]
    if missing:
        raise MediaError(sample.get("__key__"), f"sample lacks fields {missing}")
    d = {f: decode_field(f, sample[f]) for f in FIELDS}
    audio, sr = d["audio.flac"]
    return ShardRecord(
        clip_id=key_to_clip_id(sample["__key__"]), lips=d["lips.npy"], face=d["face.jpg"],
        identity=d["identity.npy"], emotion=d["emotion.json"], mel=d["mel.npy"],
        units=d["units.npy"], codes=d["codes.npy"], audio=audio, mouth=d["mouth.npy"],
        speaker=d["speaker.npy"], landmarks=d["landmarks.npy"], meta=d["meta.json"], sample_rate=sr,
    )
