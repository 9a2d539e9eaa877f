"""Per-class reductions against a Python loop; the group identity; the last layer's curvature."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hti.deep.lastlayer import last_layer_curvature  # noqa: E402
from hti.deep.perclass import ClassSums  # noqa: E402
from hti.linsoftmax.stats import evaluate, make_problem  # noqa: E402


def test_class_sums_match_a_loop_and_ignore_padding():
    g = torch.Generator().manual_seed(0)
    c = 7
    logits = torch.randn(3, 5, c, generator=g, dtype=torch.float64)
    targets = torch.randint(0, c - 1, (3, 5), generator=g)  # class 6 never appears
    targets[2, 3:] = -1  # padding
    sums = ClassSums.zeros(c, "cpu")
    sums.add(logits[:2], targets[:2])  # two chunks
    sums.add(logits[2:], targets[2:])
    loss, class_loss, class_acc = sums.result()
    flat_l, flat_t = logits.reshape(-1, c), targets.reshape(-1)
    per = {k: [] for k in range(c)}
    hits = {k: [] for k in range(c)}
    for row, t in zip(flat_l, flat_t):
        if t < 0:
            continue
        lse = torch.logsumexp(row, 0)
        per[int(t)].append(float(lse - row[t]))
        hits[int(t)].append(float(int(torch.argmax(row)) == int(t)))
    for k in range(c - 1):
        if per[k]:
            assert class_loss[k] == pytest.approx(np.mean(per[k]), rel=1e-14)  # float64 sums
            assert class_acc[k] == pytest.approx(np.mean(hits[k]), abs=0)
    assert np.isnan(class_loss[6]) and np.isnan(class_acc[6])
    everything = [x for v in per.values() for x in v]
    assert loss == pytest.approx(np.mean(everything), rel=1e-14)
    counts = sums.count.numpy()
    # the count-weighted mean of the class losses is the loss
    seen = counts > 0
    assert (counts[seen] @ class_loss[seen]) / counts.sum() == pytest.approx(loss, rel=1e-14)


def test_last_layer_curvature_is_the_linear_engine_on_the_features():
    g = np.random.default_rng(3)
    n, D, c = 50, 6, 5
    h = torch.from_numpy(g.standard_normal((n, D)))
    y = torch.from_numpy(g.integers(0, c, n))
    W, b = torch.from_numpy(g.standard_normal((c, D))), torch.from_numpy(g.standard_normal(c))
    cur = last_layer_curvature(h, y, W, b, c, eig=True)
    ev = evaluate(make_problem(h.numpy(), y.numpy(), np.bincount(y.numpy(), minlength=c)), W.numpy(), b.numpy())
    np.testing.assert_array_equal(cur["grad_norm"], ev.grad_norm)
    np.testing.assert_array_equal(cur["hess_trace"], ev.hess_trace)
    # and against torch autograd: row norms of the gradient of the mean cross-entropy in W
    Wt = W.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(h @ Wt.T + b, y).backward()
    np.testing.assert_allclose(cur["grad_norm"], Wt.grad.norm(dim=1).numpy(), rtol=1e-12)
    assert cur["hess_eig"].shape == (c, 1) and np.isfinite(cur["grad_eig_corr"])
