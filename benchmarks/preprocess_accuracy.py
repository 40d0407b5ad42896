"""Accuracy figures beside bench_preprocess.py's speed: how far the fast face track lies from the
reference track (dlib itself running the predictor), how far each lies from where the landmarks
really are, and how close the fast identity descriptor is to dlib's.

The error unit is the pixel of the 96×96 mouth ROI (imagintalk/preprocess/roi.py), mouth points
48–67, every frame measured by both tracks:

- ``landmarks``: the fast track's mouth points against the reference track's, both mapped
  through the reference track's ROI transform (roi.mouth_point_error);
- ``crop``: how far the lips move inside the crop when the fast track's ROI transform replaces the
  reference one (the reference's mouth points through both transforms): the misregistration of
  the pixels the lip reader sees (the ROI is fitted on smoothed landmarks, so it is smaller);
- ``vs truth``: where the true landmark positions are known (SynthTalk's renderer draws them;
  tests/sample_media.py computes them for its animated photos), each track is also measured
  against them (through the ROI transforms of the true landmarks): the reference track's figure
  is the predictor's own error, the floor a faster track is compared with. The predictor places
  points on whole pixels and depends on its box, so two tracks that are both right still differ
  by about a pixel; "fast vs reference" is bounded below by that, "vs truth" is not.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.config import FaceConfig, Params
from imagintalk.media import read_clip, write_mp4
from imagintalk.preprocess.face_track import FaceTrack, track_faces
from imagintalk.preprocess.identity import identity_embedding
from imagintalk.preprocess.mean_face import MOUTH
from imagintalk.preprocess.roi import apply_affine, mouth_opening, mouth_point_error, mouth_roi_transforms
from imagintalk.synth.animate import render_clip
from imagintalk.synth.clip import cached_identity
from imagintalk.synth.grammar import sample_sentence
from imagintalk.synth.plan import plan_corpus
from imagintalk.synth.visemes import mouth_track
from imagintalk.synth.voice import speak


@dataclass
class TruthClip:
    frames: np.ndarray       # T×H×W×3 RGB, decoded from the written mp4
    landmarks: np.ndarray    # T×68×2 where the renderer drew each landmark


def synthtalk_truth_clips(n_speakers: int, clips_per_speaker: int, params: Params, seed: int = 0) -> list[TruthClip]:
    """SynthTalk clips as imagintalk/synth/clip.py makes them (same plan, speech, animation and
    H.264 encoding), keeping the rendered landmark positions that the corpus does not ship."""
    cfg, media = params.synth, params.media
    sr, fps = media.sample_rate, media.fps
    clips = []
    with tempfile.TemporaryDirectory(prefix="bench-truth-") as tmp:
        for spec in plan_corpus(n_speakers, clips_per_speaker, seed, cfg):
            rng = spec.rng()
            speech = speak(sample_sentence(rng), spec.speaker.voice, spec.emotion, spec.intensity, sr)
            lead, trail = float(rng.uniform(*cfg.lead_silence_s)), float(rng.uniform(*cfg.trail_silence_s))
            n_lead = int(round(lead * sr))
            n_frames = -(-(n_lead + speech.audio.size + int(round(trail * sr))) // (sr // fps))
            audio = np.zeros(n_frames * (sr // fps), np.float32)
            audio[n_lead:n_lead + speech.audio.size] = speech.audio * cfg.audio_gain
            audio += rng.normal(0.0, cfg.noise_floor, audio.size).astype(np.float32)
            track = mouth_track(speech.phones, n_lead / sr, n_frames, fps, cfg.coarticulation_s)
            identity = cached_identity(spec.speaker.identity, cfg.size, cfg.face_box_fraction)
            rendered = render_clip(identity, track, spec.emotion, spec.intensity, rng, cfg, fps)
            path = Path(tmp) / f"{spec.speaker.speaker}-{spec.clip}.mp4"
            write_mp4(path, rendered.frames, fps=fps, audio=audio, sample_rate=sr, crf=cfg.crf)
            clips.append(TruthClip(read_clip(path).frames, rendered.landmarks))
    return clips


def _mouth_in_crop(maps: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    mouth = list(MOUTH)
    return np.stack([apply_affine(m, p[mouth]) for m, p in zip(maps, landmarks, strict=True)])


def crop_shift(track: FaceTrack, reference: FaceTrack, cfg: FaceConfig) -> np.ndarray:
    """Frames × 20 distances (ROI px) between the reference's mouth points mapped by the reference's
    ROI transform and by ``track``'s: how far the lips sit from where the reference crop has them."""
    both = track.found & reference.found
    pts = reference.landmarks[both]
    a = _mouth_in_crop(mouth_roi_transforms(track, cfg)[both], pts)
    b = _mouth_in_crop(mouth_roi_transforms(reference, cfg)[both], pts)
    return np.linalg.norm(a - b, axis=-1)


def _as_track(landmarks: np.ndarray) -> FaceTrack:
    """True landmarks as a track measured on every frame."""
    n = len(landmarks)
    return FaceTrack(np.asarray(landmarks, np.float32), np.ones(n, bool), np.zeros((n, 4), np.float32),
                     np.zeros(n, bool))


def compare_identity(clips: list[np.ndarray], fast: FaceConfig, reference: FaceConfig) -> str:
    """The fast and the reference identity embeddings of each clip (both L2-normalised): the
    largest coordinate difference and the smallest cosine similarity."""
    diff, cos = [], []
    for frames in clips:
        track = track_faces(frames, reference)
        a, b = identity_embedding(frames, track, fast)[1], identity_embedding(frames, track, reference)[1]
        diff.append(np.abs(a - b).max())
        cos.append(float(a @ b))
    return f"identity (128-d, unit norm) fast vs reference: max |diff| {max(diff):.1e}, min cosine {min(cos):.6f}"


def summary(errors: list[np.ndarray]) -> str:
    e = np.concatenate([np.ravel(x) for x in errors])
    return f"mean {e.mean():.2f} p99 {np.percentile(e, 99):.2f} max {e.max():.2f}"


def compare_tracks(clips: list[np.ndarray], fast: FaceConfig, reference: FaceConfig,
                   truths: list[np.ndarray] | None = None) -> list[str]:
    """Lines of the error figures (module docstring) of ``fast`` against ``reference`` over ``clips``; the
    floor: the reference against itself with the detector on every frame (auto_avsr's way), i.e.
    how much reference landmarks move when only the predictor's boxes change; and with
    ``truths``, each track against the truth, also as the correlation of the mouth opening (inner
    lip gap over mouth width, roi.mouth_opening) with the true one."""
    redetect = reference.model_copy(update={"detect_every": 1})
    lm, crop, floor, t_fast, t_ref, r_fast, r_ref = [], [], [], [], [], [], []
    for i, frames in enumerate(clips):
        ref, tr = track_faces(frames, reference), track_faces(frames, fast)
        lm.append(mouth_point_error(tr, ref, reference))
        crop.append(crop_shift(tr, ref, reference))
        floor.append(mouth_point_error(track_faces(frames, redetect), ref, reference))
        if truths is not None:
            true_track = _as_track(truths[i])
            t_fast.append(mouth_point_error(tr, true_track, reference))
            t_ref.append(mouth_point_error(ref, true_track, reference))
            true_open = mouth_opening(true_track)
            r_fast.append(np.corrcoef(mouth_opening(tr), true_open)[0, 1])
            r_ref.append(np.corrcoef(mouth_opening(ref), true_open)[0, 1])
    out = [f"fast vs reference: landmarks {summary(lm)}; crop shift {summary(crop)}; floor (reference with "
           f"the detector on every frame vs every {reference.detect_every}th) {summary(floor)}"]
    if truths is not None:
        out.append(f"vs truth: fast {summary(t_fast)}; reference {summary(t_ref)}")
        out.append(f"mouth-opening r with truth: fast {np.mean(r_fast):.3f} (min {np.min(r_fast):.3f}); "
                   f"reference {np.mean(r_ref):.3f} (min {np.min(r_ref):.3f})")
    return out
