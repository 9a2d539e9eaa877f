"""The paper's figures: one function per kind, loaded runs in, a Figure out.

Every function draws inside ``matplotlib.rc_context(style.paper(...))`` on a new
:class:`matplotlib.figure.Figure` (no pyplot state), reads only stored arrays (no
curvature is recomputed; n and c come from each file's ``class_counts``) and changes
nothing it is given. :func:`save_figure` writes one.

========================  =======================================================  =========
function                  panels                                                    paper
========================  =======================================================  =========
fig_per_group             samples/class, overall loss, per-group loss of each run   1-3, 9, 10
fig_optimizers            per-group loss, optimizer by column, -m/+m by row         4, 12-14
fig_grad_hess             per-class grad norm and Hessian trace (and top eig)       5, 6
fig_spectrum              log-eigenvalue densities of chosen class blocks           (hti)
fig_rank_frequency        token rank vs count per corpus and tokenizer              8
fig_grid                  final loss vs step size, selected step sizes              A.4
========================  =======================================================  =========
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from hti.analysis import style
from hti.analysis.loading import OPTIMIZER_ORDER, Run

__all__ = [
    "PlotError",
    "fig_per_group",
    "fig_optimizers",
    "fig_grad_hess",
    "fig_spectrum",
    "fig_rank_frequency",
    "corpus_counts",
    "fig_grid",
    "save_figure",
    "save_both",
]

from hti.analysis.figures_curvature import fig_grad_hess, fig_spectrum  # noqa: E402
from hti.analysis.figures_data import corpus_counts, fig_grid, fig_rank_frequency  # noqa: E402
from hti.analysis.plotting import (  # noqa: E402, F401 (re-exported)
    FORMATS,
    PlotError,
    as_runs,
    draw_counts,
    draw_group_losses,
    grid_axes,
    group_curves,
    label_colors,
    require,
    save_both,
    save_figure,
    split_keys,
)


# -- per-group loss (Figures 1-3, 9, 10) ------------------------------------------------
def fig_per_group(runs, *, n_groups: int = 10, logy: bool = False, split: str = "train") -> Figure:
    """(a) samples per class, (b) overall loss of every run, then one panel per run with
    the loss of each frequency group (dark = most frequent, light = least).

    Args:
        runs: a :class:`Run` or a list of them.
        n_groups: frequency groups of about equal sample mass.
        logy: log y axes for the losses.
        split: ``train`` (``loss``, ``class_loss``) or ``val`` (``val_loss``,
            ``val_class_loss``, groups still by training frequency).

    Returns:
        A figure with 2 + len(runs) panels; the run panels share their y limits.
    """
    runs = as_runs(runs)
    loss_key, class_key, _ = split_keys(split)
    for r in runs:
        require(r, ("step", loss_key, class_key, "class_counts"), "the per-group figure")
    n = 2 + len(runs)
    ncols = min(n, 4)
    with matplotlib.rc_context(style.paper(ncols, math.ceil(n / ncols))):
        fig = Figure()
        axes = grid_axes(fig, n, ncols)
        ax_counts, ax_loss, run_axes = axes[0], axes[1], axes[2:]
        first = runs[0]
        draw_counts(ax_counts, first.class_counts, first.groups(n_groups))
        for r in runs[1:]:
            if not np.array_equal(r.class_counts, first.class_counts):
                c = np.sort(r.class_counts[r.class_counts > 0])[::-1]
                ax_counts.plot(np.arange(1, c.size + 1), c, color="0.5", lw=0.7, label=r.label)
        for r, color in zip(runs, label_colors(runs)):
            ax_loss.plot(r["step"], r[loss_key], color=color, label=r.label)
        ax_loss.set_title("overall loss" if split == "train" else "overall validation loss")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        if logy:
            ax_loss.set_yscale("log")
        ax_loss.legend()
        for ax, r in zip(run_axes, runs):
            steps, losses, _ = group_curves(r, n_groups, split)
            draw_group_losses(ax, steps, losses, logy)
            ax.set_title(r.label)
            if ax is not run_axes[0]:
                ax.sharey(run_axes[0])
        run_axes[0].set_ylabel("loss per group")
    return fig


# -- optimizers (Figures 4, 12-14) ------------------------------------------------------
def fig_optimizers(runs, *, n_groups: int = 10, logy: bool = False, split: str = "train") -> Figure:
    """Per-group loss of each run, optimizers by column (gd, adam, normgd, sign, adamw),
    without / with momentum by row, plus an overall-loss panel (first column, all rows).

    Missing (optimizer, momentum) combinations leave an empty panel (axis off); the
    per-group panels share their y limits. Two runs of the same combination: PlotError.
    """
    runs = as_runs(runs)
    loss_key, class_key, _ = split_keys(split)
    table: dict[tuple[str, bool], Run] = {}
    for r in runs:
        require(r, ("step", loss_key, class_key, "class_counts"), "the optimizers figure")
        key = (str(r.config.get("optim")), bool(r.config.get("momentum", False)))
        if key in table:
            raise PlotError(
                f"two runs of {r.label}: {table[key].path} and {r.path}; give one run per "
                "optimizer and momentum"
            )
        table[key] = r
    present = {o for o, _ in table}
    optims = [o for o in OPTIMIZER_ORDER if o in present] + sorted(present - set(OPTIMIZER_ORDER))
    moms = [m for m in (False, True) if any(k[1] == m for k in table)]
    ncols, nrows = 1 + len(optims), len(moms)
    with matplotlib.rc_context(style.paper(ncols, nrows)):
        fig = Figure()
        gs = fig.add_gridspec(nrows, ncols)
        ax_loss = fig.add_subplot(gs[:, 0])
        shared = None
        for i, mom in enumerate(moms):
            for j, optim in enumerate(optims):
                ax = fig.add_subplot(gs[i, j + 1])
                run = table.get((optim, mom))
                if run is None:
                    ax.axis("off")
                    continue
                steps, losses, _ = group_curves(run, n_groups, split)
                draw_group_losses(ax, steps, losses, logy)
                ax.set_title(run.label)
                if shared is None:
                    shared = ax
                    ax.set_ylabel("loss per group")
                else:
                    ax.sharey(shared)
        ordered = [table[(o, m)] for m in moms for o in optims if (o, m) in table]
        for r, color in zip(ordered, label_colors(ordered)):
            ax_loss.plot(
                r["step"],
                r[loss_key],
                color=color,
                label=r.label,
                ls="-" if r.config.get("momentum") else "--",
            )
        ax_loss.set_title("overall loss")
        ax_loss.set_xlabel("step")
        if logy:
            ax_loss.set_yscale("log")
        ax_loss.legend()
    return fig


