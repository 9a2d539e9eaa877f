"""The paper's random heavy-tailed labels data set (its Figure 3 and Appendix A.3).

There are m groups of classes, j = 0..m-1; group j holds 2^j classes of 2^(m-j) samples
each, so every group holds 1/m of the samples and class frequencies follow a step
approximation of Zipf's law, pi_k ~ 1/k. Class 0 is the most frequent. Hence

    n = m 2^m samples,   c = 2^m - 1 classes,   d = (m + 1) 2^m input dimensions.

The paper's appendix text says c = 2^(m+1) - 1 (and c = 4095 at m = 11); its own
construction, followed here and in its released code, gives c = 2^m - 1 (2047 at
m = 11).

    m   n          c      d        X in float32
    2   8          3      12       384 B
    4   64         15     80       20 KiB
    6   384        63     448      672 KiB
    8   2,048      255    2,304    18 MiB
    9   4,608      511    5,120    90 MiB
    10  10,240     1,023  11,264   440 MiB
    11  22,528     2,047  24,576   2.1 GiB
    12  49,152     4,095  53,248   9.8 GiB

Inputs are independent of the labels (``inputs``):

- ``uniform``: U[0, 1)^d, the paper's Figure 3; strongly correlated rows (mean 1/2).
- ``gaussian``: N(mean, scale^2) entries; N(1, 1) is the paper's correlated case and
  N(0, 1) its near-orthogonal case (Figure 17).
- ``orthogonal``: rows exactly orthogonal with squared norm d (needs d >= n): the first
  n columns of a Haar-random orthogonal matrix, from the QR decomposition of a Gaussian
  (d, n) matrix, scaled by sqrt(d). Its cost is O(d n^2) in float64.

Data are generated on the host from ``data_seed`` alone, in float64 and then rounded to
``dtype``, so that (i) the arrays are a pure function of (m, inputs, mean, scale, dim,
data_seed, dtype), identical bit for bit on every call and every device; (ii) float32
data are the float64 data rounded. The data stream is derived from
``SeedSequence(data_seed, spawn_key=(DATA_STREAM,))`` and the initialization stream from
the training seed with another spawn key (:func:`rng_stream`), so the two are
independent even when both integers are equal (the paper's code seeded both generators
with one integer, which makes W_0 a function of X).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

INPUTS = ("uniform", "gaussian", "orthogonal")
DTYPES = ("float32", "float64")
M_RANGE = (2, 16)

DATA_STREAM = 0  # spawn key of the data generator
INIT_STREAM = 1  # spawn key of the parameter-initialization generator

_CHUNK_ELEMENTS = 1 << 22  # rows are drawn in float64 chunks of about 32 MiB


class HeavyTailedData(NamedTuple):
    """Host arrays of one data set: X (n, d), y (n,) int64, class_counts (c,) int64."""

    X: np.ndarray
    y: np.ndarray
    class_counts: np.ndarray


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """An independent NumPy generator for ``stream`` (DATA_STREAM or INIT_STREAM).

    >>> a = rng_stream(0, DATA_STREAM).random(); b = rng_stream(0, INIT_STREAM).random()
    >>> a != b
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _check_m(m: int) -> None:
    lo, hi = M_RANGE
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not lo <= m <= hi:
        raise ValueError(f"m must be an integer in [{lo}, {hi}]; got {m!r}")


def dataset_shape(m: int, dim: int | None = None) -> tuple[int, int, int]:
    """(n, c, d) = (m 2^m, 2^m - 1, (m + 1) 2^m), with d replaced by ``dim`` if given.

    >>> dataset_shape(11)
    (22528, 2047, 24576)
    """
    _check_m(m)
    d = (m + 1) * 2**m if dim is None else int(dim)
    return m * 2**m, 2**m - 1, d


def class_counts(m: int) -> np.ndarray:
    """Samples per class, (c,) int64: group j contributes 2^j classes of 2^(m-j).

    >>> class_counts(3).tolist()
    [8, 4, 4, 2, 2, 2, 2]
    """
    _check_m(m)
    return np.concatenate([np.full(2**j, 2 ** (m - j), dtype=np.int64) for j in range(m)])


def class_groups(m: int) -> np.ndarray:
    """Construction group j of every class, (c,) int64.

    >>> class_groups(3).tolist()
    [0, 1, 1, 2, 2, 2, 2]
    """
    _check_m(m)
    return np.concatenate([np.full(2**j, j, dtype=np.int64) for j in range(m)])


def labels(m: int) -> np.ndarray:
    """Labels y (n,) int64, sorted: 2^m samples of class 0, then class 1, ...

    >>> labels(2).tolist()
    [0, 0, 0, 0, 1, 1, 2, 2]
    """
    counts = class_counts(m)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def _draw_rows(
    rng: np.random.Generator, n: int, d: int, dtype: np.dtype, draw, mean: float, scale: float
) -> np.ndarray:
    """Fill an (n, d) array of ``dtype`` with mean + scale * draw(rows, d) in float64 chunks.

    Drawing in row chunks consumes the generator exactly as one call of shape (n, d)
    would (tested), and keeps the float64 workspace at about 32 MiB.
    """
    X = np.empty((n, d), dtype=dtype)
    rows = max(1, _CHUNK_ELEMENTS // max(d, 1))
    for start in range(0, n, rows):
        block = draw(rng, (min(rows, n - start), d))  # float64
        if scale != 1.0:
            block *= scale
        if mean != 0.0:
            block += mean
        X[start : start + block.shape[0]] = block
    return X


def make_inputs(
    m: int,
    *,
    inputs: str = "uniform",
    input_mean: float | None = None,
    input_scale: float | None = None,
    dim: int | None = None,
    data_seed: int = 0,
    dtype: str = "float32",
) -> np.ndarray:
    """Inputs X (n, d) on the host, independent of the labels; see the module docstring.

    ``input_mean`` and ``input_scale`` apply to ``gaussian`` inputs only (default 1.0
    and 1.0); passing them with other inputs is an error.
    """
    n, _c, d = dataset_shape(m, dim)
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}; got {inputs!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
    if d < 1:
        raise ValueError(f"dim must be a positive integer; got {d}")
    if inputs != "gaussian" and (input_mean is not None or input_scale is not None):
        raise ValueError(
            f"input_mean and input_scale apply to gaussian inputs only; got inputs={inputs!r} "
            f"with input_mean={input_mean!r}, input_scale={input_scale!r}"
        )
    rng = rng_stream(data_seed, DATA_STREAM)
    if inputs == "uniform":
        return _draw_rows(rng, n, d, np.dtype(dtype), lambda g, s: g.random(s), 0.0, 1.0)
    if inputs == "gaussian":
        mean = 1.0 if input_mean is None else float(input_mean)
        scale = 1.0 if input_scale is None else float(input_scale)
        return _draw_rows(rng, n, d, np.dtype(dtype), lambda g, s: g.standard_normal(s), mean, scale)
    if d < n:
        raise ValueError(
            f"orthogonal inputs need d >= n to make n orthogonal rows; got d = {d} < n = {n}"
        )
    Q, R = np.linalg.qr(rng.standard_normal((d, n)))  # Q (d, n), orthonormal columns
    Q *= np.sign(np.diag(R))  # sign fix: Q is then Haar-distributed
    Q *= np.sqrt(d)
    return np.ascontiguousarray(Q.T, dtype=dtype)  # (n, d), rows orthogonal, ||x_i||^2 = d


def heavy_tailed_data(
    m: int,
    *,
    inputs: str = "uniform",
    input_mean: float | None = None,
    input_scale: float | None = None,
    dim: int | None = None,
    data_seed: int = 0,
    dtype: str = "float32",
) -> HeavyTailedData:
    """The whole data set (X, y, class_counts) on the host.

    >>> data = heavy_tailed_data(3, dtype="float64")
    >>> data.X.shape, data.y.shape, int(data.class_counts.sum())
    ((24, 32), (24,), 24)
    """
    X = make_inputs(
        m,
        inputs=inputs,
        input_mean=input_mean,
        input_scale=input_scale,
        dim=dim,
        data_seed=data_seed,
        dtype=dtype,
    )
    return HeavyTailedData(X, labels(m), class_counts(m))
