"""Trajectory files: resizable HDF5 datasets written row by row, emcee-style.

One file per run. Root attributes: ``config`` (JSON), ``hti_version``, ``engine``,
``run_id``, ``status`` (running | completed | diverged | interrupted) and ``iteration``
(rows written). Each per-step quantity is a dataset created empty with
``maxshape=(None, ...)``; a row is written by growing every dataset, filling row
``iteration``, incrementing ``iteration`` and flushing, so a run that is killed at any
point leaves a readable file whose rows are complete up to ``iteration``. Other tables
(e.g. ``curvature``, recorded every few steps) work the same way with their own counter
attribute ``<table>_iteration``; the attribute ``tables`` lists them as JSON.

Crash safety: the HDF5 metadata cache is set not to evict (write) dirty entries between
flushes, so the on-disk metadata is the state of the last flush. The resume state
(parameters and optimizer state) lives in two checkpoint slots, ``checkpoint/slot0`` and
``checkpoint/slot1``, written alternately: a slot is marked invalid, filled, flushed, and
only then stamped with its step, so a kill during a checkpoint leaves the other slot
intact. :class:`MemoryTrajectory` is an in-memory twin with the same interface.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

STATUSES = ("running", "completed", "diverged", "interrupted")
_SLOTS = ("slot0", "slot1")


class StorageError(ValueError):
    """A trajectory file that cannot be created, opened or resumed; says why."""


def _h5py():
    try:
        import h5py  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - h5py is a hard dependency
        raise StorageError(f"HDF5 trajectories need h5py ({err}); pip install h5py") from None
    return h5py


def _no_evictions(fh) -> None:
    """Keep dirty metadata in memory until the next flush (see the module docstring)."""
    cfg = fh.id.get_mdc_config()
    cfg.incr_mode = 0  # H5C_incr__off
    cfg.flash_incr_mode = 0  # H5C_flash_incr__off
    cfg.decr_mode = 0  # H5C_decr__off
    cfg.evictions_enabled = False
    fh.id.set_mdc_config(cfg)


def _row_chunk(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    per_row = int(np.prod(shape, dtype=np.int64)) * itemsize
    return (max(1, min(1024, (1 << 16) // max(per_row, 1))), *shape)


def _check_row(spec: dict, row: dict[str, Any]) -> None:
    missing, extra = set(spec) - set(row), set(row) - set(spec)
    if missing or extra:
        raise ValueError(
            f"a row needs exactly {sorted(spec)}; missing {sorted(missing)}, extra {sorted(extra)}"
        )


class HDF5Trajectory:
    """A trajectory file open for writing (new) or for resuming (existing)."""

    def __init__(self, fh, path: Path):
        self._f = fh
        self.path = Path(path)
        self._tables = _tables_of(fh.attrs)  # table -> (counter attribute, spec)

    # -- opening --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        attrs: dict[str, Any],
        rows: dict[str, tuple[tuple[int, ...], str]],
        tables: dict[str, dict[str, tuple[tuple[int, ...], str]]] | None = None,
        static: dict[str, np.ndarray] | None = None,
        force: bool = False,
    ) -> "HDF5Trajectory":
        """A new file with empty growing datasets: ``rows`` (name -> (row shape, dtype))
        for the main table, and the same for each extra table in ``tables``."""
        h5py = _h5py()
        path = Path(path)
        if path.exists() and not force:
            raise StorageError(f"{path} exists; pass --force to overwrite it or --resume to continue it")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fh = h5py.File(path, "w")
        except OSError as err:
            raise StorageError(f"cannot create {path}: {err}") from None
        _no_evictions(fh)
        for key, value in attrs.items():
            fh.attrs[key] = value
        fh.attrs["rows"] = _spec_json(rows)
        fh.attrs["tables"] = json.dumps({t: json.loads(_spec_json(spec)) for t, spec in (tables or {}).items()})
        fh.attrs["status"] = "running"
        fh.attrs["iteration"] = 0
        for table in tables or {}:
            fh.attrs[f"{table}_iteration"] = 0
        for spec in [rows, *(tables or {}).values()]:
            for name, (shape, dtype) in spec.items():
                shape = tuple(shape)
                fh.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=_row_chunk(shape, np.dtype(dtype).itemsize),
                )
        for name, value in (static or {}).items():
            fh.create_dataset(name, data=value)
        fh.flush()
        return cls(fh, path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "HDF5Trajectory":
        """An existing file, for resuming; the rows beyond ``iteration`` are dropped."""
        h5py = _h5py()
        path = Path(path)
        if not path.exists():
            raise StorageError(f"--resume expects an existing trajectory file; {path} does not exist")
        try:
            fh = h5py.File(path, "r+")
        except OSError as err:
            raise StorageError(f"cannot open {path} for resuming (is another process writing it?): {err}") from None
        if "rows" not in fh.attrs or "iteration" not in fh.attrs:
            fh.close()
            raise StorageError(f"{path} is not an hti trajectory (no rows/iteration attributes)")
        _no_evictions(fh)
        store = cls(fh, path)
        for table in store._tables:
            store.truncate(store.length(table), table)
        return store

    # -- attributes -----------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: attr_value(v) for k, v in self._f.attrs.items()}

    @property
    def iteration(self) -> int:
        return int(self._f.attrs["iteration"])

    @property
    def status(self) -> str:
        return str(self._f.attrs["status"])

    def set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
        self._f.attrs["status"] = status
        self._f.flush()

    def set_attr(self, key: str, value: Any) -> None:
        self._f.attrs[key] = value
        self._f.flush()

    # -- rows -----------------------------------------------------------------------
    def length(self, table: str = "main") -> int:
        """Rows written to ``table``."""
        return int(self._f.attrs[self._tables[table][0]])

    def append(self, table: str = "main", /, **row: Any) -> None:
        """Write one row (every dataset of the table), then bump its counter and flush."""
        counter, spec = self._tables[table]
        _check_row(spec, row)
        i = int(self._f.attrs[counter])
        for name, value in row.items():
            ds = self._f[name]
            ds.resize(i + 1, axis=0)
            ds[i] = value
        self._f.attrs[counter] = i + 1
        self._f.flush()

    def truncate(self, n_rows: int, table: str = "main") -> None:
        """Keep the first ``n_rows`` rows of ``table``."""
        counter, spec = self._tables[table]
        for name in spec:
            self._f[name].resize(n_rows, axis=0)
        self._f.attrs[counter] = n_rows
        self._f.flush()

    def column(self, name: str) -> np.ndarray:
        return self._f[name][: self.length(_table_of(self._tables, name))]

    # -- saved parameters -----------------------------------------------------------
    def save_params(self, step: int, arrays: dict[str, np.ndarray]) -> None:
        """Append (step, arrays) under ``params/``: params/step (K,), params/<name> (K, ...)."""
        grp = self._f.require_group("params")
        if "step" not in grp:
            grp.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(64,))
            for name, a in arrays.items():
                grp.create_dataset(
                    name, shape=(0, *a.shape), maxshape=(None, *a.shape), dtype=a.dtype,
                    chunks=(1, *a.shape),
                )
        k = grp["step"].shape[0]
        for name, a in arrays.items():
            grp[name].resize(k + 1, axis=0)
            grp[name][k] = a
        grp["step"].resize(k + 1, axis=0)
        grp["step"][k] = step
        self._f.flush()

    def drop_params_from(self, step: int) -> None:
        """Forget saved parameters of steps >= ``step`` (used when resuming)."""
        if "params" not in self._f:
            return
        grp = self._f["params"]
        keep = int(np.searchsorted(grp["step"][:], step))
        for name in grp:
            grp[name].resize(keep, axis=0)
        self._f.flush()

    # -- static arrays --------------------------------------------------------------
    def write_static(self, name: str, value: np.ndarray) -> None:
        if name in self._f:
            del self._f[name]
        self._f.create_dataset(name, data=value)
        self._f.flush()

    # -- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self, step: int, wall_time: float, leaves: Iterable[Any]) -> None:
        """Store the resume state at ``step`` in the older slot (see the module)."""
        ckpt = self._f.require_group("checkpoint")
        slots = [ckpt.require_group(s) for s in _SLOTS]
        steps = [int(g.attrs.get("step", -1)) for g in slots]
        slot = slots[int(steps[1] < steps[0])]  # the older (or invalid) one
        slot.attrs["step"] = -1
        self._f.flush()
        leaves = list(leaves)
        for i, leaf in enumerate(leaves):
            name = f"leaf{i:03d}"
            is_int = isinstance(leaf, (int, np.integer))
            value = np.asarray(leaf, dtype=np.int64 if is_int else None)
            if name in slot and (slot[name].shape != value.shape or slot[name].dtype != value.dtype):
                del slot[name]
            if name not in slot:
                slot.create_dataset(name, shape=value.shape, dtype=value.dtype)
            slot[name][...] = value
            slot[name].attrs["int"] = is_int
        slot.attrs["n_leaves"] = len(leaves)
        slot.attrs["wall_time"] = float(wall_time)
        self._f.flush()
        slot.attrs["step"] = int(step)
        self._f.flush()

    def load_checkpoint(self) -> tuple[int, float, list[Any]] | None:
        """(step, wall_time, leaves) of the newest valid slot, or None."""
        return _newest_checkpoint(self._f)

    # -- life cycle -----------------------------------------------------------------
    def close(self) -> None:
        if self._f.id.valid:
            self._f.flush()
            self._f.close()

    def __enter__(self) -> "HDF5Trajectory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MemoryTrajectory:
    """The in-memory twin of :class:`HDF5Trajectory` (tests, notebooks)."""

    def __init__(
        self,
        *,
        attrs: dict[str, Any],
        rows: dict[str, tuple[tuple[int, ...], str]],
        tables: dict[str, dict[str, tuple[tuple[int, ...], str]]] | None = None,
        static: dict[str, np.ndarray] | None = None,
    ):
        self._attrs = dict(attrs, status="running", iteration=0)
        self._tables = {"main": ("iteration", {k: (tuple(s), d) for k, (s, d) in rows.items()})}
        for table, spec in (tables or {}).items():
            self._attrs[f"{table}_iteration"] = 0
            self._tables[table] = (f"{table}_iteration", {k: (tuple(s), d) for k, (s, d) in spec.items()})
        self._rows: dict[str, list] = {k: [] for _, spec in self._tables.values() for k in spec}
        self.static = dict(static or {})
        self.params: dict[str, list] = {}
        self._checkpoint = None
        self.path = None

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    @property
    def iteration(self) -> int:
        return self._attrs["iteration"]

    @property
    def status(self) -> str:
        return self._attrs["status"]

    def set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
        self._attrs["status"] = status

    def set_attr(self, key: str, value: Any) -> None:
        self._attrs[key] = value

    def length(self, table: str = "main") -> int:
        return self._attrs[self._tables[table][0]]

    def append(self, table: str = "main", /, **row: Any) -> None:
        counter, spec = self._tables[table]
        _check_row(spec, row)
        for name, value in row.items():
            shape, dtype = spec[name]
            self._rows[name].append(np.asarray(value, dtype=dtype).reshape(shape))
        self._attrs[counter] += 1

    def truncate(self, n_rows: int, table: str = "main") -> None:
        counter, spec = self._tables[table]
        for name in spec:
            del self._rows[name][n_rows:]
        self._attrs[counter] = n_rows

    def column(self, name: str) -> np.ndarray:
        shape, dtype = self._tables[_table_of(self._tables, name)][1][name]
        return np.array(self._rows[name], dtype=dtype).reshape(-1, *shape)

    def save_params(self, step: int, arrays: dict[str, np.ndarray]) -> None:
        self.params.setdefault("step", []).append(step)
        for name, a in arrays.items():
            self.params.setdefault(name, []).append(np.array(a))

    def drop_params_from(self, step: int) -> None:
        if "step" in self.params:
            keep = int(np.searchsorted(np.array(self.params["step"]), step))
            for name in self.params:
                del self.params[name][keep:]

    def write_static(self, name: str, value: np.ndarray) -> None:
        self.static[name] = np.array(value)

    def save_checkpoint(self, step: int, wall_time: float, leaves: Iterable[Any]) -> None:
        self._checkpoint = (step, wall_time, [np.array(x) if not isinstance(x, int) else x for x in leaves])

    def load_checkpoint(self):
        return self._checkpoint

    def close(self) -> None:
        pass

    def __enter__(self) -> "MemoryTrajectory":
        return self

    def __exit__(self, *exc) -> None:
        pass


def _newest_checkpoint(fh) -> tuple[int, float, list[Any]] | None:
    if "checkpoint" not in fh:
        return None
    best = None
    for s in _SLOTS:
        g = fh["checkpoint"].get(s)
        if g is not None and int(g.attrs.get("step", -1)) >= 0:
            if best is None or int(g.attrs["step"]) > int(best.attrs["step"]):
                best = g
    if best is None:
        return None
    leaves = []
    for i in range(int(best.attrs["n_leaves"])):
        ds = best[f"leaf{i:03d}"]
        leaves.append(int(ds[()]) if bool(ds.attrs["int"]) else ds[()])
    return int(best.attrs["step"]), float(best.attrs["wall_time"]), leaves


def read_checkpoint(path: str | os.PathLike) -> tuple[int, float, list[Any]] | None:
    """The newest checkpoint of a trajectory file, read-only: (step, wall_time, leaves)."""
    with open_for_reading(path) as fh:
        return _newest_checkpoint(fh)


def write_group(path: str | os.PathLike, name: str, arrays: dict[str, Any], attrs: dict[str, Any] | None = None) -> None:
    """Replace group ``name`` of an existing file by ``arrays`` (and ``attrs``)."""
    h5py = _h5py()
    try:
        fh = h5py.File(path, "r+")
    except OSError as err:
        raise StorageError(f"cannot open {path} for writing (is a run still writing it?): {err}") from None
    with fh:
        if name in fh:
            del fh[name]
        grp = fh.create_group(name)
        for key, value in arrays.items():
            grp.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            grp.attrs[key] = value


def write_arrays(
    path: str | os.PathLike, arrays: dict[str, Any], attrs: dict[str, Any], *, force: bool = False
) -> None:
    """A new HDF5 file holding ``arrays`` and root ``attrs`` (refuses to overwrite)."""
    h5py = _h5py()
    path = Path(path)
    if path.exists() and not force:
        raise StorageError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        for key, value in arrays.items():
            fh.create_dataset(key, data=value)
        for key, value in attrs.items():
            fh.attrs[key] = value


def _read_group(group, h5py) -> dict[str, Any]:
    """A group as a nested dict of arrays, with its attributes under ``"attrs"``."""
    out: dict[str, Any] = {k: _read_group(v, h5py) if isinstance(v, h5py.Group) else v[()] for k, v in group.items()}
    if group.attrs:
        out["attrs"] = {k: attr_value(v) for k, v in group.attrs.items()}
    return out


def _spec_json(spec: dict) -> str:
    return json.dumps({k: [list(shape), dtype] for k, (shape, dtype) in spec.items()})


def _tables_of(attrs) -> dict[str, tuple[str, dict]]:
    """table -> (counter attribute, spec) from a file's ``rows`` and ``tables`` attributes."""
    out = {"main": ("iteration", json.loads(attr_value(attrs["rows"])))}
    for table, spec in json.loads(attr_value(attrs.get("tables", "{}"))).items():
        out[table] = (f"{table}_iteration", spec)
    return out


def _table_of(tables: dict, name: str) -> str:
    for table, (_, spec) in tables.items():
        if name in spec:
            return table
    raise KeyError(f"{name!r} is not a per-step dataset; tables hold {sorted(k for _, s in tables.values() for k in s)}")


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as plain Python: bytes decoded, NumPy scalars as Python scalars."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_for_reading(path: str | os.PathLike, *, live: bool = False):
    """An h5py File opened read-only, or a StorageError that says why it cannot be.

    HDF5 locks a file while a run writes it; ``live=True`` opens it without the lock.
    """
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise StorageError(f"expected an hti trajectory file; {path} does not exist")
    if path.is_dir():
        raise StorageError(f"expected an hti trajectory file; {path} is a folder")
    try:
        return h5py.File(path, "r", locking=False) if live else h5py.File(path, "r")
    except OSError as err:
        if "lock" in str(err).lower():
            raise StorageError(f"{path} is being written by a running process; pass live=True to read it anyway") from None
        raise StorageError(f"cannot read {path} as HDF5: {err}") from None


def read_trajectory(
    path: str | os.PathLike, names: Iterable[str] | None = None, *, live: bool = False
) -> dict[str, Any]:
    """A trajectory file as NumPy arrays: ``{"attrs": {...}, name: array}``.

    ``names`` selects datasets or groups (default: everything but the checkpoints).

    Rows beyond ``iteration`` (a write cut short by a kill) are left out; ``config`` is
    parsed from JSON. Groups (``params``, ``data``) become nested dicts. HDF5 locks a file
    while a run writes it; ``live=True`` reads it anyway (without the lock), which shows
    the rows up to the writer's last flush, or fails if it catches a flush half done.
    """
    h5py = _h5py()
    path = Path(path)
    with open_for_reading(path, live=live) as fh:
        attrs = {k: attr_value(v) for k, v in fh.attrs.items()}
        if "rows" not in attrs:
            raise StorageError(f"{path} is not an hti trajectory (no rows attribute)")
        lengths = {
            name: int(attrs.get(counter, 0)) for counter, spec in _tables_of(fh.attrs).values() for name in spec
        }
        attrs.pop("rows")
        attrs.pop("tables", None)
        if "config" in attrs:
            attrs["config"] = json.loads(attrs["config"])
        out: dict[str, Any] = {"attrs": attrs}
        wanted = None if names is None else set(names)
        for name, item in fh.items():
            if name == "checkpoint" or (wanted is not None and name not in wanted):
                continue
            if isinstance(item, h5py.Group):
                out[name] = _read_group(item, h5py)
            else:
                out[name] = item[: lengths[name]] if name in lengths else item[()]
    return out
