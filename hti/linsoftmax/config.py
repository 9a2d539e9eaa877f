"""The configuration of a linear run: every option of ``hti linear``, validated.

A :class:`LinearConfig` is frozen; ``__post_init__`` validates every field and raises
:class:`hti.config.ConfigError` naming what was expected and what arrived. It is stored
as JSON in the trajectory file, so a run can be reproduced (and resumed) from the file
alone, and the hash of its fields is the run id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hti.backend import DEVICES
from hti.config import ConfigError, SerializableConfig, check_choice, check_float, check_int, parse_lr
from hti.linsoftmax.curvature import TRACKABLE
from hti.linsoftmax.data import DTYPES, INPUTS, M_RANGE, dataset_shape
from hti.linsoftmax.optim import OPTIMIZERS
from hti.linsoftmax.params import INITS
from hti.linsoftmax.stats import REWEIGHT


@dataclass(frozen=True)
class LinearConfig(SerializableConfig):
    """Every option of ``hti linear``; see the README for each one's meaning.

    ``lr=None`` resolves to the paper's tuned m = 11 step size of (optim, momentum);
    ``input_mean``/``input_scale`` apply to gaussian inputs only (default 1.0 there).
    """

    m: int = 8
    optim: str = "gd"
    momentum: bool = True
    lr: float | None = None
    steps: int = 1000
    inputs: str = "uniform"
    input_mean: float | None = None
    input_scale: float | None = None
    dim: int | None = None
    seed: int = 0
    data_seed: int = 0
    init: str = "uniform"
    reweight: str = "none"
    dtype: str = "float32"
    device: str = "cpu"
    record_every: int = 1
    save_params_at: tuple[int, ...] = ()
    save_data: bool = False
    checkpoint_every: int = 100
    beta: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    track: tuple[str, ...] = ()
    curvature_every: int = 10
    eig_k: int = 1
    lr_default: bool = field(default=False, init=False, compare=False)
    tuple_fields = ("save_params_at", "track")

    def __post_init__(self) -> None:
        lo, hi = M_RANGE
        check_int("m", self.m, lo, hi)
        check_choice("optim", self.optim, tuple(OPTIMIZERS))
        if not isinstance(self.momentum, bool):
            raise ConfigError(f"momentum must be true or false; got {self.momentum!r}")
        if self.lr is None:
            object.__setattr__(self, "lr", OPTIMIZERS[self.optim].lr_for(self.momentum))
            object.__setattr__(self, "lr_default", True)
        else:
            object.__setattr__(self, "lr", parse_lr(self.lr))
        check_int("steps", self.steps, 0)
        check_choice("inputs", self.inputs, INPUTS)
        if self.inputs == "gaussian":
            mean = 1.0 if self.input_mean is None else self.input_mean
            scale = 1.0 if self.input_scale is None else self.input_scale
            check_float("input_mean", mean, -1e6, 1e6)
            check_float("input_scale", scale, 0.0, 1e6)
            if scale == 0:
                raise ConfigError("input_scale must be positive; got 0")
            object.__setattr__(self, "input_mean", float(mean))
            object.__setattr__(self, "input_scale", float(scale))
        elif self.input_mean is not None or self.input_scale is not None:
            raise ConfigError(
                f"input_mean and input_scale apply to gaussian inputs only; got inputs={self.inputs}"
            )
        if self.dim is not None:
            check_int("dim", self.dim, 1)
        n, _c, d = dataset_shape(self.m, self.dim)
        if self.inputs == "orthogonal" and d < n:
            raise ConfigError(
                f"orthogonal inputs need dim >= n = {n} (m = {self.m}); got dim = {d}"
            )
        check_int("seed", self.seed, 0)
        check_int("data_seed", self.data_seed, 0)
        check_choice("init", self.init, INITS)
        check_choice("reweight", self.reweight, REWEIGHT)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        check_int("record_every", self.record_every, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        save_at = tuple(self.save_params_at)
        for s in save_at:
            check_int("save_params_at entry", s, 0)
            if s > self.steps:
                raise ConfigError(
                    f"save_params_at entries must be in [0, steps = {self.steps}]; got {s}"
                )
        object.__setattr__(self, "save_params_at", tuple(sorted(set(save_at))))
        if not isinstance(self.save_data, bool):
            raise ConfigError(f"save_data must be true or false; got {self.save_data!r}")
        track = tuple(self.track)
        for name in track:
            check_choice("track entry", name, TRACKABLE)
        object.__setattr__(self, "track", tuple(t for t in TRACKABLE if t in track))  # canonical order
        check_int("curvature_every", self.curvature_every, 1)
        check_int("eig_k", self.eig_k, 1, min(n, d))
        check_float("beta", self.beta, 0.0, 1.0)
        check_float("beta2", self.beta2, 0.0, 1.0)
        check_float("eps", self.eps, 0.0, 1.0, hi_open=False)

    # -- derived sizes --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, c, d) of the data set."""
        return dataset_shape(self.m, self.dim)

    @property
    def legend(self) -> str:
        """E.g. ``GD+m``."""
        return OPTIMIZERS[self.optim].legend(self.momentum)

    def record_steps(self) -> list[int]:
        """Steps with a trajectory row: 0, every record_every, and always the last."""
        return _every(self.steps, self.record_every)

    def curvature_steps(self) -> list[int]:
        """Steps with a curvature row (when tracking): 0, every curvature_every, the last."""
        return _every(self.steps, self.curvature_every) if self.track else []

    @property
    def run_id(self) -> str:
        """``linear-m8-gd+m-<12 hex>``: a hash of every field that shapes the trajectory."""
        return f"linear-m{self.m}-{self.optim}{'+m' if self.momentum else '-m'}-{self.digest()}"


def _every(last: int, every: int) -> list[int]:
    steps = list(range(0, last + 1, every))
    if steps[-1] != last:
        steps.append(last)
    return steps
