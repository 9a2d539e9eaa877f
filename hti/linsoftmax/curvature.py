"""Per-class curvature beyond traces: block eigenvalues, block coupling, the top of H.

Notation (see :mod:`hti.linsoftmax.hessian`): sample coefficients s_i (1/n for the mean
loss), probabilities P (n, c), the class blocks over the W rows

    H_kk' = X^T diag(v_kk') X,   v_kk'[i] = s_i (delta_kk' p_ik - p_ik p_ik'),

and the Gram matrix K = X X^T (n, n), which depends on the data only.

**Block eigenvalues.** H_kk = X^T D_k X with D_k = diag(s p_k (1 - p_k)) >= 0. Its nonzero
eigenvalues are those of the n x n kernel form D_k^(1/2) K D_k^(1/2) (both are G G^T and
G^T G for G = D_k^(1/2) X). :func:`block_top_eigenvalues` runs one batched block Lanczos
(:mod:`hti.linsoftmax.lanczos`) for all c classes: each iteration is a single GEMM with K
over every class's vectors (the kernel form, when n <= d and K is given), or two GEMMs
with X (the d x d form), never c separate solver calls.

**Coupling (Frobenius norms).** For any weights u, ||X^T diag(u) X||_F^2 =
tr(X^T U X X^T U X) = sum_ij u_i u_j (x_i . x_j)^2 = u^T G u with G = K o K. Hence, with
A = s o P o (1 - P), B = s o P and C = s o P o P (all (n, c)) and S = P P^T (n, n):

    ||H_kk||_F^2              = a_k^T G a_k,
    sum_{k'!=k} ||H_kk'||_F^2 = sum_ij s_i s_j p_ik p_jk G_ij sum_{k'!=k} p_ik' p_jk'
                              = b_k^T (G o S) b_k - c_k^T G c_k,

using sum_{k'!=k} p_ik' p_jk' = S_ij - p_ik p_jk. :func:`block_frobenius_norms` evaluates
the diagonals of A^T G A, B^T (G o S) B and C^T G C through row blocks of G and S, in
float64 (the off-diagonal sum is a difference), with about 4 GEMMs of n x n x c: never a
(d, d) block and never a whole (n, n) float64 matrix.

**Top of the full Hessian.** :func:`hessian_top_eigenvalues` runs the backend's ``eigsh``
(ARPACK, or CuPy's Lanczos) on the Hessian-vector product over (W, b).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hti.backend import Array, get_xp, linear_operator, sparse_linalg, to_device, to_numpy
from hti.linsoftmax.hessian import hessian_block_traces, hessian_matvec, sample_weights
from hti.linsoftmax.lanczos import LanczosResult, top_eigenvalues

_BLOCK_BYTES = 1 << 28  # row blocks of the (n, n) float64 temporaries: 256 MiB each at most


def gram(X: Array) -> Array:
    """K = X X^T, (n, n) in X's dtype: the data's Gram matrix (one GEMM, 2 n^2 d flops)."""
    return X @ X.T


def block_weights(P: Array, coef: Array | None) -> Array:
    """w_ik = s_i p_ik (1 - p_ik), (n, c): the diagonal of D_k for every class."""
    return sample_weights(P, coef)[:, None] * (P - P * P)


def kernel_matvec(sqrt_w: Array, *, K: Array | None = None, X: Array | None = None):
    """(V (b, r, n), members) -> D^(1/2) K D^(1/2) V for the members' classes.

    One GEMM with K (n x n) when given, else two with X (K is never formed).
    """
    xp = get_xp(sqrt_w)
    rows = xp.ascontiguousarray(sqrt_w.T)  # (c, n)

    def matvec(V, members):
        b, r, n = V.shape
        s = rows[members][:, None, :]  # (b, 1, n)
        Y = (V * s).reshape(b * r, n)
        Y = Y @ K if K is not None else (Y @ X) @ X.T  # (b r, n)
        Y = Y.reshape(b, r, n)
        Y *= s
        return Y

    return matvec


def input_matvec(X: Array, w: Array):
    """(V (b, r, d), members) -> X^T D X V for the members' classes (two GEMMs)."""
    xp = get_xp(X)
    rows = xp.ascontiguousarray(w.T)  # (c, n)

    def matvec(V, members):
        b, r, d = V.shape
        U = V.reshape(b * r, d) @ X.T  # (b r, n)
        U = U.reshape(b, r, -1)
        U *= rows[members][:, None, :]
        return (U.reshape(b * r, -1) @ X).reshape(b, r, d)

    return matvec


def block_top_eigenvalues(
    X: Array,
    P: Array,
    k: int = 1,
    *,
    K: Array | None = None,
    coef: Array | None = None,
    classes: Array | None = None,
    tol: float | None = None,
    max_steps: int = 300,
    memory_budget: int = 1 << 30,
    seed: int = 0,
) -> LanczosResult:
    """The k largest eigenvalues of every class block H_kk, for all classes together.

    With ``K`` = X X^T (worth computing once when the blocks are evaluated repeatedly, as
    along a trajectory) the iteration runs on the kernel form D_k^(1/2) K D_k^(1/2):
    vectors of length n, one GEMM (b n x n) per step. Without it, on X^T D_k X: vectors
    of length d, two GEMMs with X per step. Classes are processed in as few batches as
    ``memory_budget`` (bytes for the first 64 Lanczos steps) allows.

    The start of class k is the D_k-weighted mean input direction, D_k^(1/2) 1 in the
    kernel form and X^T D_k 1 (one GEMM: in effect half a power step) in the input form,
    plus a little noise. For correlated inputs it is close to the top eigenvector, and
    with the exact block traces (closed form) Temple's bound
    (:func:`hti.linsoftmax.lanczos.top_eigenvalues`) certifies the top eigenvalue after
    one or two steps.

    Shapes: X (n, d), P (n, c), K (n, n) or None, classes (c',) or None (all)
    -> LanczosResult with values (c', k) descending; see :func:`top_eigenvalues`.
    """
    xp = get_xp(X, P)
    n, d = X.shape
    c = P.shape[1]
    classes = np.arange(c) if classes is None else np.asarray(to_numpy(classes), dtype=np.int64)
    if classes.size and not (0 <= classes.min() and classes.max() < c):
        raise ValueError(f"classes must be in [0, {c}); got classes in [{classes.min()}, {classes.max()}]")
    if K is not None and K.shape != (n, n):
        raise ValueError(f"K must be X X^T, shape ({n}, {n}); got {K.shape}")
    w = block_weights(P, coef)  # (n, c)
    traces = to_numpy(hessian_block_traces(X, P, coef)).astype(np.float64)  # (c,)
    kernel = K is not None
    dim = n if kernel else d
    matvec = kernel_matvec(xp.sqrt(w), K=K) if kernel else input_matvec(X, w)
    noise = np.random.default_rng(seed).standard_normal(dim)
    per_class = (min(max_steps, 64) + 1) * k * dim * X.dtype.itemsize
    batch = max(1, int(memory_budget // per_class))
    parts = []
    for lo in range(0, classes.size, batch):
        cls = classes[lo : lo + batch]
        cls_d = to_device(cls, xp)
        start = xp.sqrt(w[:, cls_d]).T if kernel else (X.T @ w[:, cls_d]).T  # (b, dim)
        start = start / xp.maximum(xp.linalg.norm(start, axis=1, keepdims=True), xp.finfo(X.dtype).tiny)
        start = start + to_device((1e-4 / np.sqrt(dim) * noise).astype(X.dtype), xp)
        parts.append(
            top_eigenvalues(
                _member_map(matvec, cls_d), start, k, tol=tol, max_steps=max_steps, traces=traces[cls], seed=seed
            )
        )
    if not parts:
        return LanczosResult(np.zeros((0, k)), np.zeros(0, np.int64), np.zeros(0, bool))
    return LanczosResult(*(np.concatenate(f) for f in zip(*parts)))


def _member_map(matvec, cls):
    """Members of a batch are positions in ``cls``; the matvec wants class indices."""

    def mapped(V, members):
        return matvec(V, cls[members])

    return mapped


def block_frobenius_norms(
    X: Array, P: Array, *, K: Array | None = None, coef: Array | None = None
) -> tuple[Array, Array]:
    """(||H_kk||_F, (sum_{k'!=k} ||H_kk'||_F^2)^(1/2)) for every class; see the module.

    Blocks over the W rows only. Works through row blocks of the (n, n) matrices in
    float64; uses ``K`` = X X^T if given, else computes its row blocks from X.
    Shapes: X (n, d), P (n, c) -> ((c,), (c,)) float64.
    """
    xp = get_xp(X, P)
    n = X.shape[0]
    c = P.shape[1]
    P64 = P.astype(xp.float64)
    s = sample_weights(P64, None if coef is None else coef.astype(xp.float64))[:, None]  # (n, 1)
    Bm = s * P64  # (n, c)
    AC = xp.concatenate([Bm * (1 - P64), Bm * P64], axis=1)  # (n, 2c): [A | C]
    diag = xp.zeros(c)
    off = xp.zeros(c)
    rows = max(1, _BLOCK_BYTES // (8 * max(n, 1) * 3))
    for lo in range(0, n, rows):
        sl = slice(lo, lo + rows)
        Kb = (K[sl] if K is not None else X[sl] @ X.T).astype(xp.float64)  # (nb, n)
        Gb = Kb * Kb  # rows of G = K o K
        del Kb
        GAC = Gb @ AC  # (nb, 2c)
        diag += xp.sum(AC[sl, :c] * GAC[:, :c], axis=0)
        off -= xp.sum(AC[sl, c:] * GAC[:, c:], axis=0)
        Gb *= P64[sl] @ P64.T  # rows of G o S
        off += xp.sum(Bm[sl] * (Gb @ Bm), axis=0)
    return xp.sqrt(xp.maximum(diag, 0)), xp.sqrt(xp.maximum(off, 0))


def hessian_top_eigenvalues(
    X: Array, P: Array, k: int = 1, *, coef: Array | None = None, tol: float = 1e-8
) -> np.ndarray:
    """The k largest eigenvalues of the full Hessian over (W, b), descending (k,).

    ``eigsh`` (which='LA') on the Hessian-vector product: each matvec is two GEMMs.
    """
    xp = get_xp(X, P)
    n, d = X.shape
    c = P.shape[1]
    size = c * (d + 1)
    if not 1 <= k < size:
        raise ValueError(f"k must be in [1, {size}) for the full Hessian; got {k}")
    hv = hessian_matvec(X, P, coef)
    dtype = X.dtype

    def matvec(v):
        return hv(xp.asarray(v, dtype=dtype).reshape(-1)).astype(xp.float64)

    op = linear_operator(matvec, size, xp.float64, xp)
    v0 = to_device(np.random.default_rng(0).standard_normal(size), xp)
    vals = sparse_linalg(xp).eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(to_numpy(vals))[::-1]


def log_correlation(a, b) -> float:
    """Pearson correlation of log a and log b over the entries where both are positive.

    NaN with fewer than two such entries or no spread. Shapes: (c,), (c,) -> float.
    """
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(to_numpy(b), dtype=np.float64)
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan")
    la, lb = np.log(a[ok]), np.log(b[ok])
    la -= la.mean()
    lb -= lb.mean()
    den = np.sqrt((la @ la) * (lb @ lb))
    return float(la @ lb / den) if den > 0 else float("nan")


class Curvature(NamedTuple):
    """Curvature quantities at one point; None where not requested."""

    hess_eig: np.ndarray | None = None  # (c, k)
    hess_top: np.ndarray | None = None  # (k,)
    hess_diag_frob: np.ndarray | None = None  # (c,)
    hess_offdiag_frob: np.ndarray | None = None  # (c,)
    eig_iterations: np.ndarray | None = None  # (c,)
    eig_converged: np.ndarray | None = None  # (c,)


TRACKABLE = ("eig", "top", "coupling")


def curvature(
    X: Array, P: Array, track, *, k: int = 1, K: Array | None = None, coef: Array | None = None
) -> Curvature:
    """The quantities named in ``track`` (a subset of :data:`TRACKABLE`) at P, on the host."""
    out = {}
    if "eig" in track:
        res = block_top_eigenvalues(X, P, k, K=K, coef=coef)
        out.update(hess_eig=res.values, eig_iterations=res.iterations, eig_converged=res.converged)
    if "top" in track:
        out["hess_top"] = hessian_top_eigenvalues(X, P, k, coef=coef)
    if "coupling" in track:
        diag, off = block_frobenius_norms(X, P, K=K, coef=coef)
        out.update(hess_diag_frob=to_numpy(diag), hess_offdiag_frob=to_numpy(off))
    return Curvature(**out)
