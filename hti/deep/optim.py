"""Sign descent and normalized GD as ``torch.optim.Optimizer`` subclasses, and a factory.

Both follow the paper's code: the direction (sign(g), or g / ||g|| with one Euclidean
norm over every parameter of the optimizer) is taken first, then heavy-ball momentum
buf = beta buf + direction is applied to it, then p -= lr buf. ``make_optimizer`` maps
the names of :data:`hti.linsoftmax.optim.OPTIMIZERS` (plus ``adamw``) to torch.
"""

from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZER_NAMES = ("gd", "adam", "normgd", "sign", "adamw")


class _DirectionThenMomentum(torch.optim.Optimizer):
    """p -= lr * buf, buf = momentum * buf + direction(grads) (buf_0 = 0)."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0):
        if not lr > 0:
            raise ValueError(f"lr must be positive; got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def _directions(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        directions = dict(zip(params, self._directions([p.grad for p in params])))
        for group in self.param_groups:
            for p in group["params"]:
                if p not in directions:
                    continue
                u = directions[p]
                if group["momentum"]:
                    buf = self.state[p].get("momentum_buffer")
                    if buf is None:
                        buf = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                    buf.mul_(group["momentum"]).add_(u)
                    u = buf
                p.add_(u, alpha=-group["lr"])
        return loss


class SignSGD(_DirectionThenMomentum):
    """Sign descent: direction sign(g) (sign(0) = 0), then heavy-ball momentum."""

    def _directions(self, grads):
        return [torch.sign(g) for g in grads]


class NormSGD(_DirectionThenMomentum):
    """Normalized GD: direction g / ||g||, one norm over all parameters, then momentum."""

    def _directions(self, grads):
        if not grads:
            return []
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = 1.0 / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny)
        return [g * scale for g in grads]


def make_optimizer(
    name: str, params: Iterable, lr: float, momentum: bool = True, *, beta: float = 0.9,
    beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01,
) -> torch.optim.Optimizer:
    """The torch optimizer named like :data:`hti.linsoftmax.optim.OPTIMIZERS` (+ adamw).

    Momentum means heavy ball with ``beta`` (gd, normgd, sign) or Adam's beta1 = ``beta``
    (0 without momentum), as in the paper's experiments.
    """
    b = beta if momentum else 0.0
    if name == "gd":
        return torch.optim.SGD(params, lr=lr, momentum=b)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(b, beta2), eps=eps)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(b, beta2), eps=eps, weight_decay=weight_decay)
    if name == "normgd":
        return NormSGD(params, lr=lr, momentum=b)
    if name == "sign":
        return SignSGD(params, lr=lr, momentum=b)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}; got {name!r}")
