"""The paper's Appendix E experiment: how block curvature scales with class frequency.

Under the paper's Definition 1 "good prediction" state every sample of class y puts
probability p on y. The Hessian depends on (W, b) only through P, so the state is given
directly as a probability matrix (:func:`good_prediction_probabilities`). Then, per
class k with frequency pi_k, both Tr(H_kk) and lambda_max(H_kk) are measured, and the
slopes of log Tr(H_kk) and log lambda_max(H_kk) against log pi_k are fitted by least
squares over all classes (:func:`scaling_slopes`).

What to expect (the paper's Appendix E), and two pitfalls measured with ``hti scaling``:

- correlated inputs (uniform, N(1, 1)): both slopes near 1 (the curvature of a class
  block follows its frequency);
- orthogonal inputs: trace slope near 1 but eigenvalue slope near 0. With x_i . x_j =
  d delta_ij the nonzero eigenvalues of H_kk are d s_i p_ik (1 - p_ik), so lambda_max =
  p (1 - p) d / n for every class, whatever its frequency;
- spreading 1 - p evenly over the other classes (``spread="even"``) instead of in
  proportion to their frequencies lowers the trace slope (the rare classes then receive
  as much probability from the other samples as the frequent ones);
- states reached by training (``hti scaling --from RUN --at STEP``) need not look like
  Definition 1: after Adam on orthogonal inputs the eigenvalue slope is no longer 0.
  The README gives the measured numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hti.backend import Array, get_xp, to_numpy
from hti.linsoftmax.curvature import block_top_eigenvalues
from hti.linsoftmax.hessian import hessian_block_traces


class ScalingResult(NamedTuple):
    """Per class: pi (c,), hess_trace (c,), hess_eig_max (c,), eig_iterations (c,);
    fitted slopes (and intercepts) of the logs against log pi."""

    pi: np.ndarray
    hess_trace: np.ndarray
    hess_eig_max: np.ndarray
    eig_iterations: np.ndarray
    trace_slope: float
    trace_intercept: float
    eig_slope: float
    eig_intercept: float


def good_prediction_probabilities(y: Array, class_counts: Array, p: float = 0.9, spread: str = "frequency") -> Array:
    """The paper's Definition 1 "good prediction" state as a probability matrix (n, c).

    Each sample of class y puts probability p on y and spreads 1 - p over the other
    classes: ``frequency`` in proportion to their frequencies, P[i, k] = (1 - p) pi_k /
    (1 - pi_y); ``even`` uniformly, (1 - p) / (c - 1) (a pitfall: see ``hti scaling``).
    """
    xp = get_xp(y, class_counts)
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1); got {p}")
    c = class_counts.shape[0]
    pi = class_counts.astype(xp.float64) / xp.sum(class_counts)  # (c,)
    if spread == "frequency":
        P = (1 - p) * pi[None, :] / (1 - pi[y])[:, None]  # (n, c)
    elif spread == "even":
        P = xp.full((y.shape[0], c), (1 - p) / (c - 1))
    else:
        raise ValueError(f"spread must be 'frequency' or 'even'; got {spread!r}")
    P[xp.arange(y.shape[0]), y] = p
    return P


def fit_log_slope(x, y) -> tuple[float, float]:
    """Least-squares (slope, intercept) of log y against log x over positive entries.

    >>> slope, intercept = fit_log_slope([1, 2, 4], [3, 6, 12])
    >>> slope, round(intercept, 12) == round(float(np.log(3)), 12)
    (1.0, True)
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(round(slope, 12)), float(intercept)  # rounding: exact slopes print exactly


def scaling_slopes(X: Array, P: Array, class_counts: Array, *, K: Array | None = None) -> ScalingResult:
    """Traces and top eigenvalues of every class block at P, and their slopes in pi.

    Shapes: X (n, d), P (n, c), class_counts (c,).
    """
    get_xp(X, P)  # the same device for both, or a clear error
    P = P.astype(X.dtype, copy=False)
    counts = to_numpy(class_counts).astype(np.float64)
    pi = counts / counts.sum()
    trace = to_numpy(hessian_block_traces(X, P)).astype(np.float64)
    res = block_top_eigenvalues(X, P, 1, K=K)
    eig = res.values[:, 0]
    ts, ti = fit_log_slope(pi, trace)
    es, ei = fit_log_slope(pi, eig)
    return ScalingResult(pi, trace, eig, res.iterations, ts, ti, es, ei)
