"""Loss, (log-)softmax and per-class loss/accuracy against independent references.

References: scipy.special in float64, explicit Python loops over samples (math.fsum),
and torch.nn.functional.cross_entropy for the class-weighted loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
from helpers import tiny_problem

from hti.backend import to_numpy
from hti.linsoftmax.loss import (
    class_accuracies,
    class_losses,
    class_means,
    log_softmax,
    logits,
    loss,
    sample_coefficients,
    sample_losses,
    softmax,
)
from hti.linsoftmax.stats import class_weights

INPUTS = ("uniform", "gaussian", "orthogonal")
SCALES = (1.0, 30.0)  # 30: nearly saturated probabilities
EPS64 = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------------------
# references


def loop_logits(X, W, b):
    """z_ik = sum_j x_ij w_kj + b_k, one sample and one class at a time (math.fsum)."""
    n, c = X.shape[0], W.shape[0]
    return [[math.fsum([*(X[i] * W[k]), b[k]]) for k in range(c)] for i in range(n)]


def loop_sample_losses(X, y, W, b):
    """l_i = max_k z_ik + log sum_k exp(z_ik - max) - z_{i, y_i}, sample by sample."""
    out = []
    for i, z in enumerate(loop_logits(X, W, b)):
        top = max(z)
        out.append(top + math.log(math.fsum(math.exp(zk - top) for zk in z)) - z[y[i]])
    return out


def loop_class_stats(X, y, W, b, c):
    """(mean loss, accuracy) of every class with a Python loop; argmax ties go low."""
    losses = loop_sample_losses(X, y, W, b)
    Z = loop_logits(X, W, b)
    per_loss = [[] for _ in range(c)]
    per_hit = [[] for _ in range(c)]
    for i, z in enumerate(Z):
        pred = max(range(c), key=lambda k: z[k])  # max returns the first maximal k
        per_loss[y[i]].append(losses[i])
        per_hit[y[i]].append(1.0 if pred == y[i] else 0.0)
    mean = lambda v: math.fsum(v) / len(v) if v else math.nan  # noqa: E731
    return np.array([mean(v) for v in per_loss]), np.array([mean(v) for v in per_hit])


def host(*arrays):
    return tuple(to_numpy(a) for a in arrays)


# ---------------------------------------------------------------------------------------
# stable (log-)softmax

HUGE = [
    [1e4, -1e4, 0.0],
    [-1e4, -1e4, -1e4],
    [1e4, 1e4, 1e4],
    [-1e4, 1e4, 1e4],
    [0.0, 0.0, 0.0],
]
# exact log-softmax of the rows above (terms below e^-1e4 vanish in any float format)
HUGE_LOG_SOFTMAX = [
    [0.0, -2e4, -1e4],
    [-math.log(3)] * 3,
    [-math.log(3)] * 3,
    [-2e4 - math.log(2), -math.log(2), -math.log(2)],
    [-math.log(3)] * 3,
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_and_softmax_are_stable_for_huge_logits(xp, dtype):
    Z = xp.asarray(HUGE, dtype=dtype)
    Z_before = Z.copy()
    L, P = log_softmax(Z), softmax(Z)
    assert L.dtype == Z.dtype and P.dtype == Z.dtype
    assert bool(xp.all(xp.isfinite(L))) and bool(xp.all(xp.isfinite(P)))
    assert bool(xp.all(Z == Z_before))  # inputs untouched
    eps = np.finfo(dtype).eps
    # rows sum to 1 up to a few roundings of a 3-term sum and a division
    np.testing.assert_allclose(to_numpy(P.sum(axis=1)), 1.0, rtol=0, atol=4 * eps)
    # |log p| is at most 2e4, so its representation alone carries 2e4 * eps absolute
    # error; the small entries (log 2, log 3) are accurate to a few eps
    np.testing.assert_allclose(to_numpy(L), HUGE_LOG_SOFTMAX, rtol=4 * eps, atol=4 * eps)
    np.testing.assert_allclose(to_numpy(P), np.exp(HUGE_LOG_SOFTMAX), rtol=4 * eps, atol=0)


@pytest.mark.parametrize("scale", SCALES)
def test_log_softmax_and_softmax_match_scipy(xp, rng, scale):
    Z = rng.standard_normal((20, 7)) * scale
    # float64, O(c) roundings per entry: 1e-13 relative; atol for the log of tiny p
    # whose absolute error is ~eps * max|z|
    np.testing.assert_allclose(
        to_numpy(log_softmax(xp.asarray(Z))),
        scipy.special.log_softmax(Z, axis=1),
        rtol=1e-13,
        atol=10 * EPS64 * np.abs(Z).max(),
    )
    np.testing.assert_allclose(
        to_numpy(softmax(xp.asarray(Z))), scipy.special.softmax(Z, axis=1), rtol=1e-12, atol=0
    )


# ---------------------------------------------------------------------------------------
# loss and per-class statistics vs loops


@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("scale", SCALES)
def test_loss_and_class_stats_match_python_loop(xp, inputs, scale):
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs, scale=scale)
    Xh, yh, ch, Wh, bh = host(X, y, counts, W, b)
    ref_losses = loop_sample_losses(Xh, yh, Wh, bh)
    ref_class_loss, ref_class_acc = loop_class_stats(Xh, yh, Wh, bh, ch.size)

    # Both sides round each logit once per term of a 33-term dot product (BLAS vs
    # fsum) and logsumexp adds O(c) roundings: relative differences ~1e-15 of the
    # largest |z| (<= ~100 at scale 30), hence rtol 1e-12 with an atol for samples
    # whose loss is nearly zero (saturated, correctly classified).
    atol = 1e-13 * max(1.0, np.abs(to_numpy(logits(X, W, b))).max())
    np.testing.assert_allclose(to_numpy(sample_losses(logits(X, W, b), y)), ref_losses, rtol=1e-12, atol=atol)
    np.testing.assert_allclose(float(loss(X, y, W, b)), math.fsum(ref_losses) / len(ref_losses), rtol=1e-12, atol=atol)
    np.testing.assert_allclose(to_numpy(class_losses(X, y, W, b, counts)), ref_class_loss, rtol=1e-12, atol=atol)
    # accuracies are exact fractions: a flipped argmax would change them by >= 1/8
    np.testing.assert_array_equal(to_numpy(class_accuracies(X, y, W, b, counts)), ref_class_acc)


def test_class_stats_are_float64_and_loss_keeps_dtype(xp):
    X, y, counts, W, b = tiny_problem(xp, m=2)
    X32, W32, b32 = (a.astype(xp.float32) for a in (X, W, b))
    assert loss(X32, y, W32, b32).dtype == xp.float32
    assert class_losses(X32, y, W32, b32, counts).dtype == xp.float64
    assert class_accuracies(X32, y, W32, b32, counts).dtype == xp.float64


# ---------------------------------------------------------------------------------------
# class-weighted loss vs torch


@pytest.mark.parametrize("reweight", ["inv", "inv-sqrt"])
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("scale", SCALES)
def test_weighted_loss_matches_torch_cross_entropy(xp, reweight, inputs, scale):
    torch = pytest.importorskip("torch")
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs, scale=scale)
    weights = class_weights(counts, reweight)
    coef = sample_coefficients(y, weights, counts.shape[0])
    Xh, yh, Wh, bh, wh = host(X, y, W, b, weights)
    Zt = torch.tensor(Xh) @ torch.tensor(Wh).T + torch.tensor(bh)
    # torch's weighted mean is sum_i w_{y_i} l_i / sum_i w_{y_i}, which is sum_i s_i l_i
    ref = torch.nn.functional.cross_entropy(Zt, torch.tensor(yh), weight=torch.tensor(wh), reduction="mean")
    # float64 both sides, different summation orders of 24 positive terms: ~1e-15
    np.testing.assert_allclose(float(loss(X, y, W, b, coef)), ref.item(), rtol=1e-12)


def test_reweighting_coefficients_values(xp):
    _, y, counts, *_ = tiny_problem(xp, m=3)
    yh, ch = host(y, counts)
    n = ch.sum()
    for reweight, w_of_pi in (("inv", lambda pi: 1 / pi), ("inv-sqrt", lambda pi: 1 / np.sqrt(pi))):
        w = w_of_pi(ch / n)[yh]
        coef = to_numpy(sample_coefficients(y, class_weights(counts, reweight), ch.size))
        # a handful of roundings per entry
        np.testing.assert_allclose(coef, w / w.sum(), rtol=1e-14)
        np.testing.assert_allclose(coef.sum(), 1.0, rtol=1e-14)
    # 1/pi gives every class the same total weight: sum of s_i over class k is 1/c
    coef = to_numpy(sample_coefficients(y, class_weights(counts, "inv"), ch.size))
    np.testing.assert_allclose(np.bincount(yh, weights=coef), 1 / ch.size, rtol=1e-14)
    assert sample_coefficients(y, None, ch.size) is None


def test_sample_coefficients_rejects_wrong_weight_shape(xp):
    _, y, counts, *_ = tiny_problem(xp, m=2)
    with pytest.raises(ValueError, match=r"class_weights must have shape \(3,\); got \(4,\)"):
        sample_coefficients(y, xp.ones(4), 3)


def test_uniform_coefficients_equal_the_mean(xp):
    X, y, counts, W, b = tiny_problem(xp, m=3, scale=5.0)
    coef = xp.full(y.shape[0], 1.0 / y.shape[0])
    # sum of 24 terms in two orders: ~24 eps relative
    np.testing.assert_allclose(float(loss(X, y, W, b, coef)), float(loss(X, y, W, b)), rtol=1e-13)


# ---------------------------------------------------------------------------------------
# edge cases of the per-class parts


def test_class_without_samples_gets_nan(xp):
    X, y, counts, W, b = tiny_problem(xp, m=2)  # classes 0, 1, 2
    keep = to_numpy(y) != 2
    X, y = X[xp.asarray(keep)], y[xp.asarray(keep)]
    counts = xp.asarray(np.bincount(to_numpy(y), minlength=3))
    cl = to_numpy(class_losses(X, y, W, b, counts))
    ca = to_numpy(class_accuracies(X, y, W, b, counts))
    assert np.isnan(cl[2]) and np.isnan(ca[2])
    assert np.all(np.isfinite(cl[:2])) and np.all(np.isfinite(ca[:2]))
    # class 0 and 1 still match the loop reference (rtol: see the loop test)
    ref_loss, ref_acc = loop_class_stats(*host(X, y, W, b), 3)
    np.testing.assert_allclose(cl[:2], ref_loss[:2], rtol=1e-12)
    np.testing.assert_array_equal(ca[:2], ref_acc[:2])


def test_class_means_doc_example_and_nan(xp):
    values = xp.asarray([1.0, 3.0, 5.0, 7.0])
    y = xp.asarray([0, 0, 2, 2])
    out = to_numpy(class_means(values, y, xp.asarray([2, 0, 2])))
    assert out[0] == 2.0 and out[2] == 6.0 and np.isnan(out[1])


def test_accuracy_ties_go_to_the_lower_class_index(xp):
    X, y, counts, W, b = tiny_problem(xp, m=2)  # 4 samples of class 0, 2 of 1, 2 of 2
    zeros_W = xp.zeros_like(W)
    # all logits equal: every sample is predicted as class 0
    acc = to_numpy(class_accuracies(X, y, zeros_W, xp.zeros_like(b), counts))
    np.testing.assert_array_equal(acc, [1.0, 0.0, 0.0])
    # classes 1 and 2 tie above class 0: every sample is predicted as class 1
    acc = to_numpy(class_accuracies(X, y, zeros_W, xp.asarray([-1.0, 5.0, 5.0]), counts))
    np.testing.assert_array_equal(acc, [0.0, 1.0, 0.0])
