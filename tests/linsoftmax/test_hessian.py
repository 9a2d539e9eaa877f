"""Curvature against a dense torch.func.hessian reference in float64.

theta = concat(W.ravel(), b), the order documented in hti.linsoftmax.hessian: entry
k*d + j is W[k, j] and entry c*d + k is b[k]. The W part of the Hessian is the leading
(c d, c d) block, and its (k, k') d x d sub-block is H_kk'.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_problem

from hti.backend import linear_operator, sparse_linalg, to_numpy
from hti.linsoftmax.hessian import (
    block_matvec,
    dense_hessian,
    hessian_block,
    hessian_block_traces,
    hessian_matvec,
    hvp,
)
from hti.linsoftmax.loss import logits, sample_coefficients, softmax
from hti.linsoftmax.stats import class_weights

# torch.func's first forward-mode call registers decompositions with torch.jit.script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

INPUTS = ("uniform", "gaussian", "orthogonal")
SCALES = (1.0, 30.0)  # 30: nearly saturated probabilities
REWEIGHTS = ("none", "inv")

# Tolerances of exact-vs-exact float64 comparisons. Both sides sum n = 24 (or 64)
# rank-one terms in different orders, so an entry's error is ~n eps times the sum of
# the |terms| it cancels: RTOL 1e-10 on entries of ordinary size. Factors p(1 - p)
# with p ~ 1 (saturated samples) carry an absolute error ~eps from the rounding of p
# itself, whichever way they are computed, so comparisons also get an atol of ATOL_REL
# times the largest entry of the reference.
RTOL = 1e-10
ATOL_REL = 1e-12


# ---------------------------------------------------------------------------------------
# reference


def torch_hessian(X, y, W, b, weight=None):
    """d^2/dtheta^2 of cross_entropy(X W^T + b, y, weight) with torch.func, float64."""
    torch = pytest.importorskip("torch")
    t = lambda a: torch.tensor(to_numpy(a))  # noqa: E731  (float64 and int64 kept)
    Xt, yt = t(X), t(y)
    wt = None if weight is None else t(weight)
    c, d = W.shape

    def f(theta):
        Wt, bt = theta[: c * d].reshape(c, d), theta[c * d :]
        return torch.nn.functional.cross_entropy(Xt @ Wt.T + bt, yt, weight=wt, reduction="mean")

    H = torch.func.hessian(f)(torch.cat([t(W).reshape(-1), t(b)]))
    assert H.dtype == torch.float64
    return H.numpy()


class Case:
    """A tiny float64 problem on ``xp``, its probabilities and its dense torch Hessian."""

    def __init__(self, xp, m, inputs, scale, reweight, seed=0):
        self.xp = xp
        self.X, self.y, self.counts, self.W, self.b = tiny_problem(xp, m=m, inputs=inputs, scale=scale, seed=seed)
        self.c, self.d = self.W.shape
        self.size = self.c * (self.d + 1)
        self.weights = class_weights(self.counts, reweight)
        self.coef = sample_coefficients(self.y, self.weights, self.c)
        self.P = softmax(logits(self.X, self.W, self.b))
        self.H = torch_hessian(self.X, self.y, self.W, self.b, self.weights)
        self.atol = ATOL_REL * np.abs(self.H).max()

    def block(self, k, k2):
        """The reference H_kk' (d, d)."""
        d = self.d
        return self.H[k * d : (k + 1) * d, k2 * d : (k2 + 1) * d]

    def close(self, actual, desired, atol=None):
        atol = self.atol if atol is None else atol
        np.testing.assert_allclose(to_numpy(actual), desired, rtol=RTOL, atol=atol)


M3_CASES = [
    pytest.param((3, inputs, scale, reweight), id=f"m3-{inputs}-s{scale:g}-{reweight}")
    for inputs in INPUTS
    for scale in SCALES
    for reweight in REWEIGHTS
]
CASES = M3_CASES + [pytest.param((4, "gaussian", 3.0, "inv-sqrt"), id="m4-gaussian-s3-inv-sqrt")]

_CACHE = {}


def _get_case(xp, params):
    """Cases are cached per backend: torch.func.hessian is the slow part."""
    pytest.importorskip("torch")
    key = (xp.__name__, params)
    if key not in _CACHE:
        _CACHE[key] = Case(xp, *params)
    return _CACHE[key]


@pytest.fixture(params=CASES)
def case(request, xp):
    """Every case, including one m = 4 problem (c = 15, d = 80: 1215 parameters)."""
    return _get_case(xp, request.param)


@pytest.fixture(params=M3_CASES)
def m3_case(request, xp):
    """The m = 3 cases (231 parameters), for the O(size^3) dense eigensolvers."""
    return _get_case(xp, request.param)


# ---------------------------------------------------------------------------------------
# the whole Hessian and its products


def test_dense_hessian_matches_torch(case):
    case.close(dense_hessian(case.X, case.P, case.coef), case.H)


def test_hvp_and_hessian_matvec_match_torch(case, rng):
    c, d, xp = case.c, case.d, case.xp
    matvec = hessian_matvec(case.X, case.P, case.coef)
    # a product sums `size` terms: its roundoff floor is sqrt(size) times the entries'
    atol = case.atol * np.sqrt(case.size) * 4  # |v_j| <= 4 for these normal draws
    for v in rng.standard_normal((3, case.size)).clip(-4, 4):
        want = case.H @ v
        case.close(matvec(xp.asarray(v)), want, atol)
        V = xp.asarray(v[: c * d].reshape(c, d))
        HV, Hvb = hvp(case.X, case.P, V, xp.asarray(v[c * d :]), case.coef)
        case.close(HV.ravel(), want[: c * d], atol)
        case.close(Hvb, want[c * d :], atol)


def test_hessian_matvec_accepts_column_vectors(case, rng):
    v = rng.standard_normal(case.size)
    matvec = hessian_matvec(case.X, case.P, case.coef)
    out = matvec(case.xp.asarray(v[:, None]))  # eigsh may pass (size, 1)
    assert out.shape == (case.size,)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(matvec(case.xp.asarray(v))))


# ---------------------------------------------------------------------------------------
# class blocks


def test_hessian_blocks_and_block_matvecs_match_torch(case, rng):
    xp = case.xp
    pairs = [(k, k2) for k in range(min(case.c, 4)) for k2 in range(min(case.c, 4))] + [(case.c - 1, 0)]
    v = rng.standard_normal(case.d).clip(-4, 4)
    atol_mv = case.atol * np.sqrt(case.d) * 4  # d-term products of entries with |v_j| <= 4
    for k, k2 in pairs:
        ref = case.block(k, k2)
        case.close(hessian_block(case.X, case.P, k, k2, case.coef), ref)
        case.close(block_matvec(case.X, case.P, k, k2, case.coef)(xp.asarray(v)), ref @ v, atol_mv)
    # k2 defaults to k
    case.close(hessian_block(case.X, case.P, 1, coef=case.coef), case.block(1, 1))
    case.close(block_matvec(case.X, case.P, 1, coef=case.coef)(xp.asarray(v)), case.block(1, 1) @ v, atol_mv)


def test_block_traces_match_torch_blocks_and_paper_equation(case):
    ref = np.array([np.trace(case.block(k, k)) for k in range(case.c)])
    traces = hessian_block_traces(case.X, case.P, case.coef)
    case.close(traces, ref)
    # with precomputed ||x_i||^2, as evaluate() passes them
    sqnorm = case.xp.einsum("ij,ij->i", case.X, case.X)
    case.close(hessian_block_traces(case.X, case.P, case.coef, sqnorm), ref)

    # the paper's Equation (3), sum_i s_i p_ik (1 - p_ik) ||x_i||^2, written out
    X, P = to_numpy(case.X), to_numpy(case.P)
    n = X.shape[0]
    s = np.full(n, 1 / n) if case.coef is None else to_numpy(case.coef)
    eq3 = ((s * (X * X).sum(axis=1))[:, None] * P * (1 - P)).sum(axis=0)
    case.close(traces, eq3)
    # the released scripts' version, with sum_j x_ij in place of ||x_i||^2, is different
    buggy = ((s * X.sum(axis=1))[:, None] * P * (1 - P)).sum(axis=0)
    assert not np.allclose(to_numpy(traces), buggy, rtol=1e-3, atol=0)


def test_trace_identity_across_class_blocks(case):
    """Tr(H_kk) = -sum_{k' != k} Tr(H_kk') (paper Section 3.1): the rows of
    diag(p) - p p^T sum to zero."""
    X, P, coef = case.X, case.P, case.coef
    T = np.array([[np.trace(to_numpy(hessian_block(X, P, k, k2, coef))) for k2 in range(case.c)] for k in range(case.c)])
    off = T.sum(axis=1) - np.diag(T)
    # each row of T cancels c terms: error ~c eps times the largest trace
    np.testing.assert_allclose(np.diag(T), -off, rtol=RTOL, atol=1e-13 * np.abs(T).max())
    # same identity on the torch reference
    Tref = np.array([[np.trace(case.block(k, k2)) for k2 in range(case.c)] for k in range(case.c)])
    np.testing.assert_allclose(np.diag(Tref), -(Tref.sum(axis=1) - np.diag(Tref)), rtol=RTOL, atol=1e-13 * np.abs(Tref).max())


# ---------------------------------------------------------------------------------------
# operator sanity


def test_symmetry_dot_test(case, rng):
    matvec = hessian_matvec(case.X, case.P, case.coef)
    u, v = (case.xp.asarray(a) for a in rng.standard_normal((2, case.size)))
    left = float(u @ matvec(v))
    right = float(matvec(u) @ v)
    # two size-term inner products: error ~size eps |u| |H| |v|, with the Frobenius
    # norm bounding |H|_2 (and cheaper than an SVD at m = 4)
    bound = np.linalg.norm(case.H) * float(np.linalg.norm(to_numpy(u)) * np.linalg.norm(to_numpy(v)))
    assert abs(left - right) <= 1e-13 * bound
    # and the block operators
    B = block_matvec(case.X, case.P, 0, min(1, case.c - 1), case.coef)
    Bt = block_matvec(case.X, case.P, min(1, case.c - 1), 0, case.coef)
    a, bvec = (case.xp.asarray(x) for x in rng.standard_normal((2, case.d)))
    bound = np.linalg.norm(case.block(0, 1)) * float(np.linalg.norm(to_numpy(a)) * np.linalg.norm(to_numpy(bvec)))
    assert abs(float(a @ B(bvec)) - float(Bt(a) @ bvec)) <= 1e-13 * bound


def test_dense_hessian_is_symmetric_and_psd(m3_case):
    case = m3_case
    H = to_numpy(dense_hessian(case.X, case.P, case.coef))
    # H[a, b] and H[b, a] are sums of the same n products, factors possibly multiplied
    # in another order: a few eps of the largest entry
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-15 * np.abs(H).max())
    ev = np.linalg.eigvalsh(H)
    # backward-stable eigensolver: eigenvalues of the exact PSD matrix are perturbed by
    # ~size eps ||H|| at most; the null space (shifting all w_k by one vector) sits at 0
    assert ev.min() >= -1e-12 * ev.max()


def test_eigsh_top_eigenvalue_matches_dense(m3_case):
    case = m3_case
    xp = case.xp  # sparse_linalg(numpy) is scipy.sparse.linalg
    op = linear_operator(hessian_matvec(case.X, case.P, case.coef), case.size, np.float64, xp)
    v0 = xp.ones(case.size)
    top = float(sparse_linalg(xp).eigsh(op, k=1, which="LA", v0=v0, return_eigenvectors=False)[0])
    want = np.linalg.eigvalsh(case.H)[-1]
    # Lanczos converges to machine precision on a well-separated top eigenvalue;
    # 1e-10 leaves room for a close second eigenvalue
    np.testing.assert_allclose(top, want, rtol=1e-10)


# ---------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("k, k2, name", [(3, 0, "k"), (-1, 0, "k"), (0, 3, "k2")])
def test_bad_class_index_raises(xp, k, k2, name):
    X, y, counts, W, b = tiny_problem(xp, m=2)  # c = 3
    P = softmax(logits(X, W, b))
    with pytest.raises(ValueError, match=rf"class index {name} must be in \[0, 3\); got {k if name == 'k' else k2}"):
        hessian_block(X, P, k, k2)
    with pytest.raises(ValueError, match=rf"class index {name} must be in \[0, 3\)"):
        block_matvec(X, P, k, k2)
