"""Register the composite ``imagintalk`` model from registered stage versions.

``register_composite(stage_versions, params)`` loads the pinned stages, rebuilds the
:class:`~imagintalk.models.imagintalk.ImaginTalk` inference object with the codec the shards were
tokenised with, logs it as the pyfunc of :mod:`imagintalk.registry.composite` and registers a new
``imagintalk`` version tagged with every stage version it pins (``stage.<name>``), the data
version, the data audit's verdict (``audit.passed``) and a model card. The new version gets the
``challenger`` alias: ``imagintalk evaluate`` scores it, ``imagintalk promote`` gates it.

Consistency is checked, not assumed: the style-DiT must have been trained on the refiner that is
pinned, and the codec's version must be the one in the shard index the stages trained on. With a
pretrained codec (``codec.component``) there is no vocoder stage to pin: the composite carries the
codec's record and resolves its weights wherever it is loaded. The
expression model is the one the style-DiT was trained with (it travels inside the registered
style-DiT stage, frozen), pinned as ``stage.expression``; one trained on another emotion
vocabulary is refused.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient

from imagintalk import storage
from imagintalk.config import Params, load_params
from imagintalk.models.codec_decoder import WaveformCodec
from imagintalk.registry import tracking
from imagintalk.registry.composite import CODEC_ARTIFACT, MODEL_ARTIFACT, PARAMS_ARTIFACT, ImaginTalkModel
from imagintalk.registry.gate import AUDIT_TAG
from imagintalk.registry.model_card import ModelCard
from imagintalk.registry.stage_models import (
    MODEL_CONFIG_ARTIFACT,
    load_stage_model,
    model_name,
    pip_requirements,
    quiet_mlflow,
)
from imagintalk.registry.versions import RegisteredVersion, RegistryError, resolve_version
from imagintalk.tokenizers import CODEC_FILE
from imagintalk.tokenizers.locate import find_codec
from pipelines.registry import EXPORT_DIR

COMPOSITE = "imagintalk"
REGISTER_EXPERIMENT = "imagintalk-register"
# The stages a composite is assembled from (the aligner and unit BERT live inside the refiner).
PARTS = ("error_detector", "style_dit", "vocoder")


def composite_parts(params: Params) -> tuple[str, ...]:
    """``PARTS`` less the stages params skip (the vocoder, when a pretrained codec decodes to a
    waveform: imagintalk.train.graph.skip_reason)."""
    from imagintalk.train.graph import skip_reason

    return tuple(s for s in PARTS if skip_reason(s, params) is None)


@dataclass(frozen=True)
class RegisterSummary:
    version: RegisteredVersion

    def summary_line(self) -> str:
        pins = ", ".join(f"{k.removeprefix('stage.')} v{v.rsplit('/', 1)[-1]}"
                         for k, v in sorted(self.version.tags.items()) if k.startswith("stage."))
        return (f"registered {self.version.uri} (alias challenger; {pins}); data {self.version.data_version[:12]}; "
                f"audit passed: {self.version.tags.get(AUDIT_TAG, 'unknown')}")


def _pin(value: str | int | RegisteredVersion) -> str:
    if isinstance(value, RegisteredVersion):
        return value.version
    return str(value).rsplit("/", 1)[-1] if str(value).startswith("models:/") else str(value)


def _model_config(c: MlflowClient, run_id: str):
    from imagintalk.models.config import ModelConfig

    with tempfile.TemporaryDirectory() as tmp:
        path = c.download_artifacts(run_id, MODEL_CONFIG_ARTIFACT, tmp)
        return ModelConfig.from_saved(Path(path).read_text())


def _audit_passed(shards: str, params: Params, audit_report: str | Path | None) -> bool | None:
    candidates = [Path(audit_report) / "result.json"] if audit_report else []
    candidates.append(Path(storage.join(shards, params.promote.audit_result)))
    for path in candidates:
        if path.is_file():
            return bool(json.loads(path.read_text()).get("passed"))
    return None


def register_composite(stage_versions: Mapping[str, str | int | RegisteredVersion], params: Params | None = None,
                       shards: str | None = None, audit_passed: bool | None = None,
                       audit_report: str | Path | None = None, codec_path: str | None = None,
                       alias: str | None = None, export_dir: str | Path | None = None) -> RegisteredVersion:
    """Assemble and register ``imagintalk`` from stage versions ({stage: version}; the refiner
    pin may be omitted: it defaults to the one the style-DiT was trained on). ``export_dir`` also
    saves the assembled model there (``ImaginTalk.load`` reads it), for DVC to version and push."""
    from imagintalk.models.imagintalk import ImaginTalk

    params = params or load_params()
    c = tracking.client()
    pins = {k: _pin(v) for k, v in stage_versions.items()}
    dit_mv = resolve_version(c, model_name("style_dit"), pins.get("style_dit"))
    trained_on = (dit_mv.tags or {}).get("depends.error_detector", "")
    pins.setdefault("error_detector", _pin(trained_on) if trained_on else "latest")
    versions = {s: resolve_version(c, model_name(s), pins.get(s)) for s in composite_parts(params)}
    refiner_uri = f"models:/{model_name('error_detector')}/{versions['error_detector'].version}"
    if trained_on and trained_on != refiner_uri:
        raise RegistryError(refiner_uri, f"the style-DiT v{dit_mv.version} was trained on {trained_on}, not this")
    ed_tags = dict(versions["error_detector"].tags or {})
    dit_tags = dict(versions["style_dit"].tags or {})
    shards = shards or dit_tags.get("data.shards")
    if not shards:
        raise RegistryError(f"models:/{model_name('style_dit')}/{dit_mv.version}", "no data.shards tag: pass shards")

    style = load_stage_model(f"models:/{model_name('style_dit')}/{versions['style_dit'].version}")
    refiner = load_stage_model(refiner_uri)
    vocoder = (load_stage_model(f"models:/{model_name('vocoder')}/{versions['vocoder'].version}").vocoder
               if "vocoder" in versions else None)   # None: the codec decodes to a waveform itself
    cfg = _model_config(c, versions["style_dit"].run_id)
    codec = find_codec(shards, dit_tags.get("data.codec_version"), params, codec_path)
    if (vocoder is None) != isinstance(codec, WaveformCodec):
        raise RegistryError(shards, f"the shards' codec is {'the k-means' if vocoder is None else 'a pretrained'} "
                                    f"one but codec.component is {params.codec.component}: register with the "
                                    "params the shards were made with")
    model = ImaginTalk(cfg, codec, refiner=refiner, face_style=style.face_style, dit=style.dit, vocoder=vocoder,
                       expression=getattr(style, "expression", None))
    if export_dir is not None:
        model.save(export_dir)

    if audit_passed is None:
        audit_passed = _audit_passed(shards, params, audit_report)
    stage_tags = {f"stage.{s}": f"models:/{model_name(s)}/{mv.version}" for s, mv in versions.items()}
    for inner in ("lip_aligner", "unit_bert"):
        if ed_tags.get(f"depends.{inner}"):
            stage_tags[f"stage.{inner}"] = ed_tags[f"depends.{inner}"]
    if dit_tags.get("depends.expression"):
        stage_tags["stage.expression"] = dit_tags["depends.expression"]
    data_tags = {k: v for k, v in dit_tags.items() if k.startswith("data.")}
    data_tags["data.shards"] = shards
    tags = {**stage_tags, **data_tags, "model.preset": cfg.name, **tracking.git_info()}
    if audit_passed is not None:
        tags[AUDIT_TAG] = str(bool(audit_passed)).lower()
    e = params.eval
    settings = {"steps": e.steps, "seed": e.seed,
                "guidance": {"lip": e.guidance_lip, "id": e.guidance_id, "emo": e.guidance_emo}}

    exp_id = tracking.ensure_experiment(REGISTER_EXPERIMENT)
    with tempfile.TemporaryDirectory(prefix="imagintalk-composite-") as tmp, \
            mlflow.start_run(experiment_id=exp_id, run_name=f"{COMPOSITE}-{cfg.name}") as run:
        model_dir = model.save(Path(tmp) / MODEL_ARTIFACT)
        codec_dir = Path(tmp) / CODEC_ARTIFACT
        codec_dir.mkdir()
        codec.save(codec_dir / CODEC_FILE)
        params_file = Path(tmp) / "params.json"
        params_file.write_text(params.model_dump_json(indent=1))
        tracking.set_tags(c, run.info.run_id, tags)
        with quiet_mlflow():
            info = mlflow.pyfunc.log_model(
                name="model", python_model=ImaginTalkModel(),
                artifacts={MODEL_ARTIFACT: str(model_dir), CODEC_ARTIFACT: str(codec_dir),
                           PARAMS_ARTIFACT: str(params_file)},
                model_config=settings, pip_requirements=pip_requirements(), registered_model_name=COMPOSITE,
                await_registration_for=0)
        version = str(info.registered_model_version)
        card = ModelCard(name=COMPOSITE, stage=COMPOSITE, preset=cfg.name,
                         data_version=data_tags.get("data.version", ""), shards=shards,
                         metrics={}, training={"sampler": json.dumps(settings, sort_keys=True)},
                         provenance={k: v for k, v in tags.items() if k.startswith(("data.", "git.", "audit."))
                                     and k != "data.shards"},
                         depends_on=stage_tags)
        mlflow.log_text(card.render(), "model_card/README.md")
    c.update_model_version(COMPOSITE, version, description=card.render())
    for key, value in tags.items():
        c.set_model_version_tag(COMPOSITE, version, key, value)
    c.set_registered_model_alias(COMPOSITE, alias or params.promote.challenger_alias, version)
    return RegisteredVersion.from_mlflow(c.get_model_version(COMPOSITE, version))


def register_from_stage_files(models_dir: str | Path, shards: str, audit_report: str | Path | None = None,
                              params: Params | None = None) -> RegisterSummary:
    """The pipeline's register step: read ``{models_dir}/{stage}.json`` (written by ``imagintalk
    train``), register the composite, write ``{models_dir}/imagintalk.json``."""
    models_dir = Path(models_dir)
    params = params or load_params()
    pins: dict[str, str] = {}
    for stage in composite_parts(params):
        path = models_dir / f"{stage}.json"
        if not path.is_file():
            raise RegistryError(path, f"no record of a trained {stage} (run `imagintalk train {stage}`)")
        pins[stage] = str(json.loads(path.read_text())["version"])
    version = register_composite(pins, params, shards=shards, audit_report=audit_report,
                                 export_dir=models_dir / EXPORT_DIR)
    body = {"name": version.name, "version": version.version, "uri": version.uri, "tags": version.tags}
    (models_dir / f"{COMPOSITE}.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return RegisterSummary(version)
