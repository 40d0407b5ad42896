"""Lip sync in the field's form: LSE-C and LSE-D from SyncNet.

Wav2Lip and the video-to-speech papers since report lip sync as SyncNet's (Chung & Zisserman,
2016) confidence and distance, computed as syncnet_python's ``SyncNetInstance.evaluate`` does:

- video: 224×224 face crops (the face box's centre, 1.4 box sizes to each side and 2.4 below the
  centre: syncnet_python's ``crop_scale`` 0.4 crop, box sizes median-filtered over 13 frames), BGR
  values 0-255, stacked 5 frames at a time → the lip stream's 1024-d feature per frame;
- audio: 13 MFCCs at 100 Hz (python_speech_features' defaults on 16-bit samples), 20 at a time
  (0.2 s, the 5 frames) → the audio stream's feature;
- for every lag within ±``vshift`` frames, the mean over frames of the Euclidean distance between
  each video feature and the audio feature that lag away (zero-padded at the ends). The lag of the
  smallest mean is the **offset**; that mean is **LSE-D** (lower is better); the median over lags
  minus it is **LSE-C** (higher is better).

:class:`SyncNet` keeps the module names of syncnet_python's ``S``, so its published weights
(``syncnet-v2`` in the pretrained catalogue) load as they are; :class:`SyncJudge` caches each
clip's video features so every variant of an evaluation pays only for its audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.signal import medfilt
from torch import Tensor, nn

SAMPLE_RATE = 16000
FPS = 25
FRAMES = 5              # video frames per SyncNet window
MFCC_PER_FRAME = 4      # 100 Hz MFCC frames per 25 fps video frame
MFCC_WINDOW = 20        # MFCC frames per window (0.2 s)
CROP = 224
CROP_SCALE = 0.4        # syncnet_python's --crop_scale
BOX_SMOOTH = 13         # median filter (frames) over the face box, as syncnet_python's crop step
PAD_VALUE = 110         # grey that fills beyond the frame's edge when the crop leaves it
VSHIFT = 15             # lags searched (frames), as the Wav2Lip evaluation scripts

log = logging.getLogger(__name__)


def _bn_relu(cls: type[nn.Module], n: int) -> list[nn.Module]:
    return [cls(n), nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """syncnet_python's ``S`` (module names and shapes kept): 5×224×224 BGR frames → 1024-d lip
    feature, 13×20 MFCCs → 1024-d audio feature."""

    def __init__(self, dim: int = 1024):
        super().__init__()
        c2, c3, bn2, bn3 = nn.Conv2d, nn.Conv3d, nn.BatchNorm2d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            c2(1, 64, (3, 3), (1, 1), (1, 1)), *_bn_relu(bn2, 64), nn.MaxPool2d((1, 1), (1, 1)),
            c2(64, 192, (3, 3), (1, 1), (1, 1)), *_bn_relu(bn2, 192), nn.MaxPool2d((3, 3), (1, 2)),
            c2(192, 384, (3, 3), padding=(1, 1)), *_bn_relu(bn2, 384),
            c2(384, 256, (3, 3), padding=(1, 1)), *_bn_relu(bn2, 256),
            c2(256, 256, (3, 3), padding=(1, 1)), *_bn_relu(bn2, 256), nn.MaxPool2d((3, 3), (2, 2)),
            c2(256, 512, (5, 4), padding=(0, 0)), *_bn_relu(bn2, 512),
        )
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))
        self.netcnnlip = nn.Sequential(
            c3(3, 96, (5, 7, 7), (1, 2, 2), 0), *_bn_relu(bn3, 96), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            c3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), *_bn_relu(bn3, 256),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(bn3, 256),
            c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(bn3, 256),
            c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu(bn3, 256), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            c3(256, 512, (1, 6, 6), padding=0), *_bn_relu(bn3, 512),
        )

    def forward_aud(self, x: Tensor) -> Tensor:
        """N×1×13×20 MFCC windows → N×dim."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: Tensor) -> Tensor:
        """N×3×5×224×224 BGR frame windows → N×dim."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(path: str) -> SyncNet:
    """syncnet_python's weight file (a state dict of ``S``) → a SyncNet in eval mode. Every tensor
    must be there with its shape (a ValueError names the first that is not)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = SyncNet()
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or bad:
        first = (missing or bad)[0]
        raise ValueError(f"not a SyncNet (syncnet_python S) state dict: {first} "
                         f"{'missing' if missing else 'has another shape'}")
    net.load_state_dict({k: state[k] for k in own})
    return net.eval()


def mfcc(audio: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] at 16 kHz → 13×N MFCCs at 100 Hz, as syncnet_python computes them
    (python_speech_features on the 16-bit sample values)."""
    import python_speech_features

    samples = np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767.0
    return python_speech_features.mfcc(samples, SAMPLE_RATE).T.astype(np.float32)


def face_crops(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """RGB uint8 T×H×W×3 frames and face boxes T×4 (x0, y0, x1, y1) → float32 T×3×224×224 BGR crops
    (syncnet_python's crop: box size and centre median-filtered over 13 frames)."""
    boxes = np.asarray(boxes, np.float64)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    if len(boxes) >= BOX_SMOOTH:
        size, cx, cy = (medfilt(v, kernel_size=BOX_SMOOTH) for v in (size, cx, cy))
    out = np.empty((len(frames), 3, CROP, CROP), np.float32)
    for t, frame in enumerate(frames):
        bs = max(float(size[t]), 1.0)
        pad = int(bs * (1 + 2 * CROP_SCALE))
        img = cv2.copyMakeBorder(frame[..., ::-1], pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                 value=(PAD_VALUE,) * 3)
        my, mx = cy[t] + pad, cx[t] + pad
        face = img[int(my - bs):int(my + bs * (1 + 2 * CROP_SCALE)),
                   int(mx - bs * (1 + CROP_SCALE)):int(mx + bs * (1 + CROP_SCALE))]
        out[t] = cv2.resize(face, (CROP, CROP)).transpose(2, 0, 1)
    return out


@dataclass(frozen=True)
class SyncScore:
    offset: int        # frames; positive: the audio lags the video
    confidence: float  # LSE-C (higher is better)
    distance: float    # LSE-D (lower is better)


def score_features(video: Tensor, audio: Tensor, vshift: int = VSHIFT) -> SyncScore:
    """syncnet_python's offset search over per-frame features (N×D each, the same N)."""
    n = min(len(video), len(audio))
    video, audio = video[:n], audio[:n]
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    lags = torch.stack([torch.nn.functional.pairwise_distance(video, padded[k:k + n])
                        for k in range(2 * vshift + 1)], dim=1)       # N × lags
    mean = lags.mean(dim=0)
    best = int(torch.argmin(mean))
    return SyncScore(offset=vshift - best, confidence=float(torch.median(mean) - mean[best]),
                     distance=float(mean[best]))


class SyncJudge:
    """LSE of generated speech against a clip's video. ``video_features`` once per clip, then
    ``score`` per audio track (every variant of an evaluation)."""

    def __init__(self, net: SyncNet, batch: int = 16, vshift: int = VSHIFT):
        self.net, self.batch, self.vshift = net.eval(), batch, vshift

    @torch.inference_mode()
    def video_features(self, frames: np.ndarray, boxes: np.ndarray) -> Tensor:
        """RGB frames T×H×W×3 + face boxes T×4 → (T-4)×D lip features (one per 5-frame window)."""
        crops = torch.from_numpy(face_crops(frames, boxes))                 # T×3×224×224
        windows = len(crops) - FRAMES + 1
        if windows < 1:
            raise ValueError(f"{len(crops)} frames: SyncNet needs at least {FRAMES}")
        feats = []
        for i in range(0, windows, self.batch):
            idx = range(i, min(windows, i + self.batch))
            x = torch.stack([crops[j:j + FRAMES].transpose(0, 1) for j in idx])  # N×3×5×224×224
            feats.append(self.net.forward_lip(x))
        return torch.cat(feats)

    @torch.inference_mode()
    def score(self, video: Tensor, audio: np.ndarray) -> SyncScore:
        cc = torch.from_numpy(mfcc(audio))                                   # 13×M
        # as syncnet_python: the shorter of video and audio, in frames, less one window
        frames = min(len(video) + FRAMES - 1, len(audio) * FPS // SAMPLE_RATE)
        windows = min(frames - FRAMES, (cc.shape[1] - MFCC_WINDOW) // MFCC_PER_FRAME + 1)
        if windows < 1:
            raise ValueError(f"{len(audio) / SAMPLE_RATE:.2f} s of audio and {len(video) + FRAMES - 1} frames: "
                             f"SyncNet needs at least {FRAMES + 1} frames of both")
        x = torch.stack([cc[:, MFCC_PER_FRAME * j:MFCC_PER_FRAME * j + MFCC_WINDOW] for j in range(windows)])
        feats = torch.cat([self.net.forward_aud(x[i:i + self.batch, None]) for i in range(0, windows, self.batch)])
        return score_features(video[:windows], feats, self.vshift)


@dataclass(frozen=True)
class SyncChoice:
    """The sync judge ``eval.sync_judge`` gives, or why there is none."""

    setting: str | None
    judge: SyncJudge | None = None
    reason: str | None = None


NO_JUDGE = ("no lip-sync judge configured (set eval.sync_judge to a sync_judge component, e.g. syncnet-v2, "
            "after `imagintalk models pull syncnet-v2`)")


def choose_sync(params) -> SyncChoice:
    """The judge of ``params.eval.sync_judge``, loaded; weights that are missing or do not load give
    a reason (LSE reported as not computed), a name that is no sync judge a ConfigError."""
    from imagintalk.errors import ArtifactError, StorageError
    from imagintalk.pretrained import component_of_kind, resolve

    setting = params.eval.sync_judge
    if setting is None:
        return SyncChoice(None, reason=NO_JUDGE)
    component_of_kind("eval.sync_judge", setting, "sync_judge", params)
    try:
        path = resolve(setting, params=params)
    except (ArtifactError, StorageError) as exc:
        return SyncChoice(setting, reason=f"eval.sync_judge names {setting} but its weights are not available: "
                                          f"{exc.reason}")
    try:
        net = load_syncnet(str(path))
    except (ValueError, RuntimeError, OSError) as exc:
        return SyncChoice(setting, reason=f"eval.sync_judge names {setting} but {path} does not load: {exc}")
    return SyncChoice(setting, SyncJudge(net))


def clip_video_features(judge: SyncJudge, video_path: str, params) -> Tensor:
    """A test clip's source video, read at the pipeline's fps and tracked with the shard step's face
    tracker, → its SyncNet lip features (MediaError/FaceError name the file)."""
    from imagintalk.errors import FaceError
    from imagintalk.media import read_video
    from imagintalk.preprocess.face_track import track_faces

    video = read_video(video_path, fps=params.media.fps, max_pixels=params.media.max_decode_pixels)
    track = track_faces(video.frames, params.face)
    if not track.any_found:
        raise FaceError(video_path, "no face in any frame (the sync judge needs one)")
    return judge.video_features(video.frames, track.boxes)


def lse_rows(choice: SyncChoice, clips, rendered, metas, params) -> tuple[dict[str, dict[str, float]], str | None]:
    """LSE-C and LSE-D of every variant (mean over the clips the judge could read), or why not.
    ``clips``: imagintalk/eval/ladder.py Clips; ``rendered``: variant → their Rendered outputs;
    ``metas``: clip key → the record's meta.json (its ``source.video_path`` is the video judged)."""
    from tqdm import tqdm

    from imagintalk.errors import ImaginTalkError

    if choice.judge is None:
        return {}, choice.reason
    features: dict[str, Tensor] = {}
    failed: list[str] = []
    for clip in tqdm(clips, desc="evaluate: sync judge", unit="clip"):
        path = (metas.get(clip.key, {}).get("source") or {}).get("video_path")
        if not path:
            failed.append(f"{clip.key}: its record names no source video")
            continue
        try:
            features[clip.key] = clip_video_features(choice.judge, path, params)
        except (ImaginTalkError, ValueError) as exc:
            failed.append(f"{clip.key}: {exc}")
    if not features:
        return {}, f"the sync judge could read none of the {len(clips)} test clips' videos (first: {failed[0]})"
    if failed:
        log.warning("sync judge: %d of %d clips left out, e.g. %s", len(failed), len(clips), failed[0])
    rows: dict[str, dict[str, float]] = {}
    for variant, outs in rendered.items():
        scores = []
        for clip, out in zip(clips, outs, strict=True):
            if clip.key in features:
                try:
                    scores.append(choice.judge.score(features[clip.key], out.audio))
                except ValueError:  # too short to judge
                    continue
        if scores:
            rows[variant] = {"lse_c": float(np.mean([s.confidence for s in scores])),
                             "lse_d": float(np.mean([s.distance for s in scores]))}
    return rows, None
