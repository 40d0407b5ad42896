"""Test data for the training/registry tests: tiny real shard roots and tiny training params.

Not a test module (no ``test_`` prefix); imported by tests/test_train*.py and test_registry*.py.
The shards are written with the shards room's own writer and index, with random features and a
residual codec really fitted on the records' mels (so the codes, the codec artifact and the
index's codec version agree, as in a real shard root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from shards_support import make_record, record_stats

from imagintalk import PIPELINE_VERSION
from imagintalk.config import CodecConfig, LoaderConfig, Params, ShardConfig, TokenizerConfig, TrainConfig
from imagintalk.corpora.manifest import ManifestRow
from imagintalk.shards import build_index, encode_record, plan_shards, write_shard
from imagintalk.shards.index import write_index
from imagintalk.tokenizers.codec import ResidualCodec

LEVELS, BOOK, UNITS = 2, 16, 200


def tiny_params(**train: object) -> Params:
    """Small codec vocabulary (fits on a few clips), batch 2, 2 DDP workers, few steps."""
    t = {"num_workers": 2, "max_steps": 6, "checkpoint_every": 3, "warmup_steps": 2, "val_batches": 2,
         "log_every": 1, **train}
    return Params().model_copy(update={
        "train": TrainConfig(**t), "loader": LoaderConfig(batch_size=2, shuffle_buffer=4),
        "codec": CodecConfig(levels=LEVELS, codebook_size=BOOK), "tokenizer": TokenizerConfig(k=UNITS)})


def write_tiny_shards(root: Path, n_train: int = 8, n_val: int = 2, frames: tuple[int, int] = (6, 10),
                      seed: int = 0, per_shard: int = 2) -> str:
    """A shard root with ``n_train`` train clips over several shards (every DDP rank gets whole
    shards), a val split, ``_tokenizers/codec.npz`` and an index whose codec version matches."""
    rng = np.random.default_rng(seed)
    recs = [make_record(f"syn/s{i % 4}/{i:02d}", int(rng.integers(*frames)), rng, levels=LEVELS)
            for i in range(n_train)]
    recs += [make_record(f"syn/v{i}/{i:02d}", int(rng.integers(*frames)), rng, levels=LEVELS, split="val")
             for i in range(n_val)]
    train_mels = [r.mel for r in recs if r.meta["split"] == "train"]
    codec = ResidualCodec.fit(train_mels, CodecConfig(levels=LEVELS, codebook_size=BOOK))
    codec.save(root / "_tokenizers" / "codec.npz")
    for r in recs:
        r.codes = codec.encode(r.mel)
    versions = {"pipeline_version": PIPELINE_VERSION, "tokenizer_version": "units-test",
                "codec_version": codec.version}
    rows = [ManifestRow(r.clip_id, "syn", r.clip_id.split("/")[1], r.meta["split"], "x", None, None, None,
                        None, 1.0, 25.0, 16000, "0" * 64) for r in recs]
    sidecars = []
    for spec in plan_shards(rows, per_shard, {}):
        mine = [r for r in recs if r.clip_id in spec.clip_ids]
        sidecars.append(write_shard(str(root), spec, [encode_record(r) for r in mine],
                                    [record_stats(r, spec.split) for r in mine], [], versions, ShardConfig()))
    write_index(str(root), build_index(sidecars, versions, "test"), [])
    return str(root)


@contextmanager
def tracking_store(root: Path) -> Iterator[str]:
    """MLFLOW_TRACKING_URI pointed at a fresh SQLite file under ``root`` for the duration."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield uri
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def register_untrained(c, stage: str, cfg, data, deps: dict) -> str:
    """Register a freshly built stage as the runner does after training; returns its URI."""
    import mlflow.pytorch

    from imagintalk.models.codec_decoder import ResidualCodebookDecoder
    from imagintalk.registry import tracking
    from imagintalk.registry.stage_models import MODEL_CONFIG_ARTIFACT, register_stage_version
    from imagintalk.train.stages import STAGES, build_stage

    run = c.create_run(tracking.ensure_experiment(tracking.experiment_name(stage)))
    c.log_text(run.info.run_id, cfg.model_dump_json(), MODEL_CONFIG_ARTIFACT)
    parts = {s: mlflow.pytorch.load_model(u) for s, u in deps.items()}
    if STAGES[stage].codec:  # the runner passes the shards' codec; an untrained stage gets a random one
        parts["codec"] = ResidualCodebookDecoder.random(cfg.vocab)
    module = build_stage(stage, cfg, parts)
    mv = register_stage_version(c, run.info.run_id, stage, module, cfg.name, data, {"loss": 1.0},
                                {"steps": "0"}, deps)
    return f"models:/{mv.name}/{mv.version}"


def register_untrained_stages(c, cfg, data) -> dict[str, str]:
    """Every stage registered once (tiny, untrained), with the dependency pins training records."""
    uris = {s: register_untrained(c, s, cfg, data, {})
            for s in ("expression", "vocoder", "unit_bert", "lip_aligner")}
    uris["error_detector"] = register_untrained(c, "error_detector", cfg, data, {
        "lip_aligner": uris["lip_aligner"], "unit_bert": uris["unit_bert"]})
    uris["style_dit"] = register_untrained(c, "style_dit", cfg, data, {"error_detector": uris["error_detector"],
                                                                       "expression": uris["expression"]})
    return uris
