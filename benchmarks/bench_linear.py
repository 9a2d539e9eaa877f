"""Benchmark of ``hti linear``: step time vs the ideal two-GEMM time and vs the paper's loop.

For each m (default 8, 9, 10), in float32, in one process:

- ``step``: seconds per training step of :func:`hti.linsoftmax.run` writing an HDF5
  trajectory with every default statistic recorded at every step (median of the
  differences of the recorded ``wall_time``);
- ``ideal``: the time of the step's two GEMMs, X W^T (n x d by d x c) and R^T X (c x n by
  n x d), each the best of several NumPy calls on the same shapes: the GEMM rate of this
  machine, measured in the same run;
- ``paper``: one epoch of the paper's released loop (its ``FullBatchProblem``): torch
  ``nn.Linear`` + ``cross_entropy`` forward and backward, the optimizer step, then its
  per-epoch evaluation of per-class statistics (loss, accuracy, per-class loss and
  accuracy) on the training set and on the "validation" set, which for this data set is
  the training set again. It records no gradient norms or Hessian traces.

Then the peak resident memory of ``hti linear --m 11`` (float32; gd+m and adam by
default) in a child process, against the size of X + W + optimizer state + logits.

Usage: python benchmarks/bench_linear.py [--ms 8,9,10] [--steps 12] [--peak adam,gd] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.memory import estimate
from hti.linsoftmax.train import run
from hti.storage import read_trajectory


def best_of(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def gemm_times(m: int, reps: int) -> tuple[float, float]:
    cfg = LinearConfig(m=m)
    n, c, d = cfg.shape
    g = np.random.default_rng(0)
    X = heavy_tailed_data(m).X
    W = g.random((c, d), dtype=np.float32)
    R = g.random((n, c), dtype=np.float32)
    fwd = best_of(lambda: X @ W.T, reps)
    bwd = best_of(lambda: R.T @ X, reps)
    return fwd, bwd


def hti_step_time(m: int, steps: int, optim: str) -> float:
    cfg = LinearConfig(m=m, steps=steps, optim=optim)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        run(cfg, out)
        wall = read_trajectory(out)["wall_time"]
    return float(np.median(np.diff(wall)[1:]))  # skip the first step (warm-up)


def paper_epoch_time(m: int, epochs: int, optim: str) -> float:
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    from hti.deep.optim import make_optimizer  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)
    data = heavy_tailed_data(m)
    X, y = torch.from_numpy(data.X), torch.from_numpy(data.y)
    n, d = X.shape
    c = data.class_counts.size
    model = torch.nn.Linear(d, c)
    opt = make_optimizer(optim, model.parameters(), LinearConfig(optim=optim).lr, True)

    def per_class(values):
        sums = torch.zeros(c).scatter_add_(0, y, values)
        counts = torch.zeros(c).scatter_add_(0, y, torch.ones_like(values))
        return sums / counts

    def evaluate():
        with torch.no_grad():
            out = model(X)
            losses = F.cross_entropy(out, y, reduction="none")
            correct = (out.argmax(1) == y).float()
            return losses.mean().item(), correct.mean().item(), per_class(losses), per_class(correct)

    def epoch():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        [torch.linalg.norm(p.grad).item() for p in model.parameters()]  # its grad-norm logging
        opt.step()
        [torch.linalg.norm(p).item() for p in model.parameters()]  # its param-norm logging
        evaluate()  # eval(train)
        evaluate()  # eval(val): the same data for this data set

    epoch()  # warm-up
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_memory(m: int, optim: str, steps: int) -> tuple[int, int]:
    """(peak RSS in bytes of ``hti linear`` in a child, bytes of X + W + state + logits)."""
    cfg = LinearConfig(m=m, optim=optim)
    parts = estimate(cfg)
    n, c, d = cfg.shape
    reference = parts["X"] + parts["W, b"] + parts["optimizer state"] + n * c * 4
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import resource, sys\nfrom hti.cli.main import cli\n"
            "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        args = ["linear", "--m", str(m), "--optim", optim, "--steps", str(steps), "--no-progress",
                "--out", str(Path(tmp) / "peak.h5")]  # fmt: skip
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    kib = int(proc.stdout.rsplit("maxrss_kib", 1)[1].split()[0])
    return kib * 1024, reference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ms", default="8,9,10")
    ap.add_argument("--steps", type=int, default=12, help="training steps timed per m")
    ap.add_argument("--optim", default="gd")
    ap.add_argument("--peak", default="gd,adam", help="optimizers for the m = 11 peak memory ('' to skip)")
    ap.add_argument("--peak-m", type=int, default=11)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    ms = [int(x) for x in args.ms.split(",") if x]
    out = {"machine": {"cpus": os.cpu_count()}, "timing": [], "peak": []}
    print(f"hti linear benchmark, float32, {args.optim}+m, {os.cpu_count()} CPUs")
    print(f"{'m':>3} {'n':>6} {'c':>5} {'d':>6} {'GFLOP/s':>8} {'ideal s':>8} {'step s':>8} {'step/ideal':>10} "
          f"{'paper s':>8} {'paper/step':>10}")  # fmt: skip
    for m in ms:
        n, c, d = LinearConfig(m=m).shape
        reps = 5 if m <= 9 else 3
        fwd, bwd = gemm_times(m, reps)
        ideal = fwd + bwd
        step = hti_step_time(m, args.steps, args.optim)
        paper = paper_epoch_time(m, max(3, args.steps // 3), args.optim)
        rate = 2 * 2 * n * d * c / ideal / 1e9
        print(f"{m:>3} {n:>6} {c:>5} {d:>6} {rate:>8.0f} {ideal:>8.4f} {step:>8.4f} {step / ideal:>10.3f} "
              f"{paper:>8.4f} {paper / step:>10.2f}")  # fmt: skip
        out["timing"].append({"m": m, "gemm_fwd_s": fwd, "gemm_bwd_s": bwd, "ideal_s": ideal, "step_s": step,
                              "paper_epoch_s": paper, "gflops": rate})  # fmt: skip
    for optim in filter(None, args.peak.split(",")):
        peak, ref = peak_memory(args.peak_m, optim, 1)
        print(f"peak memory, m = {args.peak_m} float32 {optim}+m, 1 step: {peak / 2**30:.2f} GiB; "
              f"X + W + optimizer state + logits = {ref / 2**30:.2f} GiB; ratio {peak / ref:.3f}")
        out["peak"].append({"m": args.peak_m, "optim": optim, "peak_bytes": peak, "reference_bytes": ref})
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
