"""One fused pass: the training gradient and every per-class statistic of a step.

:func:`evaluate` computes, from one forward GEMM (Z = X W^T + b) and one gradient GEMM
(R^T X), the loss, its gradient, and the exact per-class statistics the trajectory
records:

    class_loss[k] = mean of l_i over the samples of class k,
    class_acc[k]  = fraction of class k's samples whose largest logit is k,
    grad_norm[k]  = ||grad_{w_k} L||_2 (bias excluded),
    hess_trace[k] = Tr(grad^2_{w_k} L) = (1/n) sum_i p_ik (1 - p_ik) ||x_i||^2.

All of them describe the unweighted loss L = (1/n) sum_i l_i. When the problem trains a
class-reweighted loss, the gradient returned is the reweighted one, and ``grad_norm``
(which needs the unweighted gradient) costs a third GEMM on the steps that record
statistics. The only (n, c) array is the logits buffer, reused for P and then for the
residual; the per-class sums are accumulated in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hti.backend import Array, get_xp
from hti.linsoftmax.grad import gradient_from_residual, residual_, row_norms
from hti.linsoftmax.hessian import hessian_block_traces
from hti.linsoftmax.loss import class_means, sample_coefficients

REWEIGHT = ("none", "inv", "inv-sqrt")


class Problem(NamedTuple):
    """A data set on its device, with what every step reuses.

    X (n, d); y (n,) int64; class_counts (c,) int64; sqnorm (n,) = ||x_i||^2 in X's
    dtype; coef (n,) training-loss sample coefficients in X's dtype, or None for the
    unweighted mean.
    """

    X: Array
    y: Array
    class_counts: Array
    sqnorm: Array
    coef: Array | None


class Evaluation(NamedTuple):
    """Result of :func:`evaluate`; statistics are None when not requested.

    loss () unweighted mean loss; train_loss () the loss being trained; grads
    (grad_W (c, d), grad_b (c,)) of train_loss; class_loss, class_acc (c,) float64;
    grad_norm, hess_trace (c,) in X's dtype.
    """

    loss: Array
    train_loss: Array
    grads: tuple[Array, Array]
    class_loss: Array | None = None
    class_acc: Array | None = None
    grad_norm: Array | None = None
    hess_trace: Array | None = None


def class_weights(class_counts: Array, reweight: str) -> Array | None:
    """Class weights of a reweighted loss: 1/pi_k (``inv``), 1/sqrt(pi_k) (``inv-sqrt``).

    pi_k = n_k / n. Returns None for ``none``. Shapes: (c,) -> (c,) float64.
    """
    if reweight not in REWEIGHT:
        raise ValueError(f"reweight must be one of {REWEIGHT}; got {reweight!r}")
    if reweight == "none":
        return None
    xp = get_xp(class_counts)
    pi = class_counts.astype(xp.float64) / xp.sum(class_counts)
    return 1.0 / pi if reweight == "inv" else 1.0 / xp.sqrt(pi)


def make_problem(X: Array, y: Array, class_counts: Array, reweight: str = "none") -> Problem:
    """Bundle device arrays for :func:`evaluate`, checking their shapes."""
    xp = get_xp(X, y, class_counts)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,); got X {X.shape}, y {y.shape}")
    c = class_counts.shape[0]
    if y.size and not 0 <= int(y.min()) <= int(y.max()) < c:
        raise ValueError(f"labels must be in [0, c = {c}); got labels in [{int(y.min())}, {int(y.max())}]")
    if not bool(xp.all(xp.bincount(y, minlength=c) == class_counts)):
        raise ValueError("class_counts must be the number of samples of each class in y; they differ")
    coef = sample_coefficients(y, class_weights(class_counts, reweight), class_counts.shape[0])
    sqnorm = xp.einsum("ij,ij->i", X, X)  # (n,)
    return Problem(X, y, class_counts, sqnorm, None if coef is None else coef.astype(X.dtype))


def evaluate(problem: Problem, W: Array, b: Array, *, with_stats: bool = True) -> Evaluation:
    """Loss, training gradient and (if ``with_stats``) the per-class statistics at (W, b).

    Shapes: W (c, d), b (c,) matching ``problem``; see :class:`Evaluation`.
    """
    X, y, counts, sqnorm, coef = problem
    xp = get_xp(X, W, b)
    n = X.shape[0]
    rows = xp.arange(n)

    Z = X @ W.T  # (n, c), GEMM 1
    Z += b
    Z -= xp.max(Z, axis=1, keepdims=True)  # every row has max 0: exp cannot overflow
    correct = xp.argmax(Z, axis=1) == y if with_stats else None  # (n,)
    z_own = Z[rows, y]  # (n,)
    xp.exp(Z, out=Z)
    total = xp.sum(Z, axis=1)  # (n,), >= 1
    Z *= (1 / total)[:, None]  # Z now holds P
    losses = xp.log(total) - z_own  # (n,) l_i = logsumexp(z_i) - z_iy
    loss = xp.mean(losses)
    train_loss = loss if coef is None else xp.sum(coef * losses)

    stats = {}
    if with_stats:
        stats["class_loss"] = class_means(losses, y, counts)
        stats["class_acc"] = class_means(correct, y, counts)
        stats["hess_trace"] = hessian_block_traces(X, Z, None, sqnorm)
        if coef is not None:  # statistics describe the unweighted loss: one more GEMM
            R = residual_(Z, y, None)  # (n, c), (P - Y) / n
            stats["grad_norm"] = row_norms(R.T @ X)
            R *= (coef * n)[:, None]  # now diag(s) (P - Y)
            grads = gradient_from_residual(X, R)
            return Evaluation(loss, train_loss, grads, **stats)
    grads = gradient_from_residual(X, residual_(Z, y, coef))  # GEMM 2
    if with_stats:
        stats["grad_norm"] = row_norms(grads[0])
    return Evaluation(loss, train_loss, grads, **stats)


def is_finite(value: Array) -> bool:
    """Whether a scalar array is finite (one device-to-host transfer)."""
    return bool(np.isfinite(float(value)))
