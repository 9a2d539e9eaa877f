"""``run(cfg)`` and ``resume(path)``: train softmax regression full batch and record its trajectory.

Each iteration t = 0..steps evaluates the loss, its gradient and (on recorded steps) the
per-class statistics at the parameters after t updates, in one fused pass
(:func:`hti.linsoftmax.stats.evaluate`), writes a row, then takes step t + 1 with the
gradient of that same pass: N steps cost N + 1 passes of two GEMMs each.

Nothing is lost: rows are flushed as they are written; a NaN/inf loss ends the run with
status ``diverged`` (the row of the failing step is written); SIGINT/SIGTERM finish the
current row, save a checkpoint and end with status ``interrupted`` (a second signal
aborts at once); and :func:`resume` continues an interrupted or killed run from its
newest checkpoint (or from scratch if it has none, the initialization being a function
of the seed), dropping the rows written after it, so the resumed trajectory equals an
uninterrupted one exactly on the CPU.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from hti import __version__
from hti.backend import synchronize, to_device, to_numpy, xp_by_name
from hti.config import ConfigError
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.curvature import curvature, gram, log_correlation
from hti.linsoftmax.data import class_counts, heavy_tailed_data
from hti.linsoftmax.loss import logits, softmax
from hti.linsoftmax.memory import check_memory
from hti.linsoftmax.optim import OPTIMIZERS, apply_updates_, tree_leaves, tree_unflatten
from hti.linsoftmax.params import init_params
from hti.linsoftmax.stats import evaluate, is_finite, make_problem
from hti.runs import RunResult, StopOnSignal
from hti.storage import HDF5Trajectory, MemoryTrajectory, StorageError

ENGINE = "linsoftmax"


class Progress(Protocol):
    """What the loop reports to (the CLI's progress bar implements it)."""

    def start(self, first_step: int, last_step: int) -> None: ...

    def update(self, step: int, loss: float) -> None: ...

    def close(self) -> None: ...


def row_spec(c: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """The per-row datasets of a linear trajectory (name -> (row shape, dtype))."""
    scalar, per_class = ((), "f8"), ((c,), "f8")
    return {
        "step": ((), "i8"),
        "wall_time": scalar,
        "loss": scalar,
        "train_loss": scalar,
        "class_loss": per_class,
        "class_acc": per_class,
        "grad_norm": per_class,
        "hess_trace": per_class,
        "grad_hess_corr": scalar,
    }


def curvature_spec(c: int, k: int, track) -> dict[str, tuple[tuple[int, ...], str]]:
    """The datasets of the ``curvature`` table for the tracked quantities."""
    spec = {"curvature_step": ((), "i8")}
    if "eig" in track:
        spec.update(hess_eig=((c, k), "f8"), eig_iterations=((c,), "i8"), grad_eig_corr=((), "f8"))
    if "top" in track:
        spec["hess_top"] = ((k,), "f8")
    if "coupling" in track:
        spec.update(hess_diag_frob=((c,), "f8"), hess_offdiag_frob=((c,), "f8"))
    return spec


def default_path(cfg: LinearConfig) -> Path:
    """``runs/<run id>.h5``."""
    return Path("runs") / f"{cfg.run_id}.h5"


def create_store(cfg: LinearConfig, out: str | os.PathLike | None, *, force: bool = False, memory: bool = False):
    """A new trajectory (HDF5 at ``out``, or in memory) with the run's attributes."""
    n, c, d = cfg.shape
    attrs = {
        "config": cfg.to_json(),
        "hti_version": __version__,
        "engine": ENGINE,
        "run_id": cfg.run_id,
        "n": n,
        "c": c,
        "d": d,
    }
    static = {"class_counts": class_counts(cfg.m)}
    tables = {"curvature": curvature_spec(c, cfg.eig_k, cfg.track)} if cfg.track else None
    if memory:
        return MemoryTrajectory(attrs=attrs, rows=row_spec(c), tables=tables, static=static)
    path = default_path(cfg) if out is None else Path(out)
    return HDF5Trajectory.create(path, attrs=attrs, rows=row_spec(c), tables=tables, static=static, force=force)


def run(
    cfg: LinearConfig,
    out: str | os.PathLike | None = None,
    *,
    force: bool = False,
    memory: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Train from scratch; write to ``out`` (default :func:`default_path`) or memory."""
    xp = xp_by_name(cfg.device)
    check_memory(cfg, xp)
    store = create_store(cfg, out, force=force, memory=memory)
    try:
        return _train(cfg, store, xp, progress=progress, fresh=True)
    finally:
        store.close()


def resume(path: str | os.PathLike, *, progress: Progress | None = None) -> RunResult:
    """Continue the run stored at ``path`` from its newest checkpoint."""
    store = HDF5Trajectory.open(path)
    try:
        attrs = store.attrs
        if attrs.get("engine") != ENGINE:
            raise StorageError(f"{path} holds an {attrs.get('engine')!r} run; hti linear resumes {ENGINE!r} runs")
        if attrs["status"] in ("completed", "diverged"):
            raise StorageError(f"{path} has status {attrs['status']}: there is nothing to resume")
        try:
            cfg = LinearConfig.from_json(attrs["config"])
        except (ConfigError, ValueError, KeyError) as err:
            raise StorageError(f"{path}: its config cannot be read ({err})") from None
        xp = xp_by_name(cfg.device)
        check_memory(cfg, xp)
        return _train(cfg, store, xp, progress=progress, fresh=False)
    finally:
        store.close()


def _setup(cfg: LinearConfig, store, xp, fresh: bool):
    """The problem on its device, and the parameters and optimizer state to start from.

    Returns (problem, direction, W, b, state, first step, wall time so far). A resumed
    run starts from the newest checkpoint (or from scratch without one) and drops the rows
    and saved parameters of the steps it will redo.
    """
    n, c, d = cfg.shape
    data = heavy_tailed_data(
        cfg.m,
        inputs=cfg.inputs,
        input_mean=cfg.input_mean,
        input_scale=cfg.input_scale,
        dim=cfg.dim,
        data_seed=cfg.data_seed,
        dtype=cfg.dtype,
    )
    if fresh and cfg.save_data:
        store.write_static("data/X", data.X)
        store.write_static("data/y", data.y)
    problem = make_problem(
        to_device(data.X, xp), to_device(data.y, xp), to_device(data.class_counts, xp), cfg.reweight
    )
    del data
    direction = OPTIMIZERS[cfg.optim].direction(cfg.momentum, cfg.beta, cfg.beta2, cfg.eps)
    ckpt = None if fresh else store.load_checkpoint()
    if ckpt is None:
        first, elapsed = 0, 0.0
        W, b = (to_device(a, xp) for a in init_params(c, d, init=cfg.init, seed=cfg.seed, dtype=cfg.dtype))
        state = direction.init((W, b))
    else:
        first, elapsed, leaves = ckpt
        W, b = (to_device(np.asarray(a), xp) for a in leaves[:2])
        leaves = [x if isinstance(x, int) else to_device(np.asarray(x), xp) for x in leaves[2:]]
        state = tree_unflatten(direction.init((W, b)), leaves)
    if not fresh:
        store.truncate(int(np.searchsorted(store.column("step"), first)))
        if cfg.track:
            store.truncate(int(np.searchsorted(store.column("curvature_step"), first)), "curvature")
        store.drop_params_from(first)
    return problem, direction, W, b, state, first, elapsed


def _write_row(store, step: int, wall_time: float, ev) -> None:
    grad_norm, hess_trace = to_numpy(ev.grad_norm), to_numpy(ev.hess_trace)
    store.append(
        step=step,
        wall_time=wall_time,
        loss=float(ev.loss),
        train_loss=float(ev.train_loss),
        class_loss=to_numpy(ev.class_loss),
        class_acc=to_numpy(ev.class_acc),
        grad_norm=grad_norm,
        hess_trace=hess_trace,
        grad_hess_corr=log_correlation(grad_norm, hess_trace),
    )


def _write_curvature(store, cfg: LinearConfig, step: int, problem, W, b, K, grad_norm) -> None:
    """One row of the ``curvature`` table at (W, b); the unweighted loss's Hessian."""
    P = softmax(logits(problem.X, W, b))  # (n, c)
    cur = curvature(problem.X, P, cfg.track, k=cfg.eig_k, K=K)
    del P
    row = {"curvature_step": step}
    if "eig" in cfg.track:
        row.update(hess_eig=cur.hess_eig, eig_iterations=cur.eig_iterations,
                   grad_eig_corr=log_correlation(grad_norm, cur.hess_eig[:, 0]))  # fmt: skip
        if not cur.eig_converged.all():
            warnings.warn(
                f"step {step}: the top block eigenvalues of {int((~cur.eig_converged).sum())} classes did "
                f"not reach the tolerance within {int(cur.eig_iterations.max())} Lanczos steps",
                RuntimeWarning, stacklevel=2,
            )  # fmt: skip
    if "top" in cfg.track:
        row["hess_top"] = cur.hess_top
    if "coupling" in cfg.track:
        row.update(hess_diag_frob=cur.hess_diag_frob, hess_offdiag_frob=cur.hess_offdiag_frob)
    store.append("curvature", **row)


def _train(cfg: LinearConfig, store, xp, *, progress: Progress | None, fresh: bool) -> RunResult:
    t_setup = time.perf_counter()
    problem, direction, W, b, state, first, elapsed0 = _setup(cfg, store, xp, fresh)
    K = gram(problem.X) if {"eig", "coupling"} & set(cfg.track) else None  # constant: once per run
    store.set_status("running")
    synchronize(xp)
    setup = time.perf_counter() - t_setup

    record = set(cfg.record_steps())
    curvature_at = set(cfg.curvature_steps())
    save_at = set(cfg.save_params_at)
    status, t = "running", first
    start = time.perf_counter()

    def clock() -> float:
        return elapsed0 + time.perf_counter() - start

    if progress is not None:
        progress.start(first, cfg.steps)
    try:
        with StopOnSignal() as stop, np.errstate(over="ignore", invalid="ignore"):  # NaN/inf are handled
            for t in range(first, cfg.steps + 1):
                ev = evaluate(problem, W, b, with_stats=t in record or t in curvature_at)
                finite = is_finite(ev.loss + ev.train_loss)
                if not finite and ev.class_loss is None:  # the failing step always gets a row
                    ev = evaluate(problem, W, b, with_stats=True)
                if t in record or not finite:
                    _write_row(store, t, clock(), ev)
                if t in curvature_at and finite:
                    _write_curvature(store, cfg, t, problem, W, b, K, ev.grad_norm)
                if t in save_at:
                    store.save_params(t, {"W": to_numpy(W), "b": to_numpy(b)})
                if progress is not None:
                    progress.update(t, float(ev.loss))
                if not finite:
                    status = "diverged"
                    break
                if t == cfg.steps:
                    status = "completed"
                    _checkpoint(store, t, clock(), W, b, state)
                    break
                if stop.signum is not None:
                    status = "interrupted"
                    _checkpoint(store, t, clock(), W, b, state)
                    break
                updates, state = direction.update(ev.grads, state)
                del ev  # drops the gradient before the step (unless it is the update itself)
                apply_updates_((W, b), updates, cfg.lr)
                del updates
                if (t + 1) % cfg.checkpoint_every == 0 and t + 1 < cfg.steps:
                    _checkpoint(store, t + 1, clock(), W, b, state)
    except BaseException as err:  # a crash or a second Ctrl-C: resume from the last checkpoint
        store.set_attr("error", f"{type(err).__name__}: {err}")
        store.set_status("interrupted")
        raise
    finally:
        if progress is not None:
            progress.close()
    synchronize(xp)
    taken = t - first
    seconds = (time.perf_counter() - start) / taken if taken > 0 else float("nan")
    store.set_status(status)
    return RunResult(status, store, getattr(store, "path", None), t, seconds, setup, None if fresh else first)


def _checkpoint(store, step: int, wall_time: float, W, b, state) -> None:
    leaves = [to_numpy(W), to_numpy(b)] + [x if isinstance(x, int) else to_numpy(x) for x in tree_leaves(state)]
    store.save_checkpoint(step, wall_time, leaves)
