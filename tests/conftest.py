"""Shared fixtures: the array backend, tiny float64 problems, random parameters."""

from __future__ import annotations

import numpy as np
import pytest


def _backends():
    yield pytest.param("numpy", id="numpy")
    yield pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)


@pytest.fixture(params=list(_backends()))
def xp(request):
    """NumPy always; CuPy when it is installed and sees a GPU (else skipped)."""
    if request.param == "numpy":
        return np
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as err:  # driver missing
        pytest.skip(f"CUDA unusable: {err}")
    return cupy


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
