"""The configuration of a deep run: every option of ``hti deep``, validated.

Like :class:`hti.linsoftmax.config.LinearConfig`: frozen, checked in ``__post_init__``
(errors name what was expected and what arrived), stored as JSON in the trajectory file
and hashed into the run id. Options left at None take their per-model defaults at
construction, so the stored config says exactly what ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hti.config import ConfigError, SerializableConfig, check_choice, check_float, check_int, parse_lr
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.data import INPUTS

MODELS = ("simple-transformer", "transformer", "gpt2", "cnn", "linear")
TEXT_DATA = ("ptb", "tinyptb", "wikitext2", "wikitext103")
IMAGE_DATA = ("digits", "mnist", "barcoded", "barcoded-only")
DATASETS = TEXT_DATA + IMAGE_DATA + ("synthetic",)
TOKENIZERS = ("word", "gpt2", "bpe")
OPTIMIZERS = ("gd", "adam", "normgd", "sign", "adamw")
DTYPES = ("float32", "float64", "bfloat16")
REWEIGHT = ("none", "inv", "inv-sqrt")

# Starting points, not tuned values (the paper tuned every setting by grid search):
# (without momentum, with momentum).
DEFAULT_LR = {
    "gd": (10**-0.5, 10**-1),
    "adam": (1e-3, 1e-3),
    "adamw": (1e-3, 1e-3),
    "normgd": (10**-1, 10**-1.5),
    "sign": (1e-4, 10**-4.5),
}
DEFAULT_DATA = {"simple-transformer": "ptb", "transformer": "ptb", "gpt2": "ptb", "cnn": "digits", "linear": "synthetic"}


@dataclass(frozen=True)
class DeepConfig(SerializableConfig):
    """Every option of ``hti deep``; see the README for each one's meaning."""

    model: str = "transformer"
    data: str | None = None
    data_dir: str | None = None
    tokenizer: str | None = None
    seq_len: int | None = None
    vocab_size: int = 8192
    optim: str = "gd"
    momentum: bool = True
    lr: float | None = None
    steps: int = 100
    batch_size: int | None = None  # rows per step; 0: full batch; None: the model's default
    eval_every: int = 10
    eval_tokens: int | None = None
    n_layer: int | None = None
    n_head: int | None = None
    d_model: int | None = None
    dropout: float | None = None
    train_last_layer_only: bool = False
    reweight: str = "none"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    curvature_every: int | None = None
    curvature_samples: int = 4096
    track_eig: bool = False
    chunk_size: int | None = None  # rows per forward pass; None: about 2^22 logits
    checkpoint_every: int = 100
    beta: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    # synthetic data (as hti linear)
    m: int = 8
    inputs: str = "uniform"
    input_mean: float | None = None
    input_scale: float | None = None
    dim: int | None = None
    data_seed: int = 0
    init: str = "uniform"
    # barcoded images
    bits: int | None = None
    copies: int = 5
    include_zero_barcode: bool = False
    lr_default: bool = field(default=False, init=False, compare=False)

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        data = self.data or DEFAULT_DATA[self.model]
        check_choice("data", data, DATASETS)
        object.__setattr__(self, "data", data)
        if self.model in ("simple-transformer", "transformer", "gpt2") and data not in TEXT_DATA:
            raise ConfigError(f"model {self.model} needs a text data set ({', '.join(TEXT_DATA)}); got --data {data}")
        if self.model == "cnn" and data not in IMAGE_DATA:
            raise ConfigError(f"model cnn needs an image data set ({', '.join(IMAGE_DATA)}); got --data {data}")
        if data in TEXT_DATA:
            tok = self.tokenizer or ("gpt2" if self.model == "gpt2" else "word")
            check_choice("tokenizer", tok, TOKENIZERS)
            object.__setattr__(self, "tokenizer", tok)
            seq = self.seq_len if self.seq_len is not None else (1024 if tok == "gpt2" else 35)
            check_int("seq_len", seq, 1)
            object.__setattr__(self, "seq_len", seq)
        elif self.tokenizer is not None or self.seq_len is not None:
            raise ConfigError(f"--tokenizer and --seq-len apply to text data; got --data {data}")
        if data in ("wikitext2", "wikitext103", "mnist") and not self.data_dir:
            raise ConfigError(f"--data {data} reads its files from --data-dir DIR; got no --data-dir")
        check_int("vocab_size", self.vocab_size, 256)
        check_choice("optim", self.optim, OPTIMIZERS)
        if self.lr is None:
            if self.model == "linear" and data == "synthetic" and self.optim != "adamw":
                lr = LinearConfig(optim=self.optim, momentum=self.momentum).lr  # as hti linear
            else:
                lr = DEFAULT_LR[self.optim][int(self.momentum)]
            object.__setattr__(self, "lr", lr)
            object.__setattr__(self, "lr_default", True)
        else:
            object.__setattr__(self, "lr", parse_lr(self.lr))
        check_int("steps", self.steps, 0)
        if self.batch_size is None:  # GPT-2: the paper's 512 sequences; the others: full batch
            object.__setattr__(self, "batch_size", 512 if self.model == "gpt2" else 0)
        check_int("batch_size", self.batch_size, 0)
        check_int("eval_every", self.eval_every, 1)
        if self.eval_tokens is not None:
            check_int("eval_tokens", self.eval_tokens, 1)
        for name in ("n_layer", "n_head", "d_model"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.dropout is not None:
            check_float("dropout", self.dropout, 0.0, 1.0)
        if self.train_last_layer_only and self.model != "simple-transformer":
            raise ConfigError(f"--train-last-layer-only applies to simple-transformer (the paper's Figure 4); got {self.model}")
        check_choice("reweight", self.reweight, REWEIGHT)
        check_int("seed", self.seed, 0)
        check_choice("device", self.device, ("cpu", "cuda"))
        check_choice("dtype", self.dtype, DTYPES)
        if self.dtype == "bfloat16" and self.device != "cuda":
            raise ConfigError("--dtype bfloat16 (autocast) needs --device cuda; got --device cpu")
        if self.curvature_every is not None:
            check_int("curvature_every", self.curvature_every, 1)
        check_int("curvature_samples", self.curvature_samples, 2)
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_float("beta", self.beta, 0.0, 1.0)
        check_float("beta2", self.beta2, 0.0, 1.0)
        check_float("eps", self.eps, 0.0, 1.0, hi_open=False)
        check_float("weight_decay", self.weight_decay, 0.0, 1e6)
        if data == "synthetic":
            self.synthetic_config()  # validates m, inputs, ... as hti linear does
        check_choice("inputs", self.inputs, INPUTS)
        if self.bits is not None:
            check_int("bits", self.bits, 1, 16)
        check_int("copies", self.copies, 1)

    def synthetic_config(self) -> LinearConfig:
        """The equivalent ``hti linear`` config (synthetic data: same data and initialization)."""
        return LinearConfig(
            m=self.m, optim=self.optim if self.optim != "adamw" else "adam", momentum=self.momentum,
            lr=self.lr, steps=self.steps, inputs=self.inputs, input_mean=self.input_mean,
            input_scale=self.input_scale, dim=self.dim, seed=self.seed, data_seed=self.data_seed,
            init=self.init, reweight=self.reweight, dtype="float64" if self.dtype == "float64" else "float32",
            beta=self.beta, beta2=self.beta2, eps=self.eps,
        )  # fmt: skip

    @property
    def full_batch(self) -> bool:
        return self.batch_size == 0

    @property
    def run_id(self) -> str:
        return f"deep-{self.model}-{self.data}-{self.optim}{'+m' if self.momentum else '-m'}-{self.digest()}"
