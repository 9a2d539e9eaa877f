"""HDF5 trajectories: rows, attributes, checkpoints, and the in-memory twin."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hti.storage import HDF5Trajectory, MemoryTrajectory, StorageError, read_trajectory

ROWS = {"step": ((), "i8"), "loss": ((), "f8"), "class_loss": ((3,), "f8")}
ATTRS = {"config": json.dumps({"a": 1}), "engine": "test"}


def _fill(store, n=5):
    for t in range(n):
        store.append(step=t, loss=1.0 / (t + 1), class_loss=np.arange(3) * t)


def _both(tmp_path):
    h5 = HDF5Trajectory.create(tmp_path / "t.h5", attrs=ATTRS, rows=ROWS, static={"class_counts": np.array([3, 2, 1])})
    mem = MemoryTrajectory(attrs=ATTRS, rows=ROWS, static={"class_counts": np.array([3, 2, 1])})
    return h5, mem


def test_hdf5_and_memory_stores_hold_the_same_rows(tmp_path):
    h5, mem = _both(tmp_path)
    for s in (h5, mem):
        _fill(s)
        s.truncate(4)
        s.append(step=9, loss=0.5, class_loss=[1, 2, 3])
    for name in ROWS:
        assert np.array_equal(h5.column(name), mem.column(name))
    assert h5.iteration == mem.iteration == 5
    h5.close()
    data = read_trajectory(tmp_path / "t.h5")
    assert data["step"].tolist() == [0, 1, 2, 3, 9]
    assert data["attrs"]["config"] == {"a": 1} and data["attrs"]["status"] == "running"
    assert data["class_loss"].shape == (5, 3) and data["class_loss"].dtype == np.float64
    assert data["class_counts"].tolist() == [3, 2, 1]


def test_datasets_grow_without_bound_and_rows_beyond_iteration_are_ignored(tmp_path):
    h5, _ = _both(tmp_path)
    _fill(h5, 3)
    h5.close()
    with h5py.File(tmp_path / "t.h5", "r+") as f:
        assert f["loss"].maxshape == (None,) and f["class_loss"].maxshape == (None, 3)
        f["loss"].resize(4, axis=0)  # a write cut short: a row beyond "iteration"
    assert read_trajectory(tmp_path / "t.h5")["loss"].shape == (3,)
    reopened = HDF5Trajectory.open(tmp_path / "t.h5")  # resuming drops it
    assert reopened.column("loss").shape == (3,)
    reopened.close()


def test_a_row_must_have_every_dataset(tmp_path):
    h5, mem = _both(tmp_path)
    for s in (h5, mem):
        with pytest.raises(ValueError, match=r"missing \['class_loss'\], extra \['lsos'\]"):
            s.append(step=0, loss=1.0, lsos=2.0)
    h5.close()


def test_checkpoints_alternate_slots_and_survive_a_broken_write(tmp_path):
    h5, _ = _both(tmp_path)
    for step in (10, 20, 30):
        h5.save_checkpoint(step, step / 10, [np.full(2, step, dtype=np.float32), step, np.zeros(0)])
    step, wall, leaves = h5.load_checkpoint()
    assert step == 30 and wall == 3.0
    assert leaves[0].dtype == np.float32 and leaves[0].tolist() == [30, 30]
    assert leaves[1] == 30 and isinstance(leaves[1], int)
    h5.close()
    with h5py.File(tmp_path / "t.h5", "r+") as f:  # a kill in the middle of writing slot of step 30
        slot = next(g for g in f["checkpoint"].values() if g.attrs["step"] == 30)
        slot.attrs["step"] = -1
    h5 = HDF5Trajectory.open(tmp_path / "t.h5")
    step, _, leaves = h5.load_checkpoint()
    assert step == 20 and leaves[0].tolist() == [20, 20]
    h5.close()


def test_saved_parameters_can_be_dropped_from_a_step(tmp_path):
    h5, mem = _both(tmp_path)
    for s in (h5, mem):
        for t in (0, 5, 10):
            s.save_params(t, {"W": np.full((2, 2), t), "b": np.full(2, t)})
        s.drop_params_from(5)
    h5.close()
    data = read_trajectory(tmp_path / "t.h5")
    assert data["params"]["step"].tolist() == [0] == mem.params["step"]
    assert data["params"]["W"].shape == (1, 2, 2)


def test_existing_file_is_not_overwritten_without_force(tmp_path):
    h5, _ = _both(tmp_path)
    h5.close()
    with pytest.raises(StorageError, match="exists; pass --force"):
        HDF5Trajectory.create(tmp_path / "t.h5", attrs=ATTRS, rows=ROWS)
    HDF5Trajectory.create(tmp_path / "t.h5", attrs=ATTRS, rows=ROWS, force=True).close()
    assert read_trajectory(tmp_path / "t.h5")["loss"].size == 0


def test_status_values_are_checked(tmp_path):
    h5, mem = _both(tmp_path)
    for s in (h5, mem):
        s.set_status("diverged")
        assert s.status == "diverged"
        with pytest.raises(ValueError, match="status must be one of"):
            s.set_status("done")
    h5.close()


def test_files_that_are_not_trajectories_are_refused(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        HDF5Trajectory.open(tmp_path / "missing.h5")
    with pytest.raises(StorageError, match="does not exist"):
        read_trajectory(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(StorageError, match="cannot read .* as HDF5"):
        read_trajectory(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(StorageError, match="not an hti trajectory"):
        HDF5Trajectory.open(tmp_path / "other.h5")
