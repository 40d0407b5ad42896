"""The composite ``imagintalk`` model: a pyfunc that turns a silent video into speech.

It is assembled from registered stage versions (the refiner = ``imagintalk-error_detector``, the
face-style adapter + style-DiT = ``imagintalk-style_dit``, the vocoder) plus the codec the shards
were tokenised with, saved with ``ImaginTalk.save`` and logged as an ``mlflow.pyfunc.PythonModel``
whose artifacts are that directory and the codec. Its version tags pin every stage version, so
an evaluation or a rollback always knows exactly which parts it ran.

``predict`` takes a video path, a list of paths, or a DataFrame with a ``video`` column (and an
optional ``emotion`` column of vocabulary names that override the face), and returns one float32
16 kHz waveform per video. Without an override the emotion is the composite's expression model's
reading of the face (its per-frame landmarks), as in training. The video side reuses the data
pipeline's preprocessing (``track_faces``, ``make_mouth_rois``, ``identity_embedding``, the
expression landmarks): the model sees crops made exactly as in training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from imagintalk.config import Params
from imagintalk.emotions import emotion_override

log = logging.getLogger(__name__)

VIDEO_COLUMN = "video"
EMOTION_COLUMN = "emotion"
MODEL_ARTIFACT = "imagintalk"
CODEC_ARTIFACT = "codec"
PARAMS_ARTIFACT = "params"


@dataclass(frozen=True)
class VideoInputs:
    """One clip's model inputs, shaped as the training loader's eval batches."""

    lips: np.ndarray        # float32 T×C×C in [0, 1] (centre crop of the 96×96 ROI)
    face: np.ndarray        # float32 3×H×W in [0, 1] (aligned chip)
    identity: np.ndarray    # float32 (128,)
    n_frames: int
    landmarks: np.ndarray | None = None   # float32 T×136 mean-face landmarks, NaN rows where lost


def video_inputs(path: str | Path, params: Params) -> VideoInputs:
    """Read a video at the pipeline's fps and make the lip crops, face chip and identity with the
    shard step's own visual preprocessing (raises MediaError / FaceError naming the file)."""
    from imagintalk.media import read_video
    from imagintalk.preprocess.clip import preprocess_frames

    crop = params.loader.crop
    video = read_video(path, fps=params.media.fps, max_pixels=params.media.max_decode_pixels)
    visual = preprocess_frames(video.frames, params, str(path))
    rois = visual.lips
    y, x = (rois.shape[1] - crop) // 2, (rois.shape[2] - crop) // 2  # the loader's eval crop
    lips = rois[:, y:y + crop, x:x + crop].astype(np.float32) / 255.0
    face = visual.face.transpose(2, 0, 1).astype(np.float32) / 255.0
    return VideoInputs(lips=lips, face=face, identity=visual.identity.astype(np.float32), n_frames=len(lips),
                       landmarks=visual.landmarks.astype(np.float32))


def _requests(model_input: Any) -> list[tuple[str, int | None]]:
    """(video path, emotion override or None) per requested clip, from a path, a list or a
    DataFrame; an override outside the vocabulary raises ConfigError listing it."""
    if isinstance(model_input, str | Path):
        return [(str(model_input), None)]
    if isinstance(model_input, pd.DataFrame):
        column = VIDEO_COLUMN if VIDEO_COLUMN in model_input.columns else model_input.columns[0]
        emotions = (model_input[EMOTION_COLUMN] if EMOTION_COLUMN in model_input.columns
                    else [None] * len(model_input))
        return [(str(p), emotion_override(e if isinstance(e, str) else None))
                for p, e in zip(model_input[column], emotions, strict=True)]
    if isinstance(model_input, Sequence):
        return [(str(p), None) for p in model_input]
    raise TypeError(f"expected a video path, a list of paths or a DataFrame, got {type(model_input).__name__}")


class ImaginTalkModel(mlflow.pyfunc.PythonModel):
    """The registered ``imagintalk`` pyfunc (see the module doc). ``self.model`` is the loaded
    :class:`~imagintalk.models.imagintalk.ImaginTalk` for callers that need more than waveforms
    (the evaluation's ablations)."""

    def load_context(self, context: Any) -> None:
        from imagintalk.models.imagintalk import ImaginTalk

        self.params = Params.model_validate_json(Path(context.artifacts[PARAMS_ARTIFACT]).read_text())
        self.settings = dict(context.model_config or {})
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # the registering run's params: where a pretrained codec's weights resolve (cache, storage root)
        self.model = ImaginTalk.load(context.artifacts[MODEL_ARTIFACT], device=device, params=self.params)

    def generate(self, inputs: VideoInputs, emotion: int | None = None,
                 overrides: Mapping[str, Any] | None = None) -> np.ndarray:
        """One clip's waveform. ``emotion`` (a vocabulary index) overrides the face's expression;
        None reads it from the face (landmarks → expression model)."""
        return self.generate_many([inputs], [emotion], overrides)[0]

    def generate_many(self, inputs: Sequence[VideoInputs], emotions: Sequence[int | None] | None = None,
                      overrides: Mapping[str, Any] | None = None) -> list[np.ndarray]:
        """Waveforms of several clips in padded batches (one per kind of emotion: read from the
        face, or overridden). Each clip draws from its own seeded generator over its own tokens
        and every part ignores padding, so a clip's speech is the same alone or batched."""
        emotions = list(emotions) if emotions is not None else [None] * len(inputs)
        out: list[np.ndarray | None] = [None] * len(inputs)
        for overridden in (False, True):
            rows = [i for i, e in enumerate(emotions) if (e is not None) == overridden]
            if rows:
                waves = self._generate_rows([inputs[i] for i in rows],
                                            [emotions[i] for i in rows] if overridden else None, overrides)
                for i, wave in zip(rows, waves, strict=True):
                    out[i] = wave
        return [w for w in out if w is not None]

    def _generate_rows(self, inputs: Sequence[VideoInputs], emotions: Sequence[int] | None,
                       overrides: Mapping[str, Any] | None) -> list[np.ndarray]:
        s = {**self.settings, **dict(overrides or {})}
        from imagintalk.data.loader import pad_stack

        t = max(x.n_frames for x in inputs)
        lips, lip_mask = pad_stack([x.lips for x in inputs], t, 0, np.float32)
        landmarks = (torch.from_numpy(pad_stack([x.landmarks for x in inputs], t, 0, np.float32, fill=np.nan)[0])
                     if all(x.landmarks is not None for x in inputs) else None)
        out = self.model.generate(
            torch.from_numpy(lips), torch.from_numpy(lip_mask),
            torch.from_numpy(np.stack([x.identity for x in inputs])),
            torch.from_numpy(np.stack([x.face for x in inputs])),
            None if emotions is None else torch.tensor(list(emotions)),
            steps=s.get("steps"), guidance=s.get("guidance"), seed=int(s.get("seed", 0)), landmarks=landmarks)
        if out.emotion_interpolated is not None:
            for x, lost in zip(inputs, out.emotion_interpolated.sum(dim=1).tolist(), strict=True):
                if lost:
                    log.warning("face lost on %d of %d frames: their emotion is interpolated from the frames "
                                "around", int(lost), x.n_frames)
        return [out.waveforms[i, : int(out.lengths[i])].cpu().numpy().astype(np.float32)
                for i in range(len(inputs))]

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[np.ndarray]:
        """One waveform (float32 numpy, model sample rate) per requested video: rows of a DataFrame
        (``video``, optional ``emotion``), or a path or list of paths. ``pd.DataFrame`` is a hint
        MLflow accepts without inferring a schema from it, so the paths pass unvalidated too."""
        requests = _requests(model_input)
        return self.generate_many([video_inputs(path, self.params) for path, _ in requests],
                                  [emotion for _, emotion in requests], params)


def load_imagintalk(model_uri: str):
    """The ``ImaginTalk`` object inside a registered composite (``models:/imagintalk@champion``)."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model
