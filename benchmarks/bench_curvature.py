"""Benchmark of the curvature layer: batched block eigenvalues vs a per-class eigsh loop.

For m in --ms (default 8, 9), float32, at the initial parameters, for uniform and N(0, 1)
inputs, measured in one process (each time the best of --repeat runs):

- ``hess_eig`` (k = 1) for all c classes with the batched block Lanczos of
  :func:`hti.linsoftmax.curvature.block_top_eigenvalues`: in the d x d form through X
  (one-shot: no precomputation), and in the kernel form with K = X X^T, either counting
  the time to form K (one-shot) or with K already formed (as along a tracked trajectory,
  where K is formed once per run). Mean and largest number of Lanczos steps.
- the baseline: ``scipy.sparse.linalg.eigsh(k=1, which='LA', tol=1e-4)`` per class block
  on a matrix-free ``LinearOperator`` v -> X^T (w_k * (X v)), timed on an evenly spaced
  subset of classes and scaled to all c;
- accuracy: relative error of both against float64 ARPACK (tol=0) on that subset;
- ``hess_diag_frob``/``hess_offdiag_frob`` (K formed) relative to one training step.

Then (--peak) the peak resident memory of ``hti linear --m 11 --steps 0 --track
eig,coupling`` in a child process: the n x n route at the paper's size.

Usage: python benchmarks/bench_curvature.py [--ms 8,9] [--subset 16] [--peak/--no-peak] [--json FILE]
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
import scipy.sparse.linalg as spla

from hti.linsoftmax.curvature import block_frobenius_norms, block_top_eigenvalues, gram
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.loss import logits, softmax
from hti.linsoftmax.optim import OPTIMIZERS, apply_updates_
from hti.linsoftmax.params import init_params
from hti.linsoftmax.stats import evaluate, make_problem


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def eigsh_loop(X, w, classes, tol):
    n, d = X.shape
    values = []
    for k in classes:
        wk = w[:, k]
        op = spla.LinearOperator((d, d), matvec=lambda v, wk=wk: X.T @ (wk * (X @ v)), dtype=X.dtype)
        v0 = np.random.default_rng(int(k)).standard_normal(d).astype(X.dtype)
        values.append(spla.eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0])
    return np.array(values)


def reference(X, w, classes):
    """Float64 ARPACK to machine precision on the same blocks: the accuracy reference."""
    return eigsh_loop(X.astype(np.float64), w.astype(np.float64), classes, tol=0)


def bench(m, inputs, args):
    data = heavy_tailed_data(m, inputs="gaussian" if inputs == "N01" else inputs,
                             input_mean=0.0 if inputs == "N01" else None, dtype="float32")  # fmt: skip
    X = data.X
    n, d = X.shape
    c = data.class_counts.size
    W, b = init_params(c, d, seed=0)
    P = softmax(logits(X, W, b))
    w = P * (1 - P) / n  # (n, c): D_k of every block
    sub = np.unique(np.linspace(0, c - 1, args.subset).astype(int))

    t_input, r_input = best_of(lambda: block_top_eigenvalues(X, P, 1), args.repeat)
    t_gram, K = best_of(lambda: gram(X), args.repeat)
    t_kernel, r_kernel = best_of(lambda: block_top_eigenvalues(X, P, 1, K=K), args.repeat)
    t_loop_sub, loop = best_of(lambda: eigsh_loop(X, w, sub, 1e-4), max(1, args.repeat - 1))
    t_loop = t_loop_sub * c / len(sub)
    ref = reference(X, w, sub)
    err = {
        "input": float(np.max(np.abs(r_input.values[sub, 0] / ref - 1))),
        "kernel": float(np.max(np.abs(r_kernel.values[sub, 0] / ref - 1))),
        "eigsh": float(np.max(np.abs(loop / ref - 1))),
    }
    # a training step (GD+m, statistics recorded), and the coupling norms with K formed
    problem = make_problem(X, data.y, data.class_counts)
    tx = OPTIMIZERS["gd"].direction(True)
    state = tx.init((W, b))

    def step():
        nonlocal state
        ev = evaluate(problem, W, b)
        u, state = tx.update(ev.grads, state)
        apply_updates_((W, b), u, 1e-3)

    t_step, _ = best_of(step, args.repeat)
    t_coupling, _ = best_of(lambda: block_frobenius_norms(X, P, K=K), args.repeat)
    return {
        "m": m, "inputs": inputs, "n": n, "c": c, "d": d,
        "batched_input_s": t_input, "batched_kernel_s": t_kernel, "gram_s": t_gram,
        "eigsh_loop_s": t_loop, "loop_classes_timed": int(len(sub)),
        "iterations_mean": float(r_kernel.iterations.mean()), "iterations_max": int(r_kernel.iterations.max()),
        "iterations_input_mean": float(r_input.iterations.mean()),
        "converged": bool(r_kernel.converged.all() and r_input.converged.all()),
        "rel_err": err, "step_s": t_step, "coupling_s": t_coupling,
    }  # fmt: skip


def peak(m):
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import resource, sys\nfrom hti.cli.main import cli\n"
            "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        args = ["linear", "--m", str(m), "--steps", "0", "--track", "eig,coupling", "--no-progress",
                "--out", str(Path(tmp) / "peak.h5")]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t
    kib = int(proc.stdout.rsplit("maxrss_kib", 1)[1].split()[0])
    return kib * 1024, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ms", default="8,9")
    ap.add_argument("--inputs", default="uniform,N01", help="comma-separated: uniform, N01 (N(0,1)), orthogonal")
    ap.add_argument("--subset", type=int, default=16, help="classes timed in the eigsh loop")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peak", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--peak-m", type=int, default=11)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    print(f"hess_eig (k = 1, all classes) at initialization, float32, {os.cpu_count()} CPUs")
    head = (f"{'m':>2} {'inputs':>8} {'c':>5} {'eigsh loop':>10} {'d x d form':>10} {'K form+K':>9} {'K form':>8} "
            f"{'speedup':>18} {'steps':>9} {'rel. err (ours, eigsh)':>22} {'coupling/step':>13}")  # fmt: skip
    print(head)
    for m in [int(x) for x in args.ms.split(",")]:
        for inputs in args.inputs.split(","):
            r = bench(m, inputs, args)
            rows.append(r)
            one_shot = min(r["batched_input_s"], r["gram_s"] + r["batched_kernel_s"])
            print(f"{m:>2} {inputs:>8} {r['c']:>5} {r['eigsh_loop_s']:>9.2f}s {r['batched_input_s']:>9.3f}s "
                  f"{r['gram_s'] + r['batched_kernel_s']:>8.3f}s {r['batched_kernel_s']:>7.3f}s "
                  f"{r['eigsh_loop_s'] / one_shot:>6.1f}x / {r['eigsh_loop_s'] / r['batched_kernel_s']:>6.1f}x "
                  f"{r['iterations_mean']:>4.1f}/{r['iterations_max']:<4d} "
                  f"{max(r['rel_err']['input'], r['rel_err']['kernel']):>10.1e}, {r['rel_err']['eigsh']:.1e} "
                  f"{r['coupling_s'] / r['step_s']:>13.2f}")  # fmt: skip
    print("speedup: eigsh loop / best one-shot batched time, and / batched time with K already formed")
    out = {"rows": rows}
    if args.peak:
        rss, seconds = peak(args.peak_m)
        print(f"peak RSS of 'hti linear --m {args.peak_m} --steps 0 --track eig,coupling': {rss / 2**30:.2f} GiB "
              f"({seconds:.0f} s)")  # fmt: skip
        out["peak"] = {"m": args.peak_m, "peak_bytes": rss, "seconds": seconds}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
