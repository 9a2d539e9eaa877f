"""Helpers shared by the tests (importable as ``helpers``: setup.cfg puts tests/ on the path)."""

from __future__ import annotations

import numpy as np

from hti.linsoftmax.data import heavy_tailed_data


def tiny_problem(xp, m=3, inputs="uniform", seed=0, scale=1.0, dim=None, **kw):
    """(X, y, counts, W, b) in float64 on ``xp``: the paper's data with random parameters.

    ``scale`` multiplies W and b drawn N(0, 1/d) so that the predictions are far from
    uniform (every code path, including nearly saturated probabilities, is exercised).
    """
    data = heavy_tailed_data(m, inputs=inputs, dtype="float64", dim=dim, **kw)
    n, d = data.X.shape
    c = data.class_counts.size
    g = np.random.default_rng(seed)
    W = g.standard_normal((c, d)) * scale / np.sqrt(d)
    b = g.standard_normal(c) * scale
    return tuple(xp.asarray(a) for a in (data.X, data.y, data.class_counts, W, b))


def assert_help_imports_none_of(statement: str, args: list[str], modules=("torch",)) -> None:
    """In a fresh interpreter, ``statement`` binds ``command``; ``command(args)`` (a --help)
    exits 0 without importing any of ``modules`` (the CLI stays fast to start)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (f"import sys\n{statement}\ntry:\n    command({args!r})\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"loaded = [m for m in {list(modules)!r} if m in sys.modules]\nassert not loaded, loaded\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
