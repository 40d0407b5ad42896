"""The model-stage graph, declared once, without importing torch (the CLI and the pipeline
registry read it at start-up).

``needs`` maps the part name :func:`imagintalk.models.stages.build_stage` expects to the registered
stage that supplies it: the error detector starts from the trained lip aligner (frozen) and unit
BERT; the style-DiT uses the trained refiner (``imagintalk-error_detector``: aligner + BERT +
detector) and the facial-expression model (its per-frame probabilities are c_emo's input), both
frozen. ``codec``: the stage learns on the shards' codec decoder (the vocoder learns on
decoded tokens, what it receives at inference); with a pretrained codec (``codec.component``)
the vocoder has nothing to do and is skipped (``skip_reason``, ``active_stages``). The pipeline's
training stages and their DVC/Dagster dependencies (pipelines/registry.py), the training order,
the CLI's choices and the k8s job waves (checked by tests) all derive from this table; nothing
else lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Literal

from imagintalk.config import LoaderConfig, Params


@dataclass(frozen=True)
class StageSpec:
    name: str
    needs: Mapping[str, str] = field(default_factory=dict)   # build_stage part -> registered stage
    audio: bool = False                                       # decode audio.flac
    codec: bool = False                                       # gets the shards' codec (part "codec")
    # which train-split speakers it learns on: all, those the aligner fits ("fit"), or the ones
    # held out from the aligner ("held_out", see train.detector_holdout)
    speakers: Literal["all", "fit", "held_out"] = "all"
    # the record fields its model reads (LoaderConfig.fields): the loader decodes nothing else
    fields: tuple[str, ...] | None = None
    # only a mel codec needs it: a pretrained codec (``codec.component``) decodes its own tokens
    # to a waveform, so the stage is skipped (see ``skip_reason``)
    mel_codec_only: bool = False
    # its training crops take params ``lip_aligner``'s augmentation (flip, time masking)
    lip_augment: bool = False

    def loader_config(self, params: Params, train: bool = True,
                      train_speakers: Sequence[str] | None = None) -> LoaderConfig:
        """The loader settings of this stage (batch size override, audio on demand, and, for
        training with the split's speakers known, this stage's share of them)."""
        update: dict = {"audio": self.audio, "fields": None if self.fields is None else list(self.fields)}
        if params.train.batch_size is not None:
            update["batch_size"] = params.train.batch_size
        if not train:
            update["drop_last"] = False
        else:
            if self.speakers != "all" and train_speakers:
                fit, held_out = holdout_split(train_speakers, params.train.detector_holdout)
                if held_out:
                    update["speakers"] = fit if self.speakers == "fit" else held_out
            if self.lip_augment:
                update["flip_prob"] = params.lip_aligner.flip_prob
                update["time_mask_frames"] = params.lip_aligner.time_mask_frames
        return params.loader.model_copy(update=update)


def holdout_split(speakers: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """(fit, held_out): ``fraction`` of the speakers, spread evenly over their sorted order, held
    out (at least one when ``fraction`` > 0 and at least two speakers; never all of them)."""
    ordered = sorted(set(speakers))
    n = len(ordered)
    k = min(n - 1, max(1, round(n * fraction))) if fraction > 0 and n >= 2 else 0
    held = {ordered[(2 * i + 1) * n // (2 * k)] for i in range(k)}
    return [s for s in ordered if s not in held], [s for s in ordered if s in held]


STAGES: dict[str, StageSpec] = {
    "expression": StageSpec("expression", fields=("landmarks",)),
    "vocoder": StageSpec("vocoder", audio=True, codec=True, fields=("mel", "codes"), mel_codec_only=True),
    "unit_bert": StageSpec("unit_bert", fields=("units",)),
    "lip_aligner": StageSpec("lip_aligner", speakers="fit", fields=("lips", "units"), lip_augment=True),
    "error_detector": StageSpec("error_detector", needs={"lip_aligner": "lip_aligner", "unit_bert": "unit_bert"},
                                speakers="held_out", fields=("lips", "units")),
    "style_dit": StageSpec("style_dit", needs={"refiner": "error_detector", "expression": "expression"},
                           fields=("lips", "units", "codes", "identity", "speaker", "face", "landmarks")),
}


def upstream(stage: str) -> tuple[str, ...]:
    """The registered stages ``stage`` builds on directly (its ``needs``, in declaration order)."""
    return tuple(dict.fromkeys(STAGES[stage].needs.values()))


def _order() -> tuple[str, ...]:
    """A training order in which every stage follows what it needs (declaration order where free)."""
    sorter = TopologicalSorter({name: upstream(name) for name in STAGES})
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=list(STAGES).index)
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


ORDER: tuple[str, ...] = _order()


def skip_reason(stage: str, params: Params) -> str | None:
    """Why ``stage`` is not trained under ``params`` (None: it is). The pipeline's graph stays one
    static table (DVC, Dagster and the CLI list every stage); a skipped stage's step records the
    reason instead of training, and the composite is assembled without it."""
    if STAGES[stage].mel_codec_only and params.codec.component is not None:
        return (f"codec.component {params.codec.component} decodes its tokens straight to a waveform; "
                f"the {stage} stage is only for the k-means (mel) codec")
    return None


def active_stages(params: Params) -> tuple[str, ...]:
    """The stages ``params`` train, in training order (``ORDER`` less the skipped ones)."""
    return tuple(s for s in ORDER if skip_reason(s, params) is None)
