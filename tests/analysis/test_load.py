"""Loading trajectories: metadata at once, arrays lazily and once, filters, foreign files."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import hti.analysis.loading as load_module
from hti.analysis.groups import frequency_groups
from hti.analysis.loading import Run, load, load_runs, optimizer_label
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.data import class_counts
from hti.linsoftmax.train import run as train
from hti.storage import StorageError, read_trajectory, write_arrays


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """gd+m, adam-m (m = 3), sign+m (m = 4, in a subfolder, with curvature), and foreign .h5 files."""
    root = tmp_path_factory.mktemp("runs")
    train(LinearConfig(m=3, steps=4, optim="gd"), root / "b-gd.h5")
    train(LinearConfig(m=3, steps=4, optim="adam", momentum=False), root / "a-adam.h5")
    (root / "sub").mkdir()
    train(
        LinearConfig(m=4, steps=4, optim="sign", track=("eig",), curvature_every=2),
        root / "sub" / "c-sign.h5",
    )
    write_arrays(root / "scaling.h5", {"x": np.ones(3)}, {"kind": "scaling"})  # HDF5, not a trajectory
    (root / "junk.h5").write_bytes(b"not hdf5 at all")
    return root


def test_load_reads_the_metadata(folder):
    run = load(folder / "b-gd.h5")
    assert isinstance(run, Run)
    assert run.engine == "linsoftmax" and run.status == "completed" and run.label == "GD+m"
    assert run.config["m"] == 3 and run.config["optim"] == "gd" and run.attrs["iteration"] == 5
    assert "rows" not in run.attrs and isinstance(run.attrs["config"], dict)
    np.testing.assert_array_equal(run.class_counts, class_counts(3))
    assert run.c == 7
    for name in ("step", "loss", "class_loss", "grad_norm", "hess_trace", "class_counts"):
        assert name in run and name in run.names
    assert "checkpoint" not in run.names and "hess_eig" not in run
    assert run.tables["main"][0] == "step" and "class_loss" in run.tables["main"]


def test_arrays_are_read_lazily_one_dataset_at_a_time_and_cached(folder, monkeypatch):
    calls = []

    def spy(path, names=None, **kw):
        calls.append(tuple(names))
        return read_trajectory(path, names=names, **kw)

    monkeypatch.setattr(load_module, "read_trajectory", spy)
    run = load(folder / "b-gd.h5")
    assert calls == []  # nothing read yet
    first = run["class_loss"]
    assert calls == [("class_loss",)]
    assert run["class_loss"] is first and calls == [("class_loss",)]  # cached
    np.testing.assert_array_equal(first, read_trajectory(folder / "b-gd.h5")["class_loss"])
    assert first.shape == (5, 7)


def test_rows_beyond_the_counter_are_left_out(folder, tmp_path):
    path = tmp_path / "cut.h5"
    shutil.copy(folder / "b-gd.h5", path)
    with h5py.File(path, "r+") as fh:
        fh.attrs["iteration"] = 3  # as if a kill came after the datasets grew
    run = load(path)
    assert run["class_loss"].shape == (3, 7) and run["step"].tolist() == [0, 1, 2]


def test_groups_and_steps_of_each_table(folder):
    run = load(folder / "sub" / "c-sign.h5")
    assert [g.tolist() for g in run.groups(4)] == [g.tolist() for g in frequency_groups(class_counts(4), 4)]
    assert run.table_of("hess_eig") == "curvature" and run.table_of("grad_norm") == "main"
    assert run.steps_of("hess_eig").tolist() == [0, 2, 4]
    assert run.steps_of("grad_norm").tolist() == [0, 1, 2, 3, 4]
    assert run["hess_eig"].shape == (3, 15, 1)


def test_unknown_names_and_bad_files_say_what_is_wrong(folder, tmp_path):
    run = load(folder / "b-gd.h5")
    with pytest.raises(KeyError, match="has no 'spectra'"):
        run["spectra"]
    with pytest.raises(StorageError, match="does not exist"):
        load(tmp_path / "none.h5")
    with pytest.raises(StorageError, match="is a folder"):
        load(folder)
    with pytest.raises(StorageError, match="not an hti trajectory"):
        load(folder / "scaling.h5")
    with pytest.raises(StorageError, match="cannot read .* as HDF5"):
        load(folder / "junk.h5")


def test_load_runs_filters_and_skips_foreign_files(folder):
    names = lambda runs: [r.path.name for r in runs]  # noqa: E731
    assert names(load_runs(folder)) == ["a-adam.h5", "b-gd.h5", "c-sign.h5"]  # sorted by path, recursive
    assert names(load_runs(folder, optim="adam")) == ["a-adam.h5"]
    assert names(load_runs(folder, momentum=True)) == ["b-gd.h5", "c-sign.h5"]
    assert names(load_runs(folder, optim=["gd", "sign"], m=3)) == ["b-gd.h5"]
    assert names(load_runs(folder, optim=("adam", "sign"), momentum=False)) == ["a-adam.h5"]
    assert names(load_runs(folder, m=4, engine="linsoftmax", status="completed")) == ["c-sign.h5"]
    assert names(load_runs(folder, lr=10**-3.5 * (1 + 1e-12), optim="adam")) == []  # adam-m's lr is 1e-4
    assert names(load_runs(folder, lr=1e-4 * (1 + 1e-12))) == ["a-adam.h5"]  # floats to 1e-9
    assert load_runs(folder, optim="normgd") == [] and load_runs(folder, no_such_field=1) == []
    with pytest.raises(StorageError, match="not a folder"):
        load_runs(folder / "b-gd.h5")


def test_labels():
    assert [
        optimizer_label(o, m)
        for o, m in [("gd", True), ("adam", False), ("sign", True), ("normgd", False), ("adamw", True)]
    ] == ["GD+m", "Adam-m", "Sign+m", "NormGD-m", "AdamW+m"]
