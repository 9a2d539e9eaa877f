"""Whole spectra of chosen class blocks H_kk: exact, extreme, or as a density.

H_kk = X^T D_k X (d x d) has rank at most n; its nonzero eigenvalues are those of the
kernel form D_k^(1/2) K D_k^(1/2) (n x n, K = X X^T), so the spectrum lives in
dim = min(n, d) dimensions and the other |d - n| eigenvalues are exactly 0. Three views:

- :func:`block_spectrum`: every eigenvalue of the dim-dimensional form, by dense
  ``eigh`` (O(dim^3) per class: for small problems, or on request).
- :func:`block_extremes`: the r largest and r smallest by ``eigsh`` on the matrix-free
  form (for large problems).
- :func:`slq_nodes`: stochastic Lanczos quadrature. For a probe q (Rademacher, unit
  norm) and m Lanczos steps, T = S diag(theta) S^T gives nodes theta_j and weights
  tau_j = S_0j^2 with q^T f(A) q ~ sum_j tau_j f(theta_j); averaged over probes this is a
  quadrature for (1/dim) tr f(A), i.e. for the spectral density. Probes of all chosen
  classes run in one batch (:class:`hti.linsoftmax.lanczos.BlockLanczos`).

:func:`log_density` turns exact eigenvalues or SLQ nodes and weights into a density of
log10(lambda) on a grid, with a Gaussian kernel of ``bandwidth`` decades.
"""

from __future__ import annotations

import numpy as np

from hti.backend import Array, get_xp, linear_operator, sparse_linalg, to_device, to_numpy
from hti.linsoftmax.curvature import block_weights, input_matvec, kernel_matvec
from hti.linsoftmax.lanczos import BlockLanczos


def _forms(X: Array, P: Array, K: Array | None, coef: Array | None):
    """(dim, batched matvec, dense builder) of the smaller form of every class block."""
    xp = get_xp(X, P)
    n, d = X.shape
    w = block_weights(P, coef)  # (n, c)
    if n <= d:
        K = X @ X.T if K is None else K
        sq = xp.sqrt(w)

        def dense(k):
            return sq[:, k, None] * K * sq[None, :, k]  # (n, n)

        return n, kernel_matvec(sq, K=K), dense

    def dense(k):
        return (X * w[:, k, None]).T @ X  # (d, d)

    return d, input_matvec(X, w), dense


def _check_classes(classes, c: int) -> np.ndarray:
    classes = np.atleast_1d(np.asarray(classes, dtype=np.int64))
    if classes.size == 0 or classes.min() < 0 or classes.max() >= c:
        raise ValueError(f"classes must be non-empty and in [0, {c}); got {classes.tolist()}")
    return classes


def block_spectrum(X: Array, P: Array, classes, *, K: Array | None = None, coef: Array | None = None) -> np.ndarray:
    """All min(n, d) eigenvalues, ascending, of each chosen block (dense ``eigh``).

    Shapes: X (n, d), P (n, c), classes (C,) -> (C, min(n, d)) float64 on the host.
    """
    xp = get_xp(X, P)
    classes = _check_classes(classes, P.shape[1])
    _, _, dense = _forms(X, P, K, coef)
    return np.stack([to_numpy(xp.linalg.eigvalsh(dense(int(k)).astype(xp.float64))) for k in classes])


def block_extremes(
    X: Array, P: Array, classes, r: int = 10, *, K: Array | None = None, coef: Array | None = None, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """(r largest descending, r smallest ascending) eigenvalues of each chosen block.

    ``eigsh`` (which='LA') on the matrix-free form and on lambda_max I - A (so that the
    small end converges to an accuracy relative to lambda_max), one class at a time (for
    a few chosen classes; :func:`hti.linsoftmax.curvature.block_top_eigenvalues` batches
    all classes). Shapes: -> ((C, r), (C, r)) float64.
    """
    xp = get_xp(X, P)
    classes = _check_classes(classes, P.shape[1])
    dim, matvec, _ = _forms(X, P, K, coef)
    if not 1 <= r < dim:
        raise ValueError(f"r must be in [1, {dim}); got {r}")
    spla = sparse_linalg(xp)
    tops, bottoms = [], []
    for k in classes:
        member = xp.asarray([int(k)])

        def mv(v, member=member):
            V = xp.asarray(v, dtype=X.dtype).reshape(1, 1, dim)
            return matvec(V, member).reshape(-1).astype(xp.float64)

        v0 = to_device(np.random.default_rng(int(k)).standard_normal(dim), xp)
        top = np.sort(to_numpy(spla.eigsh(linear_operator(mv, dim, xp.float64, xp), k=r, which="LA", tol=tol,
                                          v0=v0, return_eigenvectors=False)))[::-1]  # fmt: skip
        shift = float(top[0])  # the bottom as the top of shift*I - A: accuracy relative to the top

        def flipped(v, mv=mv, shift=shift):
            return shift * xp.asarray(v, dtype=xp.float64).reshape(-1) - mv(v)

        flip = spla.eigsh(linear_operator(flipped, dim, xp.float64, xp), k=r, which="LA", tol=tol, v0=v0,
                          return_eigenvectors=False)  # fmt: skip
        tops.append(top)
        bottoms.append(np.sort(shift - to_numpy(flip)))
    return np.stack(tops), np.stack(bottoms)


def slq_nodes(
    X: Array,
    P: Array,
    classes,
    *,
    probes: int = 16,
    steps: int = 60,
    K: Array | None = None,
    coef: Array | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature nodes and weights of each chosen block.

    Rademacher probes, ``steps`` Lanczos steps with full reorthogonalization, all classes
    and probes in one batch. Weights of one probe sum to 1.
    Shapes: -> (nodes (C, probes, m), weights (C, probes, m)), m = min(steps, dim).
    """
    xp = get_xp(X, P)
    classes = _check_classes(classes, P.shape[1])
    dim, matvec, _ = _forms(X, P, K, coef)
    steps = min(steps, dim)
    member_class = to_device(np.repeat(classes, probes), xp)  # batch member -> class
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(classes.size * probes, 1, dim))
    start = to_device((signs / np.sqrt(dim)).astype(X.dtype), xp)
    lz = BlockLanczos(lambda V, members: matvec(V, member_class[members]), start, steps, seed)
    for _ in range(steps):
        lz.step()
    theta, S = np.linalg.eigh(lz.T[:, :steps, :steps])  # (C*probes, m), (C*probes, m, m)
    weights = S[:, 0, :] ** 2
    shape = (classes.size, probes, steps)
    return theta.reshape(shape), weights.reshape(shape)


def log_density(
    nodes: np.ndarray, weights: np.ndarray | None = None, *, grid: np.ndarray | None = None, bandwidth: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Density of log10(lambda) over the positive nodes, Gaussian-smoothed.

    ``nodes`` (..., m) are exact eigenvalues (``weights`` None: each 1/m) or the SLQ
    nodes and weights of one probe (average the result over probes). The density
    integrates to the fraction of positive eigenvalues. Returns (grid (G,), density
    (..., G)), the grid in log10 units, by default 400 points spanning the nodes.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    if weights is None:
        weights = np.full(nodes.shape, 1.0 / nodes.shape[-1])
    weights = np.where(nodes > 0, weights, 0.0)
    logs = np.log10(np.where(nodes > 0, nodes, 1.0))
    if grid is None:
        pos = logs[nodes > 0]
        lo, hi = (pos.min(), pos.max()) if pos.size else (-1.0, 0.0)
        grid = np.linspace(lo - 4 * bandwidth, hi + 4 * bandwidth, 400)
    kernel = np.exp(-0.5 * ((grid - logs[..., None]) / bandwidth) ** 2) / (bandwidth * np.sqrt(2 * np.pi))
    return grid, np.sum(weights[..., None] * kernel, axis=-2)  # (..., G)
