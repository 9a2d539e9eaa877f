"""Frequency groups: the boundary rule, its degenerate cases, and the group-loss identity."""

from __future__ import annotations

import numpy as np
import pytest

from hti.analysis.groups import construction_groups, frequency_groups, group_loss
from hti.linsoftmax.data import class_counts


def _check_partition(counts, groups):
    counts = np.asarray(counts)
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(counts.size))  # every class exactly once
    order = np.lexsort((np.arange(counts.size), -counts))
    assert np.array_equal(flat, order)  # contiguous in frequency order, most frequent first
    assert all(g.size for g in groups)  # no empty group


@pytest.mark.parametrize("seed", range(5))
def test_random_counts_are_partitioned_by_the_midpoint_rule(seed):
    g = np.random.default_rng(seed)
    counts = g.zipf(1.5, size=300).clip(max=10_000)
    groups = frequency_groups(counts, 10)
    _check_partition(counts, groups)
    # Independent reference: walk the sorted classes, put each in the decile of its midpoint.
    expected, before, total = {}, 0, counts.sum()
    for k in sorted(range(counts.size), key=lambda k: (-counts[k], k)):
        expected.setdefault(min(int(10 * (before + counts[k] / 2) / total), 9), []).append(k)
        before += counts[k]
    assert [grp.tolist() for grp in groups] == [expected[d] for d in sorted(expected)]


def test_midpoint_rule_on_a_hand_example():
    # counts 8,4,4,2,2,2,2 (m = 3), N = 24, 4 shares of 6; sample midpoints 4, 10, 14, 17,
    # 19, 21, 23 fall in shares 0, 1, 2, 2, 3, 3, 3.
    groups = frequency_groups([8, 4, 4, 2, 2, 2, 2], 4)
    assert [g.tolist() for g in groups] == [[0], [1], [2, 3], [4, 5, 6]]


def test_a_class_heavier_than_a_share_gets_its_own_group_and_none_is_empty():
    counts = class_counts(8)  # class 0 holds 12.5% of the samples
    groups = frequency_groups(counts, 10)
    _check_partition(counts, groups)
    assert len(groups) == 10 and groups[0].tolist() == [0]
    shares = np.array([counts[g].sum() for g in groups]) / counts.sum()
    assert shares.max() <= 0.125 + 1e-12 and shares.min() > 0.05


def test_a_class_spanning_several_shares_gives_fewer_groups():
    counts = [70, 10, 10, 10]  # class 0 spans 7 deciles
    groups = frequency_groups(counts, 10)
    _check_partition(counts, groups)
    assert [g.tolist() for g in groups] == [[0], [1], [2], [3]]


def test_ties_are_broken_by_class_index_and_order_is_by_frequency():
    counts = [1, 5, 5, 1, 3]
    groups = frequency_groups(counts, 3)
    _check_partition(counts, groups)
    assert np.concatenate(groups).tolist() == [1, 2, 4, 0, 3]


def test_equal_counts_give_equal_groups():
    groups = frequency_groups(np.full(100, 7), 10)
    assert [g.size for g in groups] == [10] * 10


def test_more_groups_than_classes():
    groups = frequency_groups([3, 2, 1], 10)
    _check_partition([3, 2, 1], groups)
    assert len(groups) == 3


def test_construction_groups_match_the_data():
    m = 6
    counts = class_counts(m)
    groups = construction_groups(m)
    assert [g.size for g in groups] == [2**j for j in range(m)]
    assert all(np.all(counts[g] == 2 ** (m - j)) for j, g in enumerate(groups))


@pytest.mark.parametrize("n_groups", [1, 3, 10])
def test_sample_weighted_mean_of_group_losses_is_the_overall_loss(n_groups):
    counts = class_counts(7)
    g = np.random.default_rng(0)
    L = g.random((5, counts.size)) * 6  # (T, c) class losses
    groups = frequency_groups(counts, n_groups)
    G = group_loss(L, counts, groups)
    assert G.shape == (5, len(groups))
    mass = np.array([counts[gr].sum() for gr in groups])
    overall = L @ counts / counts.sum()
    np.testing.assert_allclose(G @ mass / mass.sum(), overall, rtol=1e-14)  # float64 sums


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="n_groups must be a positive integer; got 0"):
        frequency_groups([1, 2], 0)
    with pytest.raises(ValueError, match="non-empty 1-d array"):
        frequency_groups([], 3)
    with pytest.raises(ValueError, match="non-negative"):
        frequency_groups([-1, 2], 3)
    with pytest.raises(ValueError, match=r"class_loss must end in c = 3 classes; got shape \(2, 4\)"):
        group_loss(np.zeros((2, 4)), [1, 1, 1], [np.arange(3)])
