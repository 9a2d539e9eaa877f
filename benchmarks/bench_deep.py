"""Benchmark of ``hti deep`` on this machine: step time and the cost of per-class evaluation.

For each configuration (tiny models on their default data sets, and the paper's
2-layer transformer on TinyPTB, full batch), in one process, the best of --repeat:

- ``step``: one optimizer step (forward and backward over the batch, accumulated over
  chunks, and the update), and the throughput in targets (tokens or images) per second;
- ``eval``: one per-class evaluation of the training split (loss and accuracy of every
  class by ``scatter_add``, in eval mode), and its cost as a fraction of a step;
- the model's parameters and FLOPs per target (6 N + attention).

On a GPU (--device cuda, not available here) the same script reports GPT2-small's
tokens/s and model FLOP utilization in bfloat16: 6 N tokens / time / peak.

Usage: python benchmarks/bench_deep.py [--only tiny|paper] [--repeat 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from hti.deep.config import DeepConfig
from hti.deep.data import load_data
from hti.deep.models import count_parameters, model_flops_per_token
from hti.deep.optim import make_optimizer
from hti.deep.train import Dist, Sampler, build, chunk_rows, evaluate, train_step

CONFIGS = {
    "tiny simple-transformer (TinyPTB, d 8)": dict(model="simple-transformer", data="tinyptb", d_model=8, n_head=1),
    "tiny transformer (TinyPTB, 1 layer, d 8)": dict(model="transformer", data="tinyptb", n_layer=1, d_model=8, n_head=2),
    "tiny gpt2 (TinyPTB words, 1 layer, d 8)": dict(model="gpt2", data="tinyptb", tokenizer="word", n_layer=1, d_model=8,
                                                    n_head=2, seq_len=35),  # fmt: skip
    "cnn (digits)": dict(model="cnn", data="digits"),
    "cnn (barcoded digits)": dict(model="cnn", data="barcoded"),
    "linear (synthetic m = 8)": dict(model="linear", data="synthetic", m=8),
    "paper transformer (TinyPTB, 2 layers, d 1000)": dict(model="transformer", data="tinyptb", n_layer=2),
    "gpt2-small (PTB, GPT-2 BPE, batch 8 x 1024)": dict(model="gpt2", data="ptb", batch_size=8, eval_tokens=8192),
}
PAPER = ("paper transformer (TinyPTB, 2 layers, d 1000)", "gpt2-small (PTB, GPT-2 BPE, batch 8 x 1024)")


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name, options, repeat, device):
    cfg = DeepConfig(optim="adam", device=device, dtype="bfloat16" if device == "cuda" else "float32", **options)
    dist = Dist(cfg.device)
    data = load_data(cfg)
    model = build(cfg, data, dist.device)
    opt = make_optimizer(cfg.optim, model.parameters(), cfg.lr, True)
    sampler = Sampler(len(data.train), cfg.batch_size or None, cfg.seed)
    bf16 = cfg.dtype == "bfloat16"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()

    def sync():
        if dist.device.type == "cuda":
            torch.cuda.synchronize()

    rows = sampler.next()
    targets = int((data.train.targets[rows] >= 0).sum())
    step = best_of(lambda: (train_step(cfg, model, model, opt, data, rows, None, dist, autocast), sync()), repeat)
    ev = best_of(lambda: (evaluate(cfg, model, data.train, data.n_classes, dist, autocast, None,
                                    chunk_rows(cfg, data)), sync()), repeat)  # fmt: skip
    flops = model_flops_per_token(model)
    return {"name": name, "parameters": count_parameters(model), "flops_per_target": flops, "targets": targets,
            "step_s": step, "targets_per_s": targets / step, "eval_s": ev, "eval_fraction": ev / step,
            "train_targets": int((data.train.targets >= 0).sum())}  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["tiny", "paper", "all"], default="all")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--peak-tflops", type=float, default=None, help="for MFU on a GPU (bf16 dense peak)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    names = [n for n in CONFIGS if args.only == "all" or (n in PAPER) == (args.only == "paper")]
    rows = []
    print(f"hti deep benchmark on {args.device} ({torch.get_num_threads()} threads), Adam, best of {args.repeat}")
    print(f"{'configuration':<46} {'params':>11} {'targets/step':>12} {'step s':>9} {'targets/s':>11} "
          f"{'eval s':>8} {'eval/step':>9}")  # fmt: skip
    for name in names:
        r = bench(name, CONFIGS[name], 1 if name in PAPER else args.repeat, args.device)
        rows.append(r)
        line = (f"{name:<46} {r['parameters']:>11,} {r['targets']:>12,} {r['step_s']:>9.3f} "
                f"{r['targets_per_s']:>11,.0f} {r['eval_s']:>8.3f} {r['eval_fraction']:>9.2f}")  # fmt: skip
        if args.peak_tflops:
            mfu = r["flops_per_target"] * r["targets_per_s"] / (args.peak_tflops * 1e12)
            line += f"  MFU {mfu:.1%}"
            r["mfu"] = mfu
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
