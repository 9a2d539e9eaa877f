"""The per-group summary printed at the end of a run.

Ten frequency groups of equal sample mass (see :mod:`hti.analysis.groups`), most to
least frequent, with their classes, share of samples, and loss at the first and last
recorded steps; then the overall loss the same way.
"""

from __future__ import annotations

import numpy as np

from hti.analysis.groups import frequency_groups, group_loss


def group_table(class_counts, class_loss_first, class_loss_last, n_groups: int = 10, weights=None) -> list[dict]:
    """One dict per group: classes (first, last index in frequency order), count, share, losses.

    Groups come from ``class_counts``; the losses are weighted by ``weights``, the targets
    each class loss is a mean over (default ``class_counts``; a deep run evaluated on its
    first ``eval_tokens`` targets stores them as ``eval_class_counts``).
    """
    counts = np.asarray(class_counts)
    weights = counts if weights is None else np.asarray(weights)
    groups = frequency_groups(counts, n_groups)
    first = group_loss(class_loss_first, weights, groups)
    last = group_loss(class_loss_last, weights, groups)
    total = counts.sum()
    rows = []
    for g, cls in enumerate(groups):
        rows.append(
            {
                "group": g,
                "classes": cls,
                "samples": int(counts[cls].sum()),
                "share": float(counts[cls].sum() / total),
                "initial": float(first[g]),
                "final": float(last[g]),
            }
        )
    return rows


def _class_range(cls: np.ndarray) -> str:
    lo, hi = int(cls.min()), int(cls.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def format_summary(class_counts, steps, class_loss, loss, n_groups: int = 10, weights=None) -> str:
    """A text table from a trajectory's step (T,), class_loss (T, c) and loss (T,);
    ``weights`` as in :func:`group_table`."""
    steps = np.asarray(steps)
    class_loss = np.asarray(class_loss)
    rows = group_table(class_counts, class_loss[0], class_loss[-1], n_groups, weights)
    head = f"{'group':>5}  {'classes':>11}  {'#classes':>8}  {'samples':>8}  {'loss @ ' + str(steps[0]):>12}  {'loss @ ' + str(steps[-1]):>12}"
    lines = [f"Loss by frequency group ({len(rows)} groups of about equal sample mass, most frequent first):", head]
    for r in rows:
        lines.append(
            f"{r['group']:>5}  {_class_range(r['classes']):>11}  {r['classes'].size:>8}  "
            f"{r['share']:>7.1%}  {r['initial']:>12.4f}  {r['final']:>12.4f}"
        )
    lines.append(f"{'all':>5}  {'':>11}  {len(class_loss[0]):>8}  {1:>7.0%}  {float(loss[0]):>12.4f}  {float(loss[-1]):>12.4f}")
    return "\n".join(lines)
