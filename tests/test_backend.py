"""The backend module: array namespaces, device names, optional CuPy."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hti import backend


def test_numpy_arrays_select_numpy():
    assert backend.get_xp(np.zeros(2), np.ones((2, 2)), None) is np
    assert backend.xp_by_name("cpu") is np
    assert backend.device_name(np) == "cpu"


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\); got 'tpu'"):
        backend.xp_by_name("tpu")


def test_missing_cupy_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes "import cupy" raise ImportError
    with pytest.raises(backend.BackendUnavailable, match=r"pip install 'hti\[gpu\]'"):
        backend.xp_by_name("cuda")


def test_host_helpers():
    a = np.arange(3.0)
    assert backend.to_numpy(a) is a
    assert backend.to_device(a, np) is a
    assert backend.available_memory(np) > 0
    spla = backend.sparse_linalg(np)
    op = backend.linear_operator(lambda v: 2 * v, 3, np.float64, np)
    assert np.allclose(op.matvec(np.ones(3)), 2) and spla.__name__ == "scipy.sparse.linalg"


@pytest.mark.gpu
def test_cupy_round_trip(xp):
    if xp is np:
        pytest.skip("GPU test")
    a = xp.arange(4.0)
    assert backend.get_xp(a) is xp
    assert isinstance(backend.to_numpy(a), np.ndarray)
    with pytest.raises(TypeError, match="one device"):
        backend.get_xp(a, np.zeros(1))
