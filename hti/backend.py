"""The array backend: NumPy on the CPU, CuPy on NVIDIA GPUs.

This is the only module that imports CuPy, and only when a GPU is asked for. Engine
functions call :func:`get_xp` on their array arguments and then use only ``xp.``
calls, so one code path serves both libraries (the pattern of scikit-learn's
``_array_api`` and PyLops' ``backend``). Arrays cross to the host only at the storage
and printing boundary, through :func:`to_numpy`.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any, Callable

import numpy as np

Array = Any  # numpy.ndarray or cupy.ndarray
Namespace = ModuleType  # the numpy or cupy module

DEVICES = ("cpu", "cuda")
GPU_HINT = "pip install 'hti[gpu]'"


class BackendUnavailable(RuntimeError):
    """The requested device cannot be used (CuPy missing, or no GPU visible)."""


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.split(".", 1)[0] == "cupy"


def get_xp(*arrays: Array) -> Namespace:
    """The array module (numpy or cupy) that owns ``arrays``.

    Mixing host and device arrays is an error, reported with the types that arrived.

    >>> import numpy as np
    >>> get_xp(np.zeros(2), np.ones(3)).__name__
    'numpy'
    """
    kinds = {_is_cupy(a) for a in arrays if a is not None and not np.isscalar(a)}
    if len(kinds) > 1:
        names = ", ".join(type(a).__module__ + "." + type(a).__name__ for a in arrays)
        raise TypeError(f"arrays must all live on one device; got {names}")
    if kinds == {True}:
        return sys.modules["cupy"]
    return np


def _import_cupy() -> Namespace:
    try:
        import cupy  # noqa: PLC0415 (optional dependency, imported on request only)
    except ImportError as err:
        raise BackendUnavailable(
            f"--device cuda needs CuPy, which is not installed ({err}); install it with {GPU_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise BackendUnavailable(
            f"--device cuda: CuPy is installed but no CUDA device is usable ({err}); "
            f"check the NVIDIA driver, or reinstall with {GPU_HINT}"
        ) from None
    if count < 1:
        raise BackendUnavailable(f"--device cuda: CuPy found no CUDA device; got {count} devices")
    return cupy


def xp_by_name(device: str) -> Namespace:
    """The array module for a device name: ``"cpu"`` -> numpy, ``"cuda"`` -> cupy."""
    if device == "cpu":
        return np
    if device == "cuda":
        return _import_cupy()
    raise ValueError(f"device must be one of {DEVICES}; got {device!r}")


def device_name(xp: Namespace) -> str:
    """Inverse of :func:`xp_by_name`."""
    return "cpu" if xp is np else "cuda"


def to_numpy(a: Array) -> np.ndarray:
    """A host (NumPy) copy of ``a``; NumPy arrays and scalars pass through."""
    if _is_cupy(a):
        return a.get()
    return np.asarray(a)


def to_device(a: np.ndarray, xp: Namespace) -> Array:
    """Move a host array to the device of ``xp`` (no copy for NumPy)."""
    return xp.asarray(a)


def synchronize(xp: Namespace) -> None:
    """Wait for queued device work (a no-op on the CPU); use before reading a clock."""
    if xp is not np:
        xp.cuda.runtime.deviceSynchronize()


def sparse_linalg(xp: Namespace) -> ModuleType:
    """``scipy.sparse.linalg`` or ``cupyx.scipy.sparse.linalg``, matching ``xp``."""
    if xp is np:
        import scipy.sparse.linalg as spla  # noqa: PLC0415

        return spla
    import cupyx.scipy.sparse.linalg as cspla  # noqa: PLC0415

    return cspla


def linear_operator(matvec: Callable[[Array], Array], size: int, dtype: Any, xp: Namespace):
    """A symmetric ``LinearOperator`` of shape (size, size) for the backend's ``eigsh``."""
    spla = sparse_linalg(xp)
    return spla.LinearOperator((size, size), matvec=matvec, rmatvec=matvec, dtype=dtype)


def available_memory(xp: Namespace) -> int:
    """Bytes that can still be allocated on the device of ``xp``.

    On the CPU: ``MemAvailable`` from /proc/meminfo, capped by a cgroup memory limit if
    one is set; on a GPU: the free device memory reported by the CUDA runtime.
    """
    if xp is not np:
        free, _total = xp.cuda.runtime.memGetInfo()
        return int(free)
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62  # unknown platform: do not refuse
    limits = (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    )
    for limit_path, usage_path in limits:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None:
            avail = min(avail, limit - (usage or 0))
    return avail


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
