"""The speaker encoder (``shards.speaker_encoder``, ``eval.speaker_judge``) and the naturalness judge
(``eval.naturalness_judge``) chosen by name from the pretrained catalogue, like every other
component: another name for the same weights gives the same embedding and score, a name of the
wrong kind or no name at all is a one-line ConfigError naming the field and the components of that
kind, weights that are not available or are not that component's are a one-line ArtifactError.

The weights are the real ones (GE2E and DNSMOS P.808 ship in the resemblyzer and speechmos wheels);
each test has its own cache, so the copies made into it are the ones resolved.
"""

from __future__ import annotations

import numpy as np
import pytest
from pretrained_support import mirror_entry

from imagintalk.config import DEFAULT_SPEAKER_ENCODER, Params
from imagintalk.errors import ArtifactError, ConfigError
from imagintalk.eval.naturalness import load_naturalness_judge
from imagintalk.features.speaker import load_speaker_encoder
from imagintalk.pretrained.cache import CACHE_ENV
from pipelines.shard import params_hash

GE2E, P808 = "resemblyzer-ge2e", "dnsmos-p808"


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Two seconds of a voiced, pitch-gliding buzz with formant-like bands: speech enough for both judges."""
    t = np.arange(32000) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (0.2 * voice / np.abs(voice).max()).astype(np.float32)


def _params(tmp_path, components: dict | None = None, **sections) -> Params:
    return Params.model_validate({**sections, "storage": {"root": str(tmp_path / "store")},
                                  "pretrained": {"cache_dir": str(tmp_path / "cache"), "components": components or {}}})


def test_a_speaker_encoder_under_another_name_embeds_the_same_and_enters_the_shards_params_hash(tmp_path, speech):
    mirrored = _params(tmp_path, {"ge2e-mirror": mirror_entry(GE2E)},
                       shards={"speaker_encoder": "ge2e-mirror"}, eval={"speaker_judge": "ge2e-mirror"})
    default = load_speaker_encoder(DEFAULT_SPEAKER_ENCODER, mirrored)
    other = load_speaker_encoder(mirrored.shards.speaker_encoder, mirrored)
    judge = load_speaker_encoder(mirrored.eval.speaker_judge, mirrored, "eval.speaker_judge")
    assert other.name == judge.name == "ge2e-mirror" and other.net is not default.net   # its own file
    assert (tmp_path / "cache" / "ge2e-mirror" / "pretrained.pt").is_file()
    assert np.array_equal(other.embed(speech), default.embed(speech))
    assert judge.similarity(speech, speech) == pytest.approx(1.0, abs=1e-5)
    # the shard step's hash: a new encoder remakes the shards; the default leaves older shards' hash as it was
    assert params_hash(mirrored) != params_hash(_params(tmp_path))
    assert "speaker_encoder" not in _params(tmp_path).shards.model_dump(exclude_defaults=True)


def test_a_naturalness_judge_under_another_name_scores_the_same(tmp_path, speech):
    mirrored = _params(tmp_path, {"p808-mirror": mirror_entry(P808)}, eval={"naturalness_judge": "p808-mirror"})
    other = load_naturalness_judge(mirrored.eval.naturalness_judge, mirrored)
    default = load_naturalness_judge(P808, mirrored)
    assert other.name == "p808-mirror" and (tmp_path / "cache" / "p808-mirror" / "model_v8.onnx").is_file()
    p808, ovrl = other.score(speech)
    assert (p808, ovrl) == default.score(speech) and 1 <= p808 <= 5 and 1 <= ovrl <= 5


@pytest.mark.parametrize(("load", "setting", "name", "message"), [
    (load_speaker_encoder, "shards.speaker_encoder", P808,
     "shards.speaker_encoder: dnsmos-p808 is a naturalness_judge, not a speaker_encoder "
     "(known speaker_encoder components: resemblyzer-ge2e;"),
    (load_speaker_encoder, "eval.speaker_judge", "nope",
     "eval.speaker_judge: nope is not a pretrained component, not a speaker_encoder "
     "(known speaker_encoder components: resemblyzer-ge2e;"),
    (load_naturalness_judge, "eval.naturalness_judge", GE2E,
     "eval.naturalness_judge: resemblyzer-ge2e is a speaker_encoder, not a naturalness_judge "
     "(known naturalness_judge components: dnsmos-p808;"),
])
def test_a_name_of_another_kind_or_no_component_is_one_line_naming_the_field(tmp_path, load, setting, name, message):
    with pytest.raises(ConfigError) as err:
        load(name, _params(tmp_path), setting)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_an_architecture_without_a_loader_here_is_refused(tmp_path):
    ecapa = {"kind": "speaker_encoder", "url": "https://example.invalid/ecapa.ckpt",
             "architecture": "speechbrain.ECAPA"}
    with pytest.raises(ConfigError, match="eval.speaker_judge: ecapa's architecture 'speechbrain.ECAPA' has no loader"):
        load_speaker_encoder("ecapa", _params(tmp_path, {"ecapa": ecapa}), "eval.speaker_judge")


@pytest.mark.parametrize(("load", "kind", "architecture"), [
    (load_speaker_encoder, "speaker_encoder", "resemblyzer.VoiceEncoder"),
    (load_naturalness_judge, "naturalness_judge", "speechmos.dnsmos (onnxruntime)"),
])
def test_weights_not_pulled_or_not_that_component_are_one_line(tmp_path, load, kind, architecture):
    entry = {"kind": kind, "url": "https://example.invalid/judge.bin", "architecture": architecture}
    with pytest.raises(ArtifactError) as err:
        load("elsewhere", _params(tmp_path, {"elsewhere": entry}))
    assert "weight file missing" in str(err.value) and "imagintalk models pull elsewhere" in str(err.value)
    # a file that is another component's (here: random bytes, pulled under the name) is refused by name
    foreign = tmp_path / "judge.bin"
    foreign.write_bytes(np.random.default_rng(0).bytes(4096))
    params = _params(tmp_path, {"elsewhere": entry})
    from imagintalk.pretrained import pull

    pull("elsewhere", source=foreign, params=params)
    with pytest.raises(ArtifactError) as err:
        load("elsewhere", params)
    assert "judge.bin: not a" in str(err.value) and "\n" not in str(err.value)


def test_evaluation_refuses_a_bad_judge_before_it_loads_a_model(tmp_path):
    from pipelines.evaluate import evaluate_model

    params = _params(tmp_path, eval={"naturalness_judge": GE2E, "asr": None})
    with pytest.raises(ConfigError, match="^eval.naturalness_judge: resemblyzer-ge2e is a speaker_encoder"):
        evaluate_model("models:/never-loaded/1", str(tmp_path), params)
