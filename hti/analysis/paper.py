"""The paper's figures as commands: which runs each figure needs, and how it is drawn.

``make_figure(n, scale=...)`` runs (or reuses from ``out``) exactly the runs figure n
needs, then draws it as ``figure-n.png`` and ``figure-n.pdf``. A run's file is
``out/<run id>.h5`` (the run id hashes its config): a completed run is reused, an
interrupted or killed one resumed, a missing one run. Two scales:

- ``small``: 2 CPU cores, seconds to minutes: m = 8 for the linear figures, TinyPTB with
  small transformers (word tokens), barcoded 8x8 digits. Figures 4, 7 and 13 (4 or 8
  full-batch runs of a 10,000-class language model each) take 30-50 minutes;
- ``paper``: the paper's sizes: m = 11, the 2-layer width-1000 transformer on PTB,
  GPT2-small on WikiText-103 (``data_dir``), 28x28 barcoded MNIST (``data_dir`` holding
  the IDX files). These need a GPU for the deep figures.

Step sizes are the engines' defaults (for the linear figures the paper's values tuned at
m = 11); the paper tuned every setting by grid search (``hti grid``). ``steps`` shortens
(or lengthens) every run of a figure. Every figure of the paper is data, none is a
diagram, so all of 1-17 are available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hti.config import ConfigError

OPTIMS = ("gd", "adam", "normgd", "sign")
SCALES = ("small", "paper")


class FigureInterrupted(Exception):
    """A run of the figure was interrupted (Ctrl-C or SIGTERM); ``path`` holds it, resumable."""

    def __init__(self, path: Path):
        super().__init__(f"{path} was interrupted")
        self.path = path


@dataclass
class FigureSpec:
    """Figure ``number``: what it shows, its runs (name -> config) and its drawing."""

    number: int
    title: str
    runs: Callable[[str, int | None, str, str | None], dict[str, Any]]
    draw: Callable[[dict[str, Any], str, str | None], Any]  # (runs, scale, data_dir) -> Figure


def _name(optim: str, momentum: bool) -> str:
    from hti.analysis.loading import optimizer_label  # noqa: PLC0415

    return optimizer_label(optim, momentum)


def _linear(**kw):
    from hti.linsoftmax.config import LinearConfig  # noqa: PLC0415

    return LinearConfig(**kw)


def _deep(**kw):
    from hti.deep.config import DeepConfig  # noqa: PLC0415

    return DeepConfig(**kw)


def _steps(steps: int | None, default: int) -> int:
    return default if steps is None else steps


def _every(steps: int, rows: int = 100) -> int:
    return max(1, steps // rows)


# -- run sets -----------------------------------------------------------------------------
def _linear_pair(scale, steps, device, data_dir, optims=("gd", "adam"), momenta=(True,), **extra):
    m = 8 if scale == "small" else 11
    n = _steps(steps, 300 if scale == "small" else 1000)
    return {_name(o, mom): _linear(m=m, optim=o, momentum=mom, steps=n, record_every=_every(n),
                                                    device=device, **extra)
            for o in optims for mom in momenta}  # fmt: skip


def _fig3(scale, steps, device, data_dir):
    return _linear_pair(scale, steps, device, data_dir)


def _fig56(scale, steps, device, data_dir):
    return _linear_pair(scale, steps, device, data_dir, track=("eig",), curvature_every=_every(_steps(steps, 300), 20))


def _fig12(scale, steps, device, data_dir):
    return _linear_pair(scale, steps, device, data_dir, optims=OPTIMS, momenta=(False, True))


def _fig15(scale, steps, device, data_dir):
    horizons = (100, 1000, 10000) if steps is None else (max(1, steps // 100), max(1, steps // 10), steps)
    return {f"{h} steps": _linear(m=8, optim="gd", momentum=False, steps=h, record_every=_every(h), device=device)
            for h in horizons}  # fmt: skip


def _fig16(scale, steps, device, data_dir):
    n = _steps(steps, 1000)
    return {name: _linear(m=8, optim="gd", momentum=False, lr=lr, steps=n, record_every=_every(n), device=device)
            for name, lr in (("small step size", 10**-2.5), ("large step size", 1.0))}  # fmt: skip


def _fig17(scale, steps, device, data_dir):
    n = _steps(steps, 100)
    return {f"N({mean:g},1), {_name(o, False)}": _linear(m=8, optim=o, momentum=False, inputs="gaussian", input_mean=mean, steps=n,
                                          record_every=_every(n), device=device)
            for mean in (1.0, 0.0) for o in ("gd", "adam")}  # fmt: skip


def _tiny_lm(scale, **kw):
    if scale == "small":
        return {"data": "tinyptb", "d_model": 64, "n_head": 4, **kw}
    return {"data": "ptb", **kw}


def _deep_set(scale, steps, device, optims, momenta, small_steps, paper_steps, **kw):
    n = _steps(steps, small_steps if scale == "small" else paper_steps)
    dtype = "bfloat16" if device == "cuda" else "float32"
    return {_name(o, mom): _deep(optim=o, momentum=mom, steps=n, eval_every=_every(n, 20),
                                                  device=device, dtype=dtype, **kw)
            for o in optims for mom in momenta}  # fmt: skip


def _fig1(scale, steps, device, data_dir):
    if scale == "small":
        kw = dict(model="gpt2", data="tinyptb", tokenizer="word", n_layer=2, n_head=2, d_model=64, seq_len=35,
                  batch_size=64, eval_tokens=20000)  # fmt: skip
    else:
        kw = dict(model="gpt2", data="wikitext103", data_dir=data_dir, tokenizer="gpt2", batch_size=512,
                  eval_tokens=1_000_000)  # fmt: skip
    return _deep_set(scale, steps, device, ("gd", "adam"), (True,), 100, 15000, **kw)


def _fig2(scale, steps, device, data_dir):
    base = {} if scale == "small" else {"data_dir": data_dir}
    runs = {}
    for data in ("digits" if scale == "small" else "mnist", "barcoded"):
        for name, cfg in _deep_set(scale, steps, device, ("gd", "adam"), (True,), 100, 300, model="cnn", data=data,
                                   **base).items():  # fmt: skip
            runs[f"{data}, {name}"] = cfg
    return runs


def _fig4(scale, steps, device, data_dir):
    kw = {"d_model": 64, "n_head": 4} if scale == "small" else {}
    return _deep_set(scale, steps, device, OPTIMS, (False, True), 40, 1000, model="simple-transformer",
                     data="tinyptb", train_last_layer_only=True, **kw)  # fmt: skip


def _fig7(scale, steps, device, data_dir):
    return _deep_set(scale, steps, device, ("gd", "adam"), (False, True), 30, 500, model="transformer",
                     reweight="inv-sqrt", **_tiny_lm(scale, n_layer=2))  # fmt: skip


def _fig9(scale, steps, device, data_dir):
    # mini-batches of about 2% of the sequences (TinyPTB: 2,108 -> 42; PTB: 26,560 -> 512);
    # small: 500 steps (10 epochs; at 2 epochs neither optimizer has reached the rare classes)
    bs = 42 if scale == "small" else 512
    return _deep_set(scale, steps, device, ("gd", "adam"), (True,), 500, 2500, model="transformer", batch_size=bs,
                     **_tiny_lm(scale, n_layer=2))  # fmt: skip


def _fig10(scale, steps, device, data_dir):
    kw = {"d_model": 64, "n_head": 4} if scale == "small" else {}
    return _deep_set(scale, steps, device, ("gd", "adam"), (True,), 40, 1000, model="simple-transformer",
                     data="tinyptb", **kw)  # fmt: skip


def _fig11(scale, steps, device, data_dir):
    base = {} if scale == "small" else {"data_dir": data_dir}
    return _deep_set(scale, steps, device, ("gd", "adam"), (True,), 100, 300, model="cnn", data="barcoded-only",
                     **base)  # fmt: skip


def _fig13(scale, steps, device, data_dir):
    return _deep_set(scale, steps, device, OPTIMS, (False, True), 30, 500, model="transformer",
                     **_tiny_lm(scale, n_layer=1))  # fmt: skip


def _fig14(scale, steps, device, data_dir):
    base = {} if scale == "small" else {"data_dir": data_dir}
    return _deep_set(scale, steps, device, OPTIMS, (False, True), 100, 300, model="cnn", data="barcoded", **base)


# -- drawings -----------------------------------------------------------------------------
def _per_group(runs, scale, data_dir, *, logy=False):
    from hti.analysis.figures import fig_per_group  # noqa: PLC0415

    return fig_per_group(list(runs.values()), logy=logy)


def _optimizers(runs, scale, data_dir):
    from hti.analysis.figures import fig_optimizers  # noqa: PLC0415

    return fig_optimizers(list(runs.values()))


def _grad_hess(which):
    def draw(runs, scale, data_dir):
        from hti.analysis.figures import fig_grad_hess  # noqa: PLC0415

        return fig_grad_hess(runs[which])

    return draw


def _rank_frequency(runs, scale, data_dir):
    from hti.analysis.figures import corpus_counts, fig_rank_frequency  # noqa: PLC0415

    corpora = [(f"PTB, {tok}", corpus_counts("ptb", tok)) for tok in ("word", "bpe", "gpt2")]
    if data_dir:  # WikiText-2 files
        corpora += [(f"WikiText-2, {tok}", corpus_counts("wikitext2", tok, data_dir=data_dir)) for tok in ("word", "bpe")]
    return fig_rank_frequency(corpora)


FIGURES: dict[int, FigureSpec] = {
    spec.number: spec
    for spec in [
        FigureSpec(1, "GPT-2: SGD+m stalls on rare tokens, Adam+m does not", _fig1, _per_group),
        FigureSpec(2, "CNN on digits and on digits + barcoded: GD+m vs Adam+m", _fig2, _per_group),
        FigureSpec(3, "Softmax regression on heavy-tailed labels: GD+m vs Adam+m", _fig3, _per_group),
        FigureSpec(4, "Last layer of a simplified transformer: four optimizers, -m and +m", _fig4, _optimizers),
        FigureSpec(5, "Per-class gradient norm and Hessian trace under GD", _fig56, _grad_hess("GD+m")),
        FigureSpec(6, "Per-class gradient norm and Hessian trace under Adam", _fig56, _grad_hess("Adam+m")),
        FigureSpec(7, "2-layer transformer trained on the 1/sqrt(pi)-reweighted loss", _fig7, _optimizers),
        FigureSpec(8, "Token rank vs count: word, BPE and GPT-2 tokens", lambda *a: {}, _rank_frequency),
        FigureSpec(9, "2-layer transformer with mini-batches of about 2%", _fig9, _per_group),
        FigureSpec(10, "Simplified transformer on TinyPTB, deterministic: GD+m vs Adam+m", _fig10, _per_group),
        FigureSpec(11, "CNN on barcoded-only images (balanced): both fit", _fig11, _per_group),
        FigureSpec(12, "Softmax regression: four optimizers, -m and +m", _fig12, _optimizers),
        FigureSpec(13, "1-layer transformer: four optimizers, -m and +m", _fig13, _optimizers),
        FigureSpec(14, "CNN on digits + barcoded: four optimizers, -m and +m", _fig14, _optimizers),
        FigureSpec(15, "GD fits every class eventually: 100, 1k, 10k steps", _fig15, _per_group),
        FigureSpec(16, "A very large step size wins late, after a huge initial loss", _fig16,
                   lambda runs, scale, data_dir: _per_group(runs, scale, data_dir, logy=True)),  # fmt: skip
        FigureSpec(17, "Inputs N(1,1) vs N(0,1): GD-m vs Adam-m", _fig17, _per_group),
    ]
}


def figure_runs(n: int, scale: str = "small", steps: int | None = None, device: str = "cpu",
                data_dir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """name -> config of every run figure n needs."""
    if n not in FIGURES:
        raise ConfigError(f"figure must be one of 1-{max(FIGURES)}; got {n}")
    if scale not in SCALES:
        raise ConfigError(f"scale must be small or paper; got {scale!r}")
    if steps is not None and steps < 1:
        raise ConfigError(f"steps must be >= 1; got {steps}")
    if scale == "paper" and n in (1, 2, 11, 14) and not data_dir:
        need = "WikiText-103's wiki.*.tokens" if n == 1 else "the four MNIST IDX files"
        raise ConfigError(f"figure {n} at paper scale reads {need} from --data-dir; got no --data-dir")
    return FIGURES[n].runs(scale, steps, device, data_dir)


def ensure_run(cfg, folder: Path, progress=None) -> Path:
    """Run ``cfg`` into folder/<run id>.h5 unless it is there: reuse, resume or run.
    Raises :class:`FigureInterrupted` when the run stops on Ctrl-C or SIGTERM."""
    from hti.storage import read_trajectory  # noqa: PLC0415

    engine = "linsoftmax" if type(cfg).__name__ == "LinearConfig" else "deep"
    if engine == "linsoftmax":
        from hti.linsoftmax.train import resume, run  # noqa: PLC0415
    else:
        from hti.deep.train import resume, run  # noqa: PLC0415
    path = Path(folder) / f"{cfg.run_id}.h5"
    if path.exists():
        status = read_trajectory(path, names=())["attrs"].get("status")
        if status in ("completed", "diverged"):
            return path
        result = resume(path, progress=progress)
    else:
        result = run(cfg, path, progress=progress)
    if result.status == "interrupted":
        raise FigureInterrupted(path)
    return path


def make_figure(n: int, *, scale: str = "small", steps: int | None = None, device: str = "cpu",
                out: str | os.PathLike = "figures", data_dir: str | None = None, progress=None,
                log: Callable[[str], None] = print) -> list[Path]:  # fmt: skip
    """Run (or reuse) figure n's runs into ``out`` and draw figure-n.png and .pdf there.
    An interrupted run raises :class:`FigureInterrupted` and starts no further run."""
    from hti.analysis.figures import save_both  # noqa: PLC0415
    from hti.analysis.loading import load  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = figure_runs(n, scale, steps, device, data_dir)
    runs = {}
    for name, cfg in configs.items():
        log(f"figure {n}: {name} -> {out / (cfg.run_id + '.h5')}")
        runs[name] = load(ensure_run(cfg, out, progress))
        runs[name].label = name  # e.g. "digits, GD+m" where runs differ in more than the optimizer
    fig = FIGURES[n].draw(runs, scale, data_dir)
    stem = out / f"figure-{n}"
    save_both(fig, stem)
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
