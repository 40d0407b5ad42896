"""`imagintalk speak`: silent video (a file or a folder of them) -> speech wav, optionally dubbed mp4."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from imagintalk.config import Params, load_params
from imagintalk.emotions import emotion_override
from imagintalk.errors import ImaginTalkError, MediaError
from imagintalk.media import write_audio
from imagintalk.media.mux import dub_video
from imagintalk.serve.inference import Speaker


@dataclass
class SpeakSummary:
    model: str
    outputs: list[str] = field(default_factory=list)
    dubbed: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds_of_speech: float = 0.0

    def summary_line(self) -> str:
        where = self.outputs[0] if len(self.outputs) == 1 else f"{len(self.outputs)} wav files"
        fail = f", {len(self.failures)} refused (see failures.json)" if self.failures else ""
        dub = f", dubbed {self.dubbed[0]}" if len(self.dubbed) == 1 else (
            f", {len(self.dubbed)} dubbed" if self.dubbed else "")
        return f"spoke {self.seconds_of_speech:.1f}s of speech -> {where}{dub}{fail} (model {self.model})"


def speak_video(video: Path, out: Path | None = None, dub: Path | None = None,
                model: str = "models:/imagintalk@champion", params: Params | None = None,
                emotion: str | None = None, owns_process: bool = False) -> SpeakSummary:
    """One file: errors raise (the CLI prints them and exits 1). A folder: each refused file is
    recorded with its reason in ``<out>/failures.json`` and the rest is voiced. ``emotion`` (a
    vocabulary name) replaces the emotion read from each face; another name is refused at once.
    ``owns_process``: the caller is a process that exists to speak (the CLI; see ``Speaker``)."""
    params = params or load_params()
    emotion_override(emotion)  # a name outside the vocabulary: one line listing it, before any work
    video = Path(video)
    if not video.exists():
        raise MediaError(video, "file does not exist")
    if video.is_dir():
        out_dir = Path(out or video / "speech")
        dub_dir = Path(dub) if dub else None
        exts = set(params.speak.extensions)
        # earlier outputs inside the folder are not inputs (a folder dubbed onto itself is refused below)
        skip = [Path(_real(d)) for d in (out_dir, dub_dir) if d is not None and _real(d) != _real(video)]
        files = sorted(p for p in video.rglob("*") if p.suffix.lower() in exts
                       and not any(Path(_real(p)).is_relative_to(d) for d in skip))
        if not files:
            raise MediaError(video, f"no video files ({', '.join(sorted(exts))}) in this folder")
        jobs = [(f, out_dir / f.relative_to(video).with_suffix(".wav"),
                 dub_dir / f.relative_to(video).with_suffix(".mp4") if dub_dir else None) for f in files]
        refuse_overwrites(jobs, dub_dir or out_dir)
    else:
        jobs = [(video, Path(out or video.with_suffix(".wav").name), Path(dub) if dub else None)]
        refuse_overwrites(jobs)
    speaker = Speaker(model, params, owns_process=owns_process)
    summary = SpeakSummary(model=model)
    if video.is_dir():
        for f, wav, dubbed in tqdm(jobs, desc="speak", unit="clip"):
            try:
                _one(speaker, f, wav, dubbed, summary, emotion)
            except ImaginTalkError as exc:
                summary.failures[str(f)] = exc.reason
        if summary.failures:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "failures.json").write_text(json.dumps(summary.failures, indent=2))
        if not summary.outputs:
            raise MediaError(video, f"every clip was refused ({len(summary.failures)}); see {out_dir}/failures.json")
        return summary
    _one(speaker, *jobs[0], summary, emotion)
    return summary


def refuse_overwrites(jobs: list[tuple[Path, Path, Path | None]], named: Path | None = None) -> None:
    """MediaError before any work when an output (wav or dubbed mp4) is an input video or another
    output: speak never replaces the user's video. ``named`` is what the error names for a folder."""
    inputs = {_real(f): f for f, _, _ in jobs}
    seen: set[str] = set()
    for _, *outs in jobs:
        for o in (x for x in outs if x is not None):
            real = _real(o)
            if real in inputs:
                raise MediaError(named or o, f"output {o} would overwrite the input video {inputs[real]}; "
                                             "choose another path")
            if real in seen:
                raise MediaError(named or o, "wav and dubbed outputs would overwrite each other")
            seen.add(real)


def _real(p: Path) -> str:
    return os.path.realpath(p)


def _one(speaker: Speaker, video: Path, wav: Path, dub: Path | None, summary: SpeakSummary,
         emotion: str | None = None) -> None:
    speech = speaker.speak(video, emotion=emotion)
    write_audio(wav, speech.audio, speech.sample_rate)
    summary.outputs.append(str(wav))
    summary.seconds_of_speech += len(speech.audio) / speech.sample_rate
    if dub is not None:
        dub_video(video, speech.audio, dub, speech.sample_rate)
        summary.dubbed.append(str(dub))
