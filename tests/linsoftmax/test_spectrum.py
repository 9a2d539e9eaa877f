"""Whole spectra of class blocks against numpy.linalg.eigvalsh of the dense d x d block.

H_kk = X^T D_k X (``hessian_block``, checked against torch.func in test_hessian.py) has
rank <= min(n, d); the spectrum functions work on the smaller of the d x d form and the
kernel form D^(1/2) X X^T D^(1/2) (n x n), so they return dim = min(n, d) eigenvalues and
the dense block's other |d - n| eigenvalues are 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_problem
from scipy.stats import norm

from hti.backend import to_numpy
from hti.linsoftmax.curvature import gram
from hti.linsoftmax.hessian import hessian_block
from hti.linsoftmax.loss import logits, sample_coefficients, softmax
from hti.linsoftmax.spectrum import block_extremes, block_spectrum, log_density, slq_nodes
from hti.linsoftmax.stats import class_weights

# Dense eigvalsh of the (dim x dim) form against eigvalsh of the (d x d) block: both
# backward stable, so each eigenvalue is within ~dim eps ||H_kk|| of the truth; with
# dim <= 64, 1e-12 ||H_kk|| is loose. Small eigenvalues are compared on this absolute
# scale only: relative to themselves they carry no accuracy guarantee.
ATOL_REL = 1e-12

SHAPES = {
    "n<d": dict(m=3),  # n = 24, d = 32: the kernel form (24 x 24)
    "n>d": dict(m=4, dim=20),  # n = 64, d = 20: the input form (20 x 20)
}
INPUTS = {
    "uniform": dict(inputs="uniform"),
    "gauss0": dict(inputs="gaussian", input_mean=0.0),
    "orthogonal": dict(inputs="orthogonal"),
}


def problem(xp, shape, inputs="uniform", scale=3.0, reweight="none"):
    """(X, P, coef, dense blocks (c, d, d) on the host)."""
    X, y, counts, W, b = tiny_problem(xp, scale=scale, **SHAPES[shape], **INPUTS[inputs])
    P = softmax(logits(X, W, b))
    coef = sample_coefficients(y, class_weights(counts, reweight), counts.shape[0])
    blocks = np.stack([to_numpy(hessian_block(X, P, k, coef=coef)) for k in range(P.shape[1])])
    return X, P, coef, blocks


def shape_inputs():
    for shape in SHAPES:
        for inputs in INPUTS:
            if not (shape == "n>d" and inputs == "orthogonal"):  # orthogonal rows need d >= n
                yield pytest.param(shape, inputs, id=f"{shape}-{inputs}")


# ---------------------------------------------------------------------------------------
# block_spectrum


@pytest.mark.parametrize("reweight", ["none", "inv"])
@pytest.mark.parametrize("shape, inputs", list(shape_inputs()))
def test_block_spectrum_matches_dense_block(xp, shape, inputs, reweight):
    X, P, coef, blocks = problem(xp, shape, inputs, reweight=reweight)
    n, d = X.shape
    dim = min(n, d)
    classes = [0, 3, P.shape[1] - 1]
    dense = np.linalg.eigvalsh(blocks[classes])  # (3, d) ascending
    top = dense[:, ::-1][:, :dim][:, ::-1]  # the dim largest, ascending
    scale = dense[:, -1:]  # ||H_kk||
    for K in (None, gram(X)) if n <= d else (None,):
        got = block_spectrum(X, P, classes, K=K, coef=coef)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (3, dim)
        assert (np.diff(got, axis=1) >= 0).all()  # ascending
        np.testing.assert_allclose(got, top, rtol=0, atol=ATOL_REL * scale.max())
        assert (np.abs(got - top) <= ATOL_REL * scale).all()  # per block, on its own scale
    # the d x d block's other |d - n| eigenvalues are zero (to roundoff)
    assert (np.abs(dense[:, : d - dim]) <= ATOL_REL * scale).all()
    # and the spectrum is not degenerate: it spans more than a few orders of magnitude
    # for correlated inputs, so the check above is not of a flat spectrum
    assert (top[:, -1] > top[:, 0]).all()


def test_block_spectrum_single_class_and_order(xp):
    X, P, _coef, blocks = problem(xp, "n<d")
    one = block_spectrum(X, P, 2)  # a scalar class
    assert one.shape == (1, 24)
    both = block_spectrum(X, P, [5, 2])
    np.testing.assert_array_equal(both[1], one[0])
    np.testing.assert_allclose(
        both[0], np.linalg.eigvalsh(blocks[5])[-24:], rtol=0, atol=ATOL_REL * blocks[5].trace()
    )


# ---------------------------------------------------------------------------------------
# block_extremes

# eigsh stops at residual <= tol |theta| with tol = 1e-8; the bottom end is computed as
# the top of lambda_max I - A, so its error is relative to lambda_max as well.
EXT_TOL = 1e-8


@pytest.mark.parametrize("shape, inputs", list(shape_inputs()))
def test_block_extremes_match_dense(xp, shape, inputs):
    X, P, _coef, blocks = problem(xp, shape, inputs)
    n, d = X.shape
    dim = min(n, d)
    classes = [0, P.shape[1] - 1]
    spec = np.linalg.eigvalsh(blocks[classes])[:, -dim:]  # the dim-dimensional form's spectrum, ascending
    r = 4
    for K in (None, gram(X)) if n <= d else (None,):
        top, bottom = block_extremes(X, P, classes, r, K=K)
        assert top.shape == bottom.shape == (2, r)
        lmax = spec[:, -1:]
        assert (np.abs(top - spec[:, ::-1][:, :r]) <= EXT_TOL * lmax).all(), (top, spec[:, ::-1][:, :r])
        assert (np.abs(bottom - spec[:, :r]) <= EXT_TOL * lmax).all(), (bottom, spec[:, :r])
        assert (np.diff(top, axis=1) <= 0).all() and (np.diff(bottom, axis=1) >= 0).all()


@pytest.mark.parametrize("r", [0, 24])
def test_block_extremes_bad_r_raises(xp, r):
    X, P, _, _ = problem(xp, "n<d")  # dim = n = 24
    with pytest.raises(ValueError, match=rf"r must be in \[1, 24\); got {r}"):
        block_extremes(X, P, [0], r)


# ---------------------------------------------------------------------------------------
# slq_nodes


def kernel_form(X, P, k, coef=None):
    """D^(1/2) X X^T D^(1/2) (n x n), written out here, for n <= d."""
    X, P = to_numpy(X), to_numpy(P)
    n = X.shape[0]
    s = np.full(n, 1 / n) if coef is None else to_numpy(coef)
    sq = np.sqrt(s * P[:, k] * (1 - P[:, k]))
    return sq[:, None] * (X @ X.T) * sq[None, :]


def rademacher_probes(classes, probes, dim, seed=0):
    """The unit Rademacher probes slq_nodes draws (its documented generator and order):
    (C, probes, dim). Regenerated here to check the quadrature probe by probe."""
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(len(classes) * probes, 1, dim))
    return (signs / np.sqrt(dim)).reshape(len(classes), probes, dim)


@pytest.mark.parametrize("inputs", ["uniform", "gauss0", "orthogonal"])
def test_slq_weights_and_node_range(xp, inputs):
    X, P, _coef, blocks = problem(xp, "n<d", inputs)
    classes = [0, 4, 6]
    nodes, weights = slq_nodes(X, P, classes, probes=5, steps=8)
    assert nodes.shape == weights.shape == (3, 5, 8)
    # weights are squares of the first entries of T's orthonormal eigenvectors: each
    # probe's sum to 1 up to ~m eps
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, rtol=0, atol=1e-13)
    assert (weights >= 0).all()
    # Ritz values lie in [lambda_min, lambda_max] of the form, up to T's roundoff
    spec = np.linalg.eigvalsh(blocks[classes])[:, -24:]  # kernel form spectrum (n = 24)
    slack = ATOL_REL * spec[:, -1]
    assert (nodes.min(axis=(1, 2)) >= spec[:, 0] - slack).all()
    assert (nodes.max(axis=(1, 2)) <= spec[:, -1] + slack).all()


def test_slq_gauss_quadrature_moments(xp):
    """m Lanczos steps from q give the m-point Gauss quadrature of the measure
    sum_i (q^T v_i)^2 delta(lambda_i): sum_j tau_j theta_j^p = q^T A^p q for p <= 2m - 1."""
    X, P, coef, _blocks = problem(xp, "n<d", "gauss0", reweight="inv")
    classes, probes, m = [1, 5], 3, 5
    nodes, weights = slq_nodes(X, P, classes, probes=probes, steps=m, coef=coef, seed=3)
    Q = rademacher_probes(classes, probes, 24, seed=3)
    for ci, k in enumerate(classes):
        A = kernel_form(X, P, k, coef)
        A /= np.linalg.norm(A, 2)  # moments of the normalized form: all <= 1
        scale = np.linalg.norm(kernel_form(X, P, k, coef), 2)
        for j in range(probes):
            q = Q[ci, j]
            Ap_q = q.copy()
            for power in range(2 * m):
                want = q @ Ap_q
                got = np.sum(weights[ci, j] * (nodes[ci, j] / scale) ** power)
                # T is exact to ~m eps ||A|| (full reorthogonalization); a p-th power
                # amplifies that by ~p: 1e-13 on moments of the normalized operator
                assert abs(got - want) <= 1e-13, (k, j, power, got, want)
                Ap_q = A @ Ap_q
            # and not beyond: the 2m-th moment is not reproduced in general
            assert abs(np.sum(weights[ci, j] * (nodes[ci, j] / scale) ** (2 * m)) - q @ Ap_q) > 1e-10


def test_slq_full_steps_give_the_exact_spectral_measure(xp):
    """With steps = dim the nodes are the eigenvalues and the weights are (q^T v_i)^2."""
    X, P, _coef, _blocks = problem(xp, "n<d", "orthogonal", scale=1.0)
    classes, probes, dim = [0, 6], 2, 24
    nodes, weights = slq_nodes(X, P, classes, probes=probes, steps=dim)
    Q = rademacher_probes(classes, probes, dim)
    for ci, k in enumerate(classes):
        evals, evecs = np.linalg.eigh(kernel_form(X, P, k))
        for j in range(probes):
            # eigenvalues to ~dim eps ||A|| (see ATOL_REL); weights are O(1/dim) numbers
            # from eigenvectors of well-separated eigenvalues: 1e-10 absolute
            np.testing.assert_allclose(nodes[ci, j], evals, rtol=0, atol=ATOL_REL * evals[-1])
            np.testing.assert_allclose(weights[ci, j], (evecs.T @ Q[ci, j]) ** 2, rtol=0, atol=1e-10)
    # the spectrum is not degenerate, so the weights are a meaningful check
    assert np.min(np.diff(evals)) > 1e-6 * evals[-1]


def test_slq_mean_trace_hutchinson(xp):
    """The probe average of sum_j tau_j theta_j = q^T A q estimates tr(A) / dim; the
    Rademacher variance of one probe is 2 (sum_{i != j} A_ij^2) / dim^2."""
    X, P, _coef, _blocks = problem(xp, "n<d", "gauss0")
    probes, dim = 64, 24
    nodes, weights = slq_nodes(X, P, [2], probes=probes, steps=6, seed=1)
    A = kernel_form(X, P, 2)
    est = np.sum(nodes[0] * weights[0], axis=1)  # (probes,)
    std = np.sqrt(2 * (np.sum(A**2) - np.sum(np.diag(A) ** 2))) / dim
    # 4 standard errors: fails by chance with probability 6e-5 (a fixed seed: never)
    assert abs(est.mean() - np.trace(A) / dim) <= 4 * std / np.sqrt(probes)
    assert std > 0.01 * np.trace(A) / dim  # the variance bound is not vacuous


def test_slq_input_form_when_n_larger_than_d(xp):
    X, P, _coef, blocks = problem(xp, "n>d", "uniform")
    nodes, sample_weights = slq_nodes(X, P, [0, 3], probes=3, steps=50)
    assert nodes.shape == (2, 3, 20)  # steps capped at dim = d = 20
    spec = np.linalg.eigvalsh(blocks[[0, 3]])
    for ci in range(2):
        for j in range(3):
            np.testing.assert_allclose(nodes[ci, j], spec[ci], rtol=0, atol=ATOL_REL * spec[ci, -1])


# ---------------------------------------------------------------------------------------
# log_density

# The default grid pads the node range by 4 bandwidths: the Gaussian mass beyond 4 sigma
# on the outer side of the two extreme nodes is lost, norm.sf(4) = 3.2e-5 of their
# weight. The grid step is at most (span + 8 bw) / 399, a few tenths of a bandwidth here,
# where the Riemann sum of a Gaussian is exact to far below 1e-12. So the integral is the
# positive fraction minus at most 3.2e-5 (w_lowest + w_highest).
LOST = norm.sf(4)


def integral(grid, density):
    return density.sum(axis=-1) * (grid[1] - grid[0])


def test_log_density_integrates_to_positive_fraction():
    rng = np.random.default_rng(0)
    nodes = np.r_[rng.lognormal(0, 2, 30), 0.0, 0.0, -1e-17, -3.0]  # 30 of 34 positive
    grid, dens = log_density(nodes)
    assert grid.shape == (400,) and dens.shape == (400,)
    frac = 30 / 34
    deficit = frac - integral(grid, dens)
    assert 0 <= deficit <= LOST * 2 / 34 + 1e-12
    assert deficit > 0.5 * LOST / 34  # the padding's loss is really there: the bound is tight
    # grid: 4 bandwidths beyond the extreme positive nodes, in log10 units
    logs = np.log10(nodes[nodes > 0])
    np.testing.assert_allclose([grid[0], grid[-1]], [logs.min() - 0.2, logs.max() + 0.2], rtol=1e-14)


def test_log_density_kernel_in_log10_units():
    """One node at 10^2.5 with weight 1: the Gaussian of 0.05 decades centred at 2.5."""
    grid = np.linspace(2.0, 3.0, 201)
    _, dens = log_density(np.array([10**2.5]), np.array([1.0]), grid=grid)
    want = norm.pdf(grid, loc=2.5, scale=0.05)
    np.testing.assert_allclose(dens, want, rtol=1e-12)
    _, wide = log_density(np.array([10**2.5]), np.array([1.0]), grid=grid, bandwidth=0.2)
    np.testing.assert_allclose(wide, norm.pdf(grid, loc=2.5, scale=0.2), rtol=1e-12)


def test_log_density_shapes_and_weights(xp):
    X, P, _coef, _blocks = problem(xp, "n<d", "uniform")
    # exact spectra (C, m): one density per class, each integrating to its positive fraction
    spec = block_spectrum(X, P, [0, 1, 2])
    grid = np.linspace(np.log10(spec[spec > 0].min()) - 1, np.log10(spec.max()) + 1, 2000)
    _, dens = log_density(spec, grid=grid)
    assert dens.shape == (3, 2000)
    np.testing.assert_allclose(integral(grid, dens), (spec > 0).mean(axis=1), rtol=0, atol=1e-10)
    # SLQ (C, probes, m) with weights: one density per probe, each integrating to 1
    # (all nodes of a PSD form with a positive spectrum are positive)
    nodes, weights = slq_nodes(X, P, [0, 1, 2], probes=4, steps=10)
    assert (nodes > 0).all()
    _, dens = log_density(nodes, weights, grid=grid)
    assert dens.shape == (3, 4, 2000)
    # grid padded by > 1 decade = 20 bandwidths beyond every node: nothing lost
    np.testing.assert_allclose(integral(grid, dens), 1.0, rtol=0, atol=1e-10)
    # the probe average approximates the exact density: its integral and mean log
    mean = dens.mean(axis=1)
    exact = log_density(spec, grid=grid)[1]
    mean_log = (mean * grid).sum(axis=1) / mean.sum(axis=1)
    exact_log = (exact * grid).sum(axis=1) / exact.sum(axis=1)
    # a loose statistical check (4 probes, 10 nodes): within a third of a decade
    assert (np.abs(mean_log - exact_log) < 0.35).all(), (mean_log, exact_log)


def test_log_density_default_grid_without_positive_nodes():
    grid, dens = log_density(np.array([0.0, -1.0]))
    assert grid.shape == (400,)
    np.testing.assert_array_equal(dens, 0.0)


# ---------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("classes, shown", [([], r"\[\]"), ([-1], r"\[-1\]"), ([0, 7], r"\[0, 7\]")])
def test_bad_classes_raise(xp, classes, shown):
    X, P, _, _ = problem(xp, "n<d")  # c = 7
    message = rf"classes must be non-empty and in \[0, 7\); got {shown}"
    with pytest.raises(ValueError, match=message):
        block_spectrum(X, P, classes)
    with pytest.raises(ValueError, match=message):
        block_extremes(X, P, classes, 2)
    with pytest.raises(ValueError, match=message):
        slq_nodes(X, P, classes)
