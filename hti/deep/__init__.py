"""PyTorch side of hti: transformers, GPT-2, a CNN and softmax regression with per-class
statistics (``hti deep``), and the paper's optimizer family as ``torch.optim`` classes.

This subpackage is the only one that imports torch (``pip install 'hti[deep]'``; on a
machine without a GPU install ``torch==2.13.0``, the CPU build, first). Its optimizers
share names and semantics with :data:`hti.linsoftmax.optim.OPTIMIZERS` (and are tested
against them), not code. The last layer of every model is softmax regression on its
features, whose per-class curvature :mod:`hti.deep.lastlayer` gets from :mod:`hti.linsoftmax`.
"""

from hti.deep.config import DeepConfig
from hti.deep.data import DeepData, load_data
from hti.deep.models import MODELS, build_model
from hti.deep.optim import OPTIMIZER_NAMES, NormSGD, SignSGD, make_optimizer
from hti.deep.train import resume, run

__all__ = [
    "DeepConfig", "DeepData", "load_data", "MODELS", "build_model",
    "SignSGD", "NormSGD", "make_optimizer", "OPTIMIZER_NAMES", "run", "resume",
]  # fmt: skip
