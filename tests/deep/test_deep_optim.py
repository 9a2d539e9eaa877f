"""The torch optimizers of hti.deep agree with the NumPy ones of hti.linsoftmax."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hti.deep.optim import NormSGD, SignSGD, make_optimizer  # noqa: E402
from hti.linsoftmax.optim import OPTIMIZERS  # noqa: E402


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("momentum", [False, True])
def test_torch_and_numpy_optimizers_take_the_same_steps(name, momentum):
    g = np.random.default_rng(0)
    W0, b0 = g.standard_normal((3, 4)), g.standard_normal(3)
    grads = [(g.standard_normal((3, 4)), g.standard_normal(3)) for _ in range(6)]
    grads[2][0][0, 0] = 0.0  # sign(0) = 0 on both sides
    lr = 0.03
    tx = OPTIMIZERS[name].transform(lr, momentum)
    params, state = (W0.copy(), b0.copy()), None
    state = tx.init(params)
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt = make_optimizer(name, [tW, tb], lr, momentum)
    for gW, gb in grads:
        (uW, ub), state = tx.update((gW, gb), state)
        params = (params[0] + uW, params[1] + ub)
        tW.grad, tb.grad = torch.tensor(gW), torch.tensor(gb)
        opt.step()
    # float64, 6 steps of O(1) arithmetic each: agreement to a few ulps of O(1) values.
    np.testing.assert_allclose(tW.detach().numpy(), params[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(tb.detach().numpy(), params[1], rtol=1e-13, atol=1e-14)


def test_normalization_uses_one_norm_over_all_parameter_groups():
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = NormSGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    a.grad, b.grad = torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64)
    opt.step()  # ||(3, 0, 4)|| = 5
    assert a.tolist() == pytest.approx([-0.6, 0.0], abs=1e-15) and b.tolist() == pytest.approx([-0.8], abs=1e-15)


def test_zero_gradient_gives_no_step_not_nan():
    p = torch.ones(3, requires_grad=True)
    for cls in (NormSGD, SignSGD):
        opt = cls([p], lr=0.1, momentum=0.9)
        p.grad = torch.zeros(3)
        opt.step()
        assert p.tolist() == [1.0, 1.0, 1.0]


def test_bad_arguments_are_named():
    p = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ValueError, match="optimizer must be one of gd, adam, normgd, sign, adamw; got 'sgd'"):
        make_optimizer("sgd", p, 0.1)
    with pytest.raises(ValueError, match="lr must be positive; got 0"):
        SignSGD(p, lr=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\); got 1.0"):
        NormSGD(p, lr=0.1, momentum=1.0)
