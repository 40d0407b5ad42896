"""The catalogue of pretrained components we know by name: what each is for, which maintained
package's architecture loads it, where its upstream weight file lives, and the file's sha256.

Why a catalogue: a checkpoint named in params (``tokenizer.checkpoint: hubert-base-ls960``) is the
same file on a laptop and on every Ray worker, fetched once into a cache and checked by hash,
instead of a path that must exist on each machine. The built-in entries below are the field's
usual choices; ``params.yaml``'s ``pretrained.components`` adds entries or overrides fields of
these (a mirror URL, a hash) without code.

Hashes: where the upstream publishes one, or several independent records agree on it, it is
written here. Where we could not find it (torchaudio's HuBERT/wav2vec 2.0 exports), ``sha256`` is
None: the first ``pull`` records the hash it saw and every later copy is verified against that
record (trust on first use), see imagintalk/pretrained/cache.py.

An entry's ``config`` is its architecture's keyword arguments: for a codec, what a stage needs to
know of its tokens before any weights are read (``dac-16khz``: 12 codebooks × 1024 at 16 kHz with a
320-sample hop, i.e. 50 Hz; the weight file's own metadata must agree when it is loaded).
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator

from imagintalk.config import ComponentKind, ComponentSpec, Params
from imagintalk.errors import ConfigError
from imagintalk.sections import Section


class Component(Section):
    """One named pretrained component, complete (built-in merged with any params override)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: ComponentKind
    url: str
    filename: str = Field(pattern=r"^[^/\\]+$")   # the file's name in the cache and storage
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    size: int | None = None                      # bytes, when known
    architecture: str                            # the maintained builder that loads the file
    # the builder's keyword arguments (an asr_judge's also: labels, sample_rate, remove_aux_axes, ...)
    config: dict[str, Any] = Field(default_factory=dict)
    licence: str = "unknown"
    bundled: str | None = None                   # "package:path" of an identical copy in a wheel

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError(f"{value!r} is not a file name")
        return value


def _entry(name: str, kind: str, url: str, architecture: str, licence: str, sha256: str | None = None,
           size: int | None = None, bundled: str | None = None, config: dict[str, Any] | None = None) -> Component:
    # the filename is fixed here from the upstream URL, so a mirror (another URL) keeps the cache path
    return Component(name=name, kind=kind, url=url, filename=posixpath.basename(urlparse(url).path),
                     architecture=architecture, licence=licence, sha256=sha256, size=size, bundled=bundled,
                     config=config or {})


_TORCHAUDIO = "https://download.pytorch.org/torchaudio/models"
# torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H.get_labels(): CTC blank "-", word separator "|"
WAV2VEC2_ASR_LABELS = ("-", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M", "W", "C", "F",
                       "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z")

BUILTIN: dict[str, Component] = {c.name: c for c in (
    # torchaudio's exports of the fairseq checkpoints: a bare state_dict of the builder's model
    # (what torchaudio.pipelines.HUBERT_BASE / WAV2VEC2_BASE load). torchaudio publishes no hash.
    _entry("hubert-base-ls960", "unit_extractor", f"{_TORCHAUDIO}/hubert_fairseq_base_ls960.pth",
           "torchaudio.models.hubert_base", "MIT (fairseq)"),
    _entry("wav2vec2-base", "unit_extractor", f"{_TORCHAUDIO}/wav2vec2_fairseq_base_ls960.pth",
           "torchaudio.models.wav2vec2_base", "MIT (fairseq)"),
    # torch.hub file name carries the hash prefix d7cc33bc; the full hash agrees with it
    _entry("encodec-24khz", "codec", "https://dl.fbaipublicfiles.com/encodec/v0/encodec_24khz-d7cc33bc.th",
           "encodec.EncodecModel.encodec_model_24khz", "MIT",
           sha256="d7cc33bcf1aad7f2dad9836f36431530744abeace3ca033005e3290ed4fa47bf", size=93_171_529),
    # descript-audio-codec's 16 kHz release (0.0.5; its conf/final/16khz.yml): hop 2·4·5·8 = 320
    # samples, so 50 codes/s, exactly our token rate (2 per 25 fps video frame), 12 codebooks of
    # 1024 (codebook_dim 8, L2-normalised lookup). `codec.component: dac-16khz` tokenises the shards
    # with it and decodes straight to a waveform (no vocoder stage). The architecture is
    # re-implemented in-tree in upstream's module layout (imagintalk/models/dac.py): the package's
    # descript-audiotools pins protobuf 3.19, below what Dagster needs. No published hash: trust on
    # first use.
    _entry("dac-16khz", "codec",
           "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.5/weights_16khz.pth",
           "imagintalk.models.dac.DAC (descript-audio-codec layout)", "MIT",
           config={"encoder_dim": 64, "encoder_rates": [2, 4, 5, 8], "latent_dim": None, "decoder_dim": 1536,
                   "decoder_rates": [8, 5, 4, 2], "n_codebooks": 12, "codebook_size": 1024, "codebook_dim": 8,
                   "quantizer_dropout": 0.5, "sample_rate": 16000}),
    _entry("resemblyzer-ge2e", "speaker_encoder",
           "https://github.com/resemble-ai/Resemblyzer/raw/master/resemblyzer/pretrained.pt",
           "resemblyzer.VoiceEncoder", "Apache-2.0",
           sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e", size=17_090_379,
           bundled="resemblyzer:pretrained.pt"),
    _entry("dnsmos-p808", "naturalness_judge",
           "https://github.com/microsoft/DNS-Challenge/raw/master/DNSMOS/DNSMOS/model_v8.onnx",
           "speechmos.dnsmos (onnxruntime)", "MIT",
           sha256="9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91", size=224_860,
           bundled="speechmos:dnsmos_models/model_v8.onnx"),
    # torchaudio's WAV2VEC2_ASR_BASE_960H: the file keeps fairseq's 32-row output layer; the bundle drops
    # rows 1-3 (fairseq dictionary specials never trained) to match its 29 character labels, blank first.
    # Besides the builder's arguments, `config` carries what the CTC judge needs (imagintalk/eval/ctc_asr.py).
    # The hash and size are those several independent pinning records of this URL agree on.
    _entry("wav2vec2-asr-base-960h", "asr_judge", f"{_TORCHAUDIO}/wav2vec2_fairseq_base_ls960_asr_ls960.pth",
           "torchaudio.models.wav2vec2_base", "MIT (fairseq)",
           sha256="488fd4f16de84438ffc945334278c1b9fb9b7159a806c1080b16111a958c945d", size=377_664_473,
           config={"aux_num_out": 29, "labels": list(WAV2VEC2_ASR_LABELS), "remove_aux_axes": [1, 2, 3],
                   "sample_rate": 16000}),
    # syncnet_python's download: a state dict of its `S` (imagintalk/eval/sync.py keeps the layout).
    # One public record gives a hash; not several, so trust on first use here.
    _entry("syncnet-v2", "sync_judge", "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
           "imagintalk.eval.sync.SyncNet (syncnet_python S)", "MIT (syncnet_python)"),
    # auto_avsr's visual speech recognition model trained on LRS3 (438 h; 36.0 % WER on its test set), its
    # ResNet-18 front-end + 12-block Conformer encoder used as the lip aligner's visual encoder
    # (lip_aligner.visual_encoder; imagintalk/models/auto_avsr.py keeps the upstream layout). The
    # URL is the one auto_avsr's tutorials/feature_extraction.ipynb downloads (the README links the
    # same file on Google Drive); upstream gives only an md5 prefix (c00a7), so trust on first use.
    _entry("auto-avsr-vsr-lrs3-base", "visual_encoder", "http://www.doc.ic.ac.uk/~pm4115/autoAVSR/vsr_trlrs3_base.pth",
           "imagintalk.models.auto_avsr.AutoAVSRVisualEncoder (auto_avsr E2E frontend + encoder)",
           "Apache-2.0 (auto_avsr code); the weights carry LRS3's terms of use",
           config={"adim": 768, "aheads": 12, "eunits": 3072, "elayers": 12, "cnn_module_kernel": 31}),
    # openai-whisper checks the same hash: it is the URL's path segment
    _entry("whisper-tiny", "asr_judge",
           "https://openaipublic.azureedge.net/main/whisper/models/"
           "65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9/tiny.pt",
           "whisper.load_model (openai-whisper)", "MIT",
           sha256="65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9"),
)}


def catalogue(params: Params | None = None) -> dict[str, Component]:
    """Built-in entries with ``params.pretrained.components`` applied, sorted by name."""
    found = dict(BUILTIN)
    for name, spec in (params.pretrained.components if params is not None else {}).items():
        found[name] = _apply(name, found.get(name), spec)
    return dict(sorted(found.items()))


def component(name: str, params: Params | None = None) -> Component:
    """The entry called ``name``; a ConfigError listing the known names otherwise."""
    known = catalogue(params)
    if name not in known:
        raise ConfigError(name, f"unknown pretrained component (known: {', '.join(known)}; "
                                "add one under pretrained.components in params.yaml)")
    return known[name]


def component_of_kind(setting: str, name: str, kind: str, params: Params | None = None) -> Component:
    """The entry ``name`` that params field ``setting`` (``eval.sync_judge``, ...) names, when it is
    a ``kind``: every field that selects a component by name refuses a wrong one in the same one
    line, naming the field and the known components of that kind."""
    known = catalogue(params)
    comp = known.get(name)
    if comp is None or comp.kind != kind:
        what = "not a pretrained component" if comp is None else f"a {comp.kind}"
        of_kind = ", ".join(n for n, c in known.items() if c.kind == kind) or "none"
        raise ConfigError(setting, f"{name} is {what}, not a {kind} (known {kind} components: {of_kind}; "
                                   "add one under pretrained.components in params.yaml)")
    return comp


def with_component(params: Params, name: str, source: dict[str, Any]) -> Params:
    """``params`` whose catalogue knows ``name``: as is when it does, else with ``source`` (a
    recorded catalogue entry, e.g. in a model's config) added, so a machine whose params do not
    list the component still resolves it from its cache or the storage root."""
    if name in catalogue(params):
        return params
    fields = {k: v for k, v in source.items() if k in ComponentSpec.model_fields and v is not None}
    components = {**params.pretrained.components, name: ComponentSpec(**fields)}
    return params.model_copy(update={"pretrained": params.pretrained.model_copy(update={"components": components})})


def _apply(name: str, base: Component | None, spec: ComponentSpec) -> Component:
    given = spec.model_dump(exclude_none=True)
    where = f"pretrained.components.{name}"
    if base is None:
        missing = [k for k in ("kind", "url") if k not in given]
        if missing:
            raise ConfigError(where, f"a new component needs {' and '.join(missing)}")
        given.setdefault("filename", posixpath.basename(urlparse(given["url"]).path))
        given.setdefault("architecture", "unspecified")
        fields = {"name": name, **given}
    else:
        fields = {**base.model_dump(), **given}
    try:
        return Component(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(where, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc
