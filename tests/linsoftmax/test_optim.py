"""Optimizers of the OPTIMIZERS table against torch.optim and hand-written references.

Every entry is run for a few steps on a fixed sequence of random gradients (as optax
tests its aliases), with and without momentum, through ``spec.transform(lr, momentum)``
and ``p = p + u``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hti.linsoftmax import optim
from hti.linsoftmax.optim import (
    OPTIMIZERS,
    apply_updates_,
    chain,
    momentum,
    normalize,
    scale,
    sign,
    tree_leaves,
    tree_unflatten,
)

NAMES = sorted(OPTIMIZERS)
MOMENTUM = (False, True)
BETA = 0.9
LR = 0.1  # large enough that 5 steps move the O(1) parameters by O(1)
STEPS = 5


def make_params(rng, dtype="float64", shapes=((3, 4), (3,))):
    return tuple(rng.standard_normal(s).astype(dtype) for s in shapes)


def make_grads(rng, params, steps=STEPS):
    return [tuple(rng.standard_normal(p.shape).astype(p.dtype) for p in params) for _ in range(steps)]


def run_transform(tx, params, grads, state=None):
    """p = p + u for every gradient; returns (params, state)."""
    state = tx.init(params) if state is None else state
    for g in grads:
        u, state = tx.update(g, state)
        params = tuple(p + ui for p, ui in zip(params, u))
    return params, state


def copy_tree(tree):
    return tree_unflatten(tree, [np.copy(x) if isinstance(x, np.ndarray) else x for x in tree_leaves(tree)])


def assert_trees_equal(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


# ---------------------------------------------------------------------------------------
# references


def torch_run(name, with_momentum, lr, params, grads):
    """Run torch.optim.SGD / Adam with the gradients set by hand; float64."""
    torch = pytest.importorskip("torch")
    tparams = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    beta = BETA if with_momentum else 0.0
    if name == "gd":
        opt = torch.optim.SGD(tparams, lr=lr, momentum=beta)
    else:
        opt = torch.optim.Adam(tparams, lr=lr, betas=(beta, 0.999), eps=1e-8)
    for g in grads:
        for p, gi in zip(tparams, g):
            p.grad = torch.tensor(gi, dtype=torch.float64)
        opt.step()
    return tuple(p.detach().numpy() for p in tparams)


def hand_run(name, with_momentum, lr, params, grads):
    """Normalized / sign descent: direction first, then heavy-ball momentum on it.

    normgd: d = g / ||g|| with ONE norm over all arrays together; sign: d = sign(g);
    buf = beta * buf + d (buf_0 = 0); p -= lr * buf.
    """
    beta = BETA if with_momentum else 0.0
    params = [p.copy() for p in params]
    buf = [np.zeros_like(p) for p in params]
    for g in grads:
        if name == "normgd":
            norm = math.sqrt(sum(float(np.sum(gi * gi)) for gi in g))
            d = [gi / norm for gi in g]
        else:
            d = [np.sign(gi) for gi in g]
        buf = [beta * bi + di for bi, di in zip(buf, d)]
        params = [p - lr * bi for p, bi in zip(params, buf)]
    return tuple(params)


REFERENCES = {"gd": torch_run, "adam": torch_run, "normgd": hand_run, "sign": hand_run}


def test_every_optimizer_has_a_reference():
    assert set(OPTIMIZERS) == set(REFERENCES)


@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_optimizer_matches_reference(rng, name, with_momentum):
    params = make_params(rng)
    grads = make_grads(rng, params)
    got, _ = run_transform(OPTIMIZERS[name].transform(LR, with_momentum), params, grads)
    want = REFERENCES[name](name, with_momentum, LR, params, grads)
    for g, w, p0 in zip(got, want, params):
        # float64 on both sides, the same formulas in different association orders
        # (e.g. torch's Adam divides lr by the bias correction, hti the direction):
        # a few eps per step relative to O(1) values
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
        assert np.abs(g - p0).min() > 1e-3  # every coordinate moved: the check bites


# ---------------------------------------------------------------------------------------
# direction + apply_updates_ == chain with scale, bit for bit


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_apply_updates_equals_scale_bit_for_bit(rng, monkeypatch, name, with_momentum, dtype):
    # W has more rows than one chunk of 8 elements (2 rows of 4): 25 chunks; b 7 chunks
    monkeypatch.setattr(optim, "_APPLY_CHUNK", 8)
    spec = OPTIMIZERS[name]
    lr = spec.lr_for(with_momentum)
    params = make_params(rng, dtype, shapes=((50, 4), (50,)))
    grads = make_grads(rng, params, steps=3)

    chained = spec.transform(lr, with_momentum)
    direction = spec.direction(with_momentum)
    p_chain, s_chain = params, chained.init(params)
    p_inplace, s_dir = tuple(p.copy() for p in params), direction.init(params)
    for g in grads:
        u, s_chain = chained.update(g, s_chain)
        p_chain = tuple(p + ui for p, ui in zip(p_chain, u))
        d, s_dir = direction.update(g, s_dir)
        apply_updates_(p_inplace, d, lr)
        for a, b in zip(p_chain, p_inplace):
            assert a.dtype == b.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(p_chain[0], params[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_apply_updates_on_zero_dim_array(dtype):
    p, u = np.array(1.5, dtype=dtype), np.array(0.25, dtype=dtype)
    want = p + u * np.dtype(dtype).type(-0.1)
    apply_updates_((p,), (u,), 0.1)
    assert p.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(p, want)


# ---------------------------------------------------------------------------------------
# purity, dtypes, state


@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_updates_never_mutate_their_inputs(rng, name, with_momentum):
    spec = OPTIMIZERS[name]
    params = make_params(rng)
    grads = make_grads(rng, params, steps=3)
    for tx in (spec.transform(LR, with_momentum), spec.direction(with_momentum)):
        params_before = copy_tree(params)
        state = tx.init(params)
        for g in grads:  # from the second step on, the state is non-trivial
            g_before, state_before = copy_tree(g), copy_tree(state)
            _, new_state = tx.update(g, state)
            assert_trees_equal(g, g_before)
            assert_trees_equal(state, state_before)
            state = new_state
        assert_trees_equal(params, params_before)


@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(rng, name, with_momentum):
    params = make_params(rng, "float32")
    grads = make_grads(rng, params, steps=2)
    out, state = run_transform(OPTIMIZERS[name].transform(LR, with_momentum), params, grads)
    assert all(p.dtype == np.float32 for p in out)
    for leaf in tree_leaves(state):
        assert isinstance(leaf, (np.ndarray, int))
        if isinstance(leaf, np.ndarray):
            assert leaf.dtype == np.float32


@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_continues_identically(rng, name, with_momentum):
    tx = OPTIMIZERS[name].transform(LR, with_momentum)
    params = make_params(rng)
    grads = make_grads(rng, params, steps=5)
    params, state = run_transform(tx, params, grads[:2])
    # save: the leaves as plain copies (as a file would hold them); reload into init's shape
    saved = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in tree_leaves(state)]
    reloaded = tree_unflatten(tx.init(params), saved)
    assert_trees_equal(reloaded, state)
    a, _ = run_transform(tx, params, grads[2:], state)
    b, _ = run_transform(tx, params, grads[2:], reloaded)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_tree_unflatten_rejects_too_many_leaves(rng):
    tx = OPTIMIZERS["adam"].transform(LR, True)
    state = tx.init(make_params(rng))  # ((AdamState(step, (m_W, m_b), (v_W, v_b)),), ())
    leaves = tree_leaves(state)
    assert len(leaves) == 5
    with pytest.raises(ValueError, match=r"state template takes 5 leaves; got 6"):
        tree_unflatten(state, leaves + [np.zeros(1)])


def test_tree_unflatten_rejects_too_few_leaves(rng):
    state = OPTIMIZERS["adam"].transform(LR, True).init(make_params(rng))
    with pytest.raises(ValueError, match=r"state template takes 5 leaves; got 4"):
        tree_unflatten(state, tree_leaves(state)[:-1])


@pytest.mark.parametrize("with_momentum", MOMENTUM)
@pytest.mark.parametrize("name", NAMES)
def test_state_arrays_match_the_table(rng, name, with_momentum):
    spec = OPTIMIZERS[name]
    params = make_params(rng)
    state = spec.direction(with_momentum).init(params)
    arrays = [x for x in tree_leaves(state) if isinstance(x, np.ndarray)]
    assert len(arrays) == spec.state_arrays[int(with_momentum)] * len(params)


# ---------------------------------------------------------------------------------------
# building blocks


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_of_zero_gradient_is_zero(dtype):
    g = (np.zeros((3, 4), dtype), np.zeros(3, dtype))
    tx = normalize()
    u, _ = tx.update(g, tx.init(g))
    for ui in u:
        assert ui.dtype == np.dtype(dtype)
        assert not np.any(np.isnan(ui))
        np.testing.assert_array_equal(ui, 0)


def test_normalize_uses_one_global_norm(rng):
    g = (rng.standard_normal((3, 4)), 10 * rng.standard_normal(3))
    tx = normalize()
    u, _ = tx.update(g, tx.init(g))
    total = math.sqrt(sum(float(np.sum(x * x)) for x in u))
    assert total == pytest.approx(1.0, rel=1e-14)  # 15-term sum: a few eps
    # the arrays keep their relative size (not normalized one by one)
    np.testing.assert_allclose(u[1] / u[0][0, 0], g[1] / g[0][0, 0], rtol=1e-14)


def test_chain_of_sign_and_scale_equals_manual(rng):
    g = make_params(rng)
    g[0][0, 0] = 0.0  # sign(0) = 0
    tx = chain(sign(), scale(-LR))
    u, _ = tx.update(g, tx.init(g))
    for ui, gi in zip(u, g):
        np.testing.assert_array_equal(ui, np.sign(gi) * -LR)
    assert u[0][0, 0] == 0


def test_chain_of_momentum_and_scale_equals_heavy_ball(rng):
    params = make_params(rng)
    grads = make_grads(rng, params)
    tx = chain(momentum(BETA), scale(-LR))
    state = tx.init(params)
    buf = [np.zeros_like(p) for p in params]
    for g in grads:
        u, state = tx.update(g, state)
        buf = [BETA * b + gi for b, gi in zip(buf, g)]
        for ui, b in zip(u, buf):
            np.testing.assert_array_equal(ui, b * -LR)  # the same operations: bit for bit


def test_empty_chain_is_the_identity_and_chains_nest(rng):
    params = make_params(rng)
    grads = make_grads(rng, params, steps=3)
    ident = chain()
    u, _ = ident.update(grads[0], ident.init(params))
    for ui, gi in zip(u, grads[0]):
        np.testing.assert_array_equal(ui, gi)
    flat = chain(normalize(), momentum(BETA), scale(-LR))
    nested = chain(chain(normalize(), momentum(BETA)), scale(-LR))
    a, _ = run_transform(flat, params, grads)
    b, _ = run_transform(nested, params, grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_scale_keeps_dtype():
    tx = scale(-1e-3)
    u, _ = tx.update((np.ones(3, np.float32),), tx.init(()))
    assert u[0].dtype == np.float32


# ---------------------------------------------------------------------------------------
# the paper's defaults

PAPER_LR = {  # (without momentum, with momentum), the paper's released configurations
    "gd": (10**-2.5, 10**-3),
    "adam": (10**-4, 10**-3.5),
    "normgd": (10**-1, 10**-1.5),
    "sign": (10**-5, 10**-5),
}


@pytest.mark.parametrize("name", NAMES)
def test_default_learning_rates_match_the_paper(name):
    spec = OPTIMIZERS[name]
    for with_momentum in MOMENTUM:
        # powers of ten written as literals or as 10**x: equal to within one rounding
        assert spec.lr_for(with_momentum) == pytest.approx(PAPER_LR[name][int(with_momentum)], rel=1e-15)
    assert spec.legend(True) == spec.label + "+m" and spec.legend(False) == spec.label + "-m"


# ---------------------------------------------------------------------------------------
# known deviations (see the report to the lead)


def test_adam_without_momentum_uses_the_current_gradient_exactly():
    tx = optim.adam(0.0)
    params = (np.zeros(1),)
    state = tx.init(params)
    _, state = tx.update((np.array([1.0]),), state)
    _, state = tx.update((np.array([1e-20]),), state)
    # torch.optim.Adam with betas=(0, .): exp_avg.lerp_(grad, 1) is exactly grad
    assert state.m[0][0] == 1e-20


@pytest.mark.parametrize("value", [1e-23, 1e-30, 1e19, 1e30])
def test_normalize_is_safe_from_float32_underflow_and_overflow(value):
    (u,), _ = optim.normalize().update((np.full(4, value, np.float32),), optim.EmptyState())
    assert u.dtype == np.float32
    # four equal entries: each is 1/2 after normalization, to float32 roundoff
    np.testing.assert_allclose(u, 0.5, rtol=1e-6)
