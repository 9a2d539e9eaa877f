"""Figures of curvature: per-class gradient norms vs Hessian traces (the paper's Figures 5, 6), block spectra."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from hti.analysis import style
from hti.analysis.loading import Run
from hti.analysis.plotting import (
    PlotError,
    frequency_order,
    grid_axes,
    log_ticks,
    require,
)


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
        log_ticks(bar.ax.yaxis, norm.vmin, norm.vmax)
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
        log_ticks(ax.xaxis, lo, hi)
        log_ticks(ax.yaxis, min(g[ok].min(), lo * shift), max(g[ok].max(), hi * shift))
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
    require(
        run,
        ("grad_norm", "hess_trace", "class_counts"),
        "the grad-hess figure",
        "; linear runs record them, deep runs need --curvature-every",
    )
    counts = run.class_counts
    order, groups = frequency_order(counts), run.groups(n_groups)
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
        axes = grid_axes(fig, n, ncols)
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


