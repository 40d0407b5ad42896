"""The stage registry: the single source of truth for the pipeline's steps.

Each stage names one function in ``pipelines/`` (the same one the CLI calls), what it reads and
writes (path templates over ``{corpus}``), and which params.yaml sections it reads. ``dvc.yaml``
is generated from this table (``imagintalk dvc-yaml``; a test fails when the committed file
differs) and the Dagster assets are built from it, so there is one pipeline, not two that drift.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagintalk.config import Params, load_params
from imagintalk.conventions import CODEC_FILE, INDEX_NAME, UNIT_TOKENIZER_FILE
from imagintalk.corpora.manifest import quarantine_path
from imagintalk.train.graph import ORDER as MODEL_STAGES
from imagintalk.train.graph import upstream as model_upstream

EXPORT_DIR = "imagintalk_model"  # the register stage's copy of the composite's weights, tracked by DVC


def stage_paths(params: Params, corpus: str | None = None) -> dict[str, str]:
    """Concrete paths of one corpus partition (relative to the repo root unless absolute)."""
    p = params.pipeline
    corpus = corpus or p.corpus
    paths = {k: getattr(p, k).format(corpus=corpus) for k in ("raw_dir", "manifest", "shards", "reports", "models")}
    paths["corpus"] = corpus
    paths["tokenizers"] = f"{Path(paths['shards']).parent}/tokenizers"
    paths["quarantine"] = str(quarantine_path(paths["manifest"]))
    return paths


@dataclass(frozen=True)
class Stage:
    name: str
    func: str                                   # "module:function" in pipelines/
    call: Callable[[dict[str, str], Params], dict[str, Any]]  # paths, params -> kwargs of func
    deps: tuple[str, ...] = ()                  # path keys/templates read
    outs: tuple[str, ...] = ()                  # path templates written
    params: tuple[str, ...] = ()                # params.yaml sections read
    upstream: tuple[str, ...] = ()              # stages that must run first
    code: tuple[str, ...] = field(default=())   # code paths DVC watches

    def function(self) -> Callable[..., Any]:
        module, name = self.func.split(":")
        return getattr(importlib.import_module(module), name)

    def render(self, templates: tuple[str, ...], paths: dict[str, str]) -> list[str]:
        return [t.format(**paths) for t in templates]


def _train(stage: str) -> Stage:
    """A training stage; what it needs comes from the one model-stage graph (imagintalk.train.graph)."""
    upstream = tuple(f"train_{u}" for u in model_upstream(stage))
    return Stage(
        name=f"train_{stage}", func="pipelines.train:train_stage",
        call=lambda paths, prm, s=stage: {
            "stage": s, "shards": paths["shards"], "config": prm.pipeline.model_size, "params": prm,
            "out": f"{paths['models']}/{s}.json"},
        deps=(f"{{shards}}/{INDEX_NAME}", "{reports}/audit_shards",
              *(f"{{models}}/{u.removeprefix('train_')}.json" for u in upstream)),
        outs=(f"{{models}}/{stage}.json",),
        # the aligner's pretrained visual encoder is a params choice (lip_aligner section); the
        # stages after it follow through its output
        params=("train", "loader", "pipeline.model_size", *(("lip_aligner",) if stage == "lip_aligner" else ())),
        upstream=("audit_shards", *upstream),
        code=("pipelines/train.py", "imagintalk/train", "imagintalk/models"),
    )


def _artifact_outs(npz: str) -> tuple[str, str]:
    """A fitted tokenizer is a pair: the arrays (.npz) and the metadata with its version (.json)."""
    return f"{{tokenizers}}/{npz}", f"{{tokenizers}}/{npz.removesuffix('.npz')}.json"


STAGES: tuple[Stage, ...] = (
    Stage("raw_corpus", "pipelines.raw:prepare_raw_corpus",
          call=lambda paths, prm: {"corpus": paths["corpus"], "raw_dir": Path(paths["raw_dir"]), "params": prm},
          outs=("{raw_dir}",), params=("synth", "media"),
          code=("pipelines/raw.py", "pipelines/synth.py", "imagintalk/synth")),
    Stage("ingest", "pipelines.ingest:ingest_corpus",
          call=lambda paths, prm: {"corpus": paths["corpus"], "raw_dir": Path(paths["raw_dir"]),
                                   "out": Path(paths["manifest"]), "params": prm},
          deps=("{raw_dir}",), outs=("{manifest}", "{quarantine}"), params=("ingest", "media"),
          upstream=("raw_corpus",),
          code=("pipelines/ingest.py", "imagintalk/corpora")),
    Stage("audit_manifest", "pipelines.audit:audit_target",
          call=lambda paths, prm: {"target": paths["manifest"],
                                   "report": Path(paths["reports"]) / "audit_manifest", "params": prm},
          deps=("{manifest}",), outs=("{reports}/audit_manifest",), params=("audit",), upstream=("ingest",),
          code=("pipelines/audit.py", "imagintalk/audits")),
    Stage("fit_unit_tokenizer", "pipelines.tokenizers:fit_unit_tokenizer",
          call=lambda paths, prm: {"manifest": Path(paths["manifest"]), "out": Path(paths["tokenizers"]),
                                   "params": prm},
          deps=("{manifest}", "{reports}/audit_manifest"), outs=_artifact_outs(UNIT_TOKENIZER_FILE),
          params=("tokenizer", "audio"),
          upstream=("audit_manifest",), code=("pipelines/tokenizers.py", "imagintalk/tokenizers")),
    Stage("fit_codec", "pipelines.tokenizers:fit_codec",
          call=lambda paths, prm: {"manifest": Path(paths["manifest"]), "out": Path(paths["tokenizers"]),
                                   "params": prm},
          deps=("{manifest}", "{reports}/audit_manifest"), outs=_artifact_outs(CODEC_FILE),
          params=("codec", "audio"),
          upstream=("audit_manifest",), code=("pipelines/tokenizers.py", "imagintalk/tokenizers")),
    Stage("shard", "pipelines.shard:shard_manifest",
          call=lambda paths, prm: {"manifest": Path(paths["manifest"]), "out": paths["shards"], "params": prm,
                                   "tokenizer_dir": paths["tokenizers"]},
          deps=("{manifest}", f"{{tokenizers}}/{UNIT_TOKENIZER_FILE}", f"{{tokenizers}}/{CODEC_FILE}"),
          outs=("{shards}",), params=("shards", "face", "audio", "media"),
          upstream=("fit_unit_tokenizer", "fit_codec"),
          code=("pipelines/shard.py", "imagintalk/shards", "imagintalk/preprocess", "imagintalk/features")),
    Stage("audit_shards", "pipelines.audit:audit_target",
          call=lambda paths, prm: {"target": paths["shards"],
                                   "report": Path(paths["reports"]) / "audit_shards", "params": prm},
          deps=("{shards}",), outs=("{reports}/audit_shards",), params=("audit",), upstream=("shard",),
          code=("pipelines/audit.py", "imagintalk/audits")),
    *(_train(s) for s in MODEL_STAGES),
    Stage("register", "pipelines.register:register_from_stage_files",
          call=lambda paths, prm: {"models_dir": Path(paths["models"]), "shards": paths["shards"],
                                   "audit_report": Path(paths["reports"]) / "audit_shards", "params": prm},
          deps=tuple(f"{{models}}/{s}.json" for s in MODEL_STAGES),
          outs=("{models}/imagintalk.json", f"{{models}}/{EXPORT_DIR}"),
          params=("pipeline.model_size",), upstream=tuple(f"train_{s}" for s in MODEL_STAGES),
          code=("pipelines/register.py", "imagintalk/registry")),
    Stage("evaluate", "pipelines.evaluate:evaluate_model",
          call=lambda paths, prm: {"model": f"{paths['models']}/imagintalk.json", "shards": paths["shards"],
                                   "params": prm, "report": Path(paths["reports"]) / "evaluation",
                                   "corpus": paths["corpus"]},
          deps=("{models}/imagintalk.json", f"{{shards}}/{INDEX_NAME}"), outs=("{reports}/evaluation",),
          params=("eval",), upstream=("register",), code=("pipelines/evaluate.py", "imagintalk/eval")),
    Stage("promote", "pipelines.promote:promote_model",
          call=lambda paths, prm: {"name": "imagintalk", "params": prm,
                                   "decision_path": Path(paths["reports"]) / "promotion.json"},
          deps=("{reports}/evaluation",), outs=("{reports}/promotion.json",), params=("promote",),
          upstream=("evaluate",), code=("pipelines/promote.py", "imagintalk/registry/gate.py")),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}


def run_stage(name: str, corpus: str | None = None, params: Params | None = None) -> Any:
    """Run one stage for one corpus partition: what DVC's cmd and Dagster's asset both call."""
    params = params or load_params()
    corpus = corpus or params.pipeline.corpus
    params = params.for_corpus(corpus)  # a corpus profile's own settings (imagintalk/profiles.py)
    stage = STAGE_BY_NAME[name]
    return stage.function()(**stage.call(stage_paths(params, corpus), params))


def dvc_document(params: Params | None = None) -> dict[str, Any]:
    """dvc.yaml for the default corpus partition."""
    params = params or load_params()
    paths = stage_paths(params)
    stages: dict[str, Any] = {}
    for st in STAGES:
        entry: dict[str, Any] = {"cmd": f"python -m pipelines.run {st.name}"}
        deps = [*st.render(st.deps, paths), *st.code]
        if deps:
            entry["deps"] = deps
        if st.params:
            entry["params"] = list(st.params)
        if st.outs:
            entry["outs"] = st.render(st.outs, paths)
        stages[st.name] = entry
    return {"stages": stages}


def dvc_yaml_text(params: Params | None = None) -> str:
    header = "# Generated from pipelines/registry.py by `imagintalk dvc-yaml`; do not edit by hand.\n"
    return header + yaml.safe_dump(dvc_document(params), sort_keys=False, width=120)


def write_dvc_yaml(out: str | Path = "dvc.yaml") -> Path:
    out = Path(out)
    out.write_text(dvc_yaml_text())
    return out
