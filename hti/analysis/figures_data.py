"""Figures of data and tuning: token rank vs count (the paper's Figure 8) and step-size grids (Appendix A.4)."""

from __future__ import annotations

import math
import re
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hti.analysis import style
from hti.analysis.loading import OPTIMIZER_ORDER, optimizer_label
from hti.analysis.plotting import (
    PlotError,
    grid_axes,
    log_ticks,
)


# -- token frequencies (Figure 8) -------------------------------------------------------
def corpus_counts(name: str, tokenizer: str, data_dir=None, vocab_size: int = 8192) -> np.ndarray:
    """Training-split token counts of a corpus (``hti.deep.text.load_text``), sorted
    descending, zeros dropped. Needs torch (and the corpus' packages or files)."""
    from hti.deep.text import load_text  # noqa: PLC0415 (torch)

    data = load_text(name, tokenizer=tokenizer, data_dir=data_dir, vocab_size=vocab_size)
    counts = np.asarray(data.class_counts)
    return np.sort(counts[counts > 0])[::-1]


def fig_rank_frequency(corpora: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """Token rank vs count, log-log: one panel per corpus, one line per tokenizer.

    ``corpora`` holds (label, counts); a label ``corpus:tokenizer`` (``ptb:gpt2``) or
    ``corpus, tokenizer`` (``PTB, gpt2``) puts the line in the corpus' panel; any other
    label gets a panel of its own. Each panel has a dashed 1/rank reference.
    """
    if not corpora:
        raise PlotError("expected at least one corpus")
    panels: dict[str, list[tuple[str, np.ndarray]]] = {}
    for label, counts in corpora:
        split = re.match(r"\s*(.+?)\s*[:,]\s*(.+?)\s*$", str(label))  # corpus:tokenizer or corpus, tokenizer
        corpus, tok = split.groups() if split else (str(label), str(label))
        c = np.asarray(counts)
        c = np.sort(c[c > 0])[::-1]
        if c.size == 0:
            raise PlotError(f"{label}: no positive counts")
        panels.setdefault(corpus, []).append((tok, c))
    with matplotlib.rc_context(style.paper(len(panels), 1)):
        fig = Figure()
        axes = grid_axes(fig, len(panels), len(panels))
        for ax, (corpus, lines) in zip(axes, panels.items()):
            top = 0.0
            for i, (tok, c) in enumerate(lines):
                ax.plot(np.arange(1, c.size + 1), c, color=f"C{i}", label=f"{tok} ({c.size:,} types)")
                top = max(top, float(c[0]))
            r = np.array([1.0, max(c.size for _, c in lines)])
            ax.plot(r, top / r, color="0.5", ls="--", lw=0.7, label=r"$\propto 1/k$")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(corpus)
            ax.set_xlabel("rank $k$")
            ax.set_ylabel("count")
            ax.legend()
    return fig


# -- step-size grids (Appendix A.4) -----------------------------------------------------
def _grid_points(
    runs: list[dict],
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, bool]], list[float]]:
    """(lrs, max final loss over seeds (inf if any diverged), finite seed points
    (lr, loss, unstable), lrs with a diverged seed)."""
    by_lr: dict[float, list[dict]] = {}
    for r in runs:
        by_lr.setdefault(float(r["lr"]), []).append(r)
    lrs = np.array(sorted(by_lr))
    worst, points, diverged = [], [], []
    for lr in lrs:
        losses = []
        for r in by_lr[lr]:
            f = r.get("final_loss")
            f = float("nan") if f is None else float(f)
            bad = r.get("status") == "diverged" or not math.isfinite(f)
            losses.append(math.inf if bad else f)
            if not bad:
                ratio = r.get("max_loss_ratio")
                points.append((lr, f, ratio is not None and float(ratio) > 1.0))
        worst.append(max(losses))
        if math.isinf(worst[-1]):
            diverged.append(lr)
    return lrs, np.array(worst), points, diverged


def fig_grid(grid: dict, *, logy: bool = True) -> Figure:
    """Final training loss vs step size, one panel per optimizer (``grid.json``).

    One line per (optimizer, momentum): the maximum over seeds of the final loss;
    faint points are the seeds (hollow: unstable, loss above its initial value on the
    way); x on top: a seed diverged at that step size; filled star: the selected step
    size; hollow star: the other rule's choice where the two rules disagree. The dotted
    line is the median initial loss.
    """
    results = grid.get("results") if isinstance(grid, dict) else None
    if not results:
        raise PlotError("grid.json has no results")
    rule = grid.get("select", "paper")
    other_rule = "final" if rule == "paper" else "paper"
    optims: list[str] = []
    for res in results:
        for key in ("optim", "runs"):
            if key not in res:
                raise PlotError(f"grid.json: a result lacks {key!r}")
        if res["optim"] not in optims:
            optims.append(res["optim"])
    optims = [o for o in OPTIMIZER_ORDER if o in optims] + [o for o in optims if o not in OPTIMIZER_ORDER]
    colors = style.optimizer_colors()
    with matplotlib.rc_context(style.paper(len(optims) + 1, 1)):  # + the legend's column
        fig = Figure()
        axes = dict(zip(optims, grid_axes(fig, len(optims), len(optims))))
        initial = [
            float(r["initial_loss"])
            for res in results
            for r in res["runs"]
            if r.get("initial_loss") is not None and math.isfinite(float(r["initial_loss"]))
        ]
        for res in results:
            ax = axes[res["optim"]]
            label = res.get("label") or optimizer_label(res["optim"], bool(res.get("momentum")))
            color = colors.get(label, "C0")
            lrs, worst, points, diverged = _grid_points(res["runs"])
            ax.plot(
                lrs, np.where(np.isfinite(worst), worst, np.nan), color=color, marker="o", ms=2.5, label=label
            )
            for lr, f, unstable in points:  # the seeds, faint; hollow when unstable
                ax.plot([lr], [f], ls="none", marker="o", ms=3, alpha=0.35, color=color,
                        mfc="none" if unstable else color)  # fmt: skip
            at_top = {"transform": ax.get_xaxis_transform(), "clip_on": False}  # x: data, y: axes
            for lr in diverged:
                ax.plot([lr], [0.97], ls="none", marker="x", ms=4, color=color, **at_top)
            picks = [(res.get("selected_lr"), color)]
            a, b = res.get(f"selected_lr_{rule}"), res.get(f"selected_lr_{other_rule}")
            if a is not None and b is not None and (res.get("disagree") or not math.isclose(a, b)):
                picks.append((b, "white"))
            for lr, face in picks:
                if lr is None:
                    continue
                hit = np.flatnonzero(np.isclose(lrs, float(lr)))
                y = worst[hit[0]] if hit.size else np.nan
                finite = bool(np.isfinite(y))  # a diverged choice goes to the top, as the crosses
                ax.plot([lr], [y if finite else 0.97], ls="none", marker="*", ms=8, mec=color, mfc=face,
                        zorder=5, **({} if finite else at_top))  # fmt: skip
        for optim, ax in axes.items():
            if initial:
                ax.axhline(float(np.median(initial)), color="0.6", lw=0.5, ls=":")
            ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
                finite = [
                    float(r["final_loss"])
                    for res in results
                    if res["optim"] == optim
                    for r in res["runs"]
                    if r.get("final_loss") is not None and math.isfinite(float(r["final_loss"]))
                ]
                if finite:
                    log_ticks(ax.yaxis, min(finite), max(finite + initial))
            ax.set_xlabel("step size")
            ax.set_title(optimizer_label(optim, True)[:-2])
        first = axes[optims[0]]
        first.set_ylabel("final loss (max over seeds)")
        handles, labels = [], []
        for ax in axes.values():
            h, lab = ax.get_legend_handles_labels()
            handles += h
            labels += lab
        handles += [
            Line2D([], [], ls="none", marker="*", ms=8, mec="k", mfc="k"),
            Line2D([], [], ls="none", marker="*", ms=8, mec="k", mfc="white"),
            Line2D([], [], ls="none", marker="x", ms=4, color="k"),
        ]
        labels += [f"selected ({rule} rule)", f"{other_rule} rule, if different", "diverged"]
        fig.legend(handles, labels, loc="outside right upper")
    return fig


