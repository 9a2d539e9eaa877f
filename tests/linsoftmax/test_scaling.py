"""The Appendix E experiment: the "good prediction" state and the slopes in pi_k.

The statistical thresholds on the slopes are loose on purpose: they separate the
regimes the paper describes (slope ~1 for correlated inputs, ~0 for orthogonal ones,
well below 1 when 1 - p is spread evenly), with margins of several tenths around
values measured at m = 6 and m = 8, so that a change of data seed cannot flip them but
a change of regime does.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_problem

from hti.backend import to_numpy
from hti.linsoftmax.curvature import block_top_eigenvalues, gram
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.hessian import hessian_block
from hti.linsoftmax.loss import logits, softmax
from hti.linsoftmax.scaling import ScalingResult, fit_log_slope, good_prediction_probabilities, scaling_slopes

INPUTS = {
    "uniform": dict(inputs="uniform"),
    "gauss0": dict(inputs="gaussian", input_mean=0.0),
    "gauss1": dict(inputs="gaussian", input_mean=1.0),
    "orthogonal": dict(inputs="orthogonal"),
}


def data(xp, m, inputs, dtype="float64"):
    X, y, counts = heavy_tailed_data(m, dtype=dtype, **INPUTS[inputs])
    return xp.asarray(X), xp.asarray(y), xp.asarray(counts)


# ---------------------------------------------------------------------------------------
# good_prediction_probabilities


@pytest.mark.parametrize("p", [0.9, 0.5, 0.05])
@pytest.mark.parametrize("m", [3, 6])
def test_good_prediction_frequency_spread(xp, m, p):
    _, y, counts = data(xp, m, "uniform")
    P = to_numpy(good_prediction_probabilities(y, counts, p))
    yh, ch = to_numpy(y), to_numpy(counts)
    n, c = P.shape[0], ch.size
    assert P.shape == (n, c) and P.dtype == np.float64
    pi = ch / ch.sum()
    # a row sums p and c - 1 terms that add up to 1 - p; NumPy's pairwise summation
    # rounds ~log2(c) times (measured at most 4.4e-16 at c = 63)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    rows = np.arange(n)
    np.testing.assert_array_equal(P[rows, yh], p)
    # other classes: (1 - p) pi_k / (1 - pi_y), written out per entry (a few roundings)
    for i in range(0, n, max(1, n // 17)):
        for k in range(c):
            if k != yh[i]:
                np.testing.assert_allclose(P[i, k], (1 - p) * pi[k] / (1 - pi[yh[i]]), rtol=1e-15)


@pytest.mark.parametrize("p", [0.9, 0.3])
def test_good_prediction_even_spread(xp, p):
    _, y, counts = data(xp, 4, "uniform")
    P = to_numpy(good_prediction_probabilities(y, counts, p, spread="even"))
    yh = to_numpy(y)
    n, c = P.shape
    own = np.zeros((n, c), dtype=bool)
    own[np.arange(n), yh] = True
    np.testing.assert_array_equal(P[own], p)
    np.testing.assert_array_equal(P[~own], (1 - p) / (c - 1))  # one rounded value
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-15)  # as above


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_good_prediction_bad_p_raises(xp, p):
    _, y, counts = data(xp, 2, "uniform")
    with pytest.raises(ValueError, match=rf"p must be in \(0, 1\); got {p}"):
        good_prediction_probabilities(y, counts, p)


def test_good_prediction_bad_spread_raises(xp):
    _, y, counts = data(xp, 2, "uniform")
    with pytest.raises(ValueError, match=r"spread must be 'frequency' or 'even'; got 'uniform'"):
        good_prediction_probabilities(y, counts, 0.9, spread="uniform")


# ---------------------------------------------------------------------------------------
# fit_log_slope


@pytest.mark.parametrize("slope, const", [(1.0, 3.0), (-1.5, 0.2), (0.0, 7.0), (0.37, 1e-6)])
def test_fit_log_slope_recovers_power_laws(slope, const):
    x = np.geomspace(1e-4, 1.0, 12)
    y = const * x**slope
    got, intercept = fit_log_slope(x, y)
    # least squares on exact data: residual roundoff ~eps log(x) ~1e-14, then rounded to
    # 12 digits by fit_log_slope
    assert abs(got - slope) <= 1e-12
    np.testing.assert_allclose(intercept, np.log(const), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, np.polyfit(np.log(x), np.log(y), 1)[0], rtol=0, atol=1e-12)


def test_fit_log_slope_ignores_non_positive_entries():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.01, 1, 20)
    y = 2 * x**0.8 * rng.lognormal(0, 0.1, 20)
    want = np.polyfit(np.log(x), np.log(y), 1)
    got = fit_log_slope(np.r_[x, 0.0, 1.0, -1.0, 0.5], np.r_[y, 1.0, 0.0, 2.0, -3.0])
    np.testing.assert_allclose(got, want, rtol=1e-11)  # slope rounded to 12 digits
    assert abs(got[0] - 0.8) < 0.1  # noisy, but still the power law


@pytest.mark.parametrize("x, y", [([1.0], [2.0]), ([1.0, 0.0], [2.0, 3.0]), ([], [])])
def test_fit_log_slope_nan_with_fewer_than_two_points(x, y):
    slope, intercept = fit_log_slope(x, y)
    assert np.isnan(slope) and np.isnan(intercept)


# ---------------------------------------------------------------------------------------
# scaling_slopes


def test_scaling_slopes_fields_match_direct_computation(xp):
    """At m = 3: traces, top eigenvalues (dense eigvalsh) and the fits of their logs."""
    X, y, counts = data(xp, 3, "uniform")
    P = good_prediction_probabilities(y, counts, 0.8)
    res = scaling_slopes(X, P, counts)
    assert isinstance(res, ScalingResult)
    ch = to_numpy(counts)
    c = ch.size
    np.testing.assert_allclose(res.pi, ch / ch.sum(), rtol=1e-15)
    blocks = np.stack([to_numpy(hessian_block(X, P, k)) for k in range(c)])
    np.testing.assert_allclose(res.hess_trace, np.trace(blocks, axis1=1, axis2=2), rtol=1e-12)  # d-term sums
    # block Lanczos, float64: within 1e-10 of lambda_1 (test_curvature.py); 1e-9 loose
    np.testing.assert_allclose(res.hess_eig_max, np.linalg.eigvalsh(blocks)[:, -1], rtol=1e-9)
    assert res.eig_iterations.shape == (c,) and (res.eig_iterations >= 0).all()  # m = 3: dense, 0 steps
    slope, icept = np.polyfit(np.log(res.pi), np.log(res.hess_trace), 1)
    np.testing.assert_allclose([res.trace_slope, res.trace_intercept], [slope, icept], rtol=1e-11)
    slope, icept = np.polyfit(np.log(res.pi), np.log(res.hess_eig_max), 1)
    np.testing.assert_allclose([res.eig_slope, res.eig_intercept], [slope, icept], rtol=1e-11)
    # the Gram route gives the same numbers
    with_K = scaling_slopes(X, P, counts, K=gram(X))
    np.testing.assert_allclose(with_K.hess_eig_max, res.hess_eig_max, rtol=1e-9)


def test_scaling_slopes_float32_data(xp):
    """float32 X: P is cast to X's dtype; slopes agree with float64 to float32 accuracy
    (traces and eigenvalues within ~1e-4 relative move a slope by far less than 1e-3)."""
    X, y, counts = data(xp, 5, "uniform")
    P = good_prediction_probabilities(y, counts, 0.9)
    r64 = scaling_slopes(X, P, counts)
    r32 = scaling_slopes(X.astype(xp.float32), P, counts)
    np.testing.assert_allclose(r32.hess_trace, r64.hess_trace, rtol=1e-5)
    np.testing.assert_allclose(r32.hess_eig_max, r64.hess_eig_max, rtol=1e-4)
    assert abs(r32.trace_slope - r64.trace_slope) < 1e-3 and abs(r32.eig_slope - r64.eig_slope) < 1e-3


SLOPE_CASES = {
    # inputs, spread: (trace slope range, eig slope range); m = 6 measured in comments
    "uniform": ("uniform", "frequency", (0.9, 1.1), (0.9, 1.1)),  # 0.985, 0.971 (m = 8: 0.995, 0.982)
    "gauss1": ("gauss1", "frequency", (0.9, 1.1), (0.9, 1.1)),  # 0.982, 0.938 (m = 8: 0.995, 0.954)
    "gauss0": ("gauss0", "frequency", (0.9, 1.1), (-1.0, 0.3)),  # 0.983, 0.145 (m = 8: eig 0.076)
    "uniform-even": ("uniform", "even", (0.0, 0.7), (0.0, 0.7)),  # 0.488, 0.489 (m = 8: trace 0.48)
}


@pytest.mark.parametrize("case", list(SLOPE_CASES))
def test_scaling_slopes_regimes(xp, case):
    """Correlated inputs: both slopes near 1. Near-orthogonal N(0, 1): trace slope near 1,
    eigenvalue slope small. Even spread: the trace slope drops to ~1/2."""
    inputs, spread, (tlo, thi), (elo, ehi) = SLOPE_CASES[case]
    X, y, counts = data(xp, 6, inputs)
    res = scaling_slopes(X, good_prediction_probabilities(y, counts, 0.9, spread), counts)
    assert tlo < res.trace_slope < thi, res.trace_slope
    assert elo < res.eig_slope < ehi, res.eig_slope


@pytest.mark.parametrize("p", [0.9, 0.7])
def test_scaling_slopes_orthogonal_inputs(xp, p):
    """Orthogonal inputs: lambda_max(H_kk) = p (1 - p) d / n for every class (the
    property of test_curvature.py), so the eigenvalue slope is 0 up to the solver's
    1e-10 relative accuracy, while the trace slope stays near 1 (m = 6: 0.983)."""
    X, y, counts = data(xp, 6, "orthogonal")
    n, d = X.shape
    res = scaling_slopes(X, good_prediction_probabilities(y, counts, p), counts)
    # eigenvalues equal to ~1e-10 relative: log-differences ~1e-10 over a log-pi spread of
    # ~4, so the slope is ~1e-10; 1e-6 leaves room and is still far below any real slope
    assert abs(res.eig_slope) < 1e-6, res.eig_slope
    np.testing.assert_allclose(res.hess_eig_max, p * (1 - p) * d / n, rtol=1e-9)
    assert 0.9 < res.trace_slope < 1.1, res.trace_slope
    np.testing.assert_allclose(res.eig_intercept, np.log(p * (1 - p) * d / n), rtol=0, atol=1e-8)


def test_orthogonal_property_needs_the_good_prediction_state(xp):
    """At random parameters (P = softmax of random logits) the orthogonal-input block
    eigenvalues differ between classes: the zero slope is the state's, not the data's."""
    X, _y, _counts, W, b = tiny_problem(xp, m=4, inputs="orthogonal", scale=3.0)
    res = block_top_eigenvalues(X, softmax(logits(X, W, b)), 1)
    spread = res.values[:, 0].max() / res.values[:, 0].min()
    assert spread > 1.5, spread
