"""Trajectory files as :class:`Run` objects: metadata at once, arrays on first access.

``load(path)`` reads a file's attributes, its parsed config, its ``class_counts`` and
the names of everything it holds; ``run["class_loss"]`` then reads that one dataset
(rows beyond its table's counter left out, as :func:`hti.storage.read_trajectory`
does) and keeps it. ``load_runs(folder, optim="adam", momentum=True)`` collects the
trajectories under a folder whose config matches.

>>> import tempfile, pathlib
>>> from hti.linsoftmax.config import LinearConfig
>>> from hti.linsoftmax.train import run as train
>>> path = pathlib.Path(tempfile.mkdtemp()) / "gd.h5"
>>> _ = train(LinearConfig(m=3, steps=2), path)
>>> r = load(path)
>>> r.label, r.engine, r["class_loss"].shape
('GD+m', 'linsoftmax', (3, 7))
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hti.analysis.groups import frequency_groups
from hti.storage import StorageError, attr_value, open_for_reading, read_trajectory

__all__ = ["Run", "load", "load_runs", "optimizer_label", "OPTIMIZER_ORDER"]

OPTIMIZER_ORDER = ("gd", "adam", "normgd", "sign", "adamw")  # the figures' column order


def optimizer_label(optim: str, momentum: bool) -> str:
    """The legend of an optimizer: ``GD+m``, ``Adam-m``, ``NormGD+m``, ``Sign-m``, ``AdamW+m``.

    >>> optimizer_label("normgd", False)
    'NormGD-m'
    """
    from hti.linsoftmax.optim import OPTIMIZERS  # noqa: PLC0415 (numpy only)

    names = {name: spec.label for name, spec in OPTIMIZERS.items()} | {"adamw": "AdamW"}
    return f"{names.get(optim, str(optim))}{'+m' if momentum else '-m'}"


class Run:
    """One trajectory file: metadata now, per-step arrays when first asked for.

    Attributes:
        path: the file.
        attrs: root attributes (``config`` parsed, the internal ``rows``/``tables`` left out).
        config: the run's options (dict).
        status, engine: ``completed``/``diverged``/...; ``linsoftmax`` or ``deep``.
        label: legend such as ``GD+m`` (from config ``optim`` and ``momentum``).
        class_counts: (c,) training samples per class (None if the file lacks them).
        names: every dataset and group of the file (checkpoints excepted).
        tables: table name -> its per-step datasets (``main``, ``curvature``, ...).
    """

    def __init__(
        self,
        path: Path,
        attrs: dict,
        names: tuple[str, ...],
        tables: dict[str, tuple[str, ...]],
        class_counts: np.ndarray | None,
        *,
        live: bool = False,
    ):
        self.path = Path(path)
        self.attrs = attrs
        self.config: dict = attrs.get("config") or {}
        self.status: str = str(attrs.get("status", ""))
        self.engine: str = str(attrs.get("engine", ""))
        self.names = names
        self.tables = tables
        self.class_counts = class_counts
        self._live = live
        self._cache: dict[str, Any] = {}
        self._label: str | None = None

    @property
    def label(self) -> str:
        """The legend: the optimizer (``GD+m``) unless set to something else."""
        if self._label is not None:
            return self._label
        return optimizer_label(self.config.get("optim", "?"), bool(self.config.get("momentum", False)))

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    @property
    def c(self) -> int:
        """Number of classes (from ``class_counts``)."""
        return int(self._counts().size)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Any:
        """The dataset (NumPy array) or group (nested dict) ``name``, read once and cached."""
        if name not in self._cache:
            if name not in self.names:
                raise KeyError(f"{self.path} has no {name!r}; it holds {', '.join(self.names)}")
            self._cache[name] = read_trajectory(self.path, names=(name,), live=self._live)[name]
        return self._cache[name]

    def table_of(self, name: str) -> str:
        """The table (``main``, ``curvature``, ...) whose rows hold dataset ``name``."""
        for table, names in self.tables.items():
            if name in names:
                return table
        raise KeyError(f"{name!r} is not a per-step dataset of {self.path}")

    def steps_of(self, name: str) -> np.ndarray:
        """The steps of the rows of per-step dataset ``name``: ``step`` for the main table,
        ``<table>_step`` (e.g. ``curvature_step``) for another table."""
        table = self.table_of(name)
        names = self.tables[table]
        key = "step" if table == "main" else f"{table}_step"
        if key not in names:
            key = next((n for n in names if n.endswith("_step")), None)
        if key is None:
            raise KeyError(f"table {table!r} of {self.path} has no step dataset")
        return np.asarray(self[key])

    def groups(self, n_groups: int = 10) -> list[np.ndarray]:
        """Frequency groups of this run's classes (:func:`hti.analysis.groups.frequency_groups`)."""
        return frequency_groups(self._counts(), n_groups)

    def _counts(self) -> np.ndarray:
        if self.class_counts is None:
            raise StorageError(f"{self.path} has no class_counts")
        return self.class_counts

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, {self.engine}, {self.label}, {self.status})"


def load(path: str | os.PathLike, *, live: bool = False) -> Run:
    """The trajectory at ``path`` as a :class:`Run` (arrays are read on first access).

    Raises:
        StorageError: the file does not exist, is not HDF5, or is not an hti trajectory.
    """
    path = Path(path)
    with open_for_reading(path, live=live) as fh:
        raw = {k: attr_value(v) for k, v in fh.attrs.items()}
        if "rows" not in raw or "iteration" not in raw:
            raise StorageError(f"{path} is not an hti trajectory (no rows/iteration attributes)")
        try:
            tables = {"main": tuple(json.loads(raw.pop("rows")))}
            for table, spec in json.loads(raw.pop("tables", None) or "{}").items():
                tables[table] = tuple(spec)
            if "config" in raw:
                raw["config"] = json.loads(raw["config"])
        except (json.JSONDecodeError, TypeError, AttributeError) as err:
            raise StorageError(f"{path} is not an hti trajectory (unreadable metadata: {err})") from None
        names = tuple(sorted(k for k in fh.keys() if k != "checkpoint"))
        counts = np.asarray(fh["class_counts"][()]) if "class_counts" in fh else None
    return Run(path, raw, names, tables, counts, live=live)


def _matches(value: Any, wanted: Any) -> bool:
    accepted = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else (wanted,)
    for w in accepted:
        if isinstance(value, bool) or isinstance(w, bool):
            if isinstance(value, bool) and isinstance(w, bool) and value == w:
                return True
        elif isinstance(value, (int, float)) and isinstance(w, (int, float)):
            if value == w or math.isclose(value, w, rel_tol=1e-9):
                return True
        elif isinstance(value, list) and isinstance(w, (list, tuple)):
            if list(value) == list(w):
                return True
        elif value == w:
            return True
    return False


def load_runs(folder: str | os.PathLike, **config_filters: Any) -> list[Run]:
    """Every trajectory (``*.h5``, recursively) under ``folder`` whose config matches.

    A filter ``key=value`` keeps runs whose config field ``key`` equals ``value`` (floats
    to 1e-9 relative); a list or tuple of values accepts any of them. A key that is not
    a config field is looked up among the root attributes (``engine``, ``status``). Files
    that are not hti trajectories (other HDF5 files, files being written) are skipped.
    Runs come sorted by path.

    Raises:
        StorageError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StorageError(f"expected a folder of trajectory files; {folder} is not a folder")
    runs = []
    for path in sorted(folder.rglob("*.h5")):
        try:
            run = load(path)
        except StorageError:
            continue  # not an hti trajectory
        ok = True
        for key, wanted in config_filters.items():
            source = run.config if key in run.config else run.attrs
            if key not in source or not _matches(source[key], wanted):
                ok = False
                break
        if ok:
            runs.append(run)
    return runs
