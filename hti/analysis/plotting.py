"""Shared pieces of the figure modules: the error type, checks, colours, axes helpers, saving."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from hti.analysis import style
from hti.analysis.groups import group_loss
from hti.analysis.loading import Run

FORMATS = (".png", ".pdf", ".svg")


class PlotError(ValueError):
    """A figure that cannot be drawn from what was given; says what is missing."""


# -- helpers ----------------------------------------------------------------------------
def as_runs(runs) -> list[Run]:
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise PlotError("expected at least one run")
    return runs


def require(run: Run, names: Sequence[str], what: str, hint: str = "") -> None:
    missing = [n for n in names if n not in run]
    if missing:
        raise PlotError(f"{what} needs {', '.join(missing)}, which {run.path} ({run.engine}) lacks{hint}")


def split_keys(split: str) -> tuple[str, str, str]:
    """(overall loss, per-class loss, evaluated targets per class) datasets of a split.
    Files without the counts dataset (linear runs) evaluate every sample: class_counts."""
    if split == "train":
        return "loss", "class_loss", "eval_class_counts"
    if split == "val":
        return "val_loss", "val_class_loss", "val_class_counts"
    raise PlotError(f"split must be 'train' or 'val'; got {split!r}")


def group_curves(run: Run, n_groups: int, split: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(steps (T,), group losses (T, G), groups): groups by training frequency; each group's
    loss weighted by the split's own class counts."""
    _, class_key, count_key = split_keys(split)
    groups = run.groups(n_groups)
    weights = run[count_key] if count_key in run else run.class_counts
    return np.asarray(run["step"]), group_loss(run[class_key], weights, groups), groups


def label_colors(runs: list[Run]) -> list[Any]:
    """The optimizer color of each run, or the default cycle when labels repeat."""
    labels = [r.label for r in runs]
    table = style.optimizer_colors()
    if len(set(labels)) == len(labels):
        return [table.get(lab, f"C{i}") for i, lab in enumerate(labels)]
    return [f"C{i % 10}" for i in range(len(runs))]


def frequency_order(counts: np.ndarray) -> np.ndarray:
    """Class indices, most frequent first (ties by index, as frequency_groups)."""
    return np.lexsort((np.arange(counts.size), -counts))


def log_ticks(axis, lo: float, hi: float) -> None:
    """Readable ticks on a log axis showing [lo, hi]: decades when it spans one or more,
    else three rounded values (the default labels every minor tick of a narrow span)."""
    axis.set_minor_formatter(NullFormatter())
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi) or hi / lo >= 10:
        return
    ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(lo, hi, 5)[1:-1]})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))


def grid_axes(fig: Figure, n: int, ncols: int) -> list:
    gs = fig.add_gridspec(math.ceil(n / ncols), ncols)
    return [fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(n)]


def draw_counts(ax, counts: np.ndarray, groups: list[np.ndarray]) -> None:
    """Samples per class, sorted, log-log, each frequency group in its color, boundaries dotted."""
    counts = np.asarray(counts)
    sorted_counts = counts[frequency_order(counts)].astype(np.float64)
    ranks = np.arange(1, counts.size + 1)
    colors = style.group_colors(len(groups))
    start = 0
    for g, cls in enumerate(groups):
        end = start + cls.size  # group g holds ranks start+1 .. end
        seg = slice(start, min(end + 1, counts.size))  # joined to the next group's first class
        keep = sorted_counts[seg] > 0
        ax.plot(
            ranks[seg][keep], sorted_counts[seg][keep], color=colors[g], marker="." if cls.size == 1 else None
        )
        if g < len(groups) - 1:
            ax.axvline(end + 0.5, color="0.6", lw=0.5, ls=":")
        start = end
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("class (sorted by frequency)")
    ax.set_ylabel("samples per class")
    ax.set_title("samples/class")


def draw_group_losses(ax, steps, losses, logy: bool) -> None:
    for g, color in enumerate(style.group_colors(losses.shape[1])):
        ax.plot(steps, losses[:, g], color=color)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")


# -- saving -----------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (.png, .pdf or .svg, from the suffix), creating folders."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise PlotError(f"the output must end in {', '.join(FORMATS)}; got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower()[1:], dpi=300)
    return path


def save_both(fig: Figure, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.pdf``."""
    stem = Path(stem)
    return save_figure(fig, stem.with_name(stem.name + ".png")), save_figure(
        fig, stem.with_name(stem.name + ".pdf")
    )
