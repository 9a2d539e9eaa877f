"""The training loop: what it records, and that nothing is lost when a run stops."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hti.linsoftmax import evaluate, init_params, make_problem
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.optim import OPTIMIZERS
from hti.linsoftmax.train import resume, run
from hti.storage import StorageError, read_trajectory

ROW_NAMES = ("step", "loss", "train_loss", "class_loss", "class_acc", "grad_norm", "hess_trace")


def _reference_trajectory(cfg: LinearConfig):
    """The run written out by hand with the public API: evaluate, chain(...scale), p += u."""
    n, c, d = cfg.shape
    data = heavy_tailed_data(cfg.m, inputs=cfg.inputs, input_mean=cfg.input_mean,
                             input_scale=cfg.input_scale, dim=cfg.dim, data_seed=cfg.data_seed, dtype=cfg.dtype)
    problem = make_problem(data.X, data.y, data.class_counts, cfg.reweight)
    W, b = init_params(c, d, init=cfg.init, seed=cfg.seed, dtype=cfg.dtype)
    tx = OPTIMIZERS[cfg.optim].transform(cfg.lr, cfg.momentum, cfg.beta, cfg.beta2, cfg.eps)
    state = tx.init((W, b))
    rows, params = [], {}
    for t in range(cfg.steps + 1):
        ev = evaluate(problem, W, b)
        if t in cfg.record_steps():
            rows.append(ev)
        if t in cfg.save_params_at:
            params[t] = (W.copy(), b.copy())
        if t == cfg.steps:
            return rows, params
        (uW, ub), state = tx.update(ev.grads, state)
        W, b = W + uW, b + ub


@pytest.mark.parametrize("optim", list(OPTIMIZERS))
@pytest.mark.parametrize("momentum", [False, True])
def test_recorded_rows_equal_a_hand_written_loop(optim, momentum):
    cfg = LinearConfig(m=3, optim=optim, momentum=momentum, steps=7, record_every=3,
                       save_params_at=(0, 4, 7), lr=0.05 if optim != "sign" else 1e-3)
    result = run(cfg, memory=True)
    store = result.store
    rows, params = _reference_trajectory(cfg)
    assert result.status == "completed" and store.status == "completed"
    assert store.column("step").tolist() == [0, 3, 6, 7]
    for name in ("loss", "train_loss", "class_loss", "class_acc", "grad_norm", "hess_trace"):
        expected = np.array([np.asarray(getattr(ev, name), dtype=np.float64) for ev in rows])
        assert np.array_equal(store.column(name), expected), name  # same arithmetic: bit equal
    assert store.params["step"] == [0, 4, 7]
    for t, W, b in zip(store.params["step"], store.params["W"], store.params["b"]):
        assert np.array_equal(W, params[t][0]) and np.array_equal(b, params[t][1])


def test_a_default_run_writes_n_plus_one_rows_with_the_schema(tmp_path):
    cfg = LinearConfig(m=3, steps=5, save_data=True, save_params_at=(0, 5))
    out = tmp_path / "run.h5"
    run(cfg, out)
    data = read_trajectory(out)
    attrs = data["attrs"]
    assert attrs["status"] == "completed" and attrs["iteration"] == 6 and attrs["engine"] == "linsoftmax"
    assert LinearConfig.from_dict(attrs["config"]) == cfg and attrs["run_id"] == cfg.run_id
    n, c, d = cfg.shape
    assert data["step"].tolist() == list(range(6)) and data["step"].dtype == np.int64
    for name in ("wall_time", "loss", "train_loss"):
        assert data[name].shape == (6,) and data[name].dtype == np.float64
    for name in ("class_loss", "class_acc", "grad_norm", "hess_trace"):
        assert data[name].shape == (6, c) and data[name].dtype == np.float64
    assert np.all(np.diff(data["wall_time"]) >= 0)
    assert data["class_counts"].tolist() == [8, 4, 4, 2, 2, 2, 2]
    assert data["params"]["W"].shape == (2, c, d) and data["params"]["step"].tolist() == [0, 5]
    assert np.array_equal(data["data"]["X"], heavy_tailed_data(3).X)
    assert np.array_equal(data["loss"], data["train_loss"])  # no reweighting


def test_reweighted_training_records_the_unweighted_statistics():
    cfg = LinearConfig(m=4, steps=30, reweight="inv-sqrt", optim="adam", lr=0.01)
    store = run(cfg, memory=True).store
    loss, train = store.column("loss"), store.column("train_loss")
    counts = np.array([16, 8, 8] + [4] * 4 + [2] * 8)
    # the unweighted loss is the count-weighted mean of the class losses
    np.testing.assert_allclose(store.column("class_loss") @ counts / counts.sum(), loss, rtol=1e-6)
    assert not np.allclose(loss, train)
    assert train[-1] < train[0]


def test_divergence_keeps_the_rows_and_says_so(tmp_path):
    cfg = LinearConfig(m=3, steps=20, lr=1e38, momentum=False, record_every=5)  # float32 logits overflow
    out = tmp_path / "div.h5"
    result = run(cfg, out)
    data = read_trajectory(out)
    assert result.status == "diverged" and data["attrs"]["status"] == "diverged"
    assert data["step"].tolist() == [0, 1]  # row 0 on schedule, then the failing step's row
    assert np.isfinite(data["loss"][0]) and not np.isfinite(data["loss"][-1])
    with pytest.raises(StorageError, match="status diverged: there is nothing to resume"):
        resume(out)


class _SignalAt:
    """A progress object that sends a signal to this process when a step is reached."""

    def __init__(self, step, sig=signal.SIGINT):
        self.step, self.sig = step, sig

    def start(self, first, last):
        pass

    def update(self, step, loss):
        if step == self.step:
            os.kill(os.getpid(), self.sig)

    def close(self):
        pass


def _columns(path):
    data = read_trajectory(path)
    return {name: data[name] for name in ROW_NAMES}, data


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_row_and_resume_continues_exactly(tmp_path, sig):
    cfg = LinearConfig(m=4, optim="adam", steps=25, record_every=2, checkpoint_every=4, save_params_at=(0, 11, 25))
    whole = tmp_path / "whole.h5"
    run(cfg, whole)
    cut = tmp_path / "cut.h5"
    result = run(cfg, cut, progress=_SignalAt(11, sig))
    assert result.status == "interrupted" and result.last_step == 11
    partial, data = _columns(cut)
    assert data["attrs"]["status"] == "interrupted"
    assert partial["step"].tolist() == [0, 2, 4, 6, 8, 10]  # step 11 is not a recorded step
    assert signal.getsignal(sig) is not None  # handlers restored
    result = resume(cut)
    assert result.status == "completed" and result.resumed_from == 11
    resumed, data = _columns(cut)
    expected, _ = _columns(whole)
    for name in ROW_NAMES:
        assert np.array_equal(resumed[name], expected[name]), name
    assert data["params"]["step"].tolist() == [0, 11, 25]
    assert np.array_equal(data["params"]["W"], read_trajectory(whole)["params"]["W"])


def test_resume_without_a_checkpoint_starts_over(tmp_path):
    cfg = LinearConfig(m=3, steps=6, checkpoint_every=100)
    out = tmp_path / "r.h5"
    run(cfg, out, progress=_SignalAt(0))  # interrupted at step 0: checkpoint at 0
    assert resume(out).status == "completed"
    assert read_trajectory(out)["step"].tolist() == list(range(7))


def test_resume_refuses_completed_runs_and_other_files(tmp_path):
    out = tmp_path / "done.h5"
    run(LinearConfig(m=3, steps=2), out)
    with pytest.raises(StorageError, match="status completed: there is nothing to resume"):
        resume(out)
    with pytest.raises(StorageError, match="does not exist"):
        resume(tmp_path / "nothing.h5")


def _cli(*args):
    return [sys.executable, "-c", "from hti.cli.main import cli; cli()", "linear", *args]


@pytest.mark.slow
def test_kill_9_at_random_times_then_resume_gives_the_uninterrupted_trajectory(tmp_path):
    """Kill the writer hard (also while checkpointing), twice, then resume to the end."""
    args = ["--m", "6", "--optim", "adam", "--steps", "1200", "--checkpoint-every", "3",
            "--save-params-at", "0:1200:100"]  # fmt: skip
    whole = tmp_path / "whole.h5"
    assert subprocess.run(_cli(*args, "--out", str(whole)), capture_output=True).returncode == 0
    cut = tmp_path / "cut.h5"
    rnd = random.Random(0)
    proc = subprocess.Popen(_cli(*args, "--out", str(cut)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kills = 0
    while kills < 2:
        _wait_for_rows(cut, proc)
        time.sleep(rnd.uniform(0.05, 0.4))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        status = read_trajectory(cut)["attrs"]["status"]
        assert status == "running"  # killed: the status could not be updated, the rows are readable
        proc = subprocess.Popen(_cli("--resume", str(cut)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait()
    assert kills == 2, "the run finished before it could be killed twice; make it longer"
    if read_trajectory(cut)["attrs"]["status"] != "completed":
        assert resume(cut).status == "completed"
    resumed, data = _columns(cut)
    expected, ref = _columns(whole)
    for name in ROW_NAMES:
        assert np.array_equal(resumed[name], expected[name]), name
    assert np.array_equal(data["params"]["W"], ref["params"]["W"])


def _wait_for_rows(path, proc, timeout=60.0):
    """Wait until the subprocess has written a few rows (file readable, iteration > 5)."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        try:
            if read_trajectory(path, live=True)["attrs"]["iteration"] > 5:
                return
        except Exception:  # a live read can catch the writer mid-flush: try again
            pass
        time.sleep(0.02)
