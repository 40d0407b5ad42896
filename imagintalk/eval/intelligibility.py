"""Intelligibility of every variant: WER and CER of the ASR judge that ``eval.asr`` names, against
the clips' transcripts, both normalised the field's way (imagintalk/eval/metrics.py).

``eval.asr`` is ``grid`` (pocketsphinx constrained by the GRID grammar, imagintalk/eval/asr.py:
SynthTalk and other GRID-grammar corpora; it grades only transcripts the grammar can produce), the
name of an ``asr_judge`` component of the pretrained catalogue (a torchaudio wav2vec 2.0 CTC model
such as ``wav2vec2-asr-base-960h``, imagintalk/eval/ctc_asr.py: any transcript), or null (none).
The same judge hears every rung, the ground truth included, so the judge's own error is the
ground_truth column and the model's is read beside it.

A metric that cannot be computed is reported as missing, with the reason (:func:`gaps`), instead of
silently dropped: no judge configured, its weights not pulled, no transcripts, none the judge can
grade. A setting that names no usable judge (an unknown name, a component of another kind, an
architecture without a judge here) is a ConfigError before anything is generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imagintalk.config import Params
from imagintalk.errors import ArtifactError, ConfigError, StorageError
from imagintalk.eval import metrics as M
from imagintalk.eval.asr import AsrJudge
from imagintalk.eval.catalog import ASR_METRICS

GRID = "grid"
OPEN_VOCABULARY_EXAMPLE = "wav2vec2-asr-base-960h"


@dataclass(frozen=True)
class AsrChoice:
    """The judge ``eval.asr`` gives, or why there is none."""

    setting: str | None
    judge: AsrJudge | None = None
    description: str = ""           # which judge, for the report
    reason: str | None = None       # why there is no judge (None when there is one)


def choose_asr(params: Params) -> AsrChoice:
    """The ASR judge of ``params.eval.asr``, loaded; missing weights give a reason, not an error."""
    from imagintalk.eval.ctc_asr import BUILDER_MODULE, BUILDERS, CTCJudge, builder_of
    from imagintalk.pretrained import catalogue, resolve

    setting = params.eval.asr
    if setting is None:
        return AsrChoice(None, reason="no ASR judge configured (eval.asr is null)")
    if setting == GRID:
        from imagintalk.eval.asr import GRID_JUDGE, grid_asr

        return AsrChoice(setting, grid_asr(), GRID_JUDGE)
    known = catalogue(params)
    judges = ", ".join([GRID, *(n for n, c in known.items() if c.kind == "asr_judge")])
    comp = known.get(setting)
    if comp is None:
        raise ConfigError("eval.asr", f"{setting!r} is neither {GRID} nor a pretrained component (judges: {judges}; "
                                      "add one under pretrained.components in params.yaml)")
    if comp.kind != "asr_judge":
        raise ConfigError("eval.asr", f"{setting} is a {comp.kind}, not an asr_judge (judges: {judges})")
    if builder_of(comp.architecture) is None:
        raise ConfigError("eval.asr", f"{setting}'s architecture {comp.architecture!r} has no judge here "
                                      f"(a CTC model of {', '.join(sorted(BUILDER_MODULE + b for b in BUILDERS))})")
    description = f"{setting} ({comp.architecture} with a CTC head, greedy decoding)"
    try:
        path = resolve(setting, params=params)
    except (ArtifactError, StorageError) as exc:
        return AsrChoice(setting, description=description,
                         reason=f"eval.asr names {setting} but its weights are not available: {exc.reason}")
    try:
        judge = CTCJudge.from_file(path, comp.architecture, dict(comp.config), description)
    except ArtifactError as exc:
        return AsrChoice(setting, description=description,
                         reason=f"eval.asr names {setting} but its weight file does not load: {exc}")
    return AsrChoice(setting, judge, description)


def _texts(transcripts: Sequence[str | None]) -> list[str]:
    return [t for t in transcripts if t and M.normalise_text(t)]


def gaps(choice: AsrChoice, transcripts: Sequence[str | None]) -> dict[str, str]:
    """metric -> why it is not computed (empty when WER and CER are). The same for every variant:
    they share the clips, their transcripts and the judge."""
    texts = _texts(transcripts)
    if not texts:
        reason = f"none of the {len(transcripts)} test clips has a transcript"
    elif choice.judge is None:
        reason = choice.reason or "no ASR judge"
    elif not any(choice.judge.grades(t) for t in texts):
        reason = f"{choice.description} grades none of the {len(texts)} transcripts"
        if choice.setting == GRID:
            reason += (" (they do not fit the GRID grammar); for open vocabulary set eval.asr to an asr_judge "
                       f"component, e.g. {OPEN_VOCABULARY_EXAMPLE} (imagintalk models pull {OPEN_VOCABULARY_EXAMPLE})")
    else:
        return {}
    return {m: reason for m in ASR_METRICS}


def coverage(choice: AsrChoice, transcripts: Sequence[str | None]) -> dict[str, object]:
    """What metrics.json records about the judge: the setting, the judge, and how many clips it graded."""
    texts = _texts(transcripts)
    graded = sum(choice.judge.grades(t) for t in texts) if choice.judge is not None else 0
    return {"setting": choice.setting, "judge": choice.description or None, "graded_clips": int(graded),
            "clips_with_transcript": len(texts), "clips": len(transcripts)}


def score(transcripts: Sequence[str | None], audios: Sequence[np.ndarray], judge: AsrJudge,
          sample_rate: int = 16000) -> dict[str, float]:
    """``{"wer", "cer"}`` over the clips the judge grades (corpus-level rates), ``{}`` when none."""
    idx = [i for i, t in enumerate(transcripts) if t and M.normalise_text(t) and judge.grades(t)]
    if not idx:
        return {}
    refs = [str(transcripts[i]) for i in idx]
    hyps = judge.transcribe_batch([audios[i] for i in idx], sample_rate)
    return {"wer": M.word_error_rate(refs, hyps), "cer": M.char_error_rate(refs, hyps)}
