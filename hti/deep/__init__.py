"""PyTorch side of hti: the optimizers of the paper's family as ``torch.optim`` classes.

This subpackage is the only one that imports torch (``pip install 'hti[deep]'``; on a
machine without a GPU install ``torch==2.13.0``, the CPU build, first). Its optimizers
share names and semantics with :data:`hti.linsoftmax.optim.OPTIMIZERS` (and are tested
against them), not code.
"""

from hti.deep.optim import OPTIMIZER_NAMES, NormSGD, SignSGD, make_optimizer

__all__ = ["SignSGD", "NormSGD", "make_optimizer", "OPTIMIZER_NAMES"]
