"""Optimizers as small pure (init, update) pairs over tuples of arrays, optax style.

A :class:`Transform` maps an update direction and a state to a new direction and a new
state, never mutating its inputs; :func:`chain` composes transforms. Parameters are a
tuple of arrays (here (W, b)) and the caller applies ``param += update``. The paper's
family (its Section 2.4), with momentum coefficient beta (0.9 for "+m", 0 for "-m"):

    gd      chain(momentum(beta), scale(-lr))          heavy ball as torch.optim.SGD
    adam    chain(adam(beta, b2, eps), scale(-lr))     torch.optim.Adam (beta1 = beta)
    normgd  chain(normalize(), momentum(beta), scale(-lr))   g / ||g||, global norm
    sign    chain(sign(), momentum(beta), scale(-lr))        sign(g)

Normalized and sign descent normalize first, then average (the paper's code). Heavy-ball
momentum is buf_t = beta buf_{t-1} + u_t with buf_0 = 0, which equals torch's SGD rule
(first buffer = g) exactly, since 0.9 * 0 + g = g in floating point.

Each elementwise step writes into arrays it has just allocated, so an update allocates
its outputs and at most one temporary of the parameters' size (memory matters at
m = 11, where W alone is 200 MiB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from hti.backend import get_xp

Params = tuple  # tuple of arrays
State = Any  # a NamedTuple (or tuple of them) of arrays and ints


class Transform(NamedTuple):
    """init(params) -> state; update(updates, state) -> (updates, state)."""

    init: Callable[[Params], State]
    update: Callable[[Params, State], tuple[Params, State]]


class EmptyState(NamedTuple):
    pass


class MomentumState(NamedTuple):
    buf: Params


class AdamState(NamedTuple):
    step: int
    m: Params
    v: Params


def scale(factor: float) -> Transform:
    """u -> factor * u."""

    def init(params):
        return EmptyState()

    def update(updates, state):
        return tuple(u * u.dtype.type(factor) for u in updates), state

    return Transform(init, update)


def momentum(beta: float = 0.9) -> Transform:
    """Heavy ball: buf = beta * buf + u; the output is buf."""

    def init(params):
        xp = get_xp(*params)
        return MomentumState(tuple(xp.zeros_like(p) for p in params))

    def update(updates, state):
        new = []
        for u, buf in zip(updates, state.buf):
            out = buf * buf.dtype.type(beta)
            out += u
            new.append(out)
        new = tuple(new)
        return new, MomentumState(new)

    return Transform(init, update)


def sign() -> Transform:
    """u -> sign(u) elementwise (sign(0) = 0, as torch.sign)."""

    def init(params):
        return EmptyState()

    def update(updates, state):
        xp = get_xp(*updates)
        return tuple(xp.sign(u) for u in updates), state

    return Transform(init, update)


def normalize() -> Transform:
    """u -> u / ||u||, with one Euclidean norm over all arrays together (0 stays 0).

    The arrays are first divided by their largest absolute entry, so the sum of squares
    can neither overflow nor underflow in float32.
    """

    def init(params):
        return EmptyState()

    def update(updates, state):
        xp = get_xp(*updates)
        dtype = updates[0].dtype
        peak = max(xp.maximum(u.max(), -u.min()) for u in updates if u.size)  # max |u|
        scaled = tuple(u / xp.maximum(peak, xp.finfo(dtype).tiny) for u in updates)  # |.| <= 1
        sq = sum(xp.vdot(v.reshape(-1), v.reshape(-1)) for v in scaled)
        inv = 1 / xp.maximum(xp.sqrt(xp.asarray(sq, dtype=dtype)), xp.finfo(dtype).tiny)
        for v in scaled:
            v *= inv
        return scaled, state

    return Transform(init, update)


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    """Adam's direction, with torch.optim.Adam's arithmetic.

    m = m + (1 - b1)(g - m); v = b2 v + (1 - b2) g^2; with t the step count,
    u = m / ((1 - b1^t) (sqrt(v) / sqrt(1 - b2^t) + eps)).
    """

    def init(params):
        xp = get_xp(*params)
        return AdamState(0, tuple(xp.zeros_like(p) for p in params), tuple(xp.zeros_like(p) for p in params))

    def update(updates, state):
        xp = get_xp(*updates)
        t = state.step + 1
        bc1 = 1 - b1**t
        bc2_sqrt = math.sqrt(1 - b2**t)
        ms, vs, dirs = [], [], []
        for g, m_old, v_old in zip(updates, state.m, state.v):
            ty = g.dtype.type
            m = g - m_old  # m_old + (1 - b1)(g - m_old), with torch.lerp's two branches
            if 1 - b1 < 0.5:
                m *= ty(1 - b1)
                m += m_old
            else:  # g - b1 (g - m_old): exactly g when b1 = 0 (Adam without momentum)
                m *= ty(-b1)
                m += g
            v = v_old * ty(b2)
            tmp = g * g
            tmp *= ty(1 - b2)
            v += tmp
            denom = xp.sqrt(v, out=tmp)
            denom /= ty(bc2_sqrt)
            denom += ty(eps)
            denom *= ty(bc1)
            dirs.append(xp.divide(m, denom, out=denom))
            ms.append(m)
            vs.append(v)
        return tuple(dirs), AdamState(t, tuple(ms), tuple(vs))

    return Transform(init, update)


def chain(*transforms: Transform) -> Transform:
    """Apply transforms in order; the state is the tuple of their states."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state):
        new_state = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s)
            new_state.append(s)
        return updates, tuple(new_state)

    return Transform(init, update)


def apply_updates_(params: Params, updates: Params, lr: float) -> None:
    """params += -lr * updates, in place, through row chunks.

    Equal bit for bit to adding the output of ``scale(-lr)``, but without a temporary
    of the parameters' size: the training loop uses it with :meth:`OptimizerSpec.direction`
    to keep the peak memory of an m = 11 Adam run at X + 7 parameter-sized arrays.
    """
    for p, u in zip(params, updates):
        factor = u.dtype.type(-lr)
        if p.ndim == 0:
            p += u * factor
            continue
        rows = max(1, _APPLY_CHUNK // max(1, p[0].size))
        for start in range(0, p.shape[0], rows):
            p[start : start + rows] += u[start : start + rows] * factor


_APPLY_CHUNK = 1 << 20


@dataclass(frozen=True)
class OptimizerSpec:
    """One entry of :data:`OPTIMIZERS`: its direction transform and its paper defaults.

    ``default_lr`` holds the paper's step sizes tuned at m = 11 (its released
    configurations), without and with momentum; ``state_arrays`` the number of
    parameter-sized arrays in its state, without and with momentum.
    """

    name: str
    label: str
    make_direction: Callable[..., Transform]
    default_lr: tuple[float, float]
    state_arrays: tuple[int, int]

    def direction(self, momentum: bool, beta: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Transform:
        """The update direction before the step size (beta = 0 without momentum)."""
        return self.make_direction(beta if momentum else 0.0, beta2, eps)

    def transform(self, lr: float, momentum: bool, beta: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Transform:
        """The whole optimizer, chain(direction, scale(-lr))."""
        return chain(self.direction(momentum, beta, beta2, eps), scale(-lr))

    def lr_for(self, momentum: bool) -> float:
        return self.default_lr[int(momentum)]

    def legend(self, momentum: bool) -> str:
        return f"{self.label}{'+m' if momentum else '-m'}"


def _then_momentum(head: Transform | None, beta: float) -> Transform:
    parts = ([head] if head else []) + ([momentum(beta)] if beta else [])
    return chain(*parts)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "gd": OptimizerSpec(
        "gd", "GD", lambda beta, b2, eps: _then_momentum(None, beta), (10**-2.5, 1e-3), (0, 1)
    ),
    "adam": OptimizerSpec(
        "adam", "Adam", lambda beta, b2, eps: adam(beta, b2, eps), (1e-4, 10**-3.5), (2, 2)
    ),
    "normgd": OptimizerSpec(
        "normgd", "NormGD", lambda beta, b2, eps: _then_momentum(normalize(), beta), (1e-1, 10**-1.5), (0, 1)
    ),
    "sign": OptimizerSpec(
        "sign", "Sign", lambda beta, b2, eps: _then_momentum(sign(), beta), (1e-5, 1e-5), (0, 1)
    ),
}


def tree_leaves(tree: Any) -> list:
    """The arrays and ints of a state, depth first, in a fixed order."""
    if isinstance(tree, tuple):  # NamedTuples included
        return [leaf for item in tree for leaf in tree_leaves(item)]
    return [tree]


def tree_unflatten(template: Any, leaves: list) -> Any:
    """Rebuild a state shaped like ``template`` from :func:`tree_leaves` output."""
    it = iter(leaves)

    def build(node):
        if isinstance(node, tuple):
            items = [build(item) for item in node]
            return type(node)(*items) if hasattr(node, "_fields") else tuple(items)
        return next(it)

    expected = len(tree_leaves(template))
    if expected != len(leaves):
        raise ValueError(f"state template takes {expected} leaves; got {len(leaves)}")
    return build(template)
