"""Per-class loss and accuracy of a model over a whole split, by vectorized reductions.

Logits (n, c) and targets (n,) of a chunk give per-target losses l_i (cross-entropy) and
hits a_i (largest logit is the target; ties to the lower index); their per-class sums
are two ``bincount``s (``scatter_add``), accumulated over chunks in float64, never a loop
over classes. Targets equal to -1 are padding and are left out.

    class_loss[k] = sum_{i: y_i = k} l_i / n_k,   class_acc[k] = sum_{i: y_i = k} a_i / n_k,
    loss = sum_k n_k class_loss[k] / sum_k n_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ClassSums:
    """Running per-class sums of losses and hits, and counts (float64, on the model's device)."""

    loss: torch.Tensor  # (c,)
    hits: torch.Tensor  # (c,)
    count: torch.Tensor  # (c,)

    @classmethod
    def zeros(cls, n_classes: int, device) -> "ClassSums":
        z = lambda: torch.zeros(n_classes, dtype=torch.float64, device=device)  # noqa: E731
        return cls(z(), z(), z())

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Accumulate a chunk. Shapes: logits (..., c), targets (...) int64 (-1: padding)."""
        logits = logits.reshape(-1, logits.shape[-1])
        targets = targets.reshape(-1)
        keep = targets >= 0
        logits, targets = logits[keep], targets[keep]
        losses = F.cross_entropy(logits.float() if logits.dtype == torch.bfloat16 else logits, targets, reduction="none")
        hits = (logits.argmax(dim=1) == targets).to(torch.float64)
        self.loss.scatter_add_(0, targets, losses.to(torch.float64))
        self.hits.scatter_add_(0, targets, hits)
        self.count.scatter_add_(0, targets, torch.ones_like(hits))

    def all_reduce(self) -> None:
        """Sum over the ranks of a distributed run (no-op without one)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in (self.loss, self.hits, self.count):
                torch.distributed.all_reduce(t)

    def result(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(loss, class_loss (c,), class_acc (c,)) on the host; NaN for classes without targets."""
        loss = self.loss.cpu().numpy()
        hits = self.hits.cpu().numpy()
        count = self.count.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            class_loss = np.where(count > 0, loss / np.maximum(count, 1), np.nan)
            class_acc = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
        total = float(loss.sum() / count.sum()) if count.sum() > 0 else float("nan")
        return total, class_loss, class_acc
