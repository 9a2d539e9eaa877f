"""Curvature of the softmax-regression loss: Hessian-vector products, blocks, traces.

With augmented inputs x~_i = (x_i, 1), parameters theta = (W, b) and sample
coefficients s_i (1/n for the mean loss), the Hessian is

    H = sum_i s_i (diag(p_i) - p_i p_i^T) (x) x~_i x~_i^T,

whose (k, k') block over the class vectors w_k, w_k' (bias excluded) is

    H_kk' = sum_i s_i (delta_kk' p_ik - p_ik p_ik') x_i x_i^T     (d, d),

so Tr(H_kk) = sum_i s_i p_ik (1 - p_ik) ||x_i||^2 (the paper's Equation (3); its released
scripts summed x_i instead of ||x_i||^2). Everything here takes the probabilities
P = softmax(X W^T + b) (n, c) precomputed, since H depends on (W, b) only through P.

Flat parameter vectors order theta as ``concat(W.ravel(), b)``: entry k*d + j is W[k, j]
and entry c*d + k is b[k]. :func:`dense_hessian` uses the same order and exists for
tests on tiny problems only.
"""

from __future__ import annotations

from typing import Callable

from hti.backend import Array, get_xp

_CHUNK_ELEMENTS = 1 << 20  # row chunks of the (n, c) temporaries hold about 2^20 entries


def sample_weights(P: Array, coef: Array | None) -> Array:
    """s_i as an (n,) array in P's dtype."""
    xp = get_xp(P)
    n = P.shape[0]
    if coef is None:
        return xp.full(n, 1.0 / n, dtype=P.dtype)
    return coef.astype(P.dtype, copy=False)


def hessian_block_traces(
    X: Array, P: Array, coef: Array | None = None, sqnorm: Array | None = None
) -> Array:
    """Tr(H_kk) = sum_i s_i p_ik (1 - p_ik) ||x_i||^2 for every class k.

    Works through row chunks, so no (n, c) temporary is made.
    Shapes: X (n, d), P (n, c), coef (n,) or None, sqnorm (n,) = ||x_i||^2 or None
    -> (c,) in P's dtype.
    """
    xp = get_xp(X, P)
    n, c = P.shape
    if sqnorm is None:
        sqnorm = xp.einsum("ij,ij->i", X, X)  # (n,)
    w = sample_weights(P, coef) * sqnorm.astype(P.dtype, copy=False)  # (n,)
    out = xp.zeros(c, dtype=P.dtype)
    rows = max(1, _CHUNK_ELEMENTS // c)
    for start in range(0, n, rows):
        Pc = P[start : start + rows]  # (rows, c)
        out += (Pc - Pc * Pc).T @ w[start : start + rows]
    return out


def hvp(
    X: Array, P: Array, V: Array, vb: Array, coef: Array | None = None
) -> tuple[Array, Array]:
    """H (V, vb): the full Hessian over (W, b) times a direction, in two GEMMs.

    With directional logits U = X V^T + vb, the Jacobian of softmax gives
    R_i = s_i (p_i * u_i - p_i (p_i . u_i)), and H (V, vb) = (R^T X, sum_i R_i).
    Shapes: X (n, d), P (n, c), V (c, d), vb (c,) -> ((c, d), (c,)).
    """
    xp = get_xp(X, P, V, vb)
    R = X @ V.T  # (n, c)
    R += vb
    R *= P
    R -= P * xp.sum(R, axis=1, keepdims=True)
    R *= sample_weights(P, coef)[:, None]
    return R.T @ X, xp.sum(R, axis=0)


def hessian_matvec(X: Array, P: Array, coef: Array | None = None) -> Callable[[Array], Array]:
    """The closure theta -> H theta on flat vectors of length c (d + 1); see the module."""
    xp = get_xp(X, P)
    n, d = X.shape
    c = P.shape[1]

    def matvec(v: Array) -> Array:
        v = xp.asarray(v).reshape(-1)
        HV, Hvb = hvp(X, P, v[: c * d].reshape(c, d), v[c * d :], coef)
        return xp.concatenate([HV.reshape(-1), Hvb])

    return matvec


def block_matvec(
    X: Array, P: Array, k: int, k2: int | None = None, coef: Array | None = None
) -> Callable[[Array], Array]:
    """The closure v -> H_kk' v for one (d, d) block (k' = k when ``k2`` is None).

    H_kk' v = X^T (a * (X v)) with a_i = s_i (delta_kk' p_ik - p_ik p_ik').
    """
    xp = get_xp(X, P)
    a = _block_weights(P, k, k if k2 is None else k2, coef)  # (n,)

    def matvec(v: Array) -> Array:
        v = xp.asarray(v).reshape(-1)
        return X.T @ (a * (X @ v))

    return matvec


def _block_weights(P: Array, k: int, k2: int, coef: Array | None) -> Array:
    c = P.shape[1]
    for name, idx in (("k", k), ("k2", k2)):
        if not 0 <= idx < c:
            raise ValueError(f"class index {name} must be in [0, {c}); got {idx}")
    a = -P[:, k] * P[:, k2]
    if k == k2:
        a += P[:, k]
    return a * sample_weights(P, coef)


def hessian_block(
    X: Array, P: Array, k: int, k2: int | None = None, coef: Array | None = None
) -> Array:
    """The dense block H_kk' = X^T diag(a) X, (d, d); for small d (tests, spectra)."""
    a = _block_weights(P, k, k if k2 is None else k2, coef)  # (n,)
    return (X * a[:, None]).T @ X


def dense_hessian(X: Array, P: Array, coef: Array | None = None) -> Array:
    """The full Hessian over theta = concat(W.ravel(), b), (c(d+1), c(d+1)).

    Built from the Kronecker form in the module docstring with an O(n c^2 d^2) einsum:
    ground truth for tests on tiny problems only.
    """
    xp = get_xp(X, P)
    n, d = X.shape
    c = P.shape[1]
    s = sample_weights(P, coef)  # (n,)
    A = -P[:, :, None] * P[:, None, :]  # (n, c, c)
    A[:, xp.arange(c), xp.arange(c)] += P
    Xa = xp.concatenate([X, xp.ones((n, 1), dtype=X.dtype)], axis=1)  # (n, d+1)
    H = xp.einsum("i,ikl,ij,im->kjlm", s, A, Xa, Xa)  # (c, d+1, c, d+1)
    H = H.reshape(c * (d + 1), c * (d + 1))
    aug = xp.arange(c * (d + 1)).reshape(c, d + 1)
    order = xp.concatenate([aug[:, :d].reshape(-1), aug[:, d]])  # flat theta order
    return H[order][:, order]
