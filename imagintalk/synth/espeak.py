"""Client of the espeak-ng synthesis server (see ``_espeak_server.py`` for why it is a server).

One server per generator process, started on first use and stopped at exit. A request gives
int16 samples at espeak-ng's own rate (22050 Hz) and the word/phoneme events with their sample
positions, which is where SynthTalk's phoneme timings come from (``--pho`` needs MBROLA).
"""

from __future__ import annotations

import atexit
import ctypes.util
import json
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.errors import ConfigError, MediaError

_SERVER = Path(__file__).with_name("_espeak_server.py")
EVENT_WORD, EVENT_END, EVENT_PHONEME = 1, 5, 7
SOURCE = "espeak-ng"  # the "path" named in errors: the synthesiser, not a file


@dataclass(frozen=True)
class EspeakEvent:
    kind: int          # EVENT_WORD | EVENT_PHONEME | EVENT_END
    sample: int        # position in the synthesised samples
    text_position: int  # 1-based character offset of the word in the request text
    name: str          # IPA of a phoneme event ("" for a pause), "" otherwise


@dataclass(frozen=True)
class EspeakOutput:
    samples: np.ndarray  # int16 mono
    sample_rate: int
    events: tuple[EspeakEvent, ...]


@dataclass(frozen=True)
class EspeakVoice:
    """espeak-ng voice: ``variant`` like ``en-us+f3``; base pitch and range 0-100, rate in words/min."""

    variant: str
    pitch: int
    rate: int
    range: int = 50
    volume: int = 100


class EspeakClient:
    """Talks to one server process; thread-safe (requests are serialised)."""

    def __init__(self) -> None:
        if ctypes.util.find_library("espeak-ng") is None:
            raise ConfigError("libespeak-ng", "not installed (apt-get install espeak-ng, or `make setup`)")
        self._lock = threading.Lock()
        # stderr to a file, not a pipe: nobody drains it while all is well, and a full pipe would
        # stall the server mid-corpus.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr)
        header, _ = self._read_reply()
        if not header.get("ok"):
            self.close()
            raise ConfigError("libespeak-ng", header.get("error") or "cannot initialise")
        self.sample_rate = int(header["sample_rate"])

    def synthesize(self, ssml: str, voice: EspeakVoice) -> EspeakOutput:
        request = json.dumps({"text": ssml, "voice": voice.variant, "rate": voice.rate,
                              "pitch": voice.pitch, "range": voice.range, "volume": voice.volume})
        data = request.encode()
        with self._lock:
            try:
                self._proc.stdin.write(struct.pack(">I", len(data)) + data)
                self._proc.stdin.flush()
                header, pcm = self._read_reply()
            except (BrokenPipeError, EOFError) as exc:
                raise MediaError(SOURCE, f"synthesis server died ({exc.__class__.__name__}) "
                                         f"{self._stderr_tail()}") from exc
        if not header.get("ok"):
            raise MediaError(SOURCE, f"{voice.variant}: {header.get('error')}")
        events = tuple(EspeakEvent(int(t), int(s), int(p), str(n)) for t, s, p, _len, n in header["events"])
        return EspeakOutput(np.frombuffer(pcm, dtype="<i2").copy(), int(header["sample_rate"]), events)

    def _read_reply(self) -> tuple[dict, bytes]:
        out = self._proc.stdout
        raw = out.read(4)
        if len(raw) < 4:
            raise EOFError("server closed its output")
        (size,) = struct.unpack(">I", raw)
        header = json.loads(out.read(size))
        n = int(header.get("n_samples", 0))
        pcm = out.read(2 * n) if n else b""
        if len(pcm) != 2 * n:
            raise EOFError("short sample payload")
        return header, pcm

    def _stderr_tail(self, chars: int = 300) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._stderr.close()


_client: EspeakClient | None = None
_client_lock = threading.Lock()


def espeak_client() -> EspeakClient:
    """The process's server client, started on first use and closed at interpreter exit."""
    global _client
    with _client_lock:
        if _client is None or _client._proc.poll() is not None:
            _client = EspeakClient()
            atexit.register(_client.close)
        return _client
