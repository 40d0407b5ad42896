"""A tiny espeak-ng synthesis server: stdlib only, run as a script by ``imagintalk.synth.espeak``.

Why a separate process that forks per request: libespeak-ng keeps state between messages
(glottal phase, pitch flutter index, echo buffer, ``rand()``), so the same text synthesised twice
in one process gives different samples, and re-initialising the library does not reset it. The
server initialises the library once and never synthesises itself; every request is served by a
forked child that starts from that pristine state, so the output depends only on the request.
Running it apart from the generator also keeps ``fork`` away from processes with thread pools.

Protocol (binary, on stdin/stdout): request = 4-byte big-endian length + UTF-8 JSON
``{"text", "voice", "rate", "pitch", "range", "volume"}``; reply = 4-byte length + JSON header
``{"ok", "error", "sample_rate", "events": [[type, sample, text_pos, length, name], ...],
"n_samples"}`` followed by ``n_samples`` little-endian int16 samples.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import struct
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_PHONEME_EVENTS = 0x1
INIT_PHONEME_IPA = 0x2
CHARS_UTF8 = 1
SSML = 0x10
PHONEMES = 0x100
POS_CHARACTER = 1
PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
EVENT_WORD, EVENT_END, EVENT_PHONEME = 1, 5, 7
RAND_SEED = 1  # glibc's own default: the espeak-ng command line gives the same noise


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def _read_exact(stream, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _send(out, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    out.write(struct.pack(">I", len(data)) + data + payload)
    out.flush()


def _synthesize(lib, libc, request: dict) -> tuple[dict, bytes]:
    """Runs in the forked child: one message from the pristine library state."""
    samples: list[bytes] = []
    events: list[list] = []

    def collect(wav, n, ev):
        if wav and n > 0:
            samples.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while ev[i].type != 0:
            e = ev[i]
            if e.type in (EVENT_WORD, EVENT_PHONEME, EVENT_END):
                name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace") \
                    if e.type == EVENT_PHONEME else ""
                events.append([e.type, e.sample, e.text_position, e.length, name])
            i += 1
        return 0

    callback = _Callback(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        return {"ok": False, "error": f"unknown espeak-ng voice {request['voice']!r}"}, b""
    for key, code in PARAM.items():
        lib.espeak_SetParameter(code, int(request[key]), 0)
    libc.srand(RAND_SEED)
    text = request["text"].encode() + b"\0"
    status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8 | SSML | PHONEMES,
                              None, None)
    lib.espeak_Synchronize()
    if status != 0:
        return {"ok": False, "error": f"espeak_Synth returned {status}"}, b""
    pcm = b"".join(samples)
    return {"ok": True, "events": events, "n_samples": len(pcm) // 2}, pcm


def main() -> int:
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    lib = ctypes.CDLL(name)
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                        INIT_PHONEME_EVENTS | INIT_PHONEME_IPA)
    if sample_rate > 0:  # load the English dictionary once here, not in every child
        lib.espeak_SetVoiceByName(b"en-us")
    _send(out, {"ok": sample_rate > 0, "sample_rate": sample_rate,
                "error": "" if sample_rate > 0 else "espeak_Initialize failed"})
    while True:
        try:
            (size,) = struct.unpack(">I", _read_exact(inp, 4))
            request = json.loads(_read_exact(inp, size))
        except EOFError:
            return 0
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesise from the pristine state and hand the bytes up
            os.close(read_fd)
            try:
                header, pcm = _synthesize(lib, libc, request)
            except Exception as exc:  # noqa: BLE001 - reported to the client, never swallowed
                header, pcm = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, b""
            with os.fdopen(write_fd, "wb") as pipe:
                _send(pipe, {**header, "sample_rate": sample_rate}, pcm)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            reply = pipe.read()
        os.waitpid(pid, 0)
        if not reply:
            _send(out, {"ok": False, "error": "synthesis child died", "sample_rate": sample_rate})
        else:
            out.write(reply)
            out.flush()


if __name__ == "__main__":
    sys.exit(main())
