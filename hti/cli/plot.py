"""``hti plot``: the paper's figures from trajectory files (or corpora, or a grid)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hti.cli.errors import InputError, reports_bad_input
from hti.cli.params import StepList

KINDS = ("per-group", "optimizers", "grad-hess", "spectrum", "rank-frequency", "grid")
FORMATS = (".png", ".pdf", ".svg")
_ONE_RUN = ("grad-hess", "spectrum")


def _load_runs(inputs: tuple[str, ...]):
    """Each input is a trajectory file, or a folder whose trajectories are all taken."""
    from hti.analysis.loading import load, load_runs  # noqa: PLC0415

    runs = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = load_runs(item)
            if not found:
                raise InputError(f"expected trajectory files; the folder {item} holds none")
            runs += found
        else:
            runs.append(load(item))
    return runs


def _corpora(specs: tuple[str, ...], data_dir, vocab_size: int):
    """(label, counts) of each ``corpus:tokenizer`` spec."""
    names, tokenizers = ("ptb", "tinyptb", "wikitext2", "wikitext103"), ("word", "gpt2", "bpe")
    parsed = []
    for spec in specs:
        corpus, sep, tok = spec.partition(":")
        if not sep or corpus not in names or tok not in tokenizers:
            raise InputError(
                f"rank-frequency expects CORPUS:TOKENIZER with CORPUS in {', '.join(names)} and "
                f"TOKENIZER in {', '.join(tokenizers)} (e.g. ptb:word); got {spec!r}"
            )
        parsed.append((corpus, tok))
    from hti.analysis.figures import corpus_counts  # noqa: PLC0415

    try:
        return [
            (f"{c}:{t}", corpus_counts(c, t, data_dir=data_dir, vocab_size=vocab_size)) for c, t in parsed
        ]
    except ImportError as err:
        raise InputError(
            f"rank-frequency needs torch and the text packages ({err}); pip install 'hti[deep]'"
        ) from None


def _grid(inputs: tuple[str, ...]) -> dict:
    if len(inputs) != 1:
        raise InputError(f"--kind grid expects one grid folder or grid.json; got {len(inputs)} arguments")
    path = Path(inputs[0])
    if path.is_dir():
        path = path / "grid.json"
    if not path.is_file():
        raise InputError(f"--kind grid expects a grid folder or its grid.json; {path} does not exist")
    try:
        grid = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path} as grid.json: {err}") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("results"), list):
        raise InputError(f"{path} is not a grid.json (expected an object with a 'results' list)")
    return grid


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="RUN.h5 [RUN.h5 ...]")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="per-group",
    show_default=True,
    help="per-group: loss of each frequency group, per run (Figs. 1-3, 9, 10); optimizers: one "
    "panel per optimizer and momentum (Figs. 4, 12-14); grad-hess: per-class gradient "
    "norms and Hessian traces (Figs. 5, 6); spectrum: block spectra from hti spectrum; "
    "rank-frequency: token counts of CORPUS:TOKENIZER specs (Fig. 8); grid: a step-size "
    "grid folder or its grid.json.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Figure file (.png, .pdf or .svg); without a suffix, both OUT.png and OUT.pdf.",
)
@click.option(
    "--groups",
    "n_groups",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Frequency groups of about equal sample mass.",
)
@click.option("--logy/--linear", default=False, show_default=True, help="Log or linear loss axes.")
@click.option(
    "--steps",
    type=StepList(),
    default=None,
    metavar="LIST",
    help="grad-hess: steps of the scatters [first, middle, last]; spectrum: steps to show [all].",
)
@click.option(
    "--classes",
    type=StepList(),
    default=None,
    metavar="LIST",
    help="spectrum: classes to show [every class in spectra/].",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val"]),
    default="train",
    show_default=True,
    help="per-group, optimizers: training or validation loss (deep runs).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="rank-frequency: folder of the WikiText files.",
)
@click.option(
    "--vocab-size",
    type=click.IntRange(min=258),
    default=8192,
    show_default=True,
    help="rank-frequency: vocabulary of the bpe tokenizer.",
)
@reports_bad_input
def plot(inputs, kind, out, n_groups, logy, steps, classes, split, data_dir, vocab_size) -> None:
    """Draw a figure from trajectory files and write it to --out.

    \b
    Examples:
      hti plot runs/gd.h5 runs/adam.h5 -o figs/per-group.pdf
      hti plot runs/fig4/ --kind optimizers --logy -o figs/optimizers
      hti plot runs/gd.h5 --kind grad-hess --steps 0,100,1000 -o figs/grad-hess.png
      hti plot runs/m6.h5 --kind spectrum -o figs/spectrum.png
      hti plot ptb:word ptb:gpt2 ptb:bpe --kind rank-frequency -o figs/tokens.pdf
      hti plot grids/linear-m8 --kind grid -o figs/grid.png
    """
    suffix = out.suffix.lower()
    if suffix and suffix not in FORMATS:
        raise InputError(
            f"--out must end in {', '.join(FORMATS)} (or have no suffix for both .png and .pdf); "
            f"got {str(out)!r}"
        )
    if steps is not None and kind not in _ONE_RUN:
        raise InputError(f"--steps applies to --kind grad-hess and spectrum; got --kind {kind}")
    if classes is not None and kind != "spectrum":
        raise InputError(f"--classes applies to --kind spectrum; got --kind {kind}")

    from hti.analysis import figures  # noqa: PLC0415 (matplotlib)

    try:
        if kind == "rank-frequency":
            fig = figures.fig_rank_frequency(_corpora(inputs, data_dir, vocab_size))
            what = f"{len(inputs)} corpora"
        elif kind == "grid":
            fig = figures.fig_grid(_grid(inputs))
            what = inputs[0]
        else:
            runs = _load_runs(inputs)
            if kind in _ONE_RUN and len(runs) != 1:
                raise InputError(f"--kind {kind} draws one run; got {len(runs)}")
            if kind == "per-group":
                fig = figures.fig_per_group(runs, n_groups=n_groups, logy=logy, split=split)
            elif kind == "optimizers":
                fig = figures.fig_optimizers(runs, n_groups=n_groups, logy=logy, split=split)
            elif kind == "grad-hess":
                fig = figures.fig_grad_hess(runs[0], steps=steps, n_groups=n_groups)
            else:
                fig = figures.fig_spectrum(runs[0], steps=steps, classes=classes)
            what = f"{len(runs)} run{'s' * (len(runs) != 1)}"
        written = [figures.save_figure(fig, out)] if suffix else list(figures.save_both(fig, out))
    except figures.PlotError as err:
        raise InputError(str(err)) from None
    except OSError as err:
        raise InputError(f"cannot write {out}: {err}") from None
    click.echo(f"hti plot: {kind} of {what} -> {', '.join(map(str, written))}")
