"""Pretrained components by name: pull from a local HTTP server, a file or moto S3 (all on
loopback), hash checks, publish/resolve through a storage root, the `imagintalk models` commands,
and the unit tokenizer fitted on a component named in params. The weight file is the upstream
format (a bare torchaudio wav2vec 2.0 state_dict, as torchaudio's HUBERT_BASE bundle loads it) of
a tiny randomly initialised model; nothing reaches outside 127.0.0.1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
import yaml
from http_support import QuietHandler, serve_folder
from pretrained_support import TINY_WAV2VEC2
from shards_support import moto_s3
from typer.testing import CliRunner

from imagintalk import storage
from imagintalk.config import Params, TokenizerConfig
from imagintalk.errors import ArtifactError, ConfigError, StorageError
from imagintalk.pretrained import cache_root, catalogue, publish, pull, resolve
from imagintalk.pretrained.cache import CACHE_ENV
from imagintalk.tokenizers import UnitTokenizer
from pipelines.cli import app

NAME = "hubert-base-ls960"
FILE = "hubert_fairseq_base_ls960.pth"   # the upstream file name: the cache keeps it
TINY = {**TINY_WAV2VEC2, "aux_num_out": None}


class _Handler(QuietHandler):
    """Serves the weights folder; ``/short/<file>`` announces the full length and sends half."""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/short/"):
            data = (Path(self.directory) / self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The served folder: the tiny model's state_dict under the upstream name, and a corrupt copy."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    torch.save(torchaudio.models.wav2vec2_model(**TINY).state_dict(), root / FILE)
    data = bytearray((root / FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "corrupt").mkdir()
    (root / "corrupt" / FILE).write_bytes(bytes(data))
    return root


@pytest.fixture(scope="module")
def server(weights) -> Iterator[str]:
    with serve_folder(weights, _Handler) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_deployment_env(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("IMAGINTALK_STORAGE_ROOT", raising=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _params(tmp_path: Path, url: str, sha256: str | None, **extra_components) -> Params:
    """params.yaml as a user writes it: a mirror URL (and the tiny architecture) for the entry."""
    spec = {"url": url, "architecture": "torchaudio.models.wav2vec2_model", "config": TINY}
    if sha256:
        spec["sha256"] = sha256
    return Params.model_validate({
        "pretrained": {"cache_dir": str(tmp_path / "cache"), "components": {NAME: spec, **extra_components}},
        "storage": {"root": str(tmp_path / "store")},
    })


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_pull_by_url_from_params_verifies_the_hash_and_caches_under_the_name(tmp_path, server, weights):
    sha = _sha(weights / FILE)
    params = _params(tmp_path, f"{server}/{FILE}", sha)
    path = pull(NAME, params=params)
    assert path == tmp_path / "cache" / NAME / FILE
    assert _sha(path) == sha
    assert (path.parent / f"{FILE}.sha256").read_text().split() == [sha, FILE]
    assert _leftovers(path.parent) == [FILE, f"{FILE}.sha256"]   # no staging file left
    assert resolve(NAME, params=params) == path


def test_pull_from_a_local_file(tmp_path, weights):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", _sha(weights / FILE))
    path = pull(NAME, source=weights / FILE, params=params)
    assert path.name == FILE and _sha(path) == _sha(weights / FILE)


def test_pull_from_s3_via_the_storage_layer(tmp_path, weights):
    with moto_s3() as bucket:
        storage.write_bytes(f"{bucket}/mirror/{FILE}", (weights / FILE).read_bytes())
        params = _params(tmp_path, "https://unreachable.invalid/x.pth", _sha(weights / FILE))
        path = pull(NAME, source=f"{bucket}/mirror/{FILE}", params=params)
    assert _sha(path) == _sha(weights / FILE)


def test_corrupt_download_is_a_one_line_error_and_leaves_nothing_in_the_cache(tmp_path, server, weights):
    sha = _sha(weights / FILE)
    params = _params(tmp_path, f"{server}/corrupt/{FILE}", sha)
    with pytest.raises(ArtifactError) as err:
        pull(NAME, params=params)
    msg = str(err.value)
    assert "\n" not in msg and NAME in msg and sha in msg and _sha(weights / "corrupt" / FILE) in msg
    assert _leftovers(tmp_path / "cache" / NAME) == []


def test_download_cut_short_is_a_storage_error_and_leaves_nothing(tmp_path, server, weights):
    params = _params(tmp_path, f"{server}/short/{FILE}", None)
    with pytest.raises(StorageError, match="cut short"):
        pull(NAME, params=params)
    assert _leftovers(tmp_path / "cache" / NAME) == []


def test_http_404_is_one_line_naming_the_url(tmp_path, server):
    params = _params(tmp_path, f"{server}/missing/{FILE}", None)
    with pytest.raises(StorageError, match="HTTP 404") as err:
        pull(NAME, params=params)
    assert f"{server}/missing/{FILE}" in str(err.value)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        pull("hubert-huge", cache_dir="/nonexistent")
    msg = str(err.value)
    assert msg.startswith("hubert-huge: unknown pretrained component") and "\n" not in msg
    for name in ("hubert-base-ls960", "wav2vec2-base", "encodec-24khz", "resemblyzer-ge2e", "dnsmos-p808",
                 "whisper-tiny", "wav2vec2-asr-base-960h"):
        assert name in msg


def test_without_a_published_hash_the_first_pull_is_recorded_and_later_ones_checked(tmp_path, server, weights):
    params = _params(tmp_path, f"{server}/{FILE}", None)
    assert catalogue(params)[NAME].sha256 is None
    path = pull(NAME, params=params)
    assert (path.parent / f"{FILE}.sha256").read_text().split()[0] == _sha(weights / FILE)
    path.unlink()   # the record stays: the same URL now serves other bytes
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        pull(NAME, source=weights / "corrupt" / FILE, params=params)
    assert not path.exists()


def test_missing_weights_name_the_component_and_the_command(tmp_path):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", None)
    with pytest.raises(ArtifactError) as err:
        resolve(NAME, params=params)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{NAME}: ")
    assert f"imagintalk models pull {NAME} [--from PATH|URL]" in msg


def test_corrupt_cached_file_is_removed_on_resolve(tmp_path, weights):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", _sha(weights / FILE))
    path = pull(NAME, source=weights / FILE, params=params)
    path.write_bytes(b"bit rot")
    with pytest.raises(ArtifactError, match="sha256 mismatch in the cache"):
        resolve(NAME, params=params)
    assert not path.exists()


def test_resolve_after_publish_on_a_fresh_cache(tmp_path, weights):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", None)   # trust on first use
    pull(NAME, source=weights / FILE, params=params)
    url = publish(NAME, tmp_path / "store", params=params)
    assert url == str(tmp_path / "store" / "_pretrained" / NAME / FILE)
    fresh = tmp_path / "worker-cache"
    path = resolve(NAME, storage_root=tmp_path / "store", cache_dir=fresh, params=params)
    assert path == fresh / NAME / FILE and _sha(path) == _sha(weights / FILE)
    assert (fresh / NAME / f"{FILE}.sha256").exists()


def test_resolve_from_an_s3_storage_root_on_a_fresh_cache(tmp_path, weights, monkeypatch):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", _sha(weights / FILE))
    pull(NAME, source=weights / FILE, params=params)
    with moto_s3() as bucket:
        publish(NAME, f"{bucket}/run", params=params)
        monkeypatch.setenv("IMAGINTALK_STORAGE_ROOT", f"{bucket}/run")   # as the cluster sets it
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "worker-cache"))
        path = resolve(NAME, params=params)
    assert path == tmp_path / "worker-cache" / NAME / FILE and _sha(path) == _sha(weights / FILE)
    assert cache_root(params=params) == tmp_path / "worker-cache"


@pytest.mark.parametrize("name", ["dnsmos-p808", "resemblyzer-ge2e"])
def test_a_component_bundled_in_an_installed_wheel_pulls_offline_and_matches_its_upstream_hash(tmp_path, name):
    path = pull(name, cache_dir=tmp_path)
    comp = catalogue()[name]
    assert _sha(path) == comp.sha256 and path.stat().st_size == comp.size


def test_cli_models_pull_list_publish(tmp_path, server, weights):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(_params(tmp_path, f"{server}/{FILE}", _sha(weights / FILE))
                                           .model_dump(mode="json", include={"pretrained", "storage"})))
    runner = CliRunner()
    res = runner.invoke(app, ["models", "pull", NAME, "--params", str(params_file)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].startswith(f"pulled {NAME} (unit_extractor")
    res = runner.invoke(app, ["models", "pull", NAME, "--params", str(params_file)])
    assert "already cached" in res.output
    res = runner.invoke(app, ["models", "list", "--params", str(params_file)])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()[1:-1]}
    assert rows[NAME][1:3] == ["unit_extractor", "yes"] and rows["whisper-tiny"][2] == "no"
    assert res.output.splitlines()[-1].startswith(f"{len(catalogue(None))} components, 1 cached in ")
    res = runner.invoke(app, ["models", "publish", NAME, "--to", str(tmp_path / "shared"),
                              "--params", str(params_file)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "shared" / "_pretrained" / NAME / FILE).exists()
    res = runner.invoke(app, ["models", "pull", "nope", "--params", str(params_file)])
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: nope: unknown pretrained")
    res = runner.invoke(app, ["models", "pull", NAME, "--from", str(tmp_path / "absent.pth"),
                              "--cache", str(tmp_path / "other"), "--params", str(params_file)])
    assert res.exit_code == 1 and f"no such file to pull {NAME} from" in res.stderr


@pytest.fixture(scope="module")
def audios() -> list[np.ndarray]:
    """Three 1 s clips of different tones and noise bursts: enough frames for 4 units."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clips = [0.3 * np.sin(2 * np.pi * f * t) * (t % 0.25 < 0.15) + 0.02 * rng.standard_normal(len(t))
             for f in (150, 300, 600)]
    return [c.astype(np.float32) for c in clips]


def test_unit_tokenizer_fits_on_a_component_named_in_params_and_a_worker_resolves_it(tmp_path, weights, audios):
    params = _params(tmp_path, "https://unreachable.invalid/x.pth", _sha(weights / FILE))
    pull(NAME, source=weights / FILE, params=params)
    cfg = TokenizerConfig(k=4, features="hubert", checkpoint=NAME, layer=1)
    tok = UnitTokenizer.fit(audios, cfg, params=params)
    assert tok.centroids.shape == (4, 32)
    assert tok.meta["checkpoint_name"] == NAME and tok.meta["checkpoint_sha256"] == _sha(weights / FILE)
    units = tok.encode(audios[1])
    assert units.shape == (50,) and len(np.unique(units)) > 1
    saved = tok.save(tmp_path / "unit_tokenizer.npz")
    # a worker: its own empty cache, the weights only in the shared storage root
    publish(NAME, tmp_path / "store", params=params)
    worker = params.model_copy(update={"pretrained": params.pretrained.model_copy(
        update={"cache_dir": str(tmp_path / "worker-cache")})})
    loaded = UnitTokenizer.load(saved, params=worker)
    assert np.array_equal(loaded.encode(audios[1]), units)
    assert (tmp_path / "worker-cache" / NAME / FILE).exists()


def test_tokenizer_checkpoint_name_of_the_wrong_kind_or_a_typo_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="names a naturalness_judge"):
        UnitTokenizer.fit([], TokenizerConfig(features="hubert", checkpoint="dnsmos-p808"), params=Params())
    with pytest.raises(ConfigError, match="unit extractors: hubert-base-ls960, wav2vec2-base"):
        UnitTokenizer.fit([], TokenizerConfig(features="hubert", checkpoint="hubert-base"), params=Params())
