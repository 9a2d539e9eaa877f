"""The models of ``hti deep`` (the paper's Appendix A.2), one interface for all.

Every model is an ``nn.Module`` with

- ``features(x) -> h`` (..., D): the input to the last layer;
- ``head``: ``nn.Linear(D, c)`` (without bias in GPT-2, tied to the token embedding);
- ``forward(x) = head(features(x))``: the logits (..., c);
- ``last_layer() -> (W (c, D), b (c,))``: detached views of the head (b = 0 without bias).

Token models take x (B, L) int64 and return (B, L, c) logits, causally: position t sees
positions <= t only. Image models take (B, C, H, W), vector models (B, d); both return (B, c).

========================  =======  =====================================================
name                      kinds    paper (Appendix A.2, and the paper's code)
========================  =======  =====================================================
``simple-transformer``    tokens   Fig. 4, 10, 13: e + Attn(e), one layer; D 1200, 1 head
``transformer``           tokens   Fig. 7, 9: 2 post-LN encoder layers; D = MLP 1000, 4 heads
``gpt2``                  tokens   Fig. 1: GPT2-Small, 12 pre-LN blocks, D 768, 12 heads
``cnn``                   images   Fig. 2, 11, 14: conv(32)-pool-conv(100)-pool-linear
``linear``                any      Fig. 3, 5, 6, 12: softmax regression with a bias
========================  =======  =====================================================

:data:`DEFAULTS` holds the paper's sizes, which are what :func:`build_model` builds unless
told otherwise (on a CPU, pass smaller ``d_model`` and ``n_layer``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hti.deep.data import KINDS
from hti.linsoftmax.params import INITS, init_params

MODELS = ("simple-transformer", "transformer", "gpt2", "cnn", "linear")
TOKEN_MODELS = ("simple-transformer", "transformer", "gpt2")

# The paper's sizes (its Appendix A.2 and its code): the defaults of build_model.
DEFAULTS: dict[str, dict[str, int | float]] = {
    "simple-transformer": {"n_layer": 1, "n_head": 1, "d_model": 1200, "dropout": 0.0},
    "transformer": {"n_layer": 2, "n_head": 4, "d_model": 1000, "dropout": 0.2},
    "gpt2": {"n_layer": 12, "n_head": 12, "d_model": 768, "dropout": 0.1},
}


class Model(nn.Module):
    """Base class: ``forward(x) = head(features(x))``; subclasses define ``features``."""

    head: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (..., c)

    def last_layer(self) -> tuple[Tensor, Tensor]:
        """(W (c, D), b (c,)): detached views of the head's parameters; b = 0 if it has none."""
        W = self.head.weight.detach()
        b = self.head.bias
        return W, (torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) if b is None else b.detach())


# ---------------------------------------------------------------------------- building blocks


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """The encoding of Vaswani et al. (2017), (n, d) float32.

    P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)).

    >>> P = sinusoidal_positions(3, 4); P.shape, P[0].tolist()
    (torch.Size([3, 4]), [0.0, 1.0, 0.0, 1.0])
    """
    t = torch.arange(n, dtype=torch.float64)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))  # (ceil(d/2),)
    P = torch.zeros(n, d, dtype=torch.float64)
    P[:, 0::2] = torch.sin(t * freq)
    P[:, 1::2] = torch.cos(t * freq[: d // 2])
    return P.float()


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, softmax(q kᵀ / sqrt(D/H) + mask) v per head.

    Shapes: x (B, L, D) -> (B, L, D). ``c_attn`` (3D, D) stacks the q, k, v projections in
    the order of ``nn.MultiheadAttention.in_proj_weight``; ``c_proj`` is the output projection.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        assert d_model % n_head == 0
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.n_head, self.dropout = n_head, dropout

    def forward(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)  # 3 x (B, L, D)
        H = self.n_head
        q, k, v = (t.view(B, L, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, L, D/H)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, L, D/H)
        return self.c_proj(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


class MLP(nn.Module):
    """c_proj(drop(act(c_fc(x)))): (B, L, D) -> (B, L, D), hidden width ``d_ff``."""

    def __init__(self, d_model: int, d_ff: int, act: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.c_fc, self.act = nn.Linear(d_model, d_ff), act
        self.drop = nn.Dropout(dropout)
        self.c_proj = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.drop(self.act(self.c_fc(x))))


class _TokenModel(Model):
    """Shared input checks of the token models: x (B, L) integer with L <= seq_len."""

    seq_len: int

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{type(self).__name__} takes tokens (B, L) int64; "
                             f"got {tuple(x.shape)} {x.dtype}")
        if x.shape[1] > self.seq_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds seq_len = {self.seq_len}")


def _attention_init(attn: CausalSelfAttention) -> None:
    """nn.MultiheadAttention's own initialization: Xavier-uniform in-projection, zero biases,
    the output projection keeps nn.Linear's U(-1/sqrt(D), 1/sqrt(D))."""
    nn.init.xavier_uniform_(attn.c_attn.weight)
    nn.init.zeros_(attn.c_attn.bias)
    nn.init.zeros_(attn.c_proj.bias)


# ---------------------------------------------------------------------------- transformers


class SimpleTransformer(_TokenModel):
    """The paper's simplified transformer: embedding -> one causal attention -> classifier.

    e = sqrt(D) E[x] + P (sinusoidal), h = e + Attn(e), logits = W h + b: the paper's
    code (a TransformerEncoderLayer without LayerNorm, dropout or MLP) keeps the residual
    connection and the sqrt(D) embedding scale. Initialization as the paper's: E, W ~
    N(0, 0.02²), b = 0, attention as nn.MultiheadAttention. Frozen but for the head
    (:func:`freeze_all_but_head`), it is the fixed-feature linear model of Figure 4.
    Shapes: x (B, L) -> features (B, L, D) -> logits (B, L, c).
    """

    def __init__(self, vocab_size: int, n_classes: int, seq_len: int, *, n_head: int = 1,
                 d_model: int = 1200):
        super().__init__()
        self.seq_len, self.d_model, self.n_layer = seq_len, d_model, 1
        self.wte = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pos", sinusoidal_positions(seq_len, d_model), persistent=False)  # (T, D)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.head = nn.Linear(d_model, n_classes)
        for w in (self.wte.weight, self.head.weight):
            nn.init.normal_(w, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)
        _attention_init(self.attn)

    def features(self, x: Tensor) -> Tensor:
        self._check(x)
        e = self.wte(x) * math.sqrt(self.d_model) + self.pos[: x.shape[1]]  # (B, L, D)
        return e + self.attn(e)  # (B, L, D)


class EncoderLayer(nn.Module):
    """torch's ``TransformerEncoderLayer`` (post-LN, ReLU), causal, batch first.

    x = LN1(x + drop(Attn(x))), x = LN2(x + drop(W2 drop(relu(W1 x)))), with dropout on
    the attention weights too. (B, L, D) -> (B, L, D).
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float):
        super().__init__()
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff, nn.ReLU(), dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.ln_1(x + self.drop(self.attn(x)))
        return self.ln_2(x + self.drop(self.mlp(x)))


class Transformer(_TokenModel):
    """The paper's transformer: embedding -> n_layer x [attention -> MLP] -> classifier.

    e = drop(sqrt(D) E[x] + P), then ``n_layer`` :class:`EncoderLayer` (post-LN, MLP of
    width ``d_ff``, default D as in the paper: "embedding dimension and width of the linear
    layers is 1000"), then logits = W h + b. Initialization as the paper's code: E, W and
    the MLP weights ~ N(0, 0.02²), biases 0, LayerNorm gains ~ N(1, 0.02²) (sic), attention
    as nn.MultiheadAttention. Shapes: x (B, L) -> (B, L, D) -> (B, L, c).
    """

    def __init__(self, vocab_size: int, n_classes: int, seq_len: int, *, n_layer: int = 2, n_head: int = 4,
                 d_model: int = 1000, d_ff: int | None = None, dropout: float = 0.2):
        super().__init__()
        self.seq_len, self.d_model, self.n_layer = seq_len, d_model, n_layer
        self.wte = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pos", sinusoidal_positions(seq_len, d_model), persistent=False)  # (T, D)
        self.drop = nn.Dropout(dropout)
        d_ff = d_ff or d_model
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_head, d_ff, dropout) for _ in range(n_layer))
        self.head = nn.Linear(d_model, n_classes)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name:
                nn.init.normal_(p, 1.0, 0.02)
            elif "attn" not in name:
                nn.init.normal_(p, 0.0, 0.02)
        for layer in self.layers:
            _attention_init(layer.attn)

    def features(self, x: Tensor) -> Tensor:
        self._check(x)
        h = self.drop(self.wte(x) * math.sqrt(self.d_model) + self.pos[: x.shape[1]])  # (B, L, D)
        for layer in self.layers:
            h = layer(h)
        return h


class Block(nn.Module):
    """GPT-2's pre-LN block: x = x + drop(Attn(LN1 x)), x = x + drop(MLP(LN2 x)), GELU (tanh)."""

    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, 4 * d_model, nn.GELU(approximate="tanh"))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.drop(self.mlp(self.ln_2(x)))


class GPT2(_TokenModel):
    """GPT-2 (Radford et al., 2019), GPT2-Small by default: 124,439,808 parameters at
    vocab_size 50257, seq_len 1024.

    h = LN_f(Blocks(drop(E[x] + P[t]))), logits = E h (the head is tied to the token
    embedding and has no bias); P is learned, with seq_len rows (the block size).
    Initialization as GPT-2: Linear and Embedding weights ~ N(0, 0.02²), biases 0, the two
    residual projections (``*.c_proj.weight``) ~ N(0, 0.02² / (2 n_layer)).
    The paper's code differs: sinusoidal positions with a sqrt(D) embedding scale, an untied
    head with a bias, and std 0.02 sqrt(2). Shapes: x (B, L) -> (B, L, D) -> (B, L, V).
    """

    def __init__(self, vocab_size: int, seq_len: int, *, n_layer: int = 12, n_head: int = 12,
                 d_model: int = 768, dropout: float = 0.1):
        super().__init__()
        self.seq_len, self.d_model, self.n_layer = seq_len, d_model, n_layer
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(seq_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.wte.weight  # weight tying
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif name.startswith("ln") or ".ln_" in name:
                continue  # LayerNorm: gain 1, bias 0
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def features(self, x: Tensor) -> Tensor:
        self._check(x)
        t = torch.arange(x.shape[1], device=x.device)  # (L,)
        h = self.drop(self.wte(x) + self.wpe(t))  # (B, L, D)
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)  # (B, L, D)


# ---------------------------------------------------------------------------- cnn and linear


class CNN(Model):
    """The paper's 2-layer CNN: conv5x5(32) -> relu -> pool2 -> conv5x5(100) -> relu -> pool2 -> linear.

    'same' padding, floor pooling: features D = 100 (H//4) (W//4), e.g. 100·7·7 on 28x28
    MNIST and 100·2·2 on 8x8 digits. torch's default initialization (as the paper's code).
    Shapes: x (B, C, H, W) -> (B, D) -> (B, c).
    """

    def __init__(self, in_channels: int, height: int, width: int, n_classes: int):
        super().__init__()
        self.input_shape = (in_channels, height, width)
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 100, 5, padding=2)
        self.head = nn.Linear(100 * (height // 4) * (width // 4), n_classes)

    def features(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 100, H/4, W/4)
        return x.flatten(1)  # (B, D)


class LinearModel(Model):
    """Softmax regression, logits = W x + b with W (c, d), b (c,).

    Inputs are flattened: (B, *shape) -> (B, d). With ``one_hot=True`` the inputs are
    tokens (B, L) in [0, d) and the features their one-hot vectors (B, L, d): a bigram
    model, logits (B, L, c) = W[:, x] + b, computed by lookup (``forward`` never builds
    the one-hot tensor; ``features`` does, so mind its size).
    """

    def __init__(self, d_in: int, n_classes: int, *, one_hot: bool = False):
        super().__init__()
        self.d_in, self.one_hot = d_in, one_hot
        self.head = nn.Linear(d_in, n_classes)

    def features(self, x: Tensor) -> Tensor:
        if self.one_hot:
            return F.one_hot(x, self.d_in).to(self.head.weight.dtype)  # (B, L, d)
        return x.flatten(1)  # (B, d)

    def forward(self, x: Tensor) -> Tensor:
        if self.one_hot:
            return F.embedding(x, self.head.weight.t()) + self.head.bias  # (B, L, c)
        return self.head(x.flatten(1))  # (B, c)

    @torch.no_grad()
    def set_params(self, W: np.ndarray | Tensor, b: np.ndarray | Tensor) -> LinearModel:
        """Copy W (c, d) and b (c,) in (e.g. from :func:`hti.linsoftmax.params.init_params`)."""
        shapes = tuple(self.head.weight.shape), tuple(self.head.bias.shape)
        if (tuple(W.shape), tuple(b.shape)) != shapes:
            raise ValueError(f"W, b must have shapes {shapes[0]}, {shapes[1]}; "
                             f"got {tuple(W.shape)}, {tuple(b.shape)}")
        self.head.weight.copy_(torch.as_tensor(W))
        self.head.bias.copy_(torch.as_tensor(b))
        return self


# ---------------------------------------------------------------------------- utilities


def freeze_all_but_head(model: Model) -> Model:
    """Train the last layer only (the paper's Figure 4): requires_grad = False elsewhere.

    With GPT-2's weight tying the head's weight is the token embedding, which stays trainable.
    """
    head = {id(p) for p in model.head.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters, each shared (tied) tensor counted once.

    >>> count_parameters(LinearModel(4, 3))
    15
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_flops_per_token(model: Model) -> int:
    """Training FLOPs (forward + backward) per token, or per example for cnn and linear.

    The PaLM / nanoGPT estimate: 6 N + 12 n_layer D T for the transformers, with N the
    parameters that enter matrix products (all but embedding tables used by lookup only:
    the token embedding unless tied to the head, and learned positions) and T = seq_len
    (the attention scores q kᵀ and their use on v, unmasked). cnn: 6 x the multiply-adds
    of one forward pass (a convolution's weights act at every output pixel); linear: 6 N.

    >>> model_flops_per_token(LinearModel(4, 3))
    90
    """
    if isinstance(model, CNN):
        _, H, W = model.input_shape
        macs = (H * W * model.conv1.weight.numel() + (H // 2) * (W // 2) * model.conv2.weight.numel()
                + model.head.weight.numel())
        return 6 * macs
    lookup = sum(m.weight.numel() for m in model.modules()
                 if isinstance(m, nn.Embedding) and m.weight is not model.head.weight)
    flops = 6 * (count_parameters(model) - lookup)
    if isinstance(model, _TokenModel):
        flops += 12 * model.n_layer * model.d_model * model.seq_len
    return flops


def _positive(name: str, value, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def build_model(name: str, *, n_classes: int, kind: str, input_shape: tuple[int, ...],
                vocab_size: int | None = None, seq_len: int | None = None, n_layer: int | None = None,
                n_head: int | None = None, d_model: int | None = None, dropout: float | None = None,
                seed: int = 0, dtype: torch.dtype = torch.float32, init: str = "uniform") -> Model:
    """The model ``name`` for data of ``kind`` with per-example ``input_shape``, on the CPU.

    Args:
        name: one of :data:`MODELS`.
        n_classes: c, the number of outputs.
        kind: ``tokens``, ``images`` or ``vectors`` (see :mod:`hti.deep.data`);
            the transformers take tokens, cnn images, linear any kind.
        input_shape: one example's shape: (L,) tokens, (C, H, W) images, (d,) vectors.
        vocab_size: token ids are in [0, vocab_size); default n_classes (gpt2: must equal it);
            ignored for images and vectors.
        seq_len: tokens only: the longest sequence (positions; GPT-2's block size); default L.
        n_layer, n_head, d_model, dropout: transformer sizes; default :data:`DEFAULTS`
            (the paper's). simple-transformer has one layer and no dropout.
        seed: the initialization draws from ``torch.manual_seed(seed)`` inside a forked
            RNG (the global one is left alone); linear draws from
            :func:`hti.linsoftmax.params.init_params` and so starts exactly where the NumPy
            engine does.
        dtype: floating dtype of the parameters.
        init: the linear model's initialization (``uniform`` or ``zero``); the other
            models have one each (see their classes) and take only the default.

    Raises:
        ValueError: an unknown name or kind, a kind the model cannot take, a bad size.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    _positive("n_classes", n_classes, allow_none=False)
    input_shape = tuple(input_shape)
    ndim, want = {"tokens": (1, "(L,)"), "images": (3, "(C, H, W)"), "vectors": (1, "(d,)")}[kind]
    if len(input_shape) != ndim or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in input_shape):
        raise ValueError(f"input_shape of {kind} must be {want}, positive integers; got {input_shape}")
    for k, v in (("vocab_size", vocab_size), ("seq_len", seq_len), ("n_layer", n_layer), ("n_head", n_head),
                 ("d_model", d_model)):
        _positive(k, v)
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    if name == "linear":
        if init not in INITS:
            raise ValueError(f"init of linear must be one of {', '.join(INITS)}; got {init!r}")
    elif init != "uniform":
        raise ValueError(f"{name} has its own initialization; init must be left at 'uniform', got {init!r}")
    if kind == "tokens":
        L = input_shape[0]
        seq_len = L if seq_len is None else seq_len
        if seq_len < L:
            raise ValueError(f"seq_len must be at least the sequence length L = {L}; got {seq_len}")
        vocab_size = n_classes if vocab_size is None else vocab_size
    elif seq_len is not None:
        raise ValueError(f"seq_len is for tokens; got seq_len = {seq_len} with kind {kind!r}")

    if name in TOKEN_MODELS:
        if kind != "tokens":
            raise ValueError(f"{name} takes tokens; got kind {kind!r}")
        size = dict(DEFAULTS[name])
        size.update({k: v for k, v in (("n_layer", n_layer), ("n_head", n_head), ("d_model", d_model),
                                       ("dropout", dropout)) if v is not None})
        if size["d_model"] % size["n_head"]:
            raise ValueError(f"d_model must be divisible by n_head; got d_model = {size['d_model']}, "
                             f"n_head = {size['n_head']}")
        if name == "simple-transformer" and (size["n_layer"] != 1 or size["dropout"] != 0.0):
            raise ValueError(f"simple-transformer has one layer and no dropout; "
                             f"got n_layer = {size['n_layer']}, dropout = {size['dropout']}")
        if name == "gpt2" and n_classes != vocab_size:
            raise ValueError(f"gpt2 ties its head to the token embedding: n_classes must equal vocab_size; "
                             f"got {n_classes} and {vocab_size}")
    else:
        extra = {k: v for k, v in (("n_layer", n_layer), ("n_head", n_head), ("d_model", d_model),
                                   ("dropout", dropout)) if v is not None}
        if extra:
            raise ValueError(f"{name} takes no transformer sizes; got {extra}")
        if name == "cnn":
            if kind != "images":
                raise ValueError(f"cnn takes images; got kind {kind!r}")
            if min(input_shape[1:]) < 4:
                raise ValueError(f"cnn needs images of at least 4x4 (two 2x2 poolings); got {input_shape}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "simple-transformer":
            model = SimpleTransformer(vocab_size, n_classes, seq_len, n_head=size["n_head"],
                                      d_model=size["d_model"])
        elif name == "transformer":
            model = Transformer(vocab_size, n_classes, seq_len, **size)
        elif name == "gpt2":
            model = GPT2(vocab_size, seq_len, **size)
        elif name == "cnn":
            model = CNN(*input_shape, n_classes)
        else:
            tokens = kind == "tokens"
            d = vocab_size if tokens else int(np.prod(input_shape))
            model = LinearModel(d, n_classes, one_hot=tokens)
    model = model.to(dtype)
    if name == "linear":
        np_dtype = {torch.float32: "float32", torch.float64: "float64"}.get(dtype, "float64")
        model.set_params(*init_params(n_classes, model.d_in, init=init, seed=seed, dtype=np_dtype))
    return model
