"""Batched block Lanczos against numpy.linalg.eigvalsh on explicit dense matrices.

Every operator here is an explicit symmetric PSD matrix A_b (or a diagonal), applied by
``V @ A[members]``; its eigenvalues come from ``numpy.linalg.eigvalsh`` in float64 (or
are known exactly, for diagonals). The solver's stopping rule is relative to the
largest Ritz value of a member, so values are compared with an absolute tolerance of
``rtol * lambda_1`` per member (:func:`assert_top_close`).
"""

from __future__ import annotations

import numpy as np
import pytest

from hti.backend import to_numpy
from hti.linsoftmax.lanczos import BlockLanczos, top_eigenvalues

DIM = 48

# float64: the solver stops when the residual norm of each of its top k Ritz values is
# below 1e-10 lambda_1 (its default tol), which bounds the distance to an eigenvalue; the
# roundoff of a dim-term float64 product (~dim eps ~1e-14) is far below.
RTOL64 = 1e-10
# float32: hti promises a relative error of at most 1e-4 (the default residual tol);
# float32 products add ~sqrt(dim) eps32 ~ 1e-6 of lambda_1. Measured: at most 3e-6.
RTOL32 = 1e-4


def _rotate(evals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Q diag(evals) Q^T for a Haar-random orthogonal Q, symmetrized exactly."""
    Q, R = np.linalg.qr(rng.standard_normal((evals.size, evals.size)))
    Q *= np.sign(np.diag(R))
    A = (Q * evals) @ Q.T
    return (A + A.T) / 2


def _spectra(rng: np.random.Generator, dim: int = DIM) -> dict[str, np.ndarray]:
    """Dense PSD matrices with different spectra (dim, dim), float64."""
    Z = rng.standard_normal((dim, 2 * dim))
    mp = Z @ Z.T / (2 * dim)  # Marchenko-Pastur-like, ratio 1/2: eigenvalues in ~[0.09, 2.9]
    return {
        # geometric decay: every gap is 40 % of the eigenvalue above it
        "separated": _rotate(10 * 0.6 ** np.arange(dim), rng),
        # five eigenvalues within 4 % of the top over a bulk in [0, 1]
        "clustered": _rotate(np.r_[10 - 0.1 * np.arange(5), rng.uniform(0, 1, dim - 5)], rng),
        "marchenko_pastur": (mp + mp.T) / 2,
        # a huge gap: lambda_1 = 100 over a bulk in [0, 1]
        "gap": _rotate(np.r_[100.0, rng.uniform(0, 1, dim - 1)], rng),
    }


@pytest.fixture(scope="module")
def batch():
    """(names, A (4, DIM, DIM) float64, reference eigenvalues (4, DIM) descending)."""
    spectra = _spectra(np.random.default_rng(7))
    A = np.stack(list(spectra.values()))
    return list(spectra), A, np.linalg.eigvalsh(A)[:, ::-1]


def dense_matvec(A):
    """The batched matvec of explicit symmetric matrices A (B, dim, dim)."""
    return lambda V, members: V @ A[members]


def diag_matvec(D):
    """The batched matvec of diagonal operators D (B, dim)."""
    return lambda V, members: V * D[members][:, None, :]


def assert_top_close(values, ref, rtol, msg=""):
    """|values - ref| <= rtol lambda_1 per member; values (B, k), ref (B, >= k) descending."""
    k = values.shape[1]
    err = np.abs(values - ref[:, :k])
    np.testing.assert_array_less(
        err,
        np.broadcast_to(rtol * ref[:, :1], err.shape) + 1e-300,
        err_msg=f"{msg}\nvalues {values}\nref {ref[:, :k]}",
    )


# ---------------------------------------------------------------------------------------
# accuracy on dense batches


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_eigenvalues_float64(xp, batch, k):
    names, A, ref = batch
    start = xp.asarray(np.random.default_rng(k).standard_normal((len(names), DIM)))
    res = top_eigenvalues(dense_matvec(xp.asarray(A)), start, k)
    assert res.values.shape == (len(names), k)
    assert res.converged.all() and (res.iterations > 0).all()
    assert_top_close(res.values, ref, RTOL64, str(names))
    # descending, as documented
    assert (np.diff(res.values, axis=1) <= 0).all()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_eigenvalues_float32(xp, batch, k):
    names, A, ref = batch
    A32 = xp.asarray(A, dtype=xp.float32)  # rounding A moves eigenvalues by <= eps32 ||A|| ~ 6e-8 lambda_1
    start = xp.asarray(np.random.default_rng(k).standard_normal((len(names), DIM)), dtype=xp.float32)
    res = top_eigenvalues(dense_matvec(A32), start, k)
    assert res.converged.all() and (res.iterations > 0).all()
    assert_top_close(res.values, ref, RTOL32, str(names))


def test_start_shapes_and_given_start_blocks(batch):
    """(B, dim) and (B, 1, dim) starts are the same; a full (B, k, dim) start also works."""
    names, A, ref = batch
    start = np.random.default_rng(3).standard_normal((len(names), DIM))
    flat = top_eigenvalues(dense_matvec(A), start, 2)
    block = top_eigenvalues(dense_matvec(A), start[:, None, :], 2)
    np.testing.assert_array_equal(flat.values, block.values)
    np.testing.assert_array_equal(flat.iterations, block.iterations)
    full = top_eigenvalues(dense_matvec(A), np.random.default_rng(4).standard_normal((len(names), 2, DIM)), 2)
    assert full.converged.all()
    assert_top_close(full.values, ref, RTOL64)


def test_members_stop_independently(batch):
    """A member with a huge gap converges in fewer steps than the flat bulk beside it,
    and its value does not depend on its companions."""
    names, A, _ref = batch
    rng = np.random.default_rng(11)
    flat = _rotate(np.linspace(1.0, 2.0, DIM), rng)  # equally spaced: slow convergence
    pair = np.stack([A[names.index("gap")], flat])
    start = rng.standard_normal((2, DIM))
    res = top_eigenvalues(dense_matvec(pair), start, 1)
    assert res.converged.all()
    assert res.iterations[0] < res.iterations[1], res.iterations
    assert_top_close(res.values, np.linalg.eigvalsh(pair)[:, ::-1], RTOL64)
    alone = top_eigenvalues(dense_matvec(pair[:1]), start[:1], 1)
    assert alone.iterations[0] == res.iterations[0]
    # same arithmetic on the same member: equal up to the batched GEMM's summation order
    np.testing.assert_allclose(alone.values, res.values[:1], rtol=1e-14)


# ---------------------------------------------------------------------------------------
# multiplicities, invariant subspaces, rank deficiency


def _multiplicity_diagonal(dim: int = DIM) -> np.ndarray:
    """5 three times, then 4, then 2, then a bulk in [0, 1) (positions scattered)."""
    D = np.random.default_rng(5).uniform(0, 1, dim)
    D[[3, 17, 29]] = 5.0
    D[8] = 4.0
    D[20] = 2.0
    return D


@pytest.mark.parametrize("dtype, rtol", [(np.float64, RTOL64), (np.float32, RTOL32)])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_repeated_top_eigenvalue(k, dtype, rtol):
    """A block of k vectors resolves a multiplicity up to k: 5 is returned min(k, 3)
    times, then the next distinct values 4 and 2."""
    D = _multiplicity_diagonal()
    ref = np.sort(D)[::-1][None, :]
    start = np.random.default_rng(k).standard_normal((1, DIM)).astype(dtype)
    res = top_eigenvalues(diag_matvec(D[None].astype(dtype)), start, k)
    assert res.converged.all()
    assert_top_close(res.values, ref, rtol)
    assert np.count_nonzero(np.abs(res.values[0] - 5) <= rtol * 5) == min(k, 3)
    if k >= 4:
        assert abs(res.values[0, 3] - 4) <= rtol * 5
    if k >= 5:
        assert abs(res.values[0, 4] - 2) <= rtol * 5


@pytest.mark.parametrize("k", [1, 2, 4])
def test_few_distinct_eigenvalues(k):
    """Three distinct eigenvalues: the Krylov space is invariant after 3 steps, long
    before the basis is full; the solver must replace the lost directions and go on."""
    D = np.repeat([3.0, 2.0, 1.0], [10, 10, DIM - 20])
    res = top_eigenvalues(diag_matvec(D[None]), np.random.default_rng(0).standard_normal((1, DIM)), k)
    assert res.converged.all() and res.iterations[0] > 0
    np.testing.assert_allclose(res.values[0], np.full(k, 3.0), rtol=RTOL64)


def test_start_is_top_eigenvector():
    """A start that is an exact top eigenvector: invariant after one step. The solver cannot
    tell it from any other eigenvector, so it explores a fresh random direction until that
    Krylov space is invariant too (3 distinct eigenvalues: 3 more steps), then stops."""
    D = np.repeat([3.0, 2.0, 1.0], [10, 10, DIM - 20])
    start = np.zeros((1, DIM))
    start[0, 4] = 1.0
    res = top_eigenvalues(diag_matvec(D[None]), start, 1)
    assert res.converged.all() and res.iterations[0] == 4
    np.testing.assert_allclose(res.values[0], [3.0], rtol=RTOL64)


@pytest.mark.parametrize("k", [2, 3])
def test_start_is_eigenvector_with_block(k):
    D = np.repeat([3.0, 2.0, 1.0], [10, 10, DIM - 20])
    start = np.zeros((1, DIM))
    start[0, 4] = 1.0  # k - 1 random directions are added by the solver
    res = top_eigenvalues(diag_matvec(D[None]), start, k)
    assert res.converged.all()
    np.testing.assert_allclose(res.values[0], np.full(k, 3.0), rtol=RTOL64)


def test_start_is_bottom_eigenvector():
    D = np.repeat([3.0, 2.0, 1.0], [10, 10, DIM - 20])
    start = np.zeros((1, DIM))
    start[0, 30] = 1.0  # eigenvalue 1
    res = top_eigenvalues(diag_matvec(D[None]), start, 1)
    np.testing.assert_allclose(res.values[0], [3.0], rtol=RTOL64)


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_rank_deficient_operator(k):
    """Rank 4 in dim 48: the top 4 are found, and a fifth value is the zero eigenvalue."""
    D = np.zeros(DIM)
    D[[2, 11, 23, 40]] = [4.0, 3.0, 2.0, 1.0]
    rng = np.random.default_rng(k)
    A = _rotate(np.sort(D)[::-1], rng)[None]  # dense as well: zero eigenvalues to roundoff only
    for op in (diag_matvec(D[None]), dense_matvec(A)):
        res = top_eigenvalues(op, rng.standard_normal((1, DIM)), k)
        assert res.converged.all()
        assert_top_close(res.values, np.sort(D)[::-1][None], RTOL64)


def test_rank_deficient_operator_block_beyond_rank():
    D = np.zeros(DIM)
    D[[2, 11, 23, 40]] = [4.0, 3.0, 2.0, 1.0]
    res = top_eigenvalues(diag_matvec(D[None]), np.random.default_rng(6).standard_normal((1, DIM)), 6)
    assert res.converged.all()
    assert_top_close(res.values, np.sort(D)[::-1][None], RTOL64)


@pytest.mark.parametrize("dtype, spacing, rtol", [(np.float32, 1e-2, RTOL32), (np.float64, 1e-5, RTOL64)])
def test_tight_cluster_k1(dtype, spacing, rtol):
    """Five eigenvalues 10, 10 - spacing, ... over a bulk in [0, 1)."""
    rng = np.random.default_rng(1)
    A = _rotate(np.r_[10 - spacing * np.arange(5), rng.uniform(0, 1, DIM - 5)], rng)[None]
    res = top_eigenvalues(dense_matvec(A.astype(dtype)), rng.standard_normal((1, DIM)).astype(dtype), 1)
    assert_top_close(res.values, np.linalg.eigvalsh(A)[:, ::-1], rtol)


# ---------------------------------------------------------------------------------------
# traces: Temple's bound


def test_traces_never_cost_steps_and_can_save_them():
    """Operators whose top eigenvalue holds more than half of the trace: with the exact
    traces the solver needs no more steps, and from a near-eigenvector start one step."""
    rng = np.random.default_rng(21)
    evals = [np.r_[10.0, rng.uniform(0, 0.1, DIM - 1)], np.r_[10.0, rng.uniform(0, 0.3, DIM - 1)]]
    A = np.stack([_rotate(e, rng) for e in evals])
    traces = np.trace(A, axis1=1, axis2=2)
    assert (np.linalg.eigvalsh(A)[:, -1] > traces / 2).all()  # the premise
    ref = np.linalg.eigvalsh(A)[:, ::-1]
    top_vec = np.linalg.eigh(A)[1][:, :, -1]
    starts = {
        "random": rng.standard_normal((2, DIM)),
        # 1e-6 off the eigenvector: rho ~ 1e-5 lambda_1, Temple's rho^2 / (2 theta - t)
        # ~ 1e-10 / 7 is below tol after one step; the residual rho itself is not
        "near": top_vec + 1e-6 * rng.standard_normal((2, DIM)) / np.sqrt(DIM),
    }
    for name, start in starts.items():
        plain = top_eigenvalues(dense_matvec(A), start, 1)
        temple = top_eigenvalues(dense_matvec(A), start, 1, traces=traces)
        assert temple.converged.all() and plain.converged.all()
        assert (temple.iterations <= plain.iterations).all(), (name, temple.iterations, plain.iterations)
        assert_top_close(temple.values, ref, RTOL64, name)
        if name == "near":
            np.testing.assert_array_equal(temple.iterations, [1, 1])
            assert (plain.iterations > 1).all()


@pytest.mark.parametrize("case", ["below-half", "k=2"])
def test_traces_ignored_where_the_bound_does_not_apply(case):
    """lambda_1 < t / 2 (no Temple margin), or k > 1 (documented for k = 1 only; the
    bound is on theta_1 alone and would stop the second value early from a start near
    the top eigenvector): the result is exactly that without traces."""
    rng = np.random.default_rng(22)
    if case == "below-half":
        evals, k = np.linspace(1.0, 2.0, DIM), 1
    else:
        evals, k = np.r_[10.0, 1.0, rng.uniform(0, 0.01, DIM - 2)], 2
    A = _rotate(evals, rng)[None]
    traces = np.trace(A, axis1=1, axis2=2)
    assert (evals.max() > traces / 2) == (case == "k=2")
    start = np.linalg.eigh(A)[1][:, :, -1] + 1e-6 * rng.standard_normal((1, DIM)) / np.sqrt(DIM)
    plain = top_eigenvalues(dense_matvec(A), start, k)
    temple = top_eigenvalues(dense_matvec(A), start, k, traces=traces)
    assert plain.iterations[0] > 1
    np.testing.assert_array_equal(temple.iterations, plain.iterations)
    np.testing.assert_array_equal(temple.values, plain.values)
    assert_top_close(temple.values, np.sort(evals)[::-1][None], RTOL64)


# ---------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("k", [0, -1, DIM + 1])
def test_k_out_of_range_raises(k):
    start = np.ones((2, DIM))
    with pytest.raises(ValueError, match=rf"k must be in \[1, dim = {DIM}\]; got {k}"):
        top_eigenvalues(dense_matvec(np.eye(DIM)[None].repeat(2, 0)), start, k)


# ---------------------------------------------------------------------------------------
# BlockLanczos: the basis and the projection


@pytest.mark.parametrize("r", [1, 2, 4])
def test_block_lanczos_basis_and_projection(xp, batch, r):
    """After j steps: Q[:, :j+1] is orthonormal, and T[:(j+1) r, :j r] = Q_{j+1} A Q_j^T
    (the projection of A, with the coupling B_j to the next block)."""
    names, A, _ = batch
    start = xp.asarray(np.random.default_rng(r).standard_normal((len(names), r, DIM)))
    lz = BlockLanczos(dense_matvec(xp.asarray(A)), start, max_steps=50)
    for _ in range(8):
        lz.step()
        j = lz.steps
        for b in range(len(names)):
            Q = to_numpy(lz.Q[b, : j + 1]).reshape((j + 1) * r, DIM)
            # full reorthogonalization (twice when needed) keeps Q Q^T = I to a few eps
            np.testing.assert_allclose(Q @ Q.T, np.eye((j + 1) * r), rtol=0, atol=1e-12)
            proj = Q @ A[b] @ Q[: j * r].T
            T = lz.T[b, : (j + 1) * r, : j * r]
            # products of dim-term sums with |Q| <= 1: a few dim eps ||A||
            np.testing.assert_allclose(
                T, proj, rtol=0, atol=1e-12 * np.linalg.norm(A[b], 2), err_msg=names[b]
            )


def test_block_lanczos_ritz_values_interlace(batch):
    """Ritz values lie within the spectrum; with dim / r steps T holds all eigenvalues."""
    names, A, ref = batch
    r = 4
    lz = BlockLanczos(dense_matvec(A), np.random.default_rng(0).standard_normal((len(names), r, DIM)), DIM)
    assert lz.cap == DIM // r
    for _ in range(3):
        lz.step()
    theta, resid = lz.ritz()
    assert theta.shape == resid.shape == (len(names), 3 * r)
    slack = 1e-12 * ref[:, :1]  # roundoff of T: a few eps ||A||
    assert (theta <= ref[:, :1] + slack).all() and (theta >= ref[:, -1:] - slack).all()
    # Cauchy interlacing: the i-th largest Ritz value is at most the i-th eigenvalue
    assert (theta[:, ::-1] <= ref[:, : 3 * r] + slack).all()
    # the residual norm bounds the distance to the nearest eigenvalue
    dist = np.abs(theta[:, :, None] - ref[:, None, :]).min(axis=2)
    assert (dist <= resid + slack).all()
    while lz.steps < lz.cap:
        lz.step()
    with pytest.raises(RuntimeError, match="basis is full"):
        lz.step()
    theta, _ = lz.ritz()
    assert (np.abs(theta[:, ::-1] - ref) <= 1e-12 * ref[:, :1]).all()


def test_block_lanczos_keeps_vectors_on_device_and_T_on_host(xp, batch):
    """Vectors stay in the operator's dtype and device; T is host float64."""
    names, A, ref = batch
    start = xp.asarray(np.random.default_rng(0).standard_normal((len(names), 2, DIM)), dtype=xp.float32)
    lz = BlockLanczos(dense_matvec(xp.asarray(A, dtype=xp.float32)), start, 10)
    for _ in range(10):
        lz.step()
    assert type(lz.Q) is type(start) and lz.Q.dtype == xp.float32
    assert type(lz.T) is np.ndarray and lz.T.dtype == np.float64
    # float32 vectors, float64 T: the top Ritz values after 10 steps are float32-accurate
    theta, _ = lz.ritz()
    assert (np.abs(theta[:, -1] - ref[:, 0]) <= RTOL32 * ref[:, 0]).all()


def test_block_lanczos_basis_stays_orthonormal_after_a_lost_column():
    """Block [e_4, random] on diag(3, ..., 2, ..., 1, ...): A e_4 = 3 e_4, so the first
    residual column is exactly zero after one step."""
    D = np.repeat([3.0, 2.0, 1.0], [10, 10, DIM - 20])
    start = np.zeros((1, 2, DIM))
    start[0, 0, 4] = 1.0  # (e_0 happens to be LAPACK's arbitrary direction: it would pass)
    start[0, 1] = np.random.default_rng(0).standard_normal(DIM)
    lz = BlockLanczos(diag_matvec(D[None]), start, max_steps=10)
    lz.step()
    Q = lz.Q[0, :2].reshape(4, DIM)
    np.testing.assert_allclose(Q @ Q.T, np.eye(4), rtol=0, atol=1e-12)
