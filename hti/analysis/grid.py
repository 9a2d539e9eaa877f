"""The step-size grid search of the paper's Appendix A.4, resumable and shardable.

"We use a constant step-size throughout training, set by grid search. We start with a
sparse grid of powers of 10 [10^-6, 10^-5, ..., 10^1] and increase the density to
half-powers around the best step-size. The step-size is selected to minimize the maximum
over seeds of the training loss at the end of training. For some settings, this selection
still produces runs that are unstable [...] reaching loss values that are worse than at
initialization. For those runs, we use the next smaller step-size."

A grid is a base config (:class:`~hti.linsoftmax.config.LinearConfig` or
:class:`~hti.deep.config.DeepConfig`) times optimizers x momentum x step sizes x seeds
(:func:`plan`). Every run is the file ``DIR/<run id>.h5``; the run id hashes the config,
so :func:`execute` reuses a finished run (completed or diverged), resumes an unfinished one
(running after a kill, or interrupted) and starts a missing one. :func:`shard` splits a
plan into disjoint parts for several processes or machines sharing ``DIR``.

Two selection rules are computed for every (optimizer, momentum) group:

- ``paper`` (Appendix A.4 as written, :func:`select_paper`): a run scores its final
  loss, or its initial loss if it diverged or ends above it; the step size with the
  smallest maximum score over seeds wins (ties: the smaller one); then, while a seed's run
  at the chosen step size rose above its initial loss at some recorded row, the next
  smaller step size of the grid is taken.
- ``final`` (the released code's rule, :func:`select_final`): the same minimum, but a
  run scores its initial loss only if it diverged or ends above 1.5x it; no stability step.

:func:`run_grid` runs both phases (the decade grid, then the half-decade neighbours of
each group's selection under the chosen rule) and writes ``DIR/grid.json``
(:func:`write_grid_json`). Running the runs (reuse, resume, K worker processes) is
:mod:`hti.analysis.execute`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hti.analysis.execute import (  # noqa: F401 (part of the grid's interface)
    FINISHED,
    THREAD_VARS,
    ExecuteReport,
    Outcome,
    Progress,
    engine_of,
    execute,
    run_path,
    unfinished,
)

ENGINES = ("linear", "deep")
RULES = ("paper", "final")
MOMENTUM = ("on", "off", "both")
OPTIMIZERS = {"linear": ("gd", "adam", "normgd", "sign"), "deep": ("gd", "adam", "normgd", "sign", "adamw")}
LABELS = {"gd": "GD", "adam": "Adam", "normgd": "NormGD", "sign": "Sign", "adamw": "AdamW"}
FINAL_THRESHOLD = 1.5  # the released code's rule: a run ending above 1.5x its initial loss failed
_ORDER = tuple(OPTIMIZERS["deep"])


# -- the step sizes -----------------------------------------------------------------------
def _exponent(lr: float) -> int | None:
    """The integer k with lr = 10^k (to 1e-9 in k), else None."""
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        return None
    e = math.log10(lr)
    return round(e) if abs(e - round(e)) < 1e-9 else None


def lr_grid(lo: float, hi: float) -> list[float]:
    """The powers of ten from ``lo`` to ``hi``, both included, as exact floats ``1e{k}``.

    >>> lr_grid(1e-3, 10**0)
    [0.001, 0.01, 0.1, 1.0]

    Raises:
        ValueError: a bound that is not a power of ten, or lo > hi.
    """
    ks = []
    for name, value in (("lower", lo), ("upper", hi)):
        k = _exponent(value)
        if k is None:
            raise ValueError(
                f"the {name} bound of the step-size grid must be a power of ten like 1e-6; got {value!r}"
            )
        ks.append(k)
    if ks[0] > ks[1]:
        raise ValueError(f"the step-size grid needs lower <= upper; got 1e{ks[0]} > 1e{ks[1]}")
    return [float(f"1e{k}") for k in range(ks[0], ks[1] + 1)]


def refine(best_lr: float) -> list[float]:
    """The half-decade neighbours 10^(k-1/2), 10^(k+1/2) of a decade step size 10^k.

    The values equal what ``parse_lr("10^-2.5")`` gives, so a refined run and the same
    run asked for by hand share a run id.

    >>> refine(1e-3) == [10**-3.5, 10**-2.5]
    True
    """
    k = _exponent(best_lr)
    if k is None:
        raise ValueError(f"refine expects a power of ten (a point of the decade grid); got {best_lr!r}")
    return [10 ** (k - 0.5), 10 ** (k + 0.5)]  # as parse_lr computes 10^-2.5: 10 ** -2.5


# -- the plan -----------------------------------------------------------------------------
def _momenta(momentum: str) -> tuple[bool, ...]:
    if momentum not in MOMENTUM:
        raise ValueError(f"momentum must be one of {', '.join(MOMENTUM)}; got {momentum!r}")
    return {"on": (True,), "off": (False,), "both": (True, False)}[momentum]


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1; got {seeds}")
        return list(range(seeds))
    return sorted({int(s) for s in seeds})


def sort_key(cfg) -> tuple:
    """The grid's order: optimizer (gd, adam, normgd, sign, adamw), +m before -m, lr, seed."""
    return (_ORDER.index(cfg.optim), not cfg.momentum, cfg.lr, cfg.seed, cfg.run_id)


def plan(base, optims: Sequence[str], momentum: str, lrs: Iterable[float], seeds: int | Iterable[int]) -> list:
    """Every config of the grid, in :func:`sort_key` order.

    Args:
        base: a LinearConfig or DeepConfig giving every other option (data, model, steps).
        optims: a subset of :data:`OPTIMIZERS` of the engine.
        momentum: ``on``, ``off`` or ``both``.
        lrs: the step sizes.
        seeds: K (initialization seeds 0..K-1) or the seeds themselves; the data seed is base's.
    """
    engine = engine_of(base)
    bad = [o for o in optims if o not in OPTIMIZERS[engine]]
    if bad or not optims:
        known = ", ".join(OPTIMIZERS[engine])
        raise ValueError(f"optimizers of the {engine} engine are {known}; got {', '.join(bad) or 'none'}")
    configs = {
        cfg.run_id: cfg
        for o in dict.fromkeys(optims)
        for mom in _momenta(momentum)
        for lr in sorted(set(lrs))
        for seed in _seeds(seeds)
        for cfg in [base.replace(optim=o, momentum=mom, lr=lr, seed=seed)]
    }
    return sorted(configs.values(), key=sort_key)


def shard(configs: Sequence, i: int, n: int) -> list:
    """Part ``i`` of ``n`` (1-based): every n-th config of the sorted list from the i-th.

    The n parts are disjoint and cover the list exactly once.

    """
    if not (isinstance(n, int) and isinstance(i, int) and n >= 1 and 1 <= i <= n):
        raise ValueError(f"shard i/n needs 1 <= i <= n; got {i}/{n}")
    return sorted(configs, key=sort_key)[i - 1 :: n]


# -- results ------------------------------------------------------------------------------
def _read_losses(path: Path):
    """(status, loss rows) of a run file; a file being written is read live."""
    from hti.storage import StorageError, read_trajectory  # noqa: PLC0415

    try:
        data = read_trajectory(path, names=("loss",))
    except StorageError as err:
        if "being written" not in str(err):
            return "unreadable", None
        try:
            data = read_trajectory(path, names=("loss",), live=True)
        except StorageError:
            return "running", None
    return str(data["attrs"].get("status")), data.get("loss")


def collect(folder: str | os.PathLike, configs: Sequence) -> list[dict]:
    """One dict per config, in :func:`sort_key` order.

    Keys: optim, momentum, lr, seed, status (as in the file, or ``missing``), initial_loss
    (the first ``loss`` row), final_loss (the last), max_loss_ratio (the largest recorded
    loss over the initial one; inf if a row is NaN or inf) and path. The losses are None
    when the file has no rows.
    """
    import numpy as np  # noqa: PLC0415

    out = []
    for cfg in sorted(configs, key=sort_key):
        path = run_path(folder, cfg)
        row = {"optim": cfg.optim, "momentum": cfg.momentum, "lr": cfg.lr, "seed": cfg.seed, "status": "missing",
               "initial_loss": None, "final_loss": None, "max_loss_ratio": None, "path": str(path)}  # fmt: skip
        if path.exists():
            row["status"], loss = _read_losses(path)
            if loss is not None and loss.size:
                loss = np.asarray(loss, dtype=float)  # (T,)
                initial = float(loss[0])
                worst = float(np.where(np.isfinite(loss), loss, np.inf).max())
                row.update(initial_loss=initial, final_loss=float(loss[-1]), max_loss_ratio=worst / initial)
        out.append(row)
    return out


def _failed(run: dict, threshold: float) -> bool:
    final = run["final_loss"]
    return run["status"] == "diverged" or not math.isfinite(final) or final > threshold * run["initial_loss"]


def score(run: dict, rule: str) -> float:
    """A run's score: its final loss, or its initial loss if it failed.

    It failed if it diverged or ended above its initial loss (``paper``) or above 1.5x
    its initial loss (``final``).
    """
    threshold = {"paper": 1.0, "final": FINAL_THRESHOLD}[rule]
    return run["initial_loss"] if _failed(run, threshold) else run["final_loss"]


def _unstable(run: dict) -> bool:
    """It rose above its initial loss at some recorded row (or diverged)."""
    ratio = run["max_loss_ratio"]
    return run["status"] == "diverged" or ratio is None or not ratio <= 1.0


def _by_lr(runs: Sequence[dict]) -> dict[float, list[dict]]:
    if not runs:
        raise ValueError("selection needs at least one run; got none")
    left = unfinished(runs)
    if left:
        names = ", ".join(f"lr {r['lr']:g} seed {r['seed']} ({r['status']})" for r in left[:3])
        more = ", ..." if len(left) > 3 else ""
        raise ValueError(f"selection needs finished runs; {len(left)} are not ({names}{more})")
    table: dict[float, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (r["lr"], r["seed"])):
        table.setdefault(r["lr"], []).append(r)
    return table


def _argmin(table: dict[float, list[dict]], rule: str) -> float:
    """The step size of the smallest max-over-seeds score; ties go to the smaller one."""
    best, best_score = None, math.inf
    for lr, runs in table.items():  # ascending lr: a tie keeps the smaller
        s = max(score(r, rule) for r in runs)
        if best is None or s < best_score:
            best, best_score = lr, s
    return best


def select_paper(runs: Sequence[dict]) -> tuple[float, float]:
    """(selected, before_stability): Appendix A.4 on the runs of one group.

    ``before_stability`` minimizes the max over seeds of :func:`score` (rule ``paper``);
    then, while a seed's run at the candidate rose above its initial loss during training
    (max_loss_ratio > 1, or diverged), the next smaller step size of the grid is taken,
    down to the smallest.

    >>> r = lambda lr, final, ratio: dict(lr=lr, seed=0, status="completed", initial_loss=5.0,
    ...                                   final_loss=final, max_loss_ratio=ratio)
    >>> select_paper([r(1e-3, 4.0, 1.0), r(1e-2, 2.0, 1.0), r(1e-1, 1.0, 30.0)])
    (0.01, 0.1)
    """
    table = _by_lr(runs)
    best = _argmin(table, "paper")
    lrs = list(table)
    i = lrs.index(best)
    while i > 0 and any(_unstable(r) for r in table[lrs[i]]):
        i -= 1
    return lrs[i], best


def select_final(runs: Sequence[dict]) -> float:
    """The released code's rule on the runs of one group: the smallest max over seeds of
    :func:`score` (rule ``final``, runs ending above 1.5x their initial loss fail); no
    stability step. Ties go to the smaller step size."""
    return _argmin(_by_lr(runs), "final")


def label(optim: str, momentum: bool) -> str:
    """``GD+m``, ``Adam-m``, ``AdamW+m``, ..."""
    return f"{LABELS[optim]}{'+m' if momentum else '-m'}"


def select_groups(runs: Sequence[dict]) -> list[dict]:
    """Both selections for every (optim, momentum) group of finished ``runs``.

    Returns one dict per group, in grid order: optim, momentum, label,
    selected_lr_paper, selected_lr_final, disagree, paper_before_stability (the paper
    rule's pick before its stability step) and runs (sorted by lr, seed).
    """
    groups: dict[tuple[str, bool], list[dict]] = {}
    for r in sorted(runs, key=lambda r: (_ORDER.index(r["optim"]), not r["momentum"], r["lr"], r["seed"])):
        groups.setdefault((r["optim"], r["momentum"]), []).append(r)
    out = []
    for (optim, momentum), rs in groups.items():
        paper, before = select_paper(rs)
        final = select_final(rs)
        out.append({"optim": optim, "momentum": momentum, "label": label(optim, momentum), "selected_lr_paper": paper,
                    "selected_lr_final": final, "disagree": paper != final, "paper_before_stability": before,
                    "runs": rs})  # fmt: skip
    return out


def refine_lrs(results: Sequence[dict], rule: str, lrs: Sequence[float]) -> dict[tuple[str, bool], list[float]]:
    """Per group, the half-decade neighbours of its selection under ``rule`` that lie
    within [min(lrs), max(lrs)] (a selection at the edge of the grid gets one neighbour)."""
    lo, hi = min(lrs), max(lrs)
    out = {}
    for g in results:
        near = refine(g[f"selected_lr_{rule}"])
        out[(g["optim"], g["momentum"])] = [lr for lr in near if lo * (1 - 1e-12) <= lr <= hi * (1 + 1e-12)]
    return out


def _finite(x):
    return x if x is None or math.isfinite(x) else None


def grid_json(results: Sequence[dict], engine: str, select: str) -> dict:
    """The content of ``grid.json`` (see :func:`write_grid_json`)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if select not in RULES:
        raise ValueError(f"select must be one of {', '.join(RULES)}; got {select!r}")
    keys = ("lr", "seed", "status", "initial_loss", "final_loss", "max_loss_ratio", "path")
    losses = ("initial_loss", "final_loss", "max_loss_ratio")
    return {
        "engine": engine,
        "select": select,
        "results": [
            {
                "optim": g["optim"],
                "momentum": g["momentum"],
                "label": g["label"],
                "selected_lr": g[f"selected_lr_{select}"],
                "selected_lr_paper": g["selected_lr_paper"],
                "selected_lr_final": g["selected_lr_final"],
                "disagree": g["disagree"],
                "runs": [{k: _finite(r[k]) if k in losses else r[k] for k in keys} for r in g["runs"]],
            }
            for g in results
        ],
    }


def write_grid_json(folder: str | os.PathLike, results: Sequence[dict], engine: str, select: str) -> Path:
    """Write ``folder/grid.json`` (atomically) and return its path.

    Schema: ``{"engine": "linear"|"deep", "select": "paper"|"final", "results": [{"optim",
    "momentum", "label", "selected_lr" (under ``select``), "selected_lr_paper",
    "selected_lr_final", "disagree", "runs": [{"lr", "seed", "status", "initial_loss",
    "final_loss", "max_loss_ratio", "path"}]}]}``. Strict JSON: a NaN or infinite loss
    (a diverged run) is written as null.
    """
    path = Path(folder) / "grid.json"
    tmp = path.with_name(f".grid.json.{os.getpid()}")
    tmp.write_text(json.dumps(grid_json(results, engine, select), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


# -- both phases ----------------------------------------------------------------------------
@dataclass
class GridOutcome:
    """What :func:`run_grid` reached.

    ``complete``: every run of both phases is finished and ``grid.json`` was written
    (``results``: :func:`select_groups`). Otherwise ``message`` says why it stopped
    (interrupted, errors, or runs of other shards still unfinished).
    """

    phase1: list
    phase2: list
    reports: list[ExecuteReport]
    runs: list[dict]
    results: list[dict] | None = None
    complete: bool = False
    message: str | None = None
    notes: list[str] = field(default_factory=list)
    grid_path: Path | None = None

    @property
    def interrupted(self) -> bool:
        return any(r.interrupted for r in self.reports)

    @property
    def errors(self) -> list[Outcome]:
        return [o for r in self.reports for o in r.errors]


def run_grid(
    base,
    optims: Sequence[str],
    momentum: str,
    lrs: Sequence[float],
    seeds: int | Iterable[int],
    folder: str | os.PathLike,
    *,
    refine_best: bool = True,
    select: str = "paper",
    shard_of: tuple[int, int] = (1, 1),
    workers: int = 1,
    progress: Progress | None = None,
) -> GridOutcome:
    """The whole search: phase 1 (``lrs``), then phase 2 (each group's half-decade
    neighbours of its phase-1 selection under ``select``), then both selections on the
    union and ``folder/grid.json``.

    This process runs its shard ``shard_of = (i, n)`` of each phase. Phase 2 needs every
    phase-1 run finished; if another shard's runs are not, this one stops after phase 1
    (``message`` says so): running every shard twice completes the grid.
    """
    if select not in RULES:
        raise ValueError(f"select must be one of {', '.join(RULES)}; got {select!r}")
    engine = engine_of(base)
    i, n = shard_of
    phase1 = plan(base, optims, momentum, lrs, seeds)
    shard(phase1, i, n)  # validates i/n before anything runs
    out = GridOutcome(phase1, [], [], [])
    for phase in (1, 2):
        configs = phase1 if phase == 1 else out.phase2
        report = execute(shard(configs, i, n), folder, workers, progress)
        out.reports.append(report)
        out.runs = collect(folder, phase1 + out.phase2)
        if report.interrupted or report.errors:
            k = len(report.errors)
            why = "interrupted" if report.interrupted else f"{k} run{'s' if k != 1 else ''} failed"
            out.message = f"phase {phase}: {why}; run the same command again to resume"
            return out
        left = unfinished(collect(folder, configs))
        if left:
            out.message = (f"phase {phase}: {len(left)} of {len(configs)} runs are not finished yet (other shards); "
                           f"run the command again once all shards have finished phase {phase}")  # fmt: skip
            return out
        if phase == 2 or not refine_best:
            break
        first = select_groups(out.runs)
        extra = refine_lrs(first, select, lrs)
        for g in first:
            chosen = g[f"selected_lr_{select}"]
            if chosen in (min(lrs), max(lrs)) and len(lrs) > 1:
                out.notes.append(f"{g['label']}: the {select} rule selects {chosen:g}, at the edge of the grid; "
                                 f"consider widening the range")  # fmt: skip
        known = {c.run_id for c in phase1}
        out.phase2 = [
            c for (optim, mom), near in extra.items()
            for c in plan(base, [optim], "on" if mom else "off", near, seeds) if c.run_id not in known
        ] if any(extra.values()) else []  # fmt: skip
        if not out.phase2:
            break
    out.results = select_groups(out.runs)
    out.complete = True
    out.grid_path = write_grid_json(folder, out.results, engine, select)
    return out
