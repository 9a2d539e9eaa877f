"""Initial parameters of softmax regression.

``uniform`` (the default) draws W (c, d) and b (c,) from U(-1/sqrt(d), 1/sqrt(d)), the
initialization of ``torch.nn.Linear`` that the paper's runs used; ``zero`` starts at
W = 0, b = 0 (uniform predictions). The draw uses the initialization stream of
``seed`` (see :func:`hti.linsoftmax.data.rng_stream`), in float64 rounded to ``dtype``,
on the host, so every device starts from the same parameters.
"""

from __future__ import annotations

import numpy as np

from hti.linsoftmax.data import INIT_STREAM, rng_stream

INITS = ("uniform", "zero")


def init_params(c: int, d: int, *, init: str = "uniform", seed: int = 0, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """(W (c, d), b (c,)) on the host.

    >>> W, b = init_params(3, 4, seed=1, dtype="float64")
    >>> W.shape, b.shape, bool(abs(W).max() <= 0.5)
    ((3, 4), (3,), True)
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    if init == "zero":
        return np.zeros((c, d), dtype=dtype), np.zeros(c, dtype=dtype)
    rng = rng_stream(seed, INIT_STREAM)
    bound = 1.0 / np.sqrt(d)
    W = np.empty((c, d), dtype=dtype)
    rows = max(1, (1 << 22) // d)  # float64 draws in chunks of about 32 MiB
    for start in range(0, c, rows):
        W[start : start + rows] = rng.uniform(-bound, bound, size=(min(rows, c - start), d))
    b = rng.uniform(-bound, bound, size=c).astype(dtype)
    return W, b
