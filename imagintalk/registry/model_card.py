"""Model cards: the README every registered version carries (as its description and an artifact).

A card answers what a person deciding whether to use a version asks: what data (the data
version and where the shards were), which code (git commit, dirty flag), how it was trained,
what it scored, what it is for and where it is known to fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Intended use and limits per registered model; the composite is "imagintalk".
USES: dict[str, tuple[str, str]] = {
    "lip_aligner": (
        "Maps 88x88 grayscale mouth crops at 25 fps to discrete speech units at 50 Hz; the first "
        "stage of ImaginTalk's semantic path and the input of the error detector.",
        "Visemes are ambiguous (/p b m/ look alike): unit accuracy from lips alone is low and the "
        "error detector exists to repair it. Trained only on the speakers and recording conditions "
        "of its shards; crops must come from imagintalk.preprocess (same mean face and ROI).",
    ),
    "unit_bert": (
        "Masked language model over semantic units, pre-trained on audio-derived units; refines "
        "the aligner's units in the error-detector stage.",
        "Knows only the unit inventory (tokenizer version) it was trained with: units from another "
        "tokenizer are meaningless to it.",
    ),
    "error_detector": (
        "Aligner + unit BERT + error detector: flags likely-wrong units, re-predicts them with the "
        "lip-conditioned BERT and outputs the lip-aware semantic feature c_lip for the style-DiT.",
        "Inherits the aligner's and BERT's limits; the detection threshold and number of rounds "
        "trade recall of errors against over-correction.",
    ),
    "expression": (
        "Facial-expression model: per-frame probabilities over the emotion vocabulary from the "
        "face's 68 landmarks (mean-face coordinates, stored per frame in the shards). Trained on "
        "the corpus labels of the corpora that have them; its probabilities, smoothed over 0.5 s, are "
        "the only emotion input of the generator (c_emo), at training and at inference.",
        "Reads geometry only (brows, lids, mouth corners), not skin texture: subtle or masked "
        "expressions and faces far from the training corpora's are read poorly. Knows only the "
        "vocabulary it was trained on (refused for shards of another). Frames where the face is lost "
        "get probabilities interpolated from their neighbours.",
    ),
    "style_dit": (
        "Masked discrete diffusion over the residual codec levels, conditioned on c_lip, the "
        "face identity (c_id) and per-frame emotion (c_emo: the embedding of the expression model's "
        "per-frame probabilities, smoothed over 0.5 s; never the corpus label); generates codec "
        "tokens for the voice.",
        "The voice is a guess from a face: it matches the identity only as far as face and voice "
        "correlate in the training speakers. Must not be used to impersonate a real person.",
    ),
    "vocoder": (
        "Neural vocoder from 80-band log-mel (the codec decoder's output) to 16 kHz waveforms.",
        "Trained on the shards' speech only; quality drops on voices and rooms far from them. "
        "Griffin-Lim is the zero-training fallback.",
    ),
    "imagintalk": (
        "Silent talking-face video in, speech out (video-to-speech, dubbing): the composite of "
        "the registered stages, loadable with mlflow.pyfunc.load_model.",
        "Generated speech is synthetic and must be disclosed as such. The words come from the lips "
        "(c_lip), the voice from the face's identity (c_id: by default a map of the speaker embedding "
        "that the face's dlib descriptor predicts; `face_style.id_source: face` = descriptor + "
        "face-crop encoder, end to end), "
        "the emotion from the facial expression (c_emo: the expression model's per-frame "
        "probabilities, smoothed over 0.5 s) unless the caller overrides it (`speak --emotion`, the "
        "endpoint's `emotion` field); no corpus label ever reaches it. Intelligibility is limited by "
        "what lips reveal.",
    ),
}


@dataclass(frozen=True)
class ModelCard:
    name: str
    stage: str
    preset: str
    data_version: str
    shards: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    training: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)   # git, tokenizer/codec versions
    depends_on: Mapping[str, str] = field(default_factory=dict)   # stage -> models:/... URI

    def render(self) -> str:
        use, limits = USES.get(self.stage, ("(not documented)", "(not documented)"))
        lines = [
            f"# {self.name}",
            "",
            f"ImaginTalk stage `{self.stage}`, model size `{self.preset}`.",
            "",
            "## Data",
            f"- data version (shard index content hash): `{self.data_version}`",
            f"- shards: `{self.shards}`",
        ]
        lines += [f"- {k}: `{v}`" for k, v in sorted(self.provenance.items())]
        if self.depends_on:
            lines += ["", "## Built on"] + [f"- {k}: `{v}`" for k, v in sorted(self.depends_on.items())]
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(self.metrics.items())] or ["| (none) | |"]
        if self.training:
            lines += ["", "## Training"] + [f"- {k}: `{v}`" for k, v in sorted(self.training.items())]
        lines += ["", "## Intended use", use, "", "## Limits", limits, "",
                  "## Load", f"`mlflow.pyfunc.load_model(\"models:/{self.name}/<version>\")`"
                  if self.stage == "imagintalk" else
                  f"`mlflow.pytorch.load_model(\"models:/{self.name}/<version>\")`", ""]
        return "\n".join(lines)
