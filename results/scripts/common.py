"""Shared helpers of the in-process experiments in results/README.md.

Importing this module puts the repository root on ``sys.path`` (so the scripts run as
``python results/scripts/X.py`` from anywhere), limits torch to one thread and reads
``params.yaml``. The shard root is ``$SHARDS`` (default: the 16-speaker corpus that
``data.py 16 8 /tmp/exp/c16`` makes).
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import torch
import webdataset as wds

from imagintalk.config import load_params
from imagintalk.data.loader import make_loader, resolve_shards
from imagintalk.eval.asr import grid_asr
from imagintalk.eval.metrics import word_error_rate
from imagintalk.features.audio import griffin_lim

torch.set_num_threads(1)

PARAMS = load_params()
SHARDS = os.environ.get("SHARDS", "/tmp/exp/c16/datasets/synthtalk/shards")


def batches(split, train=False, audio=False, bs=8):
    """All batches of ``split`` as a list (in-process loader, no shuffling unless ``train``). Train
    a model on ``train=True`` batches: unshuffled, a batch holds one or two speakers' clips, and
    every BatchNorm in the model (the expression model's input, the face CNN) learns per-speaker
    statistics that it does not have at inference (an expression model trained so read
    validation faces at 0.43 instead of 0.85)."""
    cfg = PARAMS.loader.model_copy(update={"audio": audio, "batch_size": bs, "num_workers": 0, "drop_last": False})
    return list(make_loader(SHARDS, split, train, cfg))


def metas(split):
    """Clip key -> meta.json of every clip of ``split``."""
    urls = resolve_shards(SHARDS, split, PARAMS.storage)
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).to_tuple("__key__", "meta.json")
    return {key: json.loads(meta) for key, meta in dataset}


def clip_mels(batch_list):
    """The unpadded log-mel (n_mels x T) of every clip, as numpy arrays."""
    return [b["mel"][i, :, : int(b["mel_mask"][i].sum())].numpy() for b in batch_list for i in range(len(b["keys"]))]


def clip_audio(batch_list):
    """The unpadded waveform of every clip (batches loaded with ``audio=True``)."""
    return [b["audio"][i, : int(b["audio_mask"][i].sum())].numpy() for b in batch_list for i in range(len(b["keys"]))]


def clip_keys(batch_list):
    """The clip keys of the batches, in order."""
    return [k for b in batch_list for k in b["keys"]]


def wer_of(waves, keys, meta):
    """(WER, hypotheses) of pocketsphinx with the GRID grammar against the clips' transcripts."""
    asr = grid_asr()
    refs = [meta[k]["transcript"].lower() for k in keys]
    hyps = [asr.transcribe(w) for w in waves]
    return word_error_rate(refs, hyps), hyps


def gl_wave(mel):
    """Griffin-Lim waveform of a log-mel (the experiments' vocoder)."""
    return griffin_lim(np.asarray(mel, np.float32), PARAMS.audio)


def teacher_style_stage(cfg, train, bert_steps, expression=None):
    """A style-DiT stage whose c_lip comes from a unit BERT trained ``bert_steps`` steps (lr 1e-3)
    on the train batches in order (the teacher path over ground-truth units); ``expression``: a
    trained expression model (c_emo from the face), else an untrained one."""
    from imagintalk.models.stages import build_stage

    bert = build_stage("unit_bert", cfg)
    opt = torch.optim.AdamW(bert.parameters(), lr=1e-3)
    for s in range(bert_steps):
        loss, _ = bert.loss(train[s % len(train)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    parts = {"refiner": build_stage("error_detector", cfg, {"unit_bert": bert})}
    return build_stage("style_dit", cfg, parts | ({"expression": expression} if expression is not None else {}))


def fit(model, train, steps, lr=1e-3, weight_decay=0.01, grad_clip=1.0, after_step=None, log_every=250):
    """Train ``model`` (anything with ``loss(batch) -> (loss, metrics)``) ``steps`` AdamW steps on
    batches drawn at random (seed 0) from ``train``, clipping the gradient norm; ``after_step(s)``
    runs after each step (an EMA update, a mid-run evaluation); the metrics are printed every
    ``log_every`` steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng, t = np.random.default_rng(0), time.time()
    for s in range(1, steps + 1):
        loss, metrics = model.loss(train[int(rng.integers(len(train)))])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if after_step is not None:
            after_step(s)
        if log_every and s % log_every == 0:
            print(s, f"{time.time() - t:.0f}s", {k: round(v, 3) for k, v in metrics.items()}, flush=True)
