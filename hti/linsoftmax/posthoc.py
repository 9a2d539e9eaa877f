"""Curvature of a finished (or interrupted) run, from its file alone.

The data are a pure function of the run's config, so they are regenerated rather than
stored; the parameters come from the steps saved with ``--save-params-at``.
:func:`spectra_of_run` computes, at chosen steps, every curvature quantity of the
``curvature`` table plus whole spectra of chosen class blocks, and stores them under
``spectra/`` in the run file (``hti spectrum``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hti.backend import to_device, to_numpy, xp_by_name
from hti.config import ConfigError
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.curvature import curvature, gram, log_correlation
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.loss import logits, softmax
from hti.linsoftmax.spectrum import block_extremes, block_spectrum, log_density, slq_nodes
from hti.linsoftmax.stats import Problem, evaluate, make_problem
from hti.storage import StorageError, read_trajectory, write_group

DENSE_MAX_DIM = 4096  # dense eigh of the min(n, d)-dimensional form up to this size


@dataclass
class SavedRun:
    """A linear run's config, its regenerated problem, and its saved parameters."""

    path: Path
    config: LinearConfig
    problem: Problem
    params: dict[str, np.ndarray]  # step (K,), W (K, c, d), b (K, c) on the host
    xp: Any  # the array module of the problem's device

    @property
    def saved_steps(self) -> list[int]:
        return [int(s) for s in self.params["step"]]

    def params_at(self, step: int):
        """(W, b) on the run's device at a saved step."""
        steps = self.saved_steps
        if step not in steps:
            raise ConfigError(f"step {step} was not saved in {self.path}; saved steps: {_short(steps)}")
        i = steps.index(step)
        return to_device(self.params["W"][i], self.xp), to_device(self.params["b"][i], self.xp)


def _short(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if len(steps) <= 12 else f"{', '.join(map(str, steps[:10]))}, ... ({len(steps)} in all)"


def load_run(path: str | os.PathLike, device: str | None = None) -> SavedRun:
    """Read a linear run's config and saved parameters and regenerate its data."""
    path = Path(path)
    data = read_trajectory(path, names=("params",))
    attrs = data["attrs"]
    if attrs.get("engine") != "linsoftmax":
        raise StorageError(f"{path} holds an {attrs.get('engine')!r} run; expected a linsoftmax run (hti linear)")
    cfg = LinearConfig.from_dict(attrs["config"])
    if "params" not in data or not len(data["params"].get("step", ())):
        raise StorageError(f"{path} has no saved parameters; rerun it with --save-params-at STEPS")
    xp = xp_by_name(device or cfg.device)
    host = heavy_tailed_data(cfg.m, inputs=cfg.inputs, input_mean=cfg.input_mean, input_scale=cfg.input_scale,
                             dim=cfg.dim, data_seed=cfg.data_seed, dtype=cfg.dtype)  # fmt: skip
    problem = make_problem(to_device(host.X, xp), to_device(host.y, xp), to_device(host.class_counts, xp))
    return SavedRun(path, cfg, problem, data["params"], xp)


def default_classes(m: int, c: int) -> np.ndarray:
    """The first (most frequent) class of every construction group: 0, 1, 3, 7, ..."""
    return np.array([2**j - 1 for j in range(m) if 2**j - 1 < c], dtype=np.int64)


def spectra_of_run(
    path: str | os.PathLike,
    steps: list[int],
    *,
    classes: list[int] | None = None,
    full: bool = False,
    k: int = 1,
    extremes: int = 10,
    probes: int = 16,
    lanczos_steps: int = 60,
    write: bool = True,
) -> dict[str, Any]:
    """Curvature quantities at ``steps`` and spectra of ``classes``; see the module.

    Spectra are exact (dense ``eigh``) when ``full`` or when min(n, d) <= DENSE_MAX_DIM,
    else the ``extremes`` largest and smallest eigenvalues (``eigsh``) and an SLQ density
    (``probes`` probes, ``lanczos_steps`` steps). Either way a density of log10(lambda)
    on a common grid is stored. Returns the arrays written under ``spectra/``.
    """
    run = load_run(path)
    cfg, problem = run.config, run.problem
    X = problem.X
    n, c, d = cfg.shape
    if not steps:
        raise ConfigError("expected at least one step (--at)")
    for s in steps:
        run.params_at(s)  # every step must be saved: fail before computing anything
    classes = default_classes(cfg.m, c) if classes is None else np.asarray(classes, dtype=np.int64)
    if classes.size == 0 or classes.min() < 0 or classes.max() >= c:
        raise ConfigError(f"classes must be in [0, {c - 1}] for m = {cfg.m}; got {classes.tolist()}")
    dim = min(n, d)
    if not 1 <= k <= dim:
        raise ConfigError(f"eig_k must be in [1, {dim}]; got {k}")
    dense = full or dim <= DENSE_MAX_DIM
    K = gram(X) if n <= d else None
    out: dict[str, list] = {key: [] for key in (
        "hess_eig", "eig_iterations", "hess_top", "hess_diag_frob", "hess_offdiag_frob",
        "grad_norm", "hess_trace", "grad_hess_corr", "grad_eig_corr", "eigenvalues", "top", "bottom",
        "slq_nodes", "slq_weights")}  # fmt: skip
    for s in steps:
        W, b = run.params_at(s)
        ev = evaluate(problem, W, b)
        P = softmax(logits(X, W, b))
        cur = curvature(X, P, ("eig", "top", "coupling"), k=k, K=K)
        grad_norm, trace = to_numpy(ev.grad_norm), to_numpy(ev.hess_trace)
        out["hess_eig"].append(cur.hess_eig)
        out["eig_iterations"].append(cur.eig_iterations)
        out["hess_top"].append(cur.hess_top)
        out["hess_diag_frob"].append(cur.hess_diag_frob)
        out["hess_offdiag_frob"].append(cur.hess_offdiag_frob)
        out["grad_norm"].append(grad_norm)
        out["hess_trace"].append(trace)
        out["grad_hess_corr"].append(log_correlation(grad_norm, trace))
        out["grad_eig_corr"].append(log_correlation(grad_norm, cur.hess_eig[:, 0]))
        if dense:
            out["eigenvalues"].append(block_spectrum(X, P, classes, K=K))
        else:
            top, bottom = block_extremes(X, P, classes, min(extremes, dim - 1), K=K)
            nodes, weights = slq_nodes(X, P, classes, probes=probes, steps=lanczos_steps, K=K)
            out["top"].append(top)
            out["bottom"].append(bottom)
            out["slq_nodes"].append(nodes)
            out["slq_weights"].append(weights)
    arrays = {key: np.asarray(v) for key, v in out.items() if v}
    arrays["step"] = np.asarray(steps, dtype=np.int64)
    arrays["classes"] = classes
    if dense:
        grid, density = log_density(arrays["eigenvalues"])
    else:
        grid, density = log_density(arrays["slq_nodes"], arrays["slq_weights"])
        density = density.mean(axis=2)  # average over probes
    arrays["density_grid"], arrays["density"] = grid, density
    attrs = {"method": "dense" if dense else "lanczos", "zero_eigenvalues": abs(d - n),
             "density_bandwidth": 0.05, "eig_k": k}  # fmt: skip
    if write:
        write_group(path, "spectra", arrays, attrs)
    return {**arrays, "attrs": attrs}
