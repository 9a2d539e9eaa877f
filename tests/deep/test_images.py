"""Image data: digits split, IDX files (plain and gz), Fashion-MNIST, barcoded heavy-tailed sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hti.deep.data import DataError  # noqa: E402
from hti.deep.images import IDX_FILES, barcode_bits, barcode_layout, load_images  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _sklearn():
    pytest.importorskip("sklearn", reason="digits need pip install scikit-learn")


def _write_idx(path: Path, a: np.ndarray, gz: bool) -> None:
    b = (
        bytes([0, 0, 8, a.ndim])
        + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
        + a.astype(np.uint8).tobytes()
    )
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(b)
    else:
        path.write_bytes(b)


def _fake_mnist(root: Path, gz: bool, n=(40, 20), hw=(28, 28), seed=0):
    """Tiny IDX files: digits' labels cycle 0..9, images random with a blank 4-pixel top margin."""
    g = np.random.default_rng(seed)
    arrays = {}
    for (img, lab), m in zip([IDX_FILES[:2], IDX_FILES[2:]], n):
        x = g.integers(0, 256, (m, *hw), dtype=np.uint8)
        x[:, :4] = 0
        arrays[img], arrays[lab] = x, np.arange(m, dtype=np.uint8) % 10
    for i, (stem, a) in enumerate(arrays.items()):
        _write_idx(root / stem, a, gz and i % 2 == 0)  # mix plain and .gz when gz
    return arrays


def _classes_sharing_an_image(d) -> int:
    x = d.train.inputs.reshape(len(d.train), -1).numpy()
    y = d.train.targets.numpy()
    _, inv = np.unique(x, axis=0, return_inverse=True)
    labels: dict[int, set[int]] = {}
    for k, label in zip(inv.ravel().tolist(), y.tolist()):
        labels.setdefault(k, set()).add(label)
    return sum(len(s) > 1 for s in labels.values())


def test_digits_split_shapes_and_range():
    _sklearn()
    d = load_images("digits")
    assert d.kind == "images" and d.n_classes == 10 and d.meta["shape"] == (1, 8, 8)
    assert d.train.inputs.shape == (1438, 1, 8, 8) and d.val.inputs.shape == (359, 1, 8, 8)
    assert d.train.inputs.dtype == torch.float32 and d.train.targets.dtype == torch.int64
    assert 0.0 <= d.train.inputs.min() and d.train.inputs.max() == 1.0
    assert d.class_counts.sum() == 1438 and (d.class_counts > 120).all()
    np.testing.assert_array_equal(d.train.inputs * 16, torch.round(d.train.inputs * 16))  # grey levels / 16
    again, other = load_images("digits"), load_images("digits", seed=1)
    assert torch.equal(again.train.inputs, d.train.inputs) and torch.equal(again.val.targets, d.val.targets)
    assert not torch.equal(other.train.inputs, d.train.inputs)
    both = torch.cat([d.train.inputs, d.val.inputs]).reshape(1797, -1)
    assert torch.unique(both, dim=0).shape[0] == 1797  # a split of the 1,797 distinct images


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arrays = _fake_mnist(tmp_path, gz)
    d = load_images("mnist", data_dir=tmp_path)
    tr_x, tr_y, va_x, va_y = arrays.values()
    assert d.meta == {"shape": (1, 28, 28), "bits": None, "copies": None, "base": "mnist"}
    np.testing.assert_array_equal(d.train.inputs[:, 0].numpy(), tr_x.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(d.train.targets.numpy(), tr_y)
    np.testing.assert_array_equal(d.val.inputs[:, 0].numpy() * 255, va_x.astype(np.float32))
    np.testing.assert_array_equal(d.val.targets.numpy(), va_y)
    assert d.class_counts.tolist() == [4] * 10


def test_idx_errors(tmp_path):
    with pytest.raises(DataError, match="mnist needs data_dir holding the IDX files .*got data_dir=None"):
        load_images("mnist")
    with pytest.raises(DataError, match="train-images-idx3-ubyte is missing"):
        load_images("mnist", data_dir=tmp_path)
    _fake_mnist(tmp_path, gz=False)
    labels = tmp_path / IDX_FILES[1]
    good = labels.read_bytes()
    labels.write_bytes(bytes([0, 0, 8, 3]) + good[4:])
    with pytest.raises(DataError, match="magic must be 00 00 08 01; got 00 00 08 03"):
        load_images("mnist", data_dir=tmp_path)
    labels.write_bytes(good[:-1])
    with pytest.raises(DataError, match=r"IDX sizes \(40,\) need 40 data bytes; got 39"):
        load_images("mnist", data_dir=tmp_path)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (39).to_bytes(4, "big") + good[8:-1])
    with pytest.raises(DataError, match="40 images but 39 labels"):
        load_images("mnist", data_dir=tmp_path)


def test_fashion_mnist():
    if not all((FASHION / f"{s}.gz").is_file() for s in IDX_FILES):
        pytest.skip(f"Fashion-MNIST not installed in {FASHION} (apt-get install dataset-fashion-mnist)")
    d = load_images("mnist", data_dir=FASHION)
    assert d.train.inputs.shape == (60_000, 1, 28, 28) and d.val.inputs.shape == (10_000, 1, 28, 28)
    assert d.class_counts.tolist() == [6000] * 10
    assert np.bincount(d.val.targets.numpy()).tolist() == [1000] * 10
    assert 0.0 <= d.train.inputs.min() and d.train.inputs.max() <= 1.0


def test_barcode_layout_and_bits():
    rows, cols = barcode_layout(10, 28, 28)
    assert rows.tolist() == [0, 1] * 5 and cols.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # a 2 x 5 block
    assert barcode_bits(np.array([5]), 4).tolist() == [[0, 1, 0, 1]]
    with pytest.raises(DataError, match="17 bits need a 8 x 3 corner block; images are 8 x 2"):
        barcode_layout(17, 8, 2)


def test_barcoded_digits_default():
    _sklearn()
    plain = load_images("digits")
    d = load_images("barcoded")
    n_codes = 2**6 - 1
    assert d.meta == {
        "shape": (1, 8, 8),
        "bits": 6,
        "copies": 5,
        "base": "digits",
        "include_zero_barcode": False,
    }
    assert d.n_classes == 10 + 10 * n_codes == 640
    assert len(d.train) == 1438 + 10 * n_codes * 5 == 4588 and len(d.val) == 359 + 3150
    np.testing.assert_array_equal(d.class_counts[:10], plain.class_counts)  # 10 large classes
    assert (d.class_counts[10:] == 5).all()  # 630 small ones
    assert torch.equal(d.train.inputs[:1438], plain.train.inputs)
    # Class 10 + digit * n_codes + (code - 1) holds images of `digit` showing `code` in column 0.
    x, y = d.train.inputs[1438:, 0].numpy(), d.train.targets[1438:].numpy()
    digit, code = (y - 10) // n_codes, (y - 10) % n_codes + 1
    np.testing.assert_array_equal(x[:, :6, 0], barcode_bits(code, 6).astype(np.float32))
    base = plain.train.inputs[:, 0].numpy()
    for i in range(0, len(y), 97):
        same = (base[:, :, 1:] == x[i, :, 1:]).all(axis=(1, 2)) & (base[:, 6:, 0] == x[i, 6:, 0]).all(axis=1)
        assert same.any() and set(plain.train.targets.numpy()[same]) == {digit[i]}
    assert _classes_sharing_an_image(d) == 0  # no image in two classes
    vy = d.val.targets.numpy()
    assert (np.bincount(vy[359:], minlength=640)[10:] == 5).all()
    again = load_images("barcoded")
    assert torch.equal(again.train.inputs, d.train.inputs) and torch.equal(again.val.inputs, d.val.inputs)


def test_zero_barcode_duplicates_plain_digits():
    _sklearn()
    d = load_images("barcoded", bits=3, copies=4, include_zero_barcode=True)
    n_codes = 8
    assert d.n_classes == 10 + 10 * n_codes and (d.class_counts[10:] == 4).all()
    x = d.train.inputs.reshape(len(d.train), -1).numpy()
    y = d.train.targets.numpy()
    plain = {r.tobytes(): label for r, label in zip(x[y < 10], y[y < 10])}
    zero = (y >= 10) & ((y - 10) % n_codes == 0)  # classes (digit, code 0)
    dup = [plain.get(r.tobytes()) == (label - 10) // n_codes for r, label in zip(x[zero], y[zero])]
    assert np.mean(dup) > 0.9  # the corner is blank in nearly all digits: code 0 copies them
    assert _classes_sharing_an_image(d) > 0
    assert _classes_sharing_an_image(load_images("barcoded", bits=3, copies=4)) == 0


def test_barcoded_only_is_balanced():
    _sklearn()
    d = load_images("barcoded-only", bits=4, copies=3)
    assert d.n_classes == 10 * 15 and (d.class_counts == 3).all() and len(d.train) == 450
    assert (np.bincount(d.val.targets.numpy(), minlength=150) == 3).all()
    assert _classes_sharing_an_image(d) == 0


def test_barcoded_on_idx_files(tmp_path):
    _fake_mnist(tmp_path, gz=True, n=(60, 30))
    d = load_images("barcoded", data_dir=tmp_path, bits=3, copies=8)  # more copies than images of a digit
    assert d.meta["base"] == "mnist" and d.meta["bits"] == 3
    assert (
        d.n_classes == 10 + 70
        and (d.class_counts[10:] == 8).all()
        and d.class_counts[:10].tolist() == [6] * 10
    )
    x = d.train.inputs[60:, 0].numpy()
    code = (d.train.targets[60:].numpy() - 10) % 7 + 1
    np.testing.assert_array_equal(x[:, [0, 1, 0], [0, 0, 1]], barcode_bits(code, 3).astype(np.float32))
    default = load_images("barcoded-only", data_dir=tmp_path, copies=1)
    assert default.meta["bits"] == 10 and default.n_classes == 10 * 1023


def test_bad_image_arguments():
    _sklearn()
    with pytest.raises(DataError, match="image data set must be one of .*got 'cifar'"):
        load_images("cifar")
    with pytest.raises(DataError, match=r"bits must be an integer in \[1, 16\]; got 0"):
        load_images("barcoded", bits=0)
    with pytest.raises(DataError, match="copies must be an integer >= 1; got 0"):
        load_images("barcoded", copies=0)
    with pytest.raises(DataError, match="base must be one of .*got 'cifar'"):
        load_images("barcoded", base="cifar")
