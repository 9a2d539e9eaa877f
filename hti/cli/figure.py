"""``hti figure N`` and ``hti report``: the paper's figures as commands, and a run report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hti.cli.errors import reports_bad_input


@click.command()
@click.argument("number", type=click.IntRange(1, 17), metavar="N")
@click.option("--scale", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="small: 2 CPU cores, seconds to minutes (figures 4, 7, 13: under an hour); paper: the paper's sizes (a GPU for the deep figures).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Shorten (or lengthen) every run of the figure.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("figures"), show_default=True,
              help="Runs are reused from and written to this folder, with figure-N.png and .pdf.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Paper scale: WikiText-103 (figure 1), MNIST IDX files (2, 11, 14); figure 8: WikiText-2.")
@click.option("--progress/--no-progress", default=None, help="Progress line. [default: on a terminal]")
@reports_bad_input
def figure(number, scale, steps, device, out, data_dir, progress) -> None:
    """Draw figure N (1-17) of the paper, running exactly the runs it needs.

    Completed runs in --out are reused and interrupted ones resumed, so a killed figure
    continues where it stopped. Writes figure-N.png and figure-N.pdf into --out.

    \b
    Examples:
      hti figure 3                      # m = 8, GD+m vs Adam+m
      hti figure 12 --steps 100         # four optimizers, shorter runs
      hti figure 3 --scale paper --device cuda
    """
    import time  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from hti.analysis.paper import FIGURES, FigureInterrupted, make_figure  # noqa: PLC0415
    from hti.cli.linear import _progress  # noqa: PLC0415

    click.echo(f"hti figure {number}: {FIGURES[number].title} ({scale} scale)")
    t = time.perf_counter()
    try:
        paths = make_figure(number, scale=scale, steps=steps, device=device, out=out,
                            data_dir=None if data_dir is None else str(data_dir), progress=_progress(progress),
                            log=lambda msg: click.echo(f"  {msg}"))  # fmt: skip
    except FigureInterrupted as stop:
        click.echo(f"interrupted: {stop.path} is kept; run the same command again to resume it and go on")
        sys.exit(130)
    click.echo(f"wrote {', '.join(map(str, paths))} in {time.perf_counter() - t:.0f} s")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True)
@reports_bad_input
def report(folder, out) -> None:
    """One self-contained HTML page about every run in FOLDER (figures embedded).

    \b
    Example:
      hti report figures -o report.html
    """
    from hti.analysis.report import html_report  # noqa: PLC0415

    path = html_report(folder, out)
    click.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
