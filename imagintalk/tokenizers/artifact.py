"""Versioned tokenizer artifacts: ``name.npz`` (arrays) + ``name.json`` (metadata), byte-identical
for identical content, and a ``version`` that is the sha256 of that content.

``np.savez`` stamps every zip member with the current time, so two fits of the same data would
differ on disk; here members carry a fixed date and are written in sorted order. The version hashes
the arrays (name, dtype, shape, bytes) and the canonical JSON of the metadata, not the file, so it
does not depend on zip details and it enters the data version of every shard built with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from imagintalk.errors import ArtifactError

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Metadata that says where things are on this machine, not what the artifact is: kept out of the
# version so the same fit on two machines has the same version (a pretrained codec's
# ``weights_source`` says where its weights are fetched from; their sha256 is what is hashed).
UNHASHED_KEYS = frozenset({"version", "checkpoint_path", "checkpoint_name", "weights_source"})


def content_version(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """sha256 over sorted arrays and canonical metadata (``UNHASHED_KEYS`` excluded)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(_canonical({k: v for k, v in meta.items() if k not in UNHASHED_KEYS}).encode())
    return h.hexdigest()


def _canonical(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str)


def json_path(npz_path: str | Path) -> Path:
    return Path(npz_path).with_suffix(".json")


def save_artifact(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Write ``path`` (.npz) and its .json sidecar atomically; returns the content version."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ArtifactError(path, "tokenizer artifacts are .npz files")
    path.parent.mkdir(parents=True, exist_ok=True)
    version = content_version(arrays, meta)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE), member.getvalue())
    doc = json.dumps({**meta, "version": version}, sort_keys=True, indent=2, default=str) + "\n"
    _atomic_write(path, buf.getvalue())
    _atomic_write(json_path(path), doc.encode())
    return version


def load_artifact(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and metadata; refuses a pair whose content does not hash to the recorded version."""
    path = Path(path)
    meta_path = json_path(path)
    if not path.exists() or not meta_path.exists():
        raise ArtifactError(path, "tokenizer artifact missing (needs .npz and .json)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(path, f"unreadable tokenizer artifact ({exc.__class__.__name__})") from exc
    if content_version(arrays, meta) != meta.get("version"):
        raise ArtifactError(path, "content does not match its recorded version (edited or mixed files)")
    return arrays, meta


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
