"""Image data of ``hti deep``: handwritten digits, IDX files, and barcoded heavy-tailed sets.

Every set is of kind ``images``: inputs (N, 1, H, W) float32 in [0, 1], targets (N,)
int64. Nothing is downloaded.

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, grey levels 0..16, divided
  by 16). Split by one fixed permutation from
  ``default_rng(SeedSequence(seed, spawn_key=(2,)))``: its first n - n // 5 = 1,438
  images train, the other 359 validate.
- ``mnist``: the four standard IDX files under ``data_dir`` (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  each plain or ``.gz``), grey levels divided by 255; validation = t10k. MNIST and
  Fashion-MNIST (Debian ``dataset-fashion-mnist``: /usr/share/datasets/fashion-mnist)
  both have this format.
- ``barcoded`` (the paper's Figure 2 and Appendix A.3): the base set's training images
  (classes 0..K-1, K = 10) plus K (2^b - 1) small classes: class (d, k) holds ``copies``
  images of class d (drawn without replacement when the class has enough) with the
  b-bit code k written into their top-left corner. Labels: K + d n_codes + index of k.
  The K base classes are large and the K n_codes barcoded ones small: a heavy tail.
- ``barcoded-only`` (the paper's Appendix C): the barcoded images alone, balanced,
  labelled d n_codes + index of k.

Barcode layout: bit j of code k (most significant first) is pixel
(j mod R, j div R) of an R x ceil(b / R) block in the top-left corner, set to 1 (bit 1)
or 0 (bit 0), with R = 2 on images of height >= 16 (a 2 x 5 block for the paper's 10
bits on 28x28) and R = H on smaller ones (8x8 digits: column 0, blank in 1,776 of
1,797 images, so the code does not hide the digit; 6 bits use rows 0..5).

Codes are 1..2^b - 1 by default. Code 0 writes zeros, and the corner is blank in nearly
every image, so class (d, 0) would hold exact copies of class d's images under another
label; ``include_zero_barcode=True`` keeps it (2^b codes) all the same. Without it no
two classes share an identical image: a base image is never barcoded if (i) another
class has an image equal to it outside the barcode pixels, or (ii) barcoding it with k
would reproduce an image of the base set (checked exactly, on the bytes). Duplicates
across classes within the base set itself would be left as they are; digits and
Fashion-MNIST have none.

Default bits: 10 on 28x28 (the paper) and 6 on 8x8 digits. Sizes:

    set (base)                 classes   train images               val images
    barcoded (digits, b=6)     640       1,438 + 630 x 5 = 4,588    359 + 3,150 = 3,509
    barcoded-only (digits)     630       3,150                      3,150
    barcoded (mnist, b=10)     10,240    60,000 + 10,230 x 5        10,000 + 51,150
                                         = 111,150                  = 61,150

Validation: the base validation images and, for every barcoded class (d, k), ``copies``
validation images of class d with code k, drawn the same way from the validation split
(so a barcoded class is recognised on images it has not seen). The training draws use
``SeedSequence(seed, spawn_key=(3,))``, the validation draws ``spawn_key=(4,)``.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from hti.deep.data import DataError, DeepData, Split

IMAGE_NAMES = ("digits", "mnist", "barcoded", "barcoded-only")
BASES = ("digits", "mnist")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MAX_BITS = 16
_MNIST_LAYOUT = f"mnist needs data_dir holding the IDX files {', '.join(IDX_FILES)} (each plain or .gz)"

SPLIT_STREAM = 2  # spawn key of the digits train/val permutation
TRAIN_DRAWS, VAL_DRAWS = 3, 4  # spawn keys of the barcoded images' draws


class _Base(NamedTuple):
    """A base set in grey levels: x (n, H, W) uint8 in [0, white], y (n,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    white: int  # grey level of 1.0 (16 for digits, 255 for IDX files)
    n_classes: int


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


# ---------------------------------------------------------------------------- base sets


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataError("data set digits needs scikit-learn: pip install scikit-learn") from err
    X, y = load_digits(return_X_y=True)  # (1797, 64) 0..16, (1797,)
    x = X.reshape(-1, 8, 8).astype(np.uint8)
    x.flags.writeable = False
    return x, y.astype(np.int64)


def _digits(seed: int) -> _Base:
    x, y = _digits_raw()
    perm = _rng(seed, SPLIT_STREAM).permutation(len(y))
    n_train = len(y) - len(y) // 5
    tr, va = perm[:n_train], perm[n_train:]
    return _Base(x[tr], y[tr], x[va], y[va], 16, 10)


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes (magic 0x0000 08 ``ndim``), plain or gzip-compressed.

    Layout: 2 zero bytes, type byte 0x08 (uint8), byte ``ndim``, ``ndim`` big-endian
    int32 sizes, then the prod(sizes) bytes in C order. Returns the (sizes) uint8 array.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            b = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {str(path)!r}: {err}") from err
    if len(b) < 4 or b[0] != 0 or b[1] != 0 or b[2] != 0x08 or b[3] != ndim:
        raise DataError(f"{str(path)!r} is not an IDX file of {ndim}-d unsigned bytes: magic must be "
                        f"00 00 08 {ndim:02x}; got {b[:4].hex(' ') or 'an empty file'}")  # fmt: skip
    header = 4 + 4 * ndim
    if len(b) < header:
        raise DataError(f"{str(path)!r}: IDX header needs {header} bytes; got {len(b)}")
    shape = tuple(int.from_bytes(b[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(b) - header != int(np.prod(shape)):
        raise DataError(
            f"{str(path)!r}: IDX sizes {shape} need {int(np.prod(shape))} data bytes; got {len(b) - header}"
        )
    return np.frombuffer(b, np.uint8, offset=header).reshape(shape)


def _idx_path(root: Path, stem: str) -> Path:
    for p in (root / stem, root / f"{stem}.gz"):
        if p.is_file():
            return p
    raise DataError(f"{_MNIST_LAYOUT}; {stem} is missing in {str(root)!r}")


def _mnist(data_dir: str | os.PathLike | None) -> _Base:
    if data_dir is None:
        raise DataError(f"{_MNIST_LAYOUT}; got data_dir=None")
    root = Path(data_dir)
    xtr, ytr, xva, yva = (read_idx(_idx_path(root, s), 3 if "images" in s else 1) for s in IDX_FILES)
    for x, y, split in ((xtr, ytr, "train"), (xva, yva, "t10k")):
        if len(x) != len(y):
            raise DataError(f"mnist {split}: {len(x)} images but {len(y)} labels in {str(root)!r}")
    if xtr.shape[1:] != xva.shape[1:]:
        raise DataError(f"mnist: train images are {xtr.shape[1:]} but t10k images {xva.shape[1:]}")
    if len(ytr) == 0:
        raise DataError(f"mnist: no training image in {str(root)!r}")
    n_classes = int(max(ytr.max(), yva.max(initial=0))) + 1
    return _Base(xtr, ytr.astype(np.int64), xva, yva.astype(np.int64), 255, n_classes)


# ----------------------------------------------------------------------------- barcodes


def barcode_layout(bits: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, column) of every bit j: (j mod R, j div R), R = 2 if height >= 16 else height.

    >>> [a.tolist() for a in barcode_layout(6, 8, 8)]
    [[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0]]
    >>> [a.tolist() for a in barcode_layout(5, 28, 28)]
    [[0, 1, 0, 1, 0], [0, 0, 1, 1, 2]]
    """
    R = 2 if height >= 16 else height
    j = np.arange(bits)
    if -(-bits // R) > width:
        raise DataError(
            f"{bits} bits need a {R} x {-(-bits // R)} corner block; images are {height} x {width}"
        )
    return j % R, j // R


def barcode_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Bits of every code, most significant first: (n_codes,) -> (n_codes, bits) uint8.

    >>> barcode_bits(np.array([1, 6]), 3).tolist()
    [[0, 0, 1], [1, 1, 0]]
    """
    return ((np.asarray(codes)[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)


def _barcode(x: np.ndarray, y: np.ndarray, n_base: int, codes: np.ndarray, bits: int, copies: int, white: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Barcoded images of one split: (n, H, W), (n,) -> (n_base n_codes copies, H, W), labels.

    Label of class (d, k) (k the index of the code): d n_codes + k, in that order.
    """
    H, W = x.shape[1:]
    rows, cols = barcode_layout(bits, H, W)
    pattern = barcode_bits(codes, bits) * np.uint8(white)  # (n_codes, b)
    rest = x.copy()
    rest[:, rows, cols] = 0
    keys = [r.tobytes() for r in rest]  # image outside the barcode pixels
    labels_of: dict[bytes, set[int]] = {}
    for key, label in zip(keys, y.tolist()):
        labels_of.setdefault(key, set()).add(label)
    usable = np.array([len(labels_of[k]) == 1 for k in keys])  # (i): rest shared by no other class
    # (ii): image i already shows code k in the corner -> no image with i's rest gets code k
    corner = x[:, rows, cols]  # (n, b)
    code_index = {int(c): i for i, c in enumerate(codes) if c != 0}  # code 0 is the paper's duplicate
    shown = np.where(np.isin(corner, (0, white)).all(axis=1))[0]
    weights = 1 << np.arange(bits - 1, -1, -1)
    banned: dict[tuple[int, int], set[bytes]] = {}
    for i in shown:
        k = code_index.get(int(((corner[i] == white) * weights).sum()))
        if k is not None:
            banned.setdefault((int(y[i]), k), set()).add(keys[i])
    n_codes = len(codes)
    out = np.empty((n_base * n_codes * copies, H, W), dtype=np.uint8)
    for d in range(n_base):
        pool_d = np.where((y == d) & usable)[0]
        for k in range(n_codes):
            pool = pool_d
            if (d, k) in banned:
                pool = pool[[keys[i] not in banned[(d, k)] for i in pool]]
            if pool.size == 0:
                raise DataError(f"class {d} has no image that can carry barcode {int(codes[k])} "
                                f"({int((y == d).sum())} images of class {d})")  # fmt: skip
            pick = rng.choice(pool, size=copies, replace=pool.size < copies)
            start = (d * n_codes + k) * copies
            out[start : start + copies] = x[pick]
            out[start : start + copies, rows, cols] = pattern[k]
    labels = np.repeat(np.arange(n_base * n_codes, dtype=np.int64), copies)
    return out, labels


# ------------------------------------------------------------------------------ loader


def _split(x: np.ndarray, y: np.ndarray, white: int) -> Split:
    inputs = torch.from_numpy((x.astype(np.float32) / np.float32(white))[:, None])  # (n, 1, H, W)
    return Split(inputs, torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))


def load_images(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    base: str | None = None,
    bits: int | None = None,
    copies: int = 5,
    include_zero_barcode: bool = False,
    seed: int = 0,
) -> DeepData:
    """An image data set of kind ``images`` (see the module docstring).

    Args:
        name: one of ``IMAGE_NAMES``.
        data_dir: folder of the IDX files (``mnist``, or a barcoded set on mnist).
        base: base set of the barcoded sets, ``digits`` or ``mnist``; None: ``mnist``
            when ``data_dir`` is given, else ``digits``. Ignored by the plain sets.
        bits: b, barcode bits (1..16); None: 10 on 28x28 images, 6 on 8x8.
        copies: images per barcoded class.
        include_zero_barcode: keep code 0 (2^b codes, the zero-code classes duplicate
            base images); default codes 1..2^b - 1.
        seed: the digits split and the barcoded draws.

    Returns:
        DeepData: inputs (N, 1, H, W) float32 in [0, 1], targets (N,) int64; ``meta``
        holds ``shape`` (1, H, W), ``bits``, ``copies`` (None for the plain sets) and
        ``base``.

    Raises:
        DataError: unknown name or base, missing or malformed IDX files, bad bits or
        copies.
    """
    if name not in IMAGE_NAMES:
        raise DataError(f"image data set must be one of {IMAGE_NAMES}; got {name!r}")
    barcoded = name.startswith("barcoded")
    if name == "digits" or name == "mnist":
        base = name
    elif base is None:
        base = "digits" if data_dir is None else "mnist"
    if base not in BASES:
        raise DataError(f"base must be one of {BASES}; got {base!r}")
    src = _digits(seed) if base == "digits" else _mnist(data_dir)
    H, W = src.x_train.shape[1:]
    meta = {"shape": (1, int(H), int(W)), "bits": None, "copies": None, "base": base}
    if not barcoded:
        train, val = _split(src.x_train, src.y_train, src.white), _split(src.x_val, src.y_val, src.white)
        counts = np.bincount(src.y_train, minlength=src.n_classes).astype(np.int64)
        return DeepData(name, "images", train, val, src.n_classes, counts, meta)

    if bits is None:
        bits = 10 if H >= 16 else 6
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise DataError(f"bits must be an integer in [1, {MAX_BITS}]; got {bits!r}")
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise DataError(f"copies must be an integer >= 1; got {copies!r}")
    bits, copies = int(bits), int(copies)
    codes = np.arange(0 if include_zero_barcode else 1, 2**bits)
    K = src.n_classes
    xb, yb = _barcode(src.x_train, src.y_train, K, codes, bits, copies, src.white, _rng(seed, TRAIN_DRAWS))
    xv, yv = _barcode(src.x_val, src.y_val, K, codes, bits, copies, src.white, _rng(seed, VAL_DRAWS))
    if name == "barcoded":
        xb, yb = np.concatenate([src.x_train, xb]), np.concatenate([src.y_train, yb + K])
        xv, yv = np.concatenate([src.x_val, xv]), np.concatenate([src.y_val, yv + K])
        n_classes = K + K * len(codes)
    else:
        n_classes = K * len(codes)
    meta.update(bits=bits, copies=copies, include_zero_barcode=bool(include_zero_barcode))
    counts = np.bincount(yb, minlength=n_classes).astype(np.int64)
    return DeepData(
        name, "images", _split(xb, yb, src.white), _split(xv, yv, src.white), n_classes, counts, meta
    )
