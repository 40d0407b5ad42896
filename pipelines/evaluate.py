"""`imagintalk evaluate`: score a registered composite on the unseen-speaker test split.

Generates speech for every test clip (full model and the ablations: without error detector,
without c_id, without c_emo), judges it with the offline judges of imagintalk/eval against the
ground truth, logs everything to MLflow, tags the model version with ``eval.<metric>`` (what the
promotion gate reads) and writes a Markdown/JSON table and an HTML report with plots.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from imagintalk.config import Params, load_params
from imagintalk.errors import ConfigError
from imagintalk.eval import metrics as M

GRAMMAR_CORPORA = {"synthtalk", "grid"}  # transcripts drawn from the GRID grammar
ABLATIONS = {"no_error_detector": {"rounds": 0}, "no_id": {"drop": ("id",)}, "no_emo": {"drop": ("emo",)}}
EXPERIMENT = "imagintalk-evaluate"


@dataclass
class EvalResult:
    model_uri: str
    version: str | None
    data_version: str
    n_clips: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    report: str | None = None
    run_id: str | None = None

    def summary_line(self) -> str:
        full = self.rows.get("full", {})
        show = ", ".join(f"{k} {full[k]:.3g}" for k in ("wer", "speaker_sim", "emotion_acc", "mcd", "stoi")
                         if k in full and not math.isnan(full[k]))
        return (f"evaluated {self.model_uri} (v{self.version}) on {self.n_clips} unseen-speaker clips: {show}; "
                f"report {self.report}")


def _resolve(model: str) -> str:
    """A models:/ URI, or the register stage's JSON record of one."""
    p = Path(model)
    if model.endswith(".json"):
        if not p.is_file():
            raise ConfigError(p, "no registered model record (run the register stage)")
        return json.loads(p.read_text())["uri"]
    return model


def _test_metas(shards: str, params: Params) -> dict[str, dict]:
    import webdataset as wds

    from imagintalk.data.loader import resolve_shards
    from imagintalk.shards.record import key_to_clip_id

    urls = resolve_shards(shards, "test", params.storage)
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).to_tuple("__key__", "meta.json")
    return {key_to_clip_id(k): json.loads(m) for k, m in ds}


def _clips(shards: str, split: str, params: Params, limit: int):
    from imagintalk.data.loader import make_loader

    cfg = params.loader.model_copy(update={"audio": True, "num_workers": 0})
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
    for batch in _clips(shards, "train", params, limit=200):
        for b, e in enumerate(batch["emotion"].tolist()):
            if e >= 0:
                t = int(batch["lengths"][b])
                audios.append(batch["audio"][b, : t * 640].numpy())
                labels.append(EMOTIONS[e])
    return EmotionJudge.fit(audios, labels, seed=params.eval.seed) if len(set(labels)) >= 2 else None


def _score(refs, gens, transcripts, mouths, judge, labels) -> dict[str, float]:
    from imagintalk.eval.asr import grid_asr

    out: dict[str, list[float]] = {k: [] for k in ("mcd", "stoi", "estoi", "speaker_sim", "f0_rmse", "f0_corr",
                                                   "sync_offset_abs", "sync_conf")}
    for ref, gen, mouth in zip(refs, gens, mouths, strict=True):
        out["mcd"].append(M.mel_cepstral_distortion(ref, gen))
        s, e = M.stoi_scores(ref, gen)
        out["stoi"].append(s)
        out["estoi"].append(e)
        out["speaker_sim"].append(M.speaker_similarity(ref, gen))
        rmse, corr = M.f0_metrics(ref, gen)
        out["f0_rmse"].append(rmse)
        out["f0_corr"].append(corr)
        off, conf = M.av_sync(mouth, gen)
        out["sync_offset_abs"].append(abs(off))
        out["sync_conf"].append(conf)
    row = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in out.items()}
    graded = [(t, g) for t, g in zip(transcripts, gens, strict=True) if t is not None]
    if graded:
        asr = grid_asr()
        row["wer"] = M.word_error_rate([t for t, _ in graded], [asr.transcribe(g) for _, g in graded])
    if judge is not None and any(lb is not None for lb in labels):
        keep = [(g, lb) for g, lb in zip(gens, labels, strict=True) if lb is not None]
        row["emotion_acc"] = judge.accuracy([g for g, _ in keep], [lb for _, lb in keep])
    return row


def evaluate_model(model: str = "models:/imagintalk@challenger", shards: str = "", params: Params | None = None,
                   report: Path | None = None) -> EvalResult:
    import mlflow

    from imagintalk.emotions import EMOTIONS
    from imagintalk.eval.asr import grid_asr
    from imagintalk.eval.report import write_report
    from imagintalk.registry import tracking
    from imagintalk.registry.gate import EVAL_DATA_TAG, EVAL_PREFIX
    from imagintalk.serve.inference import Speaker

    params = params or load_params()
    ecfg = params.eval
    uri = _resolve(model)
    data = tracking.read_data_version(shards, params.storage)
    speaker = Speaker(uri, params)
    net = speaker.pyfunc.model
    c = tracking.client()
    name, version = _name_version(c, uri)
    metas = _test_metas(shards, params)
    judge = _train_emotion_judge(shards, params)
    guidance = {"lip": ecfg.guidance_lip, "id": ecfg.guidance_id, "emo": ecfg.guidance_emo}

    variants = {"full": {}, **{k: v for k, v in ABLATIONS.items() if k in ecfg.ablations}}
    gens: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    refs, transcripts, mouths, labels, uer_before, uer_after, mel_pairs = [], [], [], [], [], [], []
    for batch in tqdm(list(_clips(shards, "test", params, ecfg.max_clips)), desc="evaluate", unit="batch"):
        lengths = batch["lengths"]
        with torch.inference_mode():
            lips, mask = batch["lips"], batch["lip_mask"]  # uint8: the aligner scales it
            ref = net.refiner.refine(lips, mask)  # one pass gives the units before and after refinement
            before, after = ref.aligner_units, ref.units
        for vname, kw in variants.items():
            out = net.generate(lips, mask, batch["identity"], batch["face"], batch["emotion"], steps=ecfg.steps,
                               guidance=guidance, seed=ecfg.seed, **kw)
            for b in range(len(lengths)):
                gens[vname].append(out.waveforms[b, : int(out.lengths[b])].numpy())
                if vname == "full" and len(mel_pairs) < 2:
                    t = int(lengths[b])
                    mel_pairs.append((batch["keys"][b], batch["mel"][b, :, : 4 * t].float().numpy(),
                                      out.mel[b, :, : 4 * t].float().numpy()))
        for b, key in enumerate(batch["keys"]):
            t = int(lengths[b])
            refs.append(batch["audio"][b, : t * 640].numpy())
            mouths.append(batch["mouth"][b, :t].numpy())
            meta = metas.get(key, {})
            text = meta.get("transcript")
            transcripts.append(text.lower() if text and meta.get("corpus") in GRAMMAR_CORPORA else None)
            e = int(batch["emotion"][b])
            labels.append(EMOTIONS[e] if e >= 0 else None)
            gt = batch["units"][b, : 2 * t].numpy()
            uer_before.append(M.unit_error_rate(gt, before[b, : 2 * t].numpy()))
            uer_after.append(M.unit_error_rate(gt, after[b, : 2 * t].numpy()))
    if not refs:
        raise ConfigError(shards, "no test split in the shards (the unseen-speaker protocol needs one)")

    rows = {v: _score(refs, g, transcripts, mouths, judge, labels) for v, g in gens.items()}
    rows["full"]["uer_before"] = float(np.mean(uer_before))
    rows["full"]["uer_after"] = float(np.mean(uer_after))
    graded = [(t, r) for t, r in zip(transcripts, refs, strict=True) if t is not None]
    if graded:  # the judge on ground truth: the ceiling the generated WER is read against
        gt_wer = M.word_error_rate([t for t, _ in graded], [grid_asr().transcribe(r) for _, r in graded])
        rows["full"]["wer_ground_truth"] = gt_wer
    if judge is not None:
        rows["full"]["emotion_acc_ground_truth"] = judge.accuracy(
            [r for r, lb in zip(refs, labels, strict=True) if lb], [lb for lb in labels if lb])

    meta = {"model": uri, "version": str(version), "data_version": data.content_hash, "shards": str(shards),
            "n_clips": str(len(refs)), **{f"git.{k}": v for k, v in tracking.git_info().items()}}
    out_dir = Path(report) if report else Path(tempfile.mkdtemp(prefix="imagintalk-eval-"))
    html = write_report(out_dir, rows, meta, mel_pairs)

    # experiment by id, not set_experiment: that is process-global and would make a later
    # start_run(run_id=...) of another experiment in this process (training, Dagster) fail
    with mlflow.start_run(experiment_id=tracking.ensure_experiment(EXPERIMENT),
                          run_name=f"evaluate-{name}-v{version}") as run:
        mlflow.log_params({f"eval.{k}": v for k, v in ecfg.model_dump().items()})
        mlflow.set_tags({"model_uri": uri, "data_version": data.content_hash, **meta})
        for vname, row in rows.items():
            prefix = "" if vname == "full" else f"{vname}."
            mlflow.log_metrics({f"{prefix}{k}": v for k, v in row.items() if math.isfinite(v)})
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
    if version is not None:
        tags = {f"{EVAL_PREFIX}{k}": f"{v:.6g}" for k, v in rows["full"].items() if math.isfinite(v)}
        tags.update({EVAL_DATA_TAG: data.content_hash, f"{EVAL_PREFIX}run_id": run.info.run_id,
                     f"{EVAL_PREFIX}shards": str(shards)})
        for k, v in tags.items():
            c.set_model_version_tag(name, version, k, v)
    return EvalResult(model_uri=uri, version=version, data_version=data.content_hash, n_clips=len(refs),
                      rows=rows, report=str(html), run_id=run.info.run_id)


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
