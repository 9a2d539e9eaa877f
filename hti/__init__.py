"""hti: the optimization science of heavy-tailed class imbalance.

Reproduces and extends Kunstner, Yadav, Milligan, Schmidt and Bietti (2024), "Heavy-Tailed
Class Imbalance and Why Adam Outperforms Gradient Descent on Language Models".

- :mod:`hti.linsoftmax`: exact softmax-regression engine on NumPy/CuPy (losses, gradients,
  per-class curvature, optimizers, the training loop).
- :mod:`hti.analysis`: frequency groups and summaries of trajectories.
- :mod:`hti.deep`: PyTorch models (imports torch; nothing else here does).
- :mod:`hti.storage`: HDF5 trajectories.

Importing ``hti`` loads nothing heavy.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
