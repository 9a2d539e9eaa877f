"""Frequency groups: classes cut into groups of about equal sample mass.

The paper plots the loss of "10% of the samples, from the most to the least frequent
classes". :func:`frequency_groups` makes that precise:

1. Sort classes by count, most frequent first, ties by class index.
2. With N samples in all and G groups, a class whose samples occupy the interval
   [C, C + n_k) of the sorted order (C = samples of the classes before it) goes to group
   floor(G (C + n_k / 2) / N), the group holding the midpoint of its interval.
3. Groups that receive no class are dropped.

So every class is in exactly one group, groups are contiguous in the sorted order, and
group g holds the classes whose sample midpoints fall in [g N/G, (g+1) N/G). A class
heavier than a group's share (at m = 8 class 0 holds 12.5% of the samples) takes its own
group and no group is left empty; where a class spans more than two shares, fewer than
G groups come back (the paper's helper left such deciles empty instead).
"""

from __future__ import annotations

import numpy as np


def _counts(class_counts) -> np.ndarray:
    counts = np.asarray(class_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.number):
        raise ValueError(f"class_counts must be a non-empty 1-d array of counts; got shape {counts.shape}")
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("class_counts must be non-negative with a positive total")
    return counts


def frequency_groups(class_counts, n_groups: int = 10) -> list[np.ndarray]:
    """Class indices of each group, most to least frequent (see the module docstring).

    >>> [g.tolist() for g in frequency_groups([8, 4, 4, 2, 2, 2, 2], 4)]
    [[0], [1], [2, 3], [4, 5, 6]]
    """
    counts = _counts(class_counts)
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer; got {n_groups!r}")
    order = np.lexsort((np.arange(counts.size), -counts))  # by count desc, then index
    sorted_counts = counts[order].astype(np.float64)
    before = np.cumsum(sorted_counts) - sorted_counts
    total = sorted_counts.sum()
    group = np.minimum((n_groups * (before + sorted_counts / 2) / total).astype(np.int64), n_groups - 1)
    return [order[group == g] for g in range(n_groups) if (group == g).any()]


def construction_groups(m: int) -> list[np.ndarray]:
    """The synthetic data's own groups: group j holds classes 2^j - 1 .. 2^(j+1) - 2.

    >>> [g.tolist() for g in construction_groups(3)]
    [[0], [1, 2], [3, 4, 5, 6]]
    """
    return [np.arange(2**j - 1, 2 ** (j + 1) - 1) for j in range(m)]


def group_loss(class_loss, class_counts, groups: list[np.ndarray]) -> np.ndarray:
    """Sample-weighted mean loss of each group: sum_k n_k l_k / sum_k n_k over the group.

    The sample-weighted mean of the group losses is the overall loss. Classes without
    samples (whose loss is NaN) are left out; a group of such classes only is NaN.
    Shapes: class_loss (T, c) or (c,), class_counts (c,) -> (T, G) or (G,).
    """
    counts = _counts(class_counts).astype(np.float64)
    L = np.asarray(class_loss, dtype=np.float64)
    if L.shape[-1] != counts.size:
        raise ValueError(f"class_loss must end in c = {counts.size} classes; got shape {L.shape}")
    cols = []
    for g in groups:
        g = g[counts[g] > 0]  # classes without samples (NaN loss) carry no weight
        w = counts[g]
        cols.append(L[..., g] @ w / w.sum() if w.sum() > 0 else np.full(L.shape[:-1], np.nan))
    return np.stack(cols, axis=-1)
