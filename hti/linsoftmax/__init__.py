"""Softmax regression on the paper's heavy-tailed data, in closed form on NumPy or CuPy.

Data: :func:`heavy_tailed_data`. Loss and per-class parts: :func:`loss`,
:func:`class_losses`, :func:`class_accuracies`. Gradient: :func:`gradient`,
:func:`class_gradient_norms`. Curvature: :func:`hessian_block_traces`, :func:`hvp`,
:func:`hessian_matvec`, :func:`block_matvec`, :func:`hessian_block`. One fused pass of
everything a training step records: :func:`evaluate`. Optimizers: :data:`OPTIMIZERS`.
Training: :func:`run`, :func:`resume`.
"""

from hti.linsoftmax.data import class_counts, dataset_shape, heavy_tailed_data, labels, make_inputs
from hti.linsoftmax.grad import class_gradient_norms, gradient, row_norms
from hti.linsoftmax.hessian import (
    block_matvec,
    dense_hessian,
    hessian_block,
    hessian_block_traces,
    hessian_matvec,
    hvp,
)
from hti.linsoftmax.loss import class_accuracies, class_losses, log_softmax, logits, loss, softmax
from hti.linsoftmax.optim import OPTIMIZERS, Transform, adam, chain, momentum, normalize, scale, sign
from hti.linsoftmax.params import init_params
from hti.linsoftmax.stats import Evaluation, Problem, evaluate, make_problem
from hti.linsoftmax.train import RunResult, resume, run

__all__ = [
    # data
    "heavy_tailed_data", "make_inputs", "labels", "class_counts", "dataset_shape",
    # loss, gradient, curvature
    "logits", "softmax", "log_softmax", "loss", "class_losses", "class_accuracies",
    "gradient", "class_gradient_norms", "row_norms",
    "hessian_block_traces", "hvp", "hessian_matvec", "block_matvec", "hessian_block", "dense_hessian",
    # one fused step
    "Problem", "Evaluation", "make_problem", "evaluate",
    # optimizers and parameters
    "OPTIMIZERS", "Transform", "chain", "scale", "momentum", "sign", "normalize", "adam", "init_params",
    # training
    "run", "resume", "RunResult",
]  # fmt: skip
