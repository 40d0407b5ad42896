"""`imagintalk evaluate`: score a registered composite on the unseen-speaker test split.

Makes every test clip's speech with each variant of imagintalk/eval/catalog.py — the oracle
ladder (ground_truth → resynthesis → oracle_units → no_refinement → full) and the ablations (no_id,
no_emo; no_error_detector is the no_refinement rung under its ablation name, computed once) —
judges every variant with the same offline judges against the ground truth, measures the speaker
judge's own floor and ceiling on these clips, logs everything to MLflow, tags the model version
with ``eval.<metric>`` and ``eval.<variant>.<metric>`` (what the promotion gate and its floors
read) and writes metrics.json/metrics.md and an HTML report to listen to.

WER and CER come from the ASR judge ``eval.asr`` names (imagintalk/eval/intelligibility.py), LSE-C
and LSE-D from the lip-sync judge ``eval.sync_judge`` names (imagintalk/eval/sync.py), speaker
similarity and DNSMOS from the judges ``eval.speaker_judge`` and ``eval.naturalness_judge`` name
(imagintalk/features/speaker.py, imagintalk/eval/naturalness.py; always on, by default the copies
in the resemblyzer and speechmos wheels). A
metric that could not be computed (no judge, weights not pulled, no gradable transcript) is
reported with its reason in the report, as the run's ``missing.<metric>`` tag and as the version's
``eval.missing.<metric>`` tag, which the gate quotes when a floor needs it.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from imagintalk.config import Params, load_params
from imagintalk.errors import ArtifactError, ConfigError, DataError
from imagintalk.eval.catalog import ALIASES, SYNC_METRICS, tag_key

EXPERIMENT = "imagintalk-evaluate"
CORPUS_TAG = "eval.corpus"


@dataclass
class EvalResult:
    model_uri: str
    version: str | None
    data_version: str
    n_clips: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)   # variant -> metric -> value
    judge: dict[str, float] = field(default_factory=dict)             # speaker_sim_floor / _ceiling
    aliases: dict[str, str] = field(default_factory=dict)             # ablation name -> computed variant
    missing: dict[str, str] = field(default_factory=dict)             # metric -> why it was not computed
    corpus: str = ""
    report: str | None = None
    run_id: str | None = None

    def row(self, variant: str) -> dict[str, float]:
        """A variant's row, by its name or an alias (``no_error_detector``)."""
        return self.rows[self.aliases.get(variant, variant)]

    def summary_line(self) -> str:
        def ladder(metric: str) -> str:
            steps = [f"{v} {r[metric]:.3g}" for v, r in self.rows.items() if metric in r and math.isfinite(r[metric])]
            return f"{metric}: " + " → ".join(steps) if steps else ""

        sim = ladder("speaker_sim")
        rng = ", ".join(f"{k.removeprefix('speaker_sim_')} {v:.3g}" for k, v in self.judge.items() if math.isfinite(v))
        gaps = [f"{m} not computed" for m in self.missing]
        parts = [ladder("wer"), ladder("cer"), *gaps, sim + (f" (judge {rng})" if sim and rng else ""), ladder("uer")]
        return (f"evaluated {self.model_uri} (v{self.version}) on {self.n_clips} unseen-speaker clips of "
                f"{self.corpus}: " + "; ".join(p for p in parts if p) + f"; report {self.report}")


def _resolve(model: str) -> str:
    """A models:/ URI, or the register stage's JSON record of one."""
    p = Path(model)
    if model.endswith(".json"):
        if not p.is_file():
            raise ArtifactError(p, "no registered model record (run the register stage)")
        return json.loads(p.read_text())["uri"]
    return model


def _split_metas(shards: str, params: Params, split: str = "test") -> dict[str, dict]:
    import webdataset as wds

    from imagintalk.data.loader import resolve_shards
    from imagintalk.shards.record import key_to_clip_id

    urls = resolve_shards(shards, split, params.storage)
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).to_tuple("__key__", "meta.json")
    return {key_to_clip_id(k): json.loads(m) for k, m in ds}


def _clips(shards: str, split: str, params: Params, limit: int, fields: list[str] | None = None):
    """Batches of ``split`` with their audio (``limit`` clips, 0 = all); ``fields``: the record
    fields to decode besides it (None: all)."""
    from imagintalk.data.loader import make_loader

    cfg = params.loader.model_copy(update={"audio": True, "num_workers": 0, "fields": fields})
    n = 0
    for batch in make_loader(shards, split, train=False, cfg=cfg, storage_cfg=params.storage):
        yield batch
        n += len(batch["keys"])
        if limit and n >= limit:
            return


def _train_emotion_judge(shards: str, params: Params):
    from imagintalk.emotions import EMOTIONS
    from imagintalk.eval.emotion_judge import EmotionJudge

    audios, labels = [], []
    # the judge hears the audio only: no lips, faces or codes decoded for it
    for batch in _clips(shards, "train", params, limit=params.eval.emotion_judge_clips, fields=[]):
        for b, e in enumerate(batch["emotion"].tolist()):
            if e >= 0:
                t = int(batch["lengths"][b])
                audios.append(batch["audio"][b, : t * 640].numpy())
                labels.append(EMOTIONS[e])
    return EmotionJudge.fit(audios, labels, seed=params.eval.seed) if len(set(labels)) >= 2 else None


def evaluate_model(model: str = "models:/imagintalk@challenger", shards: str = "", params: Params | None = None,
                   report: Path | None = None, corpus: str | None = None, split: str = "test") -> EvalResult:
    """``corpus`` names the floors the gate applies (tag ``eval.corpus``); default: the test clips'
    corpus when they share one, else ``pipeline.corpus``. ``split="val"`` scores the validation
    speakers instead, to choose settings on (an MLflow run and a report; the model version's tags,
    which the gate reads, only ever come from the test split)."""
    import mlflow

    from imagintalk.eval import intelligibility
    from imagintalk.eval.ladder import clips_from_batch, render_batch, variants_for
    from imagintalk.eval.naturalness import load_naturalness_judge
    from imagintalk.eval.report import write_report
    from imagintalk.eval.scoring import References, score_variant, speaker_sim_range
    from imagintalk.eval.sync import choose_sync, lse_rows
    from imagintalk.features.speaker import load_speaker_encoder
    from imagintalk.models.expression import ExpressionScore
    from imagintalk.registry import tracking
    from imagintalk.registry.gate import EVAL_DATA_TAG, EVAL_PREFIX, MISSING_PREFIX
    from imagintalk.serve.inference import Speaker

    params = params or load_params()
    ecfg = params.eval
    asr = intelligibility.choose_asr(params)  # a bad eval.asr fails here, before anything is generated
    sync = choose_sync(params)                # likewise eval.sync_judge
    # the always-on judges, by name: a bad name or weights not available fail here too
    speaker_judge = load_speaker_encoder(ecfg.speaker_judge, params, "eval.speaker_judge")
    naturalness = load_naturalness_judge(ecfg.naturalness_judge, params)
    uri = _resolve(model)
    data = tracking.read_data_version(shards, params.storage)
    net = Speaker(uri, params).pyfunc.model
    c = tracking.client()
    name, version = _name_version(c, uri)
    if split not in ("test", "val"):
        raise ConfigError("split", f"{split!r}: evaluate scores the test split (unseen speakers) or val")
    metas = _split_metas(shards, params, split)
    emotion_judge = _train_emotion_judge(shards, params)

    variants = variants_for(ecfg)
    clips, rendered = [], {v: [] for v in variants}
    expression = ExpressionScore(net.expression)  # the face's emotion against the labels (judged, never fed)
    for batch in tqdm(list(_clips(shards, split, params, ecfg.max_clips)), desc="evaluate: generate", unit="batch"):
        clips += clips_from_batch(batch, metas)
        expression.add(batch)
        for v, outs in render_batch(net, batch, variants, ecfg).items():
            rendered[v] += outs
    if not clips:
        raise DataError(shards, f"no {split} split in the shards (the unseen-speaker protocol needs one)")
    refs = References(clips, speaker_judge)
    rows = {v: score_variant(clips, rendered[v], refs, emotion_judge, asr.judge, naturalness)
            for v in tqdm(variants, desc="evaluate: judge", unit="variant")}
    lse, no_lse = lse_rows(sync, clips, rendered, metas, params)
    for v, extra in lse.items():
        rows[v].update(extra)
    transcripts = [clip.transcript for clip in clips]
    missing = intelligibility.gaps(asr, transcripts) | (dict.fromkeys(SYNC_METRICS, no_lse) if no_lse else {})
    judge = speaker_sim_range(clips, refs)
    aliases = {a: v for a, v in ALIASES.items() if a in ecfg.ablations and v in rows}
    corpora = {m.get("corpus") for m in metas.values()} - {None}
    corpus = corpus or (corpora.pop() if len(corpora) == 1 else params.pipeline.corpus)
    samples = [(clip, {v: rendered[v][i] for v in variants}) for i, clip in enumerate(clips[: ecfg.report_clips])]
    version_tags = dict(c.get_model_version(name, version).tags or {}) if version is not None else {}

    face = expression.result()
    metrics = {tag_key(v, m): x for v, row in rows.items() for m, x in row.items()} | judge | face
    metrics = {k: x for k, x in metrics.items() if math.isfinite(x)}
    out_dir = Path(report) if report else Path(tempfile.mkdtemp(prefix="imagintalk-eval-"))
    # experiment by id, not set_experiment: that is process-global and would make a later
    # start_run(run_id=...) of another experiment in this process (training, Dagster) fail
    exp_id = tracking.ensure_experiment(EXPERIMENT)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"evaluate-{name}-v{version}") as run:
        meta = {"model": uri, "version": str(version), "corpus": corpus, "split": split,
                "data_version": data.content_hash,
                "shards": str(shards), "n_clips": str(len(clips)),
                **{k: v for k, v in version_tags.items() if k.startswith(("stage.", "model.preset"))},
                **tracking.git_info(), "mlflow.run_id": run.info.run_id,
                "mlflow.run_url": _run_url(tracking.tracking_uri(), exp_id, run.info.run_id),
                **{f"alias.{a}": v for a, v in aliases.items()}}
        html = write_report(out_dir, rows, meta, samples, judge, aliases, face=face, missing=missing,
                            asr=intelligibility.coverage(asr, transcripts))
        mlflow.log_params({f"eval.{k}": v for k, v in ecfg.model_dump().items()})
        mlflow.set_tags({"model_uri": uri, **meta, **{f"missing.{m}": why for m, why in missing.items()}})
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
    if version is not None and split == "test":
        tags = {f"{EVAL_PREFIX}{k}": f"{x:.6g}" for k, x in metrics.items()}
        tags.update({EVAL_DATA_TAG: data.content_hash, f"{EVAL_PREFIX}run_id": run.info.run_id,
                     f"{EVAL_PREFIX}shards": str(shards), CORPUS_TAG: corpus})
        tags.update({f"{MISSING_PREFIX}{m}": why for m, why in missing.items()})
        for k, v in tags.items():
            c.set_model_version_tag(name, version, k, v)
        for k in _stale_tags(version_tags, metrics, missing):  # an earlier evaluation's, now wrong
            c.delete_model_version_tag(name, version, k)
    return EvalResult(model_uri=uri, version=version, data_version=data.content_hash, n_clips=len(clips),
                      rows=rows, judge=judge, aliases=aliases, missing=missing, corpus=corpus, report=str(html),
                      run_id=run.info.run_id)


def _stale_tags(tags: dict[str, str], metrics: dict[str, float], missing: dict[str, str]) -> list[str]:
    """Version tags an earlier evaluation left that this one contradicts: a value of a metric now
    missing (the gate would read it), or a missing-reason of a metric now computed."""
    from imagintalk.eval.catalog import VARIANTS
    from imagintalk.registry.gate import EVAL_PREFIX, MISSING_PREFIX

    values = {f"{EVAL_PREFIX}{tag_key(v, m)}" for m in missing for v in VARIANTS}
    reasons = {f"{MISSING_PREFIX}{m}" for m in {k.rpartition(".")[2] for k in metrics}} - \
              {f"{MISSING_PREFIX}{m}" for m in missing}
    return sorted(k for k in tags if k in values or k in reasons)


def _run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server itself, or on a local ``mlflow ui``
    (default port) started over a file/SQLite store."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def _name_version(c, uri: str) -> tuple[str, str | None]:
    """(registered name, version) of a models:/name@alias or models:/name/version URI, resolved by
    the registry's own pin resolver (a missing alias or version is its RegistryError)."""
    from imagintalk.registry.versions import resolve_version

    if not uri.startswith("models:/"):
        return uri, None
    rest = uri.removeprefix("models:/")
    name, at, alias = rest.partition("@")
    if at:
        return name, resolve_version(c, name, "@" + alias).version
    name, _, ver = rest.partition("/")
    return name, resolve_version(c, name, ver).version
