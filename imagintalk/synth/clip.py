"""One SynthTalk clip: sentence → speech → mouth track → frames → ``{clip}.mp4`` + ``{clip}.txt``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagintalk.config import MediaConfig, SynthConfig
from imagintalk.conventions import SYNTHTALK_METADATA_COLUMNS
from imagintalk.media import write_mp4
from imagintalk.synth.animate import render_clip
from imagintalk.synth.grammar import Sentence, sample_sentence
from imagintalk.synth.identity import Identity, IdentityRecipe, build_identity
from imagintalk.synth.plan import ClipSpec
from imagintalk.synth.visemes import MouthTrack, mouth_track
from imagintalk.synth.voice import Segment, speak

METADATA_COLUMNS = SYNTHTALK_METADATA_COLUMNS


@dataclass(frozen=True)
class ClipResult:
    row: dict                 # one metadata.csv row, keys METADATA_COLUMNS
    video_path: Path
    n_frames: int
    duration_s: float
    track: MouthTrack         # what the lips were told to do, per frame (for checks, not shipped)
    words: tuple[Segment, ...]  # word spans in clip time


@functools.lru_cache(maxsize=64)
def cached_identity(recipe: IdentityRecipe, size: int, face_box_fraction: float) -> Identity:
    """Built once per process and speaker: photo landmarks, warps and the dlib check cost ~0.3 s."""
    return build_identity(recipe, size, face_box_fraction)


def generate_clip(spec: ClipSpec, root: Path, cfg: SynthConfig, media: MediaConfig,
                  sentence: Sentence | None = None) -> ClipResult:
    """Write one clip; ``sentence`` overrides the drawn one (the draw still happens, so the rest of
    the clip's randomness is the same either way)."""
    rng = spec.rng()
    drawn = sample_sentence(rng)
    sentence = sentence or drawn
    sr, fps = media.sample_rate, media.fps
    speech = speak(sentence, spec.speaker.voice, spec.emotion, spec.intensity, sr)
    lead = float(rng.uniform(*cfg.lead_silence_s))
    trail = float(rng.uniform(*cfg.trail_silence_s))
    n_lead = int(round(lead * sr))
    n_samples = n_lead + speech.audio.size + int(round(trail * sr))
    per_frame = sr // fps
    n_frames = -(-n_samples // per_frame)
    audio = np.zeros(n_frames * per_frame, np.float32)
    audio[n_lead:n_lead + speech.audio.size] = speech.audio * cfg.audio_gain
    audio += rng.normal(0.0, cfg.noise_floor, audio.size).astype(np.float32)
    offset = n_lead / sr
    track = mouth_track(speech.phones, offset, n_frames, fps, cfg.coarticulation_s)
    identity = cached_identity(spec.speaker.identity, cfg.size, cfg.face_box_fraction)
    rendered = render_clip(identity, track, spec.emotion, spec.intensity, rng, cfg, fps)

    folder = root / spec.speaker.split / spec.speaker.speaker
    video = write_mp4(folder / f"{spec.clip}.mp4", rendered.frames, fps=fps, audio=audio,
                      sample_rate=sr, crf=cfg.crf)
    words = tuple(Segment(w.label, w.start + offset, w.end + offset) for w in speech.words)
    (folder / f"{spec.clip}.txt").write_text(lrs3_text(sentence.transcript, words))
    voice = spec.speaker.voice
    row = {"split": spec.speaker.split, "speaker": spec.speaker.speaker, "clip": spec.clip,
           "transcript": sentence.transcript, "emotion": spec.emotion, "intensity": spec.intensity,
           "seed": spec.seed, "voice": voice.variant, "identity": spec.speaker.identity.name,
           "pitch": voice.pitch, "rate": voice.rate}
    return ClipResult(row, video, n_frames, audio.size / sr, track, words)


def lrs3_text(transcript: str, words: tuple[Segment, ...]) -> str:
    """LRS3's .txt: ``Text:`` and ``Conf:`` lines (two spaces), then the word alignment table."""
    lines = [f"Text:  {transcript}", "Conf:  1", "", "WORD START END ASDSCORE"]
    lines += [f"{w.label.upper()} {w.start:.2f} {w.end:.2f} 1.0" for w in words]
    return "\n".join(lines) + "\n"
