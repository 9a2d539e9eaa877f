"""Memory needed by a linear run, estimated before anything large is allocated.

With s = itemsize, P = c d + c parameters and k parameter-sized optimizer-state arrays,
a step holds X (n d s), the parameters (P s), their gradient (P s) and the state
(k P s), and at its peak either the logits buffer (n c s, reused for the probabilities
and the residual) during the gradient pass, or the k new state arrays and the update
direction ((k + 1) P s) during the optimizer update, whichever is larger. Generating
orthogonal inputs needs a float64 Gaussian (d, n) matrix and its Q factor on the host
first.
"""

from __future__ import annotations

import numpy as np

from hti.backend import Namespace, available_memory, device_name
from hti.config import ConfigError
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.optim import OPTIMIZERS

GiB = 1 << 30


class InsufficientMemory(ConfigError):
    """The run cannot fit; the message gives the estimate and what is available."""


def estimate(cfg: LinearConfig) -> dict[str, int]:
    """Bytes of each part of a run's peak, plus their ``"total"`` (see the module)."""
    n, c, d = cfg.shape
    s = np.dtype(cfg.dtype).itemsize
    P = c * d + c
    k = OPTIMIZERS[cfg.optim].state_arrays[int(cfg.momentum)]
    parts = {
        "X": n * d * s,
        "W, b": P * s,
        "gradient": P * s,
        "optimizer state": k * P * s,
        "logits or update workspace": max(n * c * s, (k + 1) * P * s),
        "per-sample vectors": 8 * n * 8,
    }
    if {"eig", "coupling"} & set(cfg.track):  # K = X X^T, kept for the whole run
        parts["Gram matrix K"] = n * n * s
    if cfg.track:  # probabilities, Lanczos basis (capped), float64 row blocks and (n, c) arrays
        parts["curvature workspace"] = n * c * s + min(1 << 30, 65 * cfg.eig_k * n * c * s) + (1 << 28) + 4 * n * c * 8
    train = sum(parts.values())
    if cfg.inputs == "orthogonal":  # host float64 Gaussian + Q, then X
        parts["orthogonal-input generation"] = max(0, 2 * d * n * 8 + n * d * s - train)
    parts["total"] = sum(parts.values())
    return parts


def format_bytes(b: float) -> str:
    """'1.5 GiB', '300 MiB', '12 KiB'."""
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{int(b)} B"


def describe(parts: dict[str, int]) -> str:
    """'3.0 GiB (X 2.1 GiB, W, b 200.0 MiB, ...)'."""
    inner = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if k != "total" and v)
    return f"{format_bytes(parts['total'])} ({inner})"


def check_memory(cfg: LinearConfig, xp: Namespace) -> dict[str, int]:
    """Raise :class:`InsufficientMemory` if the estimate exceeds what is free."""
    parts = estimate(cfg)
    free = available_memory(xp)
    if parts["total"] > free:
        n, c, d = cfg.shape
        raise InsufficientMemory(
            f"m = {cfg.m} (n = {n}, c = {c}, d = {d}, {cfg.dtype}, {cfg.optim}) needs about "
            f"{describe(parts)}, but only {format_bytes(free)} is available on {device_name(xp)}"
        )
    return parts
