"""One place that opens a container and turns every PyAV/FFmpeg failure into a MediaError."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av

from imagintalk.errors import MediaError


@contextlib.contextmanager
def open_container(path: str | Path) -> Iterator[av.container.InputContainer]:
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "file is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise MediaError(path, "zero-length file")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"not a readable media file ({_short(exc)})") from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"corrupt or truncated stream ({_short(exc)})") from exc
    finally:
        container.close()


def _short(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(msg).split())[:160]
