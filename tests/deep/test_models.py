"""The models of hti.deep: shapes, causality, the last layer, initialization, training steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from hti.deep.models import (  # noqa: E402
    GPT2,
    MODELS,
    TOKEN_MODELS,
    EncoderLayer,
    build_model,
    count_parameters,
    freeze_all_but_head,
    model_flops_per_token,
)
from hti.deep.optim import OPTIMIZER_NAMES, make_optimizer  # noqa: E402
from hti.linsoftmax.params import init_params  # noqa: E402

C, V, L, B = 11, 13, 6, 3  # classes, vocabulary, sequence length, batch
TINY = {  # tiny sizes, dropout off so that outputs are deterministic
    "simple-transformer": dict(n_head=2, d_model=8),
    "transformer": dict(n_layer=2, n_head=2, d_model=8, dropout=0.0),
    "gpt2": dict(n_layer=2, n_head=2, d_model=8, dropout=0.0),
}
# (model, kind, input_shape): every model with every kind it takes
CASES = [
    ("simple-transformer", "tokens", (L,)),
    ("transformer", "tokens", (L,)),
    ("gpt2", "tokens", (L,)),
    ("cnn", "images", (1, 8, 8)),
    ("cnn", "images", (3, 28, 28)),
    ("cnn", "images", (1, 10, 6)),
    ("linear", "vectors", (5,)),
    ("linear", "images", (1, 8, 8)),
    ("linear", "tokens", (L,)),
]
IDS = [f"{m}-{k}-{'x'.join(map(str, s))}" for m, k, s in CASES]
ONE_EACH = [0, 1, 2, 3, 6]  # one case of every model
ONE_EACH_CASES, ONE_EACH_IDS = [CASES[i] for i in ONE_EACH], [IDS[i] for i in ONE_EACH]


def tiny(name, kind, shape, *, seed=0, dtype=torch.float32, **kw):
    n_classes = V if name == "gpt2" else C
    vocab = V if kind == "tokens" else None
    return build_model(name, n_classes=n_classes, kind=kind, input_shape=shape, vocab_size=vocab, seed=seed,
                       dtype=dtype, **{**TINY.get(name, {}), **kw})


def inputs(kind, shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    if kind == "tokens":
        return torch.randint(0, V, (B, *shape), generator=g)
    return torch.rand((B, *shape), generator=g, dtype=dtype)


def targets(model, kind, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = model.head.out_features
    return torch.randint(0, c, (B, L) if kind == "tokens" else (B,), generator=g)


@pytest.mark.parametrize("name,kind,shape", CASES, ids=IDS)
def test_shapes_features_head_and_last_layer(name, kind, shape):
    model = tiny(name, kind, shape, dtype=torch.float64).eval()
    x = inputs(kind, shape, dtype=torch.float64)
    logits, h = model(x), model.features(x)
    c = model.head.out_features
    lead = (B, L) if kind == "tokens" else (B,)
    assert logits.shape == (*lead, c) and logits.dtype == torch.float64
    assert h.shape == (*lead, model.head.in_features)
    torch.testing.assert_close(model.head(h), logits, rtol=1e-12, atol=1e-12)
    W, b = model.last_layer()
    assert W.shape == (c, h.shape[-1]) and b.shape == (c,) and not W.requires_grad
    assert W.data_ptr() == model.head.weight.data_ptr()
    torch.testing.assert_close(h @ W.T + b, logits, rtol=1e-12, atol=1e-12)
    if name == "cnn":
        assert h.shape[1] == 100 * (shape[1] // 4) * (shape[2] // 4)


def test_gpt2_last_layer_bias_is_zero_and_head_is_tied():
    model = tiny("gpt2", "tokens", (L,))
    _, b = model.last_layer()
    assert model.head.bias is None and torch.equal(b, torch.zeros(V))
    assert model.head.weight is model.wte.weight


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_transformers_are_causal(name):
    model = tiny(name, "tokens", (L,)).eval()
    x = inputs("tokens", (L,))
    y = x.clone()
    t = 3
    y[:, t] = (x[:, t] + 1) % V  # change token t only
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=0)
    assert not torch.allclose(a[:, t], b[:, t])


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_shorter_sequences_and_bad_token_inputs(name):
    model = tiny(name, "tokens", (L,)).eval()
    x = inputs("tokens", (L,))
    torch.testing.assert_close(model(x[:, :4]), model(x)[:, :4])
    with pytest.raises(ValueError, match="exceeds seq_len = 6"):
        model(torch.zeros(1, L + 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"takes tokens \(B, L\) int64; got \(1, 6\) torch.float32"):
        model(torch.zeros(1, L))


def test_encoder_layer_is_torchs_transformer_encoder_layer():
    torch.manual_seed(0)
    d, h, ff = 8, 2, 12
    ours = EncoderLayer(d, h, ff, dropout=0.0).double().eval()
    ref = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.attn.c_attn.weight)
        ref.self_attn.in_proj_bias.copy_(ours.attn.c_attn.bias)
        ref.self_attn.out_proj.weight.copy_(ours.attn.c_proj.weight)
        ref.self_attn.out_proj.bias.copy_(ours.attn.c_proj.bias.normal_())
        for a, b in ((ref.linear1, ours.mlp.c_fc), (ref.linear2, ours.mlp.c_proj), (ref.norm1, ours.ln_1),
                     (ref.norm2, ours.ln_2)):
            a.weight.copy_(b.weight.normal_())
            a.bias.copy_(b.bias.normal_())
    x = torch.randn(2, 5, d, dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x, src_mask=mask, is_causal=True), rtol=1e-10, atol=1e-10)


def test_gpt2_initialization():
    n_layer, d = 4, 64
    model = build_model("gpt2", n_classes=V, kind="tokens", input_shape=(L,), n_layer=n_layer, n_head=4,
                        d_model=d, seed=3)
    rel = 4 / math.sqrt(2 * d * 4 * d)  # 4 standard errors of a std estimated from 4d² normal draws
    for i, block in enumerate(model.blocks):
        w = block.mlp.c_proj.weight  # (d, 4d)
        assert abs(w.std().item() / (0.02 / math.sqrt(2 * n_layer)) - 1) < rel, i
        assert abs(block.attn.c_proj.weight.std().item() / (0.02 / math.sqrt(2 * n_layer)) - 1) < 4 * rel, i
        assert abs(block.mlp.c_fc.weight.std().item() / 0.02 - 1) < rel, i
        assert torch.all(block.attn.c_attn.bias == 0) and torch.all(block.mlp.c_fc.bias == 0)
        assert torch.all(block.ln_1.weight == 1) and torch.all(block.ln_1.bias == 0)
    assert abs(model.wte.weight.std().item() / 0.02 - 1) < 0.1
    assert model.head.weight is model.wte.weight


def _gpt2_count(V, T, n_layer, d):
    """wte + wpe + n_layer (2 LN + c_attn + c_proj + c_fc + c_proj) + ln_f; the head is tied."""
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return V * d + T * d + n_layer * block + 2 * d


def test_gpt2_small_has_124_439_808_parameters():
    assert _gpt2_count(50257, 1024, 12, 768) == 124_439_808
    with torch.device("meta"):  # shapes only: no memory, no time
        model = GPT2(50257, 1024)
    assert count_parameters(model) == 124_439_808
    small = tiny("gpt2", "tokens", (L,))
    assert count_parameters(small) == _gpt2_count(V, L, 2, 8)
    # nanoGPT's MFU estimate: 6 N (without positions) + 12 n_layer d T
    assert model_flops_per_token(model) == 6 * (124_439_808 - 1024 * 768) + 12 * 12 * 768 * 1024


def test_flops_of_the_other_models():
    m = tiny("transformer", "tokens", (L,))
    assert model_flops_per_token(m) == 6 * (count_parameters(m) - V * 8) + 12 * 2 * 8 * L
    m = tiny("cnn", "images", (1, 8, 8))
    assert model_flops_per_token(m) == 6 * (64 * 32 * 25 + 16 * 100 * 32 * 25 + C * 400)
    m = tiny("linear", "vectors", (5,))
    assert model_flops_per_token(m) == 6 * (C * 5 + C)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("init", ["uniform", "zero"])
def test_linear_model_starts_at_init_params(dtype, init):
    model = build_model("linear", n_classes=C, kind="images", input_shape=(1, 3, 4), seed=7, dtype=dtype,
                        init=init)
    W, b = init_params(C, 12, init=init, seed=7, dtype=str(dtype).removeprefix("torch."))
    assert model.head.weight.dtype == dtype
    np.testing.assert_array_equal(model.head.weight.detach().numpy(), W)
    np.testing.assert_array_equal(model.head.bias.detach().numpy(), b)


def test_linear_on_tokens_is_a_bigram_model():
    model = tiny("linear", "tokens", (L,), dtype=torch.float64)
    x = inputs("tokens", (L,))
    W, b = model.last_layer()
    torch.testing.assert_close(model(x), W.T[x] + b, rtol=0, atol=0)
    y = targets(model, "tokens")
    grads = []
    for logits in (model(x), model.head(model.features(x))):  # lookup and one-hot paths
        model.zero_grad()
        F.cross_entropy(logits.reshape(-1, C), y.reshape(-1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for g, h in zip(*grads, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-14)


def test_freeze_all_but_head():
    model = freeze_all_but_head(tiny("simple-transformer", "tokens", (L,)))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert count_parameters(model, trainable_only=True) == C * 8 + C
    x = inputs("tokens", (L,))
    F.cross_entropy(model(x).reshape(-1, C), targets(model, "tokens").reshape(-1)).backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == (n in trainable), n
    assert model.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("opt", OPTIMIZER_NAMES)
@pytest.mark.parametrize("name,kind,shape", ONE_EACH_CASES, ids=ONE_EACH_IDS)
def test_two_training_steps_with_every_optimizer(name, kind, shape, opt):
    model = tiny(name, kind, shape)
    x, y = inputs(kind, shape), targets(model, kind)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(opt, model.parameters(), lr=1e-2, momentum=True)
    for _ in range(2):
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    params = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    unchanged = [n for n, p in params.items() if torch.equal(p, before[n])]
    assert not unchanged  # no parameter tensor has an identically zero gradient


@pytest.mark.parametrize("name,kind,shape", ONE_EACH_CASES, ids=ONE_EACH_IDS)
def test_build_model_is_deterministic_and_leaves_the_global_rng_alone(name, kind, shape):
    state = torch.get_rng_state()
    a, b, c = (tiny(name, kind, shape, seed=s).state_dict() for s in (5, 5, 6))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, b[n]) for n, p in a.items())
    assert any(not torch.equal(p, c[n]) for n, p in a.items())


def test_defaults_are_the_papers_sizes():
    with torch.device("meta"):
        m = build_model("transformer", n_classes=9920, kind="tokens", input_shape=(35,))
        s = build_model("simple-transformer", n_classes=9920, kind="tokens", input_shape=(35,))
    layer = m.layers[0]
    assert (m.n_layer, m.d_model, layer.attn.n_head, layer.mlp.c_fc.out_features) == (2, 1000, 4, 1000)
    assert m.drop.p == 0.2 and (s.d_model, s.attn.n_head) == (1200, 1)


LIN = dict(name="linear", kind="vectors", input_shape=(4,))
BAD = [
    (dict(name="mlp"), "model must be one of simple-transformer, .*; got 'mlp'"),
    (dict(kind="text"), "kind must be one of tokens, images, vectors; got 'text'"),
    (dict(name="cnn", kind="vectors", input_shape=(5,)), "cnn takes images; got kind 'vectors'"),
    (dict(name="gpt2", kind="images", input_shape=(1, 8, 8)), "gpt2 takes tokens; got kind 'images'"),
    (dict(d_model=10, n_head=3), "d_model must be divisible by n_head; got d_model = 10, n_head = 3"),
    (dict(n_layer=0), "n_layer must be a positive integer; got 0"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\); got 1.0"),
    (dict(input_shape=(2, 3)), r"input_shape of tokens must be \(L,\), positive integers; got \(2, 3\)"),
    (dict(seq_len=3), "seq_len must be at least the sequence length L = 6; got 3"),
    ({**LIN, "seq_len": 8}, "seq_len is for tokens; got seq_len = 8 with kind 'vectors'"),
    (dict(name="gpt2", n_classes=5, vocab_size=7), "n_classes must equal vocab_size; got 5 and 7"),
    (dict(name="simple-transformer", n_layer=2), "one layer and no dropout; got n_layer = 2"),
    (dict(name="cnn", kind="images", input_shape=(1, 2, 8)), r"at least 4x4 .*; got \(1, 2, 8\)"),
    ({**LIN, "d_model": 8}, "linear takes no transformer sizes; got {'d_model': 8}"),
    ({**LIN, "init": "gauss"}, "init of linear must be one of uniform, zero; got 'gauss'"),
    (dict(n_classes=0), "n_classes must be a positive integer; got 0"),
    (dict(init="zero"), "transformer has its own initialization; init must be left at 'uniform', got 'zero'"),
    (dict(dtype=torch.int64), "dtype must be a floating torch.dtype; got torch.int64"),
]


@pytest.mark.parametrize("kwargs,match", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    args = dict(name="transformer", n_classes=C, kind="tokens", input_shape=(L,), n_layer=1, n_head=2,
                d_model=8)
    args.update(kwargs)
    if args["name"] in ("cnn", "linear"):
        for k in ("n_layer", "n_head", "d_model"):
            args[k] = kwargs.get(k)
    name = args.pop("name")
    with pytest.raises(ValueError, match=match):
        build_model(name, **args)


def test_vocab_size_is_ignored_without_tokens():
    model = build_model("cnn", n_classes=C, kind="images", input_shape=(1, 8, 8), vocab_size=C)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, C)


def test_models_tuple():
    assert MODELS == ("simple-transformer", "transformer", "gpt2", "cnn", "linear")
