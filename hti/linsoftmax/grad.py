"""Gradient of the softmax-regression loss with respect to (W, b).

With P = softmax(X W^T + b), one-hot labels Y and sample coefficients s_i (1/n for the
mean; see :mod:`hti.linsoftmax.loss`), the residual is R = diag(s) (P - Y), and

    grad_W L = R^T X  (c, d),        grad_b L = sum_i R_i  (c,).

Row k of grad_W L is the gradient with respect to the class vector w_k; its norm is the
paper's per-class gradient norm (the bias is excluded, as in the paper).
"""

from __future__ import annotations

from hti.backend import Array, get_xp
from hti.linsoftmax.loss import logits, softmax


def residual_(P: Array, y: Array, coef: Array | None = None) -> Array:
    """R = diag(s) (P - Y), computed in place in ``P`` (which is returned).

    Shapes: P (n, c), y (n,) int, coef (n,) or None (s_i = 1/n) -> (n, c).
    """
    xp = get_xp(P, y)
    n = P.shape[0]
    P[xp.arange(n), y] -= 1
    if coef is None:
        P *= P.dtype.type(1.0 / n)
    else:
        P *= coef.astype(P.dtype, copy=False)[:, None]
    return P


def gradient_from_residual(X: Array, R: Array) -> tuple[Array, Array]:
    """(R^T X, sum_i R_i): one GEMM.  Shapes: X (n, d), R (n, c) -> ((c, d), (c,))."""
    xp = get_xp(X, R)
    return R.T @ X, xp.sum(R, axis=0)


def gradient(
    X: Array, y: Array, W: Array, b: Array, coef: Array | None = None
) -> tuple[Array, Array]:
    """(grad_W L, grad_b L).  Shapes: X (n, d), y (n,), W (c, d), b (c,) -> ((c, d), (c,))."""
    R = residual_(softmax(logits(X, W, b)), y, coef)  # (n, c)
    return gradient_from_residual(X, R)


def row_norms(G: Array) -> Array:
    """Euclidean norm of every row, without a (c, d) temporary.  (c, d) -> (c,)."""
    xp = get_xp(G)
    return xp.sqrt(xp.einsum("ij,ij->i", G, G))


def class_gradient_norms(
    X: Array, y: Array, W: Array, b: Array, coef: Array | None = None
) -> Array:
    """||grad_{w_k} L||_2 for every class k (bias excluded).  Shapes: -> (c,)."""
    return row_norms(gradient(X, y, W, b, coef)[0])
