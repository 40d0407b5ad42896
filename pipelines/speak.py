"""`imagintalk speak`: silent video (a file or a folder of them) -> speech wav, optionally dubbed mp4."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from imagintalk.config import Params, load_params
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
                model: str = "models:/imagintalk@champion", params: Params | None = None) -> SpeakSummary:
    """One file: errors raise (the CLI prints them and exits 1). A folder: each refused file is
    recorded with its reason in ``<out>/failures.json`` and the rest is voiced."""
    params = params or load_params()
    video = Path(video)
    if not video.exists():
        raise MediaError(video, "file does not exist")
    speaker = Speaker(model, params)
    summary = SpeakSummary(model=model)
    if video.is_dir():
        out_dir = Path(out or video / "speech")
        dub_dir = Path(dub) if dub else None
        exts = set(params.speak.extensions)
        files = sorted(p for p in video.rglob("*") if p.suffix.lower() in exts and out_dir not in p.parents)
        if not files:
            raise MediaError(video, f"no video files ({', '.join(sorted(exts))}) in this folder")
        for f in tqdm(files, desc="speak", unit="clip"):
            rel = f.relative_to(video).with_suffix("")
            try:
                _one(speaker, f, out_dir / rel.with_suffix(".wav"),
                     dub_dir / rel.with_suffix(".mp4") if dub_dir else None, summary)
            except ImaginTalkError as exc:
                summary.failures[str(f)] = exc.reason
        if summary.failures:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "failures.json").write_text(json.dumps(summary.failures, indent=2))
        if not summary.outputs:
            raise MediaError(video, f"every clip was refused ({len(summary.failures)}); see {out_dir}/failures.json")
        return summary
    _one(speaker, video, Path(out or video.with_suffix(".wav").name), dub, summary)
    return summary


def _one(speaker: Speaker, video: Path, wav: Path, dub: Path | None, summary: SpeakSummary) -> None:
    speech = speaker.speak(video)
    write_audio(wav, speech.audio, speech.sample_rate)
    summary.outputs.append(str(wav))
    summary.seconds_of_speech += len(speech.audio) / speech.sample_rate
    if dub is not None:
        dub_video(video, speech.audio, dub, speech.sample_rate)
        summary.dubbed.append(str(dub))
