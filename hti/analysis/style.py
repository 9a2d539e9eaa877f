"""Figure style as plain rcParams dicts (tueplots-style), and the figures' color tables.

Nothing here changes matplotlib's global state: apply a style with
``with matplotlib.rc_context(paper(ncols=4)): ...``.

>>> rc = paper(ncols=4, nrows=2)
>>> rc["figure.figsize"][0], rc["axes.grid"]
(6.75, False)
>>> len(group_colors(10))
10
"""

from __future__ import annotations

import numpy as np

__all__ = ["paper", "group_colors", "optimizer_colors", "step_colors", "TEXT_WIDTH"]

TEXT_WIDTH = 6.75  # inches: the full text width of a two-column ML paper (ICML)


def paper(
    ncols: int = 1,
    nrows: int = 1,
    *,
    width: float = TEXT_WIDTH,
    aspect: float = 0.8,
    fontsize: float = 8.0,
    max_panel_width: float = 2.2,
) -> dict:
    """rcParams for a figure of ``nrows`` x ``ncols`` panels.

    The figure is ``width`` inches wide, or ``ncols * max_panel_width`` if narrower (a
    single panel does not stretch over a whole page); each row is ``aspect`` times a
    panel's width tall. Small fonts, thin lines, no grid, no top/right spines,
    constrained layout.
    """
    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be >= 1; got {ncols}, {nrows}")
    fig_width = min(float(width), ncols * float(max_panel_width))
    panel = fig_width / ncols
    small = fontsize - 1
    return {
        "figure.figsize": (fig_width, max(1.2, nrows * panel * aspect + 0.3)),
        "figure.dpi": 150,
        "figure.constrained_layout.use": True,
        "figure.constrained_layout.h_pad": 0.02,
        "figure.constrained_layout.w_pad": 0.02,
        "savefig.dpi": 300,
        "font.size": fontsize,
        "axes.titlesize": fontsize,
        "axes.labelsize": small,
        "xtick.labelsize": small,
        "ytick.labelsize": small,
        "legend.fontsize": small,
        "legend.frameon": False,
        "legend.handlelength": 1.5,
        "axes.grid": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.linewidth": 0.5,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.0,
        "xtick.major.width": 0.5,
        "ytick.major.width": 0.5,
        "xtick.minor.width": 0.4,
        "ytick.minor.width": 0.4,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "xtick.minor.size": 1.5,
        "ytick.minor.size": 1.5,
        "image.cmap": "viridis",
        "pdf.fonttype": 42,  # TrueType in PDFs (editable text)
        "ps.fonttype": 42,
    }


def group_colors(n: int, cmap: str = "viridis") -> list[tuple[float, float, float, float]]:
    """``n`` RGBA colors from dark (group 0, the most frequent) to light (the least).

    ``viridis`` (or any colormap whose lightness grows along it) is sampled on [0, 0.9],
    leaving out its palest end.
    """
    from matplotlib import colormaps  # noqa: PLC0415

    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    cm = colormaps[cmap]
    return [tuple(float(v) for v in cm(x)) for x in np.linspace(0.0, 0.9, n)]


def step_colors(n: int, cmap: str = "plasma") -> list[tuple[float, float, float, float]]:
    """``n`` colors for successive steps (early = dark, late = light)."""
    return group_colors(n, cmap)


_BASE = {  # optimizer -> (color with momentum, color without)
    "gd": ("#1f77b4", "#8fbbd9"),
    "adam": ("#d62728", "#ea9393"),
    "normgd": ("#2ca02c", "#95cf95"),
    "sign": ("#ff7f0e", "#ffbf86"),
    "adamw": ("#9467bd", "#c9b3de"),
}


def optimizer_colors() -> dict[str, str]:
    """Label (``GD+m``, ``Adam-m``, ...) -> color: one hue per optimizer, lighter without
    momentum. Stable across figures.

    >>> optimizer_colors()["Adam+m"]
    '#d62728'
    """
    from hti.analysis.loading import optimizer_label  # noqa: PLC0415

    out = {}
    for optim, (with_m, without_m) in _BASE.items():
        out[optimizer_label(optim, True)] = with_m
        out[optimizer_label(optim, False)] = without_m
    return out
