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
import os
import re
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from hti.analysis import style
from hti.analysis.groups import group_loss
from hti.analysis.loading import OPTIMIZER_ORDER, Run, optimizer_label

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

FORMATS = (".png", ".pdf", ".svg")


class PlotError(ValueError):
    """A run (or input) that lacks what a figure needs; says what and how to get it."""


# -- helpers ----------------------------------------------------------------------------
def _as_runs(runs) -> list[Run]:
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise PlotError("expected at least one run")
    return runs


def _require(run: Run, names: Sequence[str], what: str, hint: str = "") -> None:
    missing = [n for n in names if n not in run]
    if missing:
        raise PlotError(f"{what} needs {', '.join(missing)}, which {run.path} ({run.engine}) lacks{hint}")


def _split_keys(split: str) -> tuple[str, str, str]:
    """(overall loss, per-class loss, per-class counts) datasets of a split."""
    if split == "train":
        return "loss", "class_loss", "class_counts"
    if split == "val":
        return "val_loss", "val_class_loss", "val_class_counts"
    raise PlotError(f"split must be 'train' or 'val'; got {split!r}")


def _group_curves(run: Run, n_groups: int, split: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(steps (T,), group losses (T, G), groups): groups by training frequency; each group's
    loss weighted by the split's own class counts."""
    _, class_key, count_key = _split_keys(split)
    groups = run.groups(n_groups)
    weights = run[count_key] if count_key in run else run.class_counts
    return np.asarray(run["step"]), group_loss(run[class_key], weights, groups), groups


def _label_colors(runs: list[Run]) -> list[Any]:
    """The optimizer color of each run, or the default cycle when labels repeat."""
    labels = [r.label for r in runs]
    table = style.optimizer_colors()
    if len(set(labels)) == len(labels):
        return [table.get(lab, f"C{i}") for i, lab in enumerate(labels)]
    return [f"C{i % 10}" for i in range(len(runs))]


def _frequency_order(counts: np.ndarray) -> np.ndarray:
    """Class indices, most frequent first (ties by index, as frequency_groups)."""
    return np.lexsort((np.arange(counts.size), -counts))


def _log_ticks(axis, lo: float, hi: float) -> None:
    """Readable ticks on a log axis showing [lo, hi]: decades when it spans one or more,
    else three rounded values (the default labels every minor tick of a narrow span)."""
    axis.set_minor_formatter(NullFormatter())
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi) or hi / lo >= 10:
        return
    ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(lo, hi, 5)[1:-1]})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))


def _grid_axes(fig: Figure, n: int, ncols: int) -> list:
    gs = fig.add_gridspec(math.ceil(n / ncols), ncols)
    return [fig.add_subplot(gs[i // ncols, i % ncols]) for i in range(n)]


def _draw_counts(ax, counts: np.ndarray, groups: list[np.ndarray]) -> None:
    """Samples per class, sorted, log-log, each frequency group in its color, boundaries dotted."""
    counts = np.asarray(counts)
    sorted_counts = counts[_frequency_order(counts)].astype(np.float64)
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


def _draw_group_losses(ax, steps, losses, logy: bool) -> None:
    for g, color in enumerate(style.group_colors(losses.shape[1])):
        ax.plot(steps, losses[:, g], color=color)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")


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
    runs = _as_runs(runs)
    loss_key, class_key, _ = _split_keys(split)
    for r in runs:
        _require(r, ("step", loss_key, class_key, "class_counts"), "the per-group figure")
    n = 2 + len(runs)
    ncols = min(n, 4)
    with matplotlib.rc_context(style.paper(ncols, math.ceil(n / ncols))):
        fig = Figure()
        axes = _grid_axes(fig, n, ncols)
        ax_counts, ax_loss, run_axes = axes[0], axes[1], axes[2:]
        first = runs[0]
        _draw_counts(ax_counts, first.class_counts, first.groups(n_groups))
        for r in runs[1:]:
            if not np.array_equal(r.class_counts, first.class_counts):
                c = np.sort(r.class_counts[r.class_counts > 0])[::-1]
                ax_counts.plot(np.arange(1, c.size + 1), c, color="0.5", lw=0.7, label=r.label)
        for r, color in zip(runs, _label_colors(runs)):
            ax_loss.plot(r["step"], r[loss_key], color=color, label=r.label)
        ax_loss.set_title("overall loss" if split == "train" else "overall validation loss")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        if logy:
            ax_loss.set_yscale("log")
        ax_loss.legend()
        for ax, r in zip(run_axes, runs):
            steps, losses, _ = _group_curves(r, n_groups, split)
            _draw_group_losses(ax, steps, losses, logy)
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
    runs = _as_runs(runs)
    loss_key, class_key, _ = _split_keys(split)
    table: dict[tuple[str, bool], Run] = {}
    for r in runs:
        _require(r, ("step", loss_key, class_key, "class_counts"), "the optimizers figure")
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
                steps, losses, _ = _group_curves(run, n_groups, split)
                _draw_group_losses(ax, steps, losses, logy)
                ax.set_title(run.label)
                if shared is None:
                    shared = ax
                    ax.set_ylabel("loss per group")
                else:
                    ax.sharey(shared)
        ordered = [table[(o, m)] for m in moms for o in optims if (o, m) in table]
        for r, color in zip(ordered, _label_colors(ordered)):
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


# -- gradient norms and Hessian traces (Figures 5, 6) -----------------------------------
def _log_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over classes of log a and log b, row by row: (T, c) -> (T,)."""
    from hti.linsoftmax.curvature import log_correlation  # noqa: PLC0415 (numpy only)

    return np.array([log_correlation(x, y) for x, y in zip(a, b)])


def _edges(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def _image(fig, ax, steps, values, order, title) -> None:
    """values (T, c) as an image: classes by frequency (most frequent on top) x steps."""
    Z = np.asarray(values, dtype=np.float64)[:, order].T  # (c, T)
    ok = np.isfinite(Z) & (Z > 0)
    norm = LogNorm(Z[ok].min(), Z[ok].max()) if ok.any() and Z[ok].min() < Z[ok].max() else Normalize()
    mesh = ax.pcolormesh(
        _edges(steps),
        np.arange(Z.shape[0] + 1) - 0.5,
        np.ma.masked_where(~ok, Z),
        norm=norm,
        shading="flat",
        rasterized=True,
    )
    ax.set_ylim(Z.shape[0] - 0.5, -0.5)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01)
    if isinstance(norm, LogNorm):
        _log_ticks(bar.ax.yaxis, norm.vmin, norm.vmax)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("class (by frequency)")


def _scatter(ax, q, g, groups, step, qname) -> None:
    """log-log scatter of grad norm g (c,) against curvature q (c,), by frequency group."""
    for cls, color in zip(groups, style.group_colors(len(groups))):
        ok = (q[cls] > 0) & (g[cls] > 0) & np.isfinite(q[cls]) & np.isfinite(g[cls])
        ax.scatter(q[cls][ok], g[cls][ok], s=4, color=color, linewidths=0)
    ok = (q > 0) & (g > 0) & np.isfinite(q) & np.isfinite(g)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if ok.any():
        lo, hi = q[ok].min(), q[ok].max()
        shift = np.exp(np.mean(np.log(g[ok]) - np.log(q[ok])))
        ax.plot([lo, hi], [lo * shift, hi * shift], color="0.4", ls="--", lw=0.7, label="slope 1")
        _log_ticks(ax.xaxis, lo, hi)
        _log_ticks(ax.yaxis, min(g[ok].min(), lo * shift), max(g[ok].max(), hi * shift))
    ax.set_xlabel(qname)
    ax.set_ylabel("grad norm")
    ax.set_title(f"step {step}")


def _pick_steps(x: np.ndarray, steps, name: str) -> list[int]:
    """Row indices of ``steps`` in x (default: first, middle, last)."""
    if steps is None:
        return list(dict.fromkeys([0, (len(x) - 1) // 2, len(x) - 1]))
    out = []
    for s in steps:
        hit = np.flatnonzero(x == s)
        if hit.size == 0:
            shown = ", ".join(map(str, x[:12])) + (", ..." if len(x) > 12 else "")
            raise PlotError(f"step {s} has no {name} row; recorded steps: {shown}")
        out.append(int(hit[0]))
    return list(dict.fromkeys(out))


def _grad_curv_row(fig, axes, steps, G, Q, corr, chosen, order, groups, qname, qtitle) -> None:
    _image(fig, axes[0], steps, G, order, "grad norm per class")
    _image(fig, axes[1], steps, Q, order, qtitle)
    axes[2].plot(steps, corr, color="k")
    axes[2].axhline(0.0, color="0.6", lw=0.5, ls=":")
    axes[2].set_ylim(-1.05, 1.05)
    axes[2].set_title(f"corr(log grad, log {qname})")
    axes[2].set_xlabel("step")
    for ax, i in zip(axes[3:], chosen):
        _scatter(
            ax,
            np.asarray(Q[i], dtype=np.float64),
            np.asarray(G[i], dtype=np.float64),
            groups,
            int(steps[i]),
            qname,
        )
    for ax in axes[3 + len(chosen) :]:
        ax.axis("off")


def fig_grad_hess(run: Run, *, steps: Sequence[int] | None = None, n_groups: int = 10) -> Figure:
    """Per-class gradient norms and Hessian traces over time, and how they align.

    Row 1: ``grad_norm`` and ``hess_trace`` as images (classes by frequency x steps,
    log color scale), their log-log correlation over classes (``grad_hess_corr`` if
    stored, else computed from the stored arrays), and log-log scatters of grad norm vs
    trace at ``steps`` (default: first, middle, last recorded), colored by frequency
    group, with a slope-1 line. When the run has ``hess_eig``, row 2 is the same with
    the top eigenvalue of each block (``hess_eig[..., 0]``, at its curvature steps, the
    scatters at the curvature steps nearest to ``steps``).

    Linear runs hold grad_norm/hess_trace in the main table (``step``); deep runs in the
    curvature table (``curvature_step``); both work.
    """
    _require(
        run,
        ("grad_norm", "hess_trace", "class_counts"),
        "the grad-hess figure",
        "; linear runs record them, deep runs need --curvature-every",
    )
    counts = run.class_counts
    order, groups = _frequency_order(counts), run.groups(n_groups)
    x = run.steps_of("grad_norm")
    G, H = np.asarray(run["grad_norm"]), np.asarray(run["hess_trace"])
    same = "grad_hess_corr" in run and run.table_of("grad_hess_corr") == run.table_of("grad_norm")
    corr = np.asarray(run["grad_hess_corr"]) if same else _log_corr(G, H)
    chosen = _pick_steps(x, steps, "grad_norm")
    rows = [(x, G, H, corr, chosen, "trace", "Hessian trace per class")]
    if "hess_eig" in run:
        xe, E = run.steps_of("hess_eig"), np.asarray(run["hess_eig"])[..., 0]
        keep = np.ones(len(xe), dtype=bool)
        if run.table_of("hess_eig") == run.table_of("grad_norm"):
            Ge = G
        else:  # linear runs: the grad_norm rows at the curvature steps
            pos = np.clip(np.searchsorted(x, xe), 0, len(x) - 1)
            keep = x[pos] == xe
            if not keep.any():
                raise PlotError(f"{run.path}: no curvature step ({xe.tolist()[:8]}) has a grad_norm row")
            xe, E, Ge = xe[keep], E[keep], G[pos[keep]]
        same_e = "grad_eig_corr" in run and run.table_of("grad_eig_corr") == run.table_of("hess_eig")
        corr_e = np.asarray(run["grad_eig_corr"])[keep] if same_e else _log_corr(Ge, E)
        chosen_e = list(dict.fromkeys(int(np.argmin(np.abs(xe - x[i]))) for i in chosen))
        rows.append((xe, Ge, E, corr_e, chosen_e, "top eig", "top eigenvalue per block"))
    ncols = 3 + max(len(r[4]) for r in rows)
    with matplotlib.rc_context(style.paper(ncols, len(rows), width=1.7 * ncols, max_panel_width=1.7)):
        fig = Figure()
        gs = fig.add_gridspec(len(rows), ncols)
        for i, (xs, Gs, Qs, cs, ch, qname, qtitle) in enumerate(rows):
            axes = [fig.add_subplot(gs[i, j]) for j in range(ncols)]
            _grad_curv_row(fig, axes, xs, Gs, Qs, cs, ch, order, groups, qname, qtitle)
        fig.suptitle(f"{run.label}: per-class gradient norm and curvature")
    return fig


# -- block spectra (hti spectrum) -------------------------------------------------------
def fig_spectrum(
    run: Run, *, steps: Sequence[int] | None = None, classes: Sequence[int] | None = None
) -> Figure:
    """Spectra of the class blocks stored by ``hti spectrum`` (``spectra/``).

    One panel per class (default: every stored class) with the density of log10(lambda)
    at each chosen step (default: all; lines dark = early to light = late); then, with a
    dense spectrum (``eigenvalues``), the sorted eigenvalues of each class at the last
    chosen step (log y), or with a Lanczos one (``top``/``bottom``), its largest and
    smallest eigenvalues.
    """
    if "spectra" not in run:
        if run.engine != "linsoftmax":
            raise PlotError(
                f"{run.path} has no spectra/: `hti spectrum` computes them for linear runs "
                f"(hti linear), and this is a {run.engine or 'non-linear'} run"
            )
        raise PlotError(
            f"{run.path} has no spectra/; run `hti spectrum {run.path} --at STEPS` first "
            "(the steps saved with --save-params-at)"
        )
    sp = run["spectra"]
    S, C = np.asarray(sp["step"]), np.asarray(sp["classes"])
    si = _pick_steps(S, steps, "spectra/") if steps is not None else list(range(len(S)))
    if classes is None:
        ci = list(range(len(C)))
    else:
        missing = [k for k in classes if k not in C]
        if missing:
            raise PlotError(f"spectra/ holds classes {C.tolist()}; got {missing}")
        ci = [int(np.flatnonzero(C == k)[0]) for k in classes]
    extra = "eigenvalues" in sp or "top" in sp
    n = len(ci) + extra
    ncols = min(n, 4)
    counts = run.class_counts
    with matplotlib.rc_context(style.paper(ncols, math.ceil(n / ncols))):
        fig = Figure()
        axes = _grid_axes(fig, n, ncols)
        colors = style.step_colors(len(si))
        for ax, j in zip(axes, ci):
            for color, i in zip(colors, si):
                ax.plot(sp["density_grid"], sp["density"][i, j], color=color, label=f"step {S[i]}")
            k = int(C[j])
            ax.set_title(f"class {k}" + (f" ($n_k$ = {counts[k]})" if counts is not None else ""))
            ax.set_xlabel(r"$\log_{10} \lambda$")
            ax.set_ylabel("density")
        axes[0].legend()
        if extra:
            ax, last = axes[-1], si[-1]
            ccolors = style.group_colors(len(ci))
            if "eigenvalues" in sp:
                for color, j in zip(ccolors, ci):
                    ev = np.sort(np.asarray(sp["eigenvalues"][last, j]))[::-1]
                    ax.plot(
                        np.arange(1, ev.size + 1),
                        np.where(ev > 0, ev, np.nan),
                        color=color,
                        label=f"class {C[j]}",
                    )
                zeros = sp.get("attrs", {}).get("zero_eigenvalues", 0)
                ax.set_title(f"eigenvalues, step {S[last]}" + (f" (+{zeros} zeros)" if zeros else ""))
                ax.set_xlabel("index")
            else:
                for color, j in zip(ccolors, ci):
                    top = np.sort(np.asarray(sp["top"][last, j]))[::-1]
                    bottom = np.sort(np.asarray(sp["bottom"][last, j]))
                    ax.plot(
                        np.arange(1, top.size + 1),
                        np.where(top > 0, top, np.nan),
                        color=color,
                        marker=".",
                        label=f"class {C[j]}",
                    )
                    ax.plot(
                        -np.arange(1, bottom.size + 1),
                        np.where(bottom > 0, bottom, np.nan),
                        color=color,
                        marker=".",
                        ls=":",
                    )
                ax.set_title(f"extremes, step {S[last]}")
                ax.set_xlabel("index (largest > 0, smallest < 0)")
            ax.set_yscale("log")
            ax.set_ylabel(r"$\lambda$")
            ax.legend()
    return fig


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
        axes = _grid_axes(fig, len(panels), len(panels))
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
        axes = dict(zip(optims, _grid_axes(fig, len(optims), len(optims))))
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
                    _log_ticks(ax.yaxis, min(finite), max(finite + initial))
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
