"""hti deep's training loop: the NumPy engine's trajectory, resume, divergence, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hti.deep.config import DeepConfig  # noqa: E402
from hti.deep.train import load_state, resume, run  # noqa: E402
from hti.linsoftmax.config import LinearConfig  # noqa: E402
from hti.linsoftmax.train import run as linear_run  # noqa: E402
from hti.storage import read_trajectory  # noqa: E402

CASES = [(o, mom) for o in ("gd", "adam", "normgd", "sign") for mom in (False, True)]


@pytest.mark.parametrize("optim, momentum", CASES)
def test_torch_linear_on_synthetic_data_follows_the_numpy_engine(tmp_path, optim, momentum):
    """Same data, initialization, loss and optimizer semantics: the same trajectory in float64."""
    lr = {"gd": 0.3, "adam": 0.01, "normgd": 0.3, "sign": 1e-3}[optim]
    deep_out, lin_out = tmp_path / "deep.h5", tmp_path / "lin.h5"
    run(DeepConfig(model="linear", data="synthetic", m=4, optim=optim, momentum=momentum, lr=lr, steps=10,
                   eval_every=1, curvature_every=5, dtype="float64"), deep_out)  # fmt: skip
    linear_run(LinearConfig(m=4, optim=optim, momentum=momentum, lr=lr, steps=10, dtype="float64",
                            save_params_at=(10,)), lin_out)  # fmt: skip
    d, n = read_trajectory(deep_out), read_trajectory(lin_out)
    # float64, 10 steps of O(1) arithmetic through two libraries: agreement to ~1e-13
    np.testing.assert_allclose(d["loss"], n["loss"], rtol=1e-12)
    np.testing.assert_allclose(d["class_loss"], n["class_loss"], rtol=1e-11)
    np.testing.assert_array_equal(d["class_acc"], n["class_acc"])
    step, state = load_state(deep_out)
    assert step == 10
    np.testing.assert_allclose(state["model"]["head.weight"].numpy(), n["params"]["W"][0], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(state["model"]["head.bias"].numpy(), n["params"]["b"][0], rtol=1e-11, atol=1e-13)
    # the last layer's curvature is the linear engine's statistics on the same features
    for i, s in enumerate(d["curvature_step"]):
        np.testing.assert_allclose(d["grad_norm"][i], n["grad_norm"][s], rtol=1e-10)
        np.testing.assert_allclose(d["hess_trace"][i], n["hess_trace"][s], rtol=1e-10)


TINY = {
    "simple-transformer": dict(data="tinyptb", d_model=8, n_head=1),
    "transformer": dict(data="tinyptb", d_model=8, n_head=2, n_layer=1),
    "gpt2": dict(data="tinyptb", tokenizer="word", d_model=8, n_head=2, n_layer=1, seq_len=16),
    "cnn": dict(data="digits"),
    "linear": dict(data="digits"),
}


@pytest.mark.parametrize("model", list(TINY))
@pytest.mark.parametrize("optim", ["gd", "adam", "normgd", "sign", "adamw"])
def test_every_model_trains_with_every_optimizer(model, optim):
    cfg = DeepConfig(model=model, optim=optim, steps=2, eval_every=1, batch_size=8, eval_tokens=300, **TINY[model])
    result = run(cfg, memory=True)
    store = result.store
    assert result.status == "completed" and store.column("step").tolist() == [0, 1, 2]
    loss = store.column("loss")
    assert np.isfinite(loss).all() and loss[0] != loss[-1]
    c = store.column("class_loss").shape[1]
    assert c == (10 if model in ("cnn", "linear") else 10_000)
    if TINY[model]["data"] == "tinyptb":
        assert np.isfinite(store.column("val_loss")).all()


class _SignalAt:
    def __init__(self, step):
        self.step = step

    def start(self, *a, **k): ...

    def update(self, step, loss):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)

    def close(self): ...


def test_resume_continues_exactly_with_dropout_and_mini_batches(tmp_path):
    cfg = DeepConfig(model="transformer", data="tinyptb", d_model=8, n_head=2, n_layer=1, dropout=0.3, steps=8,
                     batch_size=5, eval_every=2, eval_tokens=200, optim="adam", checkpoint_every=3,
                     curvature_every=4, curvature_samples=64)  # fmt: skip
    whole, cut = tmp_path / "w.h5", tmp_path / "c.h5"
    run(cfg, whole)
    result = run(cfg, cut, progress=_SignalAt(4))
    assert result.status == "interrupted" and read_trajectory(cut)["attrs"]["status"] == "interrupted"
    result = resume(cut)
    assert result.status == "completed" and result.resumed_from == 4
    a, b = read_trajectory(whole), read_trajectory(cut)
    for name in ("step", "loss", "class_loss", "class_acc", "val_loss", "curvature_step", "grad_norm", "hess_trace"):
        assert np.array_equal(a[name], b[name], equal_nan=True), name
    sa, sb = load_state(whole)[1]["model"], load_state(cut)[1]["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_divergence_keeps_the_rows(tmp_path):
    cfg = DeepConfig(model="linear", data="digits", optim="gd", momentum=False, lr=1e38, steps=20, eval_every=5)  # float32 overflow
    result = run(cfg, tmp_path / "d.h5")
    data = read_trajectory(tmp_path / "d.h5")
    assert result.status == "diverged" and data["attrs"]["status"] == "diverged"
    assert not np.isfinite(data["loss"][-1]) and np.isfinite(data["loss"][0])


def test_reweighting_trains_the_weighted_loss_and_records_the_plain_one():
    cfg = DeepConfig(model="linear", data="barcoded", reweight="inv-sqrt", optim="adam", steps=3, eval_every=3)
    store = run(cfg, memory=True).store
    counts = store.static["class_counts"]
    plain = store.column("class_loss") @ counts / counts.sum()
    np.testing.assert_allclose(store.column("loss"), plain, rtol=1e-10)
    assert not np.allclose(store.column("loss"), store.column("train_loss"))


@pytest.mark.slow
def test_two_ddp_processes_match_one(tmp_path):
    """torchrun with 2 CPU processes (gloo): the trajectory of the 1-process run."""
    args = ["deep", "cnn", "--data", "digits", "--steps", "3", "--eval-every", "1", "--dtype", "float64",
            "--optim", "adam", "--curvature-every", "3", "--curvature-samples", "100"]  # fmt: skip
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "hti", *args, "--out", str(one)], check=True, capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29517", "-m", "hti", *args, "--out", str(two)], capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = read_trajectory(one), read_trajectory(two)
    # float64; the two ranks sum their halves in another order: agreement to ~1e-13
    for name in ("loss", "class_loss", "val_loss", "grad_norm", "hess_trace"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-11, atol=1e-14, err_msg=name)


def test_eval_tokens_weights_the_class_losses_by_the_evaluated_targets(tmp_path):
    """With eval_tokens the per-class losses are means over the first targets only; the file's
    eval_class_counts (train) and val_class_counts (validation) count exactly those, so the
    count-weighted mean of class_loss is the loss, and every frequency group of classes that
    were evaluated has a finite group loss (weighting by the whole split's counts gave NaN)."""
    from hti.analysis import frequency_groups, group_loss  # noqa: PLC0415

    cfg = DeepConfig(model="transformer", steps=1, eval_every=1, batch_size=8, eval_tokens=600, **TINY["transformer"])
    out = tmp_path / "t.h5"
    run(cfg, out)
    d = read_trajectory(out)
    for split, counts in (("", d["eval_class_counts"]), ("val_", d["val_class_counts"])):
        class_loss, loss = d[f"{split}class_loss"], d[f"{split}loss"]
        assert counts.sum() == 630  # whole rows of 35 targets: ceil(600 / 35) = 18 rows
        seen = counts > 0
        assert np.isfinite(class_loss[:, seen]).all() and np.isnan(class_loss[:, ~seen]).all()
        # float32 per-class sums accumulated in float64: the weighted mean equals the loss to ~1e-7
        np.testing.assert_allclose(class_loss[:, seen] @ counts[seen] / counts.sum(), loss, rtol=1e-6)
    assert (d["eval_class_counts"] <= d["class_counts"]).all() and d["eval_class_counts"].sum() < d["class_counts"].sum()
    groups = frequency_groups(d["class_counts"], 10)
    G = group_loss(d["class_loss"], d["eval_class_counts"], groups)
    evaluated = [bool(d["eval_class_counts"][g].sum()) for g in groups]
    assert np.isfinite(G[:, evaluated]).all()
