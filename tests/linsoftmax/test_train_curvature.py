"""Curvature tracked during training: the curvature table, its cadence, and resume."""

from __future__ import annotations

import numpy as np
import pytest

from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.curvature import (
    block_frobenius_norms,
    block_top_eigenvalues,
    hessian_top_eigenvalues,
    log_correlation,
)
from hti.linsoftmax.data import heavy_tailed_data
from hti.linsoftmax.loss import logits, softmax
from hti.linsoftmax.posthoc import spectra_of_run
from hti.linsoftmax.train import resume, run
from hti.storage import read_trajectory

TRACK = ("eig", "top", "coupling")


def test_curvature_rows_follow_their_cadence_and_match_direct_computation(tmp_path):
    cfg = LinearConfig(m=4, optim="adam", steps=12, track=TRACK, curvature_every=5, eig_k=2, dtype="float64",
                       save_params_at=(0, 5, 10, 12))  # fmt: skip
    out = tmp_path / "c.h5"
    run(cfg, out)
    data = read_trajectory(out)
    assert data["curvature_step"].tolist() == [0, 5, 10, 12] and data["attrs"]["curvature_iteration"] == 4
    c = 15
    assert data["hess_eig"].shape == (4, c, 2) and data["hess_top"].shape == (4, 2)
    assert data["hess_diag_frob"].shape == (4, c) and data["eig_iterations"].dtype == np.int64
    host = heavy_tailed_data(4, dtype="float64")
    for i, step in enumerate(data["curvature_step"]):
        j = list(data["params"]["step"]).index(step)
        W, b = data["params"]["W"][j], data["params"]["b"][j]
        P = softmax(logits(host.X, W, b))
        # Independent of the run's K: the d x d route here. Both converge to 1e-10 (float64 tol).
        ref = block_top_eigenvalues(host.X, P, 2).values
        np.testing.assert_allclose(data["hess_eig"][i], ref, rtol=1e-8)
        np.testing.assert_allclose(data["hess_top"][i], hessian_top_eigenvalues(host.X, P, 2), rtol=1e-8)
        diag, off = block_frobenius_norms(host.X, P)
        np.testing.assert_allclose(data["hess_diag_frob"][i], diag, rtol=1e-12)
        np.testing.assert_allclose(data["hess_offdiag_frob"][i], off, rtol=1e-12)
        row = list(data["step"]).index(step)
        assert data["grad_eig_corr"][i] == pytest.approx(log_correlation(data["grad_norm"][row], ref[:, 0]), abs=1e-8)


def test_grad_hess_corr_is_recorded_at_every_row():
    cfg = LinearConfig(m=4, steps=6, optim="sign", momentum=False, lr=1e-3)
    store = run(cfg, memory=True).store
    corr = store.column("grad_hess_corr")
    g, h = store.column("grad_norm"), store.column("hess_trace")
    assert corr.shape == (7,)
    for t in range(7):
        ref = np.corrcoef(np.log(g[t]), np.log(h[t]))[0, 1]
        assert corr[t] == pytest.approx(ref, abs=1e-12)


def test_no_curvature_table_without_tracking(tmp_path):
    out = tmp_path / "n.h5"
    run(LinearConfig(m=3, steps=2), out)
    data = read_trajectory(out)
    assert "curvature_step" not in data and "hess_eig" not in data and "grad_hess_corr" in data


def test_resume_with_tracking_equals_an_uninterrupted_run(tmp_path):
    import os
    import signal

    class StopAt7:
        def start(self, first, last): ...
        def update(self, step, loss):
            if step == 7:
                os.kill(os.getpid(), signal.SIGINT)
        def close(self): ...

    cfg = LinearConfig(m=4, steps=14, track=("eig", "coupling"), curvature_every=3, checkpoint_every=2)
    whole, cut = tmp_path / "w.h5", tmp_path / "c.h5"
    run(cfg, whole)
    assert run(cfg, cut, progress=StopAt7()).status == "interrupted"
    assert read_trajectory(cut)["curvature_step"].tolist() == [0, 3, 6]
    assert resume(cut).status == "completed"
    a, b = read_trajectory(whole), read_trajectory(cut)
    for name in ("curvature_step", "hess_eig", "eig_iterations", "hess_diag_frob", "hess_offdiag_frob", "grad_eig_corr",
                 "loss", "class_loss", "grad_hess_corr"):  # fmt: skip
        assert np.array_equal(a[name], b[name]), name


def test_spectra_of_a_saved_run_agree_with_the_tracked_curvature(tmp_path):
    cfg = LinearConfig(m=4, steps=10, track=TRACK, curvature_every=10, save_params_at=(0, 10), dtype="float64")
    out = tmp_path / "s.h5"
    run(cfg, out)
    res = spectra_of_run(out, [0, 10], classes=[0, 5])
    data = read_trajectory(out)
    np.testing.assert_allclose(data["spectra"]["hess_eig"], data["hess_eig"], rtol=1e-8)  # both to tol 1e-10
    np.testing.assert_allclose(data["spectra"]["hess_top"], data["hess_top"], rtol=1e-8)
    np.testing.assert_allclose(data["spectra"]["hess_diag_frob"], data["hess_diag_frob"], rtol=1e-12)
    # the largest eigenvalue of the dense spectrum of a chosen class is its tracked hess_eig
    np.testing.assert_allclose(res["eigenvalues"][:, :, -1], data["hess_eig"][:, [0, 5], 0], rtol=1e-8)
    assert data["spectra"]["attrs"]["method"] == "dense" and data["spectra"]["attrs"]["zero_eigenvalues"] == 16
    assert res["density"].shape == (2, 2, res["density_grid"].size)


def test_spectra_without_dense_use_extremes_and_slq(tmp_path, monkeypatch):
    from hti.linsoftmax import posthoc

    monkeypatch.setattr(posthoc, "DENSE_MAX_DIM", 10)
    cfg = LinearConfig(m=4, steps=2, save_params_at=(2,), dtype="float64")
    out = tmp_path / "l.h5"
    run(cfg, out)
    res = spectra_of_run(out, [2], classes=[1], extremes=3, probes=4, lanczos_steps=20)
    exact = spectra_of_run(out, [2], classes=[1], full=True, write=False)["eigenvalues"][0, 0]
    assert res["attrs"]["method"] == "lanczos"
    np.testing.assert_allclose(res["top"][0, 0], exact[::-1][:3], rtol=1e-8)
    np.testing.assert_allclose(res["bottom"][0, 0], exact[:3], rtol=1e-6, atol=1e-10 * exact[-1])
    assert res["slq_nodes"].shape == (1, 1, 4, 20)
    assert read_trajectory(out)["spectra"]["attrs"]["method"] == "lanczos"


def test_tracking_needs_valid_options():
    from hti.config import ConfigError

    with pytest.raises(ConfigError, match="track entry must be one of eig, top, coupling; got 'trace'"):
        LinearConfig(track=("trace",))
    with pytest.raises(ConfigError, match=r"eig_k must be in \[1, 24\]; got 30"):
        LinearConfig(m=3, eig_k=30)
    with pytest.raises(ConfigError, match="curvature_every must be >= 1"):
        LinearConfig(curvature_every=0)
