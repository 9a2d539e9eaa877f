"""The fused pass ``evaluate`` against the separate engine functions, and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_problem

from hti.backend import to_numpy
from hti.linsoftmax.grad import class_gradient_norms, gradient
from hti.linsoftmax.hessian import hessian_block_traces
from hti.linsoftmax.loss import class_accuracies, class_losses, logits, loss, sample_coefficients, softmax
from hti.linsoftmax.stats import REWEIGHT, class_weights, evaluate, is_finite, make_problem

INPUTS = ("uniform", "gaussian", "orthogonal")
SCALES = (1.0, 30.0)  # 30: nearly saturated probabilities
EPS64 = np.finfo(np.float64).eps

# evaluate() and the separate functions do the same float64 arithmetic in different
# orders (P by a multiplication by 1/total instead of a division, the weighted residual
# as ((P - Y)/n) * (n s) instead of (P - Y) s, ...): a few eps per entry, amplified by
# the cancellation in the 24-term sums R^T X, hence rtol 1e-10 with an absolute floor
# of 1e-13 of the largest reference entry for sums that cancel to ~0.
RTOL = 1e-10


def assert_close(actual, desired, rtol=RTOL, atol_rel=1e-13):
    desired = to_numpy(desired)
    atol = atol_rel * np.nanmax(np.abs(desired)) if desired.size else 0.0
    np.testing.assert_allclose(to_numpy(actual), desired, rtol=rtol, atol=atol)


def separate(X, y, counts, W, b, reweight):
    """Every field of an Evaluation, from the separate engine functions."""
    coef = sample_coefficients(y, class_weights(counts, reweight), counts.shape[0])
    return dict(
        loss=loss(X, y, W, b),
        train_loss=loss(X, y, W, b, coef),
        grads=gradient(X, y, W, b, coef),  # of the loss being trained
        class_loss=class_losses(X, y, W, b, counts),
        class_acc=class_accuracies(X, y, W, b, counts),
        grad_norm=class_gradient_norms(X, y, W, b),  # of the unweighted loss
        hess_trace=hessian_block_traces(X, softmax(logits(X, W, b))),  # unweighted
    )


@pytest.mark.parametrize("reweight", REWEIGHT)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("scale", SCALES)
def test_evaluate_matches_separate_functions(xp, reweight, inputs, scale):
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs, scale=scale)
    ev = evaluate(make_problem(X, y, counts, reweight), W, b)
    ref = separate(X, y, counts, W, b, reweight)
    assert_close(ev.loss, ref["loss"])
    assert_close(ev.train_loss, ref["train_loss"])
    assert_close(ev.grads[0], ref["grads"][0])
    assert_close(ev.grads[1], ref["grads"][1])
    assert_close(ev.class_loss, ref["class_loss"])
    np.testing.assert_array_equal(to_numpy(ev.class_acc), to_numpy(ref["class_acc"]))  # exact fractions
    assert_close(ev.grad_norm, ref["grad_norm"])
    assert_close(ev.hess_trace, ref["hess_trace"])
    if reweight == "none":
        assert float(ev.train_loss) == float(ev.loss)
    else:  # the two losses differ by far more than RTOL, so both checks above bite
        assert abs(float(ev.train_loss) - float(ev.loss)) > 1e-6 * abs(float(ev.loss))


def test_weighted_grad_norm_is_not_the_training_gradient_norm(xp):
    """With reweighting, grad_norm describes the unweighted loss, not the trained one."""
    X, y, counts, W, b = tiny_problem(xp, m=3)
    ev = evaluate(make_problem(X, y, counts, "inv"), W, b)
    trained = np.linalg.norm(to_numpy(ev.grads[0]), axis=1)
    assert not np.allclose(to_numpy(ev.grad_norm), trained, rtol=1e-3)


@pytest.mark.parametrize("reweight", REWEIGHT)
def test_without_stats_gives_none_and_identical_grads(xp, reweight):
    X, y, counts, W, b = tiny_problem(xp, m=3, scale=5.0)
    problem = make_problem(X, y, counts, reweight)
    full = evaluate(problem, W, b)
    lean = evaluate(problem, W, b, with_stats=False)
    assert lean.class_loss is None and lean.class_acc is None
    assert lean.grad_norm is None and lean.hess_trace is None
    assert float(lean.loss) == float(full.loss)
    assert float(lean.train_loss) == float(full.train_loss)
    if reweight == "none":  # same operations in the same order: bit for bit
        np.testing.assert_array_equal(to_numpy(lean.grads[0]), to_numpy(full.grads[0]))
        np.testing.assert_array_equal(to_numpy(lean.grads[1]), to_numpy(full.grads[1]))
    else:  # with stats, the weighted residual is ((P - Y)/n) * (n s): a few eps apart
        assert_close(lean.grads[0], full.grads[0], rtol=1e-13)
        assert_close(lean.grads[1], full.grads[1], rtol=1e-13)


@pytest.mark.parametrize("reweight", REWEIGHT)
@pytest.mark.parametrize("inputs", INPUTS)
def test_float32_agrees_with_float64(xp, reweight, inputs):
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs)
    ev64 = evaluate(make_problem(X, y, counts, reweight), W, b)
    X32, W32, b32 = (a.astype(xp.float32) for a in (X, W, b))
    ev32 = evaluate(make_problem(X32, y, counts, reweight), W32, b32)
    assert ev32.grads[0].dtype == xp.float32 and ev32.grads[1].dtype == xp.float32
    assert ev32.loss.dtype == xp.float32 and ev32.hess_trace.dtype == xp.float32
    assert ev32.class_loss.dtype == xp.float64  # accumulated in float64
    # float32 unit roundoff is 6e-8; rounding the inputs and the d = 32 term logits,
    # exp/log, and the 24-term gradient sums accumulate ~sqrt(32 * 24) * 6e-8 ~ 2e-6
    # relative on entries of ordinary size: rtol 1e-5, with a floor of 1e-5 of the
    # largest entry for gradient sums that cancel (correlated uniform inputs)
    for name in ("loss", "train_loss", "class_loss", "grad_norm", "hess_trace"):
        assert_close(getattr(ev32, name), getattr(ev64, name), rtol=1e-5, atol_rel=1e-5)
    for g32, g64 in zip(ev32.grads, ev64.grads):
        assert_close(g32, g64, rtol=1e-5, atol_rel=1e-5)
    np.testing.assert_array_equal(to_numpy(ev32.class_acc), to_numpy(ev64.class_acc))


@pytest.mark.parametrize("reweight", REWEIGHT)
def test_evaluate_does_not_modify_its_inputs(xp, reweight):
    X, y, counts, W, b = tiny_problem(xp, m=3, scale=5.0)
    problem = make_problem(X, y, counts, reweight)
    before = [a.copy() for a in (X, y, counts, W, b, problem.sqnorm)]
    coef_before = None if problem.coef is None else problem.coef.copy()
    evaluate(problem, W, b)
    evaluate(problem, W, b, with_stats=False)
    for a, a0 in zip((X, y, counts, W, b, problem.sqnorm), before):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(a0))
    if coef_before is not None:
        np.testing.assert_array_equal(to_numpy(problem.coef), to_numpy(coef_before))


# ---------------------------------------------------------------------------------------
# make_problem and class_weights


def test_make_problem_fields(xp):
    X, y, counts, W, b = tiny_problem(xp, m=3)
    p = make_problem(X, y, counts)
    assert p.coef is None
    # einsum vs numpy: 32-term sums of squares, a few eps
    np.testing.assert_allclose(to_numpy(p.sqnorm), (to_numpy(X) ** 2).sum(axis=1), rtol=1e-14)
    p32 = make_problem(X.astype(xp.float32), y, counts, "inv")
    assert p32.coef.dtype == xp.float32 and p32.sqnorm.dtype == xp.float32


def test_make_problem_rejects_mismatched_shapes(xp):
    X, y, counts, W, b = tiny_problem(xp, m=3)  # n = 24, d = 32
    with pytest.raises(ValueError, match=r"X must be \(n, d\) and y \(n,\); got X \(24, 32\), y \(23,\)"):
        make_problem(X, y[:-1], counts)
    with pytest.raises(ValueError, match=r"X must be \(n, d\) and y \(n,\); got X \(768,\)"):
        make_problem(X.ravel(), y, counts)
    with pytest.raises(ValueError, match=r"X must be \(n, d\) and y \(n,\); got X \(24, 32\), y \(24, 1\)"):
        make_problem(X, y[:, None], counts)


def test_make_problem_rejects_counts_or_labels_that_do_not_match(xp):
    X, y, counts, W, b = tiny_problem(xp, m=3)
    bad = counts.copy()
    bad[0] += 1
    with pytest.raises(ValueError, match=r"class_counts must be the number of samples of each class in y"):
        make_problem(X, y, bad)
    with pytest.raises(ValueError, match=r"labels must be in \[0, c = 7\); got labels in \[0, 7\]"):
        make_problem(X, y + (y == 6), counts)


def test_make_problem_rejects_unknown_reweight(xp):
    X, y, counts, W, b = tiny_problem(xp, m=2)
    with pytest.raises(ValueError, match=r"reweight must be one of .*; got 'sqrt'"):
        make_problem(X, y, counts, "sqrt")


def test_class_weights_values(xp):
    counts = xp.asarray([8, 4, 4, 2, 2, 2, 2])  # m = 3: n = 24
    pi = np.array([8, 4, 4, 2, 2, 2, 2]) / 24
    assert class_weights(counts, "none") is None
    w = class_weights(counts, "inv")
    assert w.dtype == xp.float64
    # one division (and one sqrt) per entry: a couple of eps
    np.testing.assert_allclose(to_numpy(w), [3, 6, 6, 12, 12, 12, 12], rtol=4 * EPS64)
    np.testing.assert_allclose(to_numpy(class_weights(counts, "inv-sqrt")), 1 / np.sqrt(pi), rtol=4 * EPS64)


def test_is_finite(xp):
    assert is_finite(xp.asarray(1.0))
    assert not is_finite(xp.asarray(np.inf))
    assert not is_finite(xp.asarray(np.nan))
