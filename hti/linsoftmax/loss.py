"""Softmax regression: logits, stable (log-)softmax, the loss and its per-class parts.

Model: logits Z = X W^T + b with X (n, d), W (c, d), b (c,); P = softmax(Z) row-wise;
sample loss l_i = -log P[i, y_i] = logsumexp(z_i) - z_{i, y_i}; the loss is
L = sum_i s_i l_i with sample coefficients s_i = 1/n (the unweighted mean) or, for a
class-reweighted loss, s_i = w_{y_i} / sum_j w_{y_j}.

All functions take NumPy or CuPy arrays and keep their dtype. Every exponent is taken
after subtracting the row maximum, so no logit overflows in float32 or float64.
"""

from __future__ import annotations

from hti.backend import Array, get_xp


def logits(X: Array, W: Array, b: Array) -> Array:
    """Z = X W^T + b.  Shapes: X (n, d), W (c, d), b (c,) -> (n, c)."""
    get_xp(X, W, b)  # the same device for all three, or a clear error
    Z = X @ W.T  # (n, c)
    Z += b
    return Z


def log_softmax(Z: Array) -> Array:
    """log softmax of each row, z_ik - max_j z_ij - log sum_j exp(z_ij - max_j z_ij).

    Shapes: Z (n, c) -> (n, c).

    >>> import numpy as np
    >>> log_softmax(np.array([[1000.0, 1000.0]])).tolist()
    [[-0.6931471805599453, -0.6931471805599453]]
    """
    xp = get_xp(Z)
    S = Z - xp.max(Z, axis=1, keepdims=True)  # (n, c), every row has max 0
    S -= xp.log(xp.sum(xp.exp(S), axis=1, keepdims=True))
    return S


def softmax(Z: Array) -> Array:
    """Row-wise softmax, exp(z_ik - max_j z_ij) / sum_j exp(z_ij - max_j z_ij).

    Shapes: Z (n, c) -> (n, c).

    >>> import numpy as np
    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(12).tolist()
    [[0.25, 0.75]]
    """
    xp = get_xp(Z)
    P = Z - xp.max(Z, axis=1, keepdims=True)  # (n, c)
    xp.exp(P, out=P)
    P /= xp.sum(P, axis=1, keepdims=True)
    return P


def sample_losses(Z: Array, y: Array) -> Array:
    """l_i = logsumexp(z_i) - z_{i, y_i}.  Shapes: Z (n, c), y (n,) int -> (n,)."""
    xp = get_xp(Z, y)
    return -log_softmax(Z)[xp.arange(Z.shape[0]), y]


def sample_coefficients(y: Array, class_weights: Array | None, n_classes: int) -> Array | None:
    """s_i = w_{y_i} / sum_j w_{y_j}, or None for the unweighted mean (s_i = 1/n).

    Shapes: y (n,) int, class_weights (c,) -> (n,) float64.
    """
    if class_weights is None:
        return None
    xp = get_xp(y, class_weights)
    if class_weights.shape != (n_classes,):
        raise ValueError(f"class_weights must have shape ({n_classes},); got {class_weights.shape}")
    w = class_weights.astype(xp.float64)[y]  # (n,)
    return w / xp.sum(w)


def loss(X: Array, y: Array, W: Array, b: Array, coef: Array | None = None) -> Array:
    """L = sum_i s_i l_i (the mean of l_i when ``coef`` is None).

    Shapes: X (n, d), y (n,), W (c, d), b (c,), coef (n,) or None -> () scalar array.
    """
    xp = get_xp(X, y, W, b)
    losses = sample_losses(logits(X, W, b), y)  # (n,)
    if coef is None:
        return xp.mean(losses)
    return xp.sum(coef * losses).astype(losses.dtype)


def class_means(values: Array, y: Array, class_counts: Array) -> Array:
    """Mean of ``values`` over the samples of each class, accumulated in float64.

    Classes without samples get NaN. Shapes: values (n,), y (n,) int, class_counts (c,)
    -> (c,) float64.

    >>> import numpy as np
    >>> class_means(np.array([1.0, 3.0, 5.0]), np.array([0, 0, 1]), np.array([2, 1])).tolist()
    [2.0, 5.0]
    """
    xp = get_xp(values, y, class_counts)
    sums = xp.bincount(y, weights=values.astype(xp.float64), minlength=class_counts.shape[0])
    with_samples = class_counts > 0
    return xp.where(with_samples, sums / xp.where(with_samples, class_counts, 1), xp.nan)


def class_losses(X: Array, y: Array, W: Array, b: Array, class_counts: Array) -> Array:
    """Mean loss over the samples of each class.  Shapes: -> (c,) float64."""
    return class_means(sample_losses(logits(X, W, b), y), y, class_counts)


def class_accuracies(X: Array, y: Array, W: Array, b: Array, class_counts: Array) -> Array:
    """Fraction of each class's samples whose largest logit is their own class.

    Ties go to the lower class index (``argmax``).  Shapes: -> (c,) float64.
    """
    xp = get_xp(X, y, W, b)
    correct = xp.argmax(logits(X, W, b), axis=1) == y  # (n,)
    return class_means(correct, y, class_counts)
