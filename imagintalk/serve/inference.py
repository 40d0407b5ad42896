"""Video in, speech out: the one inference path behind `imagintalk speak` and the HTTP endpoint.

Loads the registered composite (``models:/imagintalk@champion`` by default) and checks each input
before the model sees it, so every refusal is one line naming the file: unreadable, too short or
too long, no face, face lost for most of the clip, no champion registered.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.config import Params
from imagintalk.corpora.checks import inspect_media
from imagintalk.errors import ImaginTalkError, MediaError, RegistryError

log = logging.getLogger(__name__)

@dataclass
class Speech:
    audio: np.ndarray       # float32 mono
    sample_rate: int


def check_video(path: str | Path, min_s: float, max_s: float, truncation_tolerance_frames: float = 2.0) -> float:
    """Demux ``path`` (the ingest step's own check: no video stream, no decodable frame, a stream
    that ends before its header says, i.e. a truncated download); return the duration of the
    video actually present or raise MediaError with the reason."""
    facts = inspect_media(path, need_video=True, truncation_tolerance_frames=truncation_tolerance_frames)
    assert facts.video is not None
    duration = facts.video.duration_s
    if duration < min_s:
        raise MediaError(path, f"clip too short ({duration:.2f}s < {min_s:g}s)")
    if duration > max_s:
        raise MediaError(path, f"clip too long ({duration:.1f}s > {max_s:g}s limit)")
    return duration


def _load_composite(model_uri: str):
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from imagintalk.registry import tracking

    tracking.configure()
    try:
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    except MlflowException as exc:
        reason = ("no champion registered: run `make demo` or train, evaluate and `imagintalk promote`"
                  if "champion" in model_uri else f"model not found ({exc.error_code})")
        raise RegistryError(model_uri, reason) from exc


class Speaker:
    """A loaded composite model; ``speak(path)`` generates the speech of one video."""

    def __init__(self, model_uri: str, params: Params, owns_process: bool = False):
        """``owns_process``: this process exists to speak (the CLI, a serving replica). Loading
        the model then runs without the cyclic garbage collector, and what it loaded (torch,
        MLflow, the model: ~250k long-lived objects) is frozen before the collector comes back.
        Loading imports most of those objects, and each full collection on the way walks all
        that is already there: 0.9 s of a 3-s load. Frozen, later collections skip them, where
        a first call's allocations (numba building its typing tables) set off collections that
        cost it ~0.25 s. Not for a pipeline that loads model after model: frozen objects that
        later become garbage cycles are never collected."""
        collecting = gc.isenabled()
        if owns_process:
            gc.disable()
        try:
            self.pyfunc = _load_composite(model_uri)
        finally:
            if owns_process:
                gc.freeze()
                if collecting:
                    gc.enable()
        self.model_uri = model_uri
        self.params = params

    @property
    def sample_rate(self) -> int:
        return int(self.pyfunc.model.cfg.vocab.sample_rate)

    def speak(self, path: str | Path, max_duration_s: float | None = None, emotion: str | None = None) -> Speech:
        """One clip; a refusal raises its typed error. ``emotion`` (a vocabulary name) overrides the
        emotion the face shows."""
        result = self.speak_batch([str(path)], max_duration_s, [emotion])[0]
        if isinstance(result, ImaginTalkError):
            raise result
        return Speech(audio=result, sample_rate=self.sample_rate)

    def _generate_alone(self, path: str, inputs, emotion: int | None) -> np.ndarray | ImaginTalkError:
        try:
            return self.pyfunc.generate_many([inputs], [emotion])[0]
        except ImaginTalkError as exc:
            return exc
        except Exception as exc:  # whatever one clip raises stays that clip's failure
            log.exception("speak failed on %s", path)
            return MediaError(path, f"cannot voice this video ({exc.__class__.__name__}: {exc})")

    def speak_batch(self, paths: list[str], max_duration_s: float | None = None,
                    emotions: list[str | None] | None = None) -> list[np.ndarray | ImaginTalkError]:
        """Check and preprocess each clip, then voice the good ones in one padded batch with the
        composite's ``generate_many``; a refused clip yields its error and the others go on.
        ``emotions[i]`` overrides clip i's facial emotion (None: read from the face)."""
        from imagintalk.emotions import emotion_override
        from imagintalk.registry.composite import video_inputs

        cfg = self.params.speak
        results: list[np.ndarray | ImaginTalkError | None] = [None] * len(paths)
        ready: list[tuple[int, object, int | None]] = []
        for i, (path, emotion) in enumerate(zip(paths, emotions or [None] * len(paths), strict=True)):
            try:  # a refused clip keeps its own error; the others go on to the batch
                override = emotion_override(emotion)
                check_video(path, cfg.min_duration_s, max_duration_s or cfg.max_duration_s,
                            self.params.ingest.truncation_tolerance_frames)
                ready.append((i, video_inputs(path, self.pyfunc.params), override))
            except ImaginTalkError as exc:
                results[i] = exc
            except Exception as exc:  # whatever one clip raises stays that clip's failure
                log.exception("speak failed on %s", path)
                results[i] = MediaError(path, f"cannot read this video ({exc.__class__.__name__}: {exc})")
        if ready:
            # one padded batch: each clip draws from its own seeded generator and every part
            # ignores padding, so a clip's speech does not depend on which requests share it
            try:
                waves = self.pyfunc.generate_many([x for _, x, _ in ready], [e for _, _, e in ready])
            except Exception:  # find the clip that broke the batch: voice each alone
                waves = [self._generate_alone(paths[i], x, e) for i, x, e in ready]
            for (i, _, _), wave in zip(ready, waves, strict=True):
                results[i] = wave
        return results
