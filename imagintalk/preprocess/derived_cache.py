"""What a fresh process would otherwise rebuild from a packaged model file, kept on disk.

Every `imagintalk speak` and every Ray worker is a fresh process, and two of dlib's models cost
more to rebuild than to map: the 68-point predictor's 16 M variable-length floats (a compiled
second to parse, shape_predictor.py) and the HOG face detector, which dlib decompresses from a
string embedded in its library (0.17 s). Both are kept under ``$IMAGINTALK_DERIVED_CACHE``
(default ``~/.cache/imagintalk/derived``), keyed by what they were derived from (the model file's
content, dlib's version), and written whole or not at all (a temporary name, then a rename), so a
reader never sees a partial file. A cache that cannot be read or written is passed over: the
caller rebuilds.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np

DERIVED_CACHE_ENV = "IMAGINTALK_DERIVED_CACHE"
T = TypeVar("T")
log = logging.getLogger(__name__)
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def derived_cache_dir() -> Path:
    """Where arrays derived from packaged model files are kept between processes."""
    return Path(os.environ.get(DERIVED_CACHE_ENV) or "~/.cache/imagintalk/derived").expanduser()


def fingerprint(path: Path, blocks: int = 16, block_bytes: int = 1 << 16) -> str:
    """A key for a model file's content: its size and ``blocks`` evenly spaced blocks (1 MB of a
    100 MB model, ~1 ms). Not its path or modification time: every clone's virtual environment
    installs the same model file under another path and time, and keyed by those, each clone
    left 67 MB more in the cache."""
    h = hashlib.sha1()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        for k in range(blocks):
            f.seek(max(0, size - block_bytes) * k // max(1, blocks - 1))
            h.update(f.read(block_bytes))
    return h.hexdigest()[:16]


def publish(target: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file beside ``target``, then rename it there; an unwritable cache is
    logged and passed over."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        log.debug("not caching %s (%s)", target, exc)
        tmp.unlink(missing_ok=True)


def cached_or_built(target: Path, load: Callable[[Path], T], build: Callable[[], T],
                    save: Callable[[T, Path], None], rebuilding: str,
                    unreadable: tuple[type[Exception], ...] = (OSError, ValueError)) -> T:
    """``load(target)`` when an earlier process left it; else (or when it raises one of
    ``unreadable``: a damaged file, warned about as ``rebuilding``) ``build()``, published for the
    next process."""
    if target.exists():
        try:
            return load(target)
        except unreadable as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.warning("%s: its cached copy %s is unreadable (%s)", rebuilding, target, reason)
    built = build()
    publish(target, lambda tmp: save(built, tmp))
    return built


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The arrays as .npy records back to back in one file, in the order given."""
    with open(path, "wb") as f:
        for a in arrays.values():
            np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)


def map_arrays(path: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The records ``save_arrays`` wrote, memory-mapped rather than read: a fresh process touches
    only the pages it uses, and those come from the page cache. Copy-on-write, so each array is
    a plain writable ndarray to numba (the same compiled signature as a parsed one). A damaged or
    truncated file raises ValueError or OSError."""
    out = {}
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for name in names:
            read_header = _HEADER_READERS.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise ValueError(f"record {name!r} has an unknown .npy version")
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if fortran or dtype.hasobject or offset + nbytes > size:
                raise ValueError(f"record {name!r} is not a whole C-ordered array")
            out[name] = np.asarray(np.memmap(path, dtype, "c", offset, shape))
            f.seek(offset + nbytes)
    return out
