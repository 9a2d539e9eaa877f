"""The last layer of a network is softmax regression on its features: its curvature.

With penultimate features h_i (n, D) of n training targets y_i and the last layer's
(W (c, D), b (c,)), the loss of the last layer is exactly the softmax-regression loss of
:mod:`hti.linsoftmax` with inputs X = h. Its per-class gradient norms ||grad_{w_k} L||,
Hessian-block traces Tr(H_kk) and (with ``eig``) the top eigenvalues of every block H_kk
are therefore computed by the linear engine, on the same device: torch tensors reach
NumPy (CPU) or CuPy (GPU) through DLPack, without a copy.
"""

from __future__ import annotations

import numpy as np
import torch

from hti.backend import get_xp, to_numpy
from hti.linsoftmax.curvature import block_top_eigenvalues, gram, log_correlation
from hti.linsoftmax.loss import logits as linear_logits
from hti.linsoftmax.loss import softmax
from hti.linsoftmax.stats import evaluate, make_problem


def to_array(t: torch.Tensor):
    """A torch tensor as a NumPy array (CPU) or CuPy array (GPU), sharing its memory."""
    t = t.detach()
    if t.device.type == "cpu":
        return t.numpy()
    import cupy  # noqa: PLC0415  (GPU only; hti[gpu])

    return cupy.from_dlpack(t)


def last_layer_curvature(
    features: torch.Tensor, targets: torch.Tensor, W: torch.Tensor, b: torch.Tensor, n_classes: int, *,
    eig: bool = False, k: int = 1,
) -> dict[str, np.ndarray | float]:  # fmt: skip
    """Per-class statistics of the last layer at (W, b) on these features.

    Shapes: features (n, D), targets (n,) int64 (no padding), W (c, D), b (c,).
    Returns grad_norm (c,), hess_trace (c,), grad_hess_corr, and with ``eig`` hess_eig
    (c, k), eig_iterations (c,) and grad_eig_corr, on the host (float64).
    """
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    X = to_array(features.to(dtype).contiguous())
    y = to_array(targets.contiguous())
    Wa, ba = to_array(W.to(dtype).contiguous()), to_array(b.to(dtype).contiguous())
    xp = get_xp(X)
    counts = xp.bincount(y, minlength=n_classes)
    ev = evaluate(make_problem(X, y, counts), Wa, ba)
    grad_norm = to_numpy(ev.grad_norm).astype(np.float64)
    hess_trace = to_numpy(ev.hess_trace).astype(np.float64)
    out: dict[str, np.ndarray | float] = {
        "grad_norm": grad_norm,
        "hess_trace": hess_trace,
        "grad_hess_corr": log_correlation(grad_norm, hess_trace),
    }
    if eig:
        P = softmax(linear_logits(X, Wa, ba))
        n, D = X.shape
        res = block_top_eigenvalues(X, P, k, K=gram(X) if n <= D else None)
        out.update(hess_eig=res.values, eig_iterations=res.iterations,
                   grad_eig_corr=log_correlation(grad_norm, res.values[:, 0]))  # fmt: skip
    return out
