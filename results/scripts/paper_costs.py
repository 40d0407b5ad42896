"""What the LRS3 paper recipe (params.yaml's ``lrs3_paper`` profile) costs, from what can be measured
on a CPU: parameters per stage, one training step per stage (wall time on one thread, FLOPs counted
by torch, peak memory of the process) and the bytes per second of speech that shards take.

Why these and not GPU figures: GPU time and memory are what README "Reproducing the paper on LRS3"
has to estimate, and the honest inputs are the ones that do not depend on the machine — FLOPs per
step, parameter bytes, activation bytes — plus one CPU timing to check the FLOP count against. The
GPU figure is then FLOPs over an assumed sustained throughput, stated as an assumption.

    python results/scripts/paper_costs.py params               # parameter counts, paper preset
    python results/scripts/paper_costs.py step --stage style_dit [--clips 2 --frames 75]
    python results/scripts/paper_costs.py steps                # every trained stage, each in its own process
    python results/scripts/paper_costs.py shards DIR           # bytes per second of speech, per record field
    python results/scripts/paper_costs.py audio [--seconds 3]  # shard step's audio side, CPU s per s of speech

The step uses the real-size architectures with random weights (the visual encoder's file is not
read) on a random batch of the loader's shape (imagintalk/models/batch.py random_batch); the
registered upstream stages a stage builds on are fresh modules of the same size, frozen as in
training.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PROFILE = "lrs3_paper"


def _params():
    from imagintalk.config import load_params

    return load_params().for_corpus(PROFILE)


def _config():
    from imagintalk.models.config import model_config

    # the architecture at its real size; the weights stay random (no file to read)
    return model_config("paper", _params()).with_updates(lip_aligner={"load_pretrained": False})


def param_counts() -> dict[str, int]:
    from imagintalk.models.imagintalk import count_parameters

    return count_parameters(_config())


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def one_step(stage: str, clips: int, frames: int, steps: int) -> dict[str, float]:
    """Forward + backward + AdamW of ``stage`` on ``clips`` clips of ``frames`` 25 fps frames."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from imagintalk.models.batch import random_batch
    from imagintalk.models.stages import build_stage, trainable_parameters

    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = _rss_mb()
    cfg = _config()
    module = build_stage(stage, cfg).train()
    trainable = trainable_parameters(module)
    n_train = sum(p.numel() for p in trainable)
    n_all = sum(p.numel() for p in module.parameters())
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    batch = random_batch(cfg.vocab, [frames] * clips, seed=0)
    built = _rss_mb()

    def step() -> None:
        loss, _ = module.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step()                      # also the warm-up (oneDNN picks its kernels on the first call)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    # the CPU time beside the wall time: on a shared machine the wall time also counts waiting
    wall, cpu = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
    return {"stage": stage, "clips": clips, "frames": frames, "params": n_all, "trainable": n_train,
            "step_s_1thread": round(wall, 3), "step_cpu_s": round(cpu, 3),
            "gflop_per_step": round(counter.get_total_flops() / 1e9, 1),
            "rss_base_mb": round(base), "rss_built_mb": round(built), "rss_peak_mb": round(_rss_mb())}


def audio_side(seconds: float) -> dict[str, float]:
    """CPU seconds per second of speech of what the shard step does to a clip's audio under the
    profile: the GE2E speaker embedding, HuBERT Base features up to layer 6 (the units' input), the
    DAC 16 kHz encoder (12 levels); real-size architectures, random weights, one thread."""
    import numpy as np
    import torch
    import torchaudio

    from imagintalk.features.speaker import speaker_embedding
    from imagintalk.models.dac import DAC, dac_kwargs
    from imagintalk.pretrained import catalogue

    torch.set_num_threads(1)
    torch.manual_seed(0)
    p = _params()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    hubert = torchaudio.models.hubert_base().eval()
    dac = DAC(**dac_kwargs(catalogue(p)["dac-16khz"].config)).eval()
    x = torch.from_numpy(audio)[None]
    jobs = {"ge2e_speaker": lambda: speaker_embedding(audio, 16000),
            "hubert_base_layer6": lambda: hubert.extract_features(x, num_layers=p.tokenizer.layer),
            "dac_16khz_encode_12": lambda: dac.encode(x[None], p.codec.levels)}
    out: dict[str, float] = {"seconds": seconds}
    with torch.inference_mode():
        for name, job in jobs.items():
            job()                                   # warm-up
            c0 = time.process_time()
            job()
            out[f"{name}_cpu_s_per_s"] = round((time.process_time() - c0) / seconds, 4)
    return out


def shard_bytes(root: Path) -> dict[str, float]:
    """Bytes per second of speech in a shard root's tars, per record field, and in all."""
    per_field: dict[str, int] = defaultdict(int)
    seconds = 0.0
    total = 0
    for tar in sorted(root.rglob("*.tar")):
        total += tar.stat().st_size
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                field = m.name.split(".", 1)[1] if "." in m.name else m.name
                per_field[field] += m.size
                if field == "meta.json":
                    meta = json.load(io.BytesIO(tf.extractfile(m).read()))
                    seconds += float(meta.get("duration_s") or meta["durations"]["video_s"])
    out = {f"{k}_B_per_s": round(v / seconds, 1) for k, v in sorted(per_field.items())}
    out.update({"seconds": round(seconds, 2), "tar_B_per_s": round(total / seconds, 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("params")
    one = sub.add_parser("step")
    one.add_argument("--stage", required=True)
    for p in (one, every := sub.add_parser("steps")):
        p.add_argument("--clips", type=int, default=2)
        p.add_argument("--frames", type=int, default=75)
        p.add_argument("--steps", type=int, default=2)
    every.add_argument("--stages", default="expression,unit_bert,lip_aligner,error_detector,style_dit")
    sh = sub.add_parser("shards")
    sh.add_argument("root", type=Path)
    sub.add_parser("audio").add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if args.what == "params":
        print(json.dumps(param_counts()))
    elif args.what == "step":
        print(json.dumps(one_step(args.stage, args.clips, args.frames, args.steps)), flush=True)
    elif args.what == "steps":   # one process per stage: its peak memory is its own
        for stage in args.stages.split(","):
            subprocess.run([sys.executable, __file__, "step", "--stage", stage, "--clips", str(args.clips),
                            "--frames", str(args.frames), "--steps", str(args.steps)], check=True)
    elif args.what == "audio":
        print(json.dumps(audio_side(args.seconds)))
    else:
        print(json.dumps(shard_bytes(args.root)))


if __name__ == "__main__":
    main()
