"""The heavy-tailed data set: sizes, counts, determinism, input distributions."""

from __future__ import annotations

import numpy as np
import pytest

from hti.linsoftmax import data as D


@pytest.mark.parametrize("m", [2, 3, 5, 8, 11])
def test_sizes_and_counts_follow_the_construction(m):
    n, c, d = D.dataset_shape(m)
    assert (n, c, d) == (m * 2**m, 2**m - 1, (m + 1) * 2**m)
    counts = D.class_counts(m)
    groups = D.class_groups(m)
    assert counts.shape == (c,) and counts.sum() == n
    assert counts[0] == 2**m and counts.argmax() == 0
    assert np.all(np.diff(counts) <= 0)  # most frequent first
    for j in range(m):  # group j: 2^j classes of 2^(m-j) samples, 1/m of the samples
        assert (groups == j).sum() == 2**j
        assert np.all(counts[groups == j] == 2 ** (m - j))
        assert counts[groups == j].sum() == n // m
    y = D.labels(m)
    assert y.shape == (n,) and np.array_equal(np.bincount(y, minlength=c), counts)


def test_paper_large_variant_sizes():
    # The paper's m = 11 numbers; its text's c = 4095 contradicts its own construction.
    assert D.dataset_shape(11) == (22528, 2047, 24576)
    assert D.dataset_shape(8, dim=100) == (2048, 255, 100)


@pytest.mark.parametrize("m", [1, 17, 2.5, True])
def test_bad_m_is_rejected(m):
    with pytest.raises(ValueError, match=r"m must be an integer in \[2, 16\]"):
        D.dataset_shape(m)


@pytest.mark.parametrize("inputs", D.INPUTS)
@pytest.mark.parametrize("dtype", D.DTYPES)
def test_data_are_a_pure_function_of_their_arguments(inputs, dtype):
    a = D.heavy_tailed_data(4, inputs=inputs, data_seed=3, dtype=dtype)
    b = D.heavy_tailed_data(4, inputs=inputs, data_seed=3, dtype=dtype)
    assert a.X.dtype == np.dtype(dtype)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    other = D.heavy_tailed_data(4, inputs=inputs, data_seed=4, dtype=dtype)
    assert not np.array_equal(a.X, other.X)


@pytest.mark.parametrize("inputs", D.INPUTS)
def test_float32_data_are_the_float64_data_rounded(inputs):
    x64 = D.make_inputs(4, inputs=inputs, dtype="float64")
    x32 = D.make_inputs(4, inputs=inputs, dtype="float32")
    assert np.array_equal(x32, x64.astype(np.float32))


@pytest.mark.parametrize("inputs", ["uniform", "gaussian"])
def test_chunked_generation_equals_one_draw(monkeypatch, inputs):
    """Row chunks consume the generator exactly like one (n, d) draw."""
    n, _, d = D.dataset_shape(5)
    whole = D.make_inputs(5, inputs=inputs, dtype="float64")
    monkeypatch.setattr(D, "_CHUNK_ELEMENTS", 3 * d + 1)  # 3 rows per chunk
    chunked = D.make_inputs(5, inputs=inputs, dtype="float64")
    assert np.array_equal(whole, chunked)
    g = D.rng_stream(0, D.DATA_STREAM)
    ref = g.random((n, d)) if inputs == "uniform" else g.standard_normal((n, d)) + 1.0
    assert np.array_equal(whole, ref)


def test_data_and_init_streams_are_independent_for_equal_seeds():
    a = D.rng_stream(7, D.DATA_STREAM).random(1000)
    b = D.rng_stream(7, D.INIT_STREAM).random(1000)
    assert not np.array_equal(a, b)
    # Independent U[0,1) samples: |corr| ~ N(0, 1/1000); 5 sigma = 0.16.
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.16


def test_uniform_inputs_are_in_the_unit_interval():
    X = D.make_inputs(6, dtype="float64")
    assert X.min() >= 0.0 and X.max() < 1.0
    # mean of 448 * 384 U[0,1) values: sd = 0.29 / sqrt(172032) = 7e-4; 5 sigma.
    assert abs(X.mean() - 0.5) < 3.5e-3


@pytest.mark.parametrize("mean,scale", [(1.0, 1.0), (0.0, 1.0), (-2.0, 0.5)])
def test_gaussian_inputs_have_the_requested_moments(mean, scale):
    X = D.make_inputs(6, inputs="gaussian", input_mean=mean, input_scale=scale, dtype="float64")
    N = X.size  # 172032 values: mean error sd = scale/415, std error sd ~ scale/587; 5 sigma
    assert abs(X.mean() - mean) < 5 * scale / np.sqrt(N)
    assert abs(X.std() - scale) < 5 * scale / np.sqrt(2 * N)


@pytest.mark.parametrize("m", [3, 5])
def test_orthogonal_inputs_are_exactly_orthogonal_with_squared_norm_d(m):
    X = D.make_inputs(m, inputs="orthogonal", dtype="float64")
    n, _, d = D.dataset_shape(m)
    # Householder QR: orthogonality to a few ulps times d.
    np.testing.assert_allclose(X @ X.T, d * np.eye(n), atol=1e-12 * d)


def test_orthogonal_inputs_need_d_at_least_n():
    with pytest.raises(ValueError, match=r"orthogonal inputs need d >= n.*got d = 10 < n = 24"):
        D.make_inputs(3, inputs="orthogonal", dim=10)


def test_mean_and_scale_apply_to_gaussian_inputs_only():
    with pytest.raises(ValueError, match="gaussian inputs only; got inputs='uniform'"):
        D.make_inputs(3, inputs="uniform", input_mean=0.0)


def test_unknown_inputs_and_dtype_are_rejected():
    with pytest.raises(ValueError, match="inputs must be one of"):
        D.make_inputs(3, inputs="normal")
    with pytest.raises(ValueError, match="dtype must be one of"):
        D.make_inputs(3, dtype="float16")
