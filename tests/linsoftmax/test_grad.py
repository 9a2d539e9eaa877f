"""Gradient of the softmax-regression loss against finite differences and torch.func."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_problem

from hti.backend import to_numpy
from hti.linsoftmax.grad import class_gradient_norms, gradient, residual_, row_norms
from hti.linsoftmax.loss import logits, loss, sample_coefficients, softmax
from hti.linsoftmax.stats import class_weights

INPUTS = ("uniform", "gaussian", "orthogonal")
SCALES = (1.0, 30.0)  # 30: nearly saturated probabilities
REWEIGHTS = ("none", "inv", "inv-sqrt")
EPS64 = np.finfo(np.float64).eps


def coefficients(y, counts, reweight):
    return sample_coefficients(y, class_weights(counts, reweight), counts.shape[0])


# ---------------------------------------------------------------------------------------
# finite differences


def central_differences(f, theta, coords, h):
    """(f(theta + h e_j) - f(theta - h e_j)) / 2h for every j in ``coords``."""
    out = np.empty(len(coords))
    for n, j in enumerate(coords):
        plus, minus = theta.copy(), theta.copy()
        plus[j] += h
        minus[j] -= h
        out[n] = (f(plus) - f(minus)) / (2 * h)
    return out


@pytest.mark.parametrize("reweight", REWEIGHTS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("scale", SCALES)
def test_gradient_matches_central_differences(xp, rng, reweight, inputs, scale):
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs, scale=scale)
    coef = coefficients(y, counts, reweight)
    c, d = W.shape
    theta = np.concatenate([to_numpy(W).ravel(), to_numpy(b)])

    def f(t):
        return float(loss(X, y, xp.asarray(t[: c * d].reshape(c, d)), xp.asarray(t[c * d :]), coef))

    # ~40 coordinates of W and every coordinate of b
    coords = np.concatenate([rng.choice(c * d, size=40, replace=False), c * d + np.arange(c)])
    h = 1e-6
    fd = central_differences(f, theta, coords, h)
    gW, gb = gradient(X, y, W, b, coef)
    g = np.concatenate([to_numpy(gW).ravel(), to_numpy(gb)])[coords]
    # truncation error h^2/6 |f'''| ~ 1e-13 (entries of x are O(1)); roundoff of the
    # difference quotient ~ eps |f| / h ~ 2e-10 |f|, which dominates for the small
    # entries of saturated problems: rtol 1e-6 plus an absolute floor of 10x roundoff
    atol = 10 * EPS64 * max(1.0, abs(f(theta))) / h
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=atol)
    assert np.abs(g).max() > 1e3 * atol  # the comparison is not vacuous


# ---------------------------------------------------------------------------------------
# torch.func reference


def torch_gradient(X, y, W, b, weight=None):
    """(grad_W, grad_b) of cross_entropy(X W^T + b, y, weight) by torch.func.grad, float64."""
    torch = pytest.importorskip("torch")
    t = lambda a: torch.tensor(to_numpy(a))  # noqa: E731  (float64 kept, int64 for y)
    Xt, yt = t(X), t(y)
    wt = None if weight is None else t(weight)

    def f(Wt, bt):
        return torch.nn.functional.cross_entropy(Xt @ Wt.T + bt, yt, weight=wt, reduction="mean")

    gW, gb = torch.func.grad(f, argnums=(0, 1))(t(W), t(b))
    assert gW.dtype == torch.float64
    return gW.numpy(), gb.numpy()


@pytest.mark.parametrize("reweight", REWEIGHTS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("scale", SCALES)
def test_gradient_and_class_norms_match_torch_func(xp, reweight, inputs, scale):
    pytest.importorskip("torch")
    X, y, counts, W, b = tiny_problem(xp, m=3, inputs=inputs, scale=scale)
    weights = class_weights(counts, reweight)
    coef = coefficients(y, counts, reweight)
    ref_W, ref_b = torch_gradient(X, y, W, b, weights)
    gW, gb = gradient(X, y, W, b, coef)
    # Both are (P - Y)-weighted sums of 24 rows in float64 with different summation
    # orders: errors ~ n eps times the sum of |terms|; an atol of 1e-13 of the largest
    # entry covers entries that cancel to ~0
    atol = 1e-13 * np.abs(ref_W).max()
    np.testing.assert_allclose(to_numpy(gW), ref_W, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(to_numpy(gb), ref_b, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(
        to_numpy(class_gradient_norms(X, y, W, b, coef)), np.linalg.norm(ref_W, axis=1), rtol=1e-10, atol=atol
    )


def test_gradient_m4_matches_torch_func(xp):
    pytest.importorskip("torch")
    X, y, counts, W, b = tiny_problem(xp, m=4, inputs="gaussian", scale=3.0, seed=1)
    ref_W, ref_b = torch_gradient(X, y, W, b)
    gW, gb = gradient(X, y, W, b)
    atol = 1e-13 * np.abs(ref_W).max()  # as in the m = 3 test, with n = 64 terms
    np.testing.assert_allclose(to_numpy(gW), ref_W, rtol=1e-10, atol=atol)
    np.testing.assert_allclose(to_numpy(gb), ref_b, rtol=1e-10, atol=atol)


def test_gradient_keeps_dtype(xp):
    X, y, counts, W, b = tiny_problem(xp, m=2)
    gW, gb = gradient(*(a.astype(xp.float32) if a.dtype.kind == "f" else a for a in (X, y, W, b)))
    assert gW.dtype == xp.float32 and gb.dtype == xp.float32


# ---------------------------------------------------------------------------------------
# residual and row norms


@pytest.mark.parametrize("weighted", [False, True])
def test_residual_works_in_place_and_returns_p(xp, weighted):
    X, y, counts, W, b = tiny_problem(xp, m=3, scale=5.0)
    coef = coefficients(y, counts, "inv") if weighted else None
    P = softmax(logits(X, W, b))
    P_before = to_numpy(P).copy()
    R = residual_(P, y, coef)
    assert R is P
    n = P_before.shape[0]
    onehot = np.eye(P_before.shape[1])[to_numpy(y)]
    s = np.full(n, 1 / n) if coef is None else to_numpy(coef)
    # one subtraction and one multiplication per entry: exact up to 2 roundings
    np.testing.assert_allclose(to_numpy(P), s[:, None] * (P_before - onehot), rtol=4 * EPS64, atol=0)
    # rows of P - Y sum to zero (to within c roundings of entries <= 1)
    np.testing.assert_allclose(to_numpy(P).sum(axis=1) / s, 0.0, atol=10 * EPS64)


def test_row_norms(xp, rng):
    G = rng.standard_normal((5, 7))
    # einsum vs numpy's norm: 7-term sums, a few eps
    np.testing.assert_allclose(to_numpy(row_norms(xp.asarray(G))), np.linalg.norm(G, axis=1), rtol=1e-14)
