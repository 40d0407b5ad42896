"""Open-vocabulary intelligibility judge: a wav2vec 2.0-family model with a CTC head (torchaudio's
builders, weights from the pretrained catalogue, e.g. ``wav2vec2-asr-base-960h``), greedy decoding.

Same interface as the grammar judge (imagintalk/eval/asr.py): ``transcribe(wave) -> str``, plus
``transcribe_batch`` that runs clips in batches. Greedy CTC: the best label per frame, repeats
collapsed, blanks dropped, the word separator ``|`` read as a space; lower-case text out.

Batching without changing the answer: the base models normalise the conv features over the whole
(padded) input (group norm) and were fine-tuned without padding, so zero padding would shift a
short clip's transcript. Clips are sorted by length and only clips within ``max_pad`` of each
other share a batch (each clip's result is then that of the clip alone, give or take that pad).

A catalogue entry's ``config`` holds the builder's keyword arguments and, read here and not passed
to the builder: ``labels`` (the output classes, blank first), ``sample_rate`` (what the model was
trained on; input is resampled to it), ``remove_aux_axes`` (output rows to drop on load, as
torchaudio's ASR bundles do for fairseq's unused dictionary entries) and ``normalize_waveform``
(layer-norm each clip's wave first, as the large "lv60k" models expect).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagintalk.errors import ArtifactError, ConfigError

BUILDER_MODULE = "torchaudio.models."
BUILDERS = frozenset({"wav2vec2_base", "wav2vec2_large", "wav2vec2_large_lv60k", "wav2vec2_model",
                      "hubert_base", "hubert_large", "hubert_xlarge", "wavlm_base", "wavlm_large", "wavlm_model"})
JUDGE_KEYS = ("labels", "sample_rate", "remove_aux_axes", "normalize_waveform")
WORD_SEPARATOR = "|"
BLANK = 0                  # torchaudio's ASR bundles put the CTC blank first
BATCH_SIZE = 8
MAX_PAD = 0.05             # a batch's longest clip at most 5% longer than its shortest


def builder_of(architecture: str) -> str | None:
    """The torchaudio builder an entry's ``architecture`` names, None when it is not one we load."""
    name = architecture.removeprefix(BUILDER_MODULE)
    return name if architecture.startswith(BUILDER_MODULE) and name in BUILDERS else None


def ctc_greedy(ids: Sequence[int], labels: Sequence[str], blank: int = BLANK) -> str:
    """Frame-wise best labels -> text: repeats collapsed, blanks dropped, ``|`` a space, lower-case."""
    out, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev and i != blank:
            out.append(labels[i])
        prev = i
    return " ".join("".join(out).replace(WORD_SEPARATOR, " ").split()).lower()


def length_batches(lengths: Sequence[int], batch_size: int = BATCH_SIZE,
                   max_pad: float = MAX_PAD) -> Iterator[list[int]]:
    """Indices in batches of at most ``batch_size`` clips of near-equal length (shortest first)."""
    batch: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        if batch and (len(batch) == batch_size or lengths[i] > (1 + max_pad) * max(lengths[batch[0]], 1)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class CTCJudge:
    """Transcribe speech with a loaded torchaudio ``Wav2Vec2Model`` that has a CTC head."""

    def __init__(self, model, labels: Sequence[str], sample_rate: int = 16000, normalize_waveform: bool = False,
                 description: str = "wav2vec 2.0 CTC, greedy decoding", batch_size: int = BATCH_SIZE,
                 max_pad: float = MAX_PAD):
        import torch

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.eval().to(self.device)
        self.labels = tuple(labels)
        self.sample_rate = int(sample_rate)
        self.normalize_waveform = normalize_waveform
        self.description = description
        self.batch_size, self.max_pad = batch_size, max_pad

    @classmethod
    def from_file(cls, path: str | Path, architecture: str, config: dict[str, Any], description: str) -> CTCJudge:
        """Build the entry's architecture and load the upstream file (a bare state_dict) into it."""
        import torch
        import torchaudio

        builder = builder_of(architecture)
        if builder is None:
            raise ConfigError(architecture, f"not a torchaudio wav2vec 2.0-family builder "
                                            f"({', '.join(sorted(BUILDER_MODULE + b for b in BUILDERS))})")
        kwargs = {k: v for k, v in config.items() if k not in JUDGE_KEYS}
        labels = config.get("labels")
        if not labels:
            raise ConfigError(description, "an ASR judge's config needs its output labels (blank first)")
        p = Path(path)
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises pickle/zip/runtime errors for a bad file
            raise ArtifactError(p, f"not a torch checkpoint ({exc.__class__.__name__})") from exc
        if not isinstance(state, dict) or "aux.weight" not in state:
            raise ArtifactError(p, "no CTC output layer (aux.weight) in the state_dict: not an ASR checkpoint")
        drop = set(config.get("remove_aux_axes") or ())
        if drop:
            state = dict(state)
            for key in ("aux.weight", "aux.bias"):
                keep = [i for i in range(state[key].shape[0]) if i not in drop]
                state[key] = state[key][keep]
        if state["aux.weight"].shape[0] != len(labels):
            raise ArtifactError(p, f"CTC head has {state['aux.weight'].shape[0]} outputs after removing rows "
                                   f"{sorted(drop)}, but {len(labels)} labels are configured")
        try:
            model = getattr(torchaudio.models, builder)(**kwargs)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, KeyError, ValueError) as exc:
            raise ArtifactError(p, f"state_dict does not fit {architecture} "
                                   f"({str(exc).splitlines()[0][:160]})") from exc
        return cls(model, labels, sample_rate=config.get("sample_rate", 16000),
                   normalize_waveform=bool(config.get("normalize_waveform", False)), description=description)

    def grades(self, transcript: str) -> bool:
        from imagintalk.eval.metrics import normalise_text

        return bool(normalise_text(transcript or ""))   # open vocabulary: any words

    def transcribe(self, audio: np.ndarray, sample_rate: int = 16000) -> str:
        return self.transcribe_batch([audio], sample_rate)[0]

    def transcribe_batch(self, audios: Sequence[np.ndarray], sample_rate: int = 16000) -> list[str]:
        import torch

        waves = [self._prepare(a, sample_rate) for a in audios]
        out = [""] * len(waves)
        for idx in length_batches([len(w) for w in waves], self.batch_size, self.max_pad):
            lengths = torch.tensor([len(waves[i]) for i in idx])
            batch = torch.zeros(len(idx), int(lengths.max()))
            for row, i in enumerate(idx):
                batch[row, : len(waves[i])] = waves[i]
            with torch.inference_mode():
                emissions, frames = self.model(batch.to(self.device), lengths.to(self.device))
            best = emissions.argmax(dim=-1).cpu()
            n = frames.cpu() if frames is not None else torch.full((len(idx),), best.shape[1])
            for row, i in enumerate(idx):
                out[i] = ctc_greedy(best[row, : int(n[row])].tolist(), self.labels)
        return out

    def _prepare(self, audio: np.ndarray, sample_rate: int):
        import torch
        import torchaudio

        # at least one receptive field of the conv stack (400 samples at 16 kHz): a near-empty clip
        # (a variant that spoke nothing) then decodes to a frame or two, not an error
        x = torch.from_numpy(np.nan_to_num(np.asarray(audio, np.float32))).flatten()
        if sample_rate != self.sample_rate:
            x = torchaudio.functional.resample(x, sample_rate, self.sample_rate)
        if self.normalize_waveform and x.numel() > 1:
            x = torch.nn.functional.layer_norm(x, x.shape)
        return torch.nn.functional.pad(x, (0, max(0, 400 - x.numel())))
