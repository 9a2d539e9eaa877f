"""``hti grid``: the paper's step-size grid search (Appendix A.4) for either engine.

Only click is imported at the top; the engines (and torch, for ``deep``) are imported
when the command runs.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from hti.cli.errors import InputError, reports_bad_input
from hti.config import ConfigError, format_lr, parse_lr

LINEAR_ONLY = ("record_every",)
DEEP_ONLY = ("model", "data", "data_dir", "tokenizer", "seq_len", "n_layer", "n_head", "d_model", "batch_size",
             "eval_every", "eval_tokens")  # fmt: skip


class LrRange(click.ParamType):
    """``LO:HI``, two powers of ten (``1e-6:1e1`` or ``10^-6:10^1``), both included."""

    name = "LO:HI"

    def convert(self, value, param, ctx):
        from hti.analysis.grid import lr_grid  # noqa: PLC0415

        if isinstance(value, list):
            return value
        parts = str(value).split(":")
        if len(parts) != 2:
            self.fail(f"expected LO:HI with two powers of ten, e.g. 1e-6:1e1; got {value!r}", param, ctx)
        try:
            return lr_grid(*(parse_lr(p) for p in parts))
        except (ConfigError, ValueError) as err:
            self.fail(f"{err} (in {value!r})", param, ctx)


class Shard(click.ParamType):
    """``i/N``: this process runs part i of N (1 <= i <= N)."""

    name = "i/N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not match:
            self.fail(f"expected i/N such as 1/4; got {value!r}", param, ctx)
        i, n = int(match.group(1)), int(match.group(2))
        if not 1 <= i <= n:
            self.fail(f"expected i/N with 1 <= i <= N; got {value!r}", param, ctx)
        return i, n


@click.command()
@click.argument("engine", type=click.Choice(["linear", "deep"]))
@click.option("--optim", default="gd,adam,normgd,sign", show_default=True,
              help="Comma-separated optimizers: gd, adam, normgd, sign (and adamw with deep).")
@click.option("--momentum", type=click.Choice(["on", "off", "both"]), default="both", show_default=True,
              help="With momentum (+m), without (-m), or both.")
@click.option("--lr", "lrs", type=LrRange(), default="1e-6:1e1", show_default=True,
              help="Decade grid LO:HI, both powers of ten and included (also 10^-6:10^1).")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Then run the half-decade neighbours of each group's selection and select on the union.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Initialization seeds 0..K-1 (the data seed stays fixed); the rules use the max over seeds.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Optimizer steps per run. [default: 1000 for linear, 100 for deep]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of the runs (<run id>.h5), grid.json and the figure.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes, one BLAS/OpenMP thread each.")
@click.option("--shard", type=Shard(), default="1/1", show_default=True,
              help="Run part i of N of the grid (processes or machines sharing --out); rerun all once finished.")
@click.option("--select", type=click.Choice(["paper", "final"]), default="paper", show_default=True,
              help="paper: Appendix A.4 as written (with the stability step); final: the released code's rule.")
@click.option("--progress/--no-progress", default=None, help="A line per finished run. [default: on a terminal]")
# the data and the model (as hti linear / hti deep)
@click.option("--m", type=click.IntRange(2, 16), default=None, help="Synthetic data size. [default: 8]")
@click.option("--inputs", type=click.Choice(["uniform", "gaussian", "orthogonal"]), default=None,
              help="Synthetic inputs. [default: uniform]")
@click.option("--input-mean", type=float, default=None, help="Gaussian inputs only. [default: 1.0]")
@click.option("--input-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Gaussian inputs only. [default: 1.0]")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Input dimension d. [default: (m+1) 2^m]")
@click.option("--data-seed", type=click.IntRange(min=0), default=None, help="Data seed. [default: 0]")
@click.option("--init", type=click.Choice(["uniform", "zero"]), default=None, help="[default: uniform]")
@click.option("--reweight", type=click.Choice(["none", "inv", "inv-sqrt"]), default=None, help="[default: none]")
@click.option("--dtype", type=click.Choice(["float32", "float64", "bfloat16"]), default=None,
              help="[default: float32; bfloat16: deep on cuda]")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cpu]")
@click.option("--record-every", type=click.IntRange(min=1), default=None,
              help="linear: a row every K steps. [default: steps/100, about 100 rows]")
@click.option("--model", type=click.Choice(["simple-transformer", "transformer", "gpt2", "cnn", "linear"]),
              default=None, help="deep: the model (required).")
@click.option("--data", type=click.Choice(["ptb", "tinyptb", "wikitext2", "wikitext103", "digits", "mnist",
                                           "barcoded", "barcoded-only", "synthetic"]),
              default=None, help="deep: the data set. [default: as hti deep]")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="deep: as hti deep.")
@click.option("--tokenizer", type=click.Choice(["word", "gpt2", "bpe"]), default=None, help="deep: as hti deep.")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="deep: as hti deep.")
@click.option("--n-layer", type=click.IntRange(min=1), default=None, help="deep: as hti deep.")
@click.option("--n-head", type=click.IntRange(min=1), default=None, help="deep: as hti deep.")
@click.option("--d-model", type=click.IntRange(min=1), default=None, help="deep: as hti deep.")
@click.option("--batch-size", type=click.IntRange(min=0), default=None,
              help="deep: rows per step, 0 for the full batch. [default: as hti deep]")
@click.option("--eval-every", type=click.IntRange(min=1), default=None, help="deep: a row every K steps. [default: 10]")
@click.option("--eval-tokens", type=click.IntRange(min=1), default=None, help="deep: as hti deep.")
@click.pass_context
@reports_bad_input
def grid(ctx, engine, optim, momentum, lrs, refine, seeds, steps, out, workers, shard, select, progress, **options):
    """Grid-search the step size of every optimizer, with and without momentum.

    Runs every (optimizer, momentum, step size, seed) of the decade grid --lr into
    OUT/<run id>.h5, then (--refine) the half-decade neighbours of each group's selection.
    A finished run is reused, an interrupted or killed one resumed, so rerunning the
    command continues where it stopped. Prints each group's step size under both rules,
    marks DISAGREE where they differ, and writes OUT/grid.json (and the figure).

    \b
    Examples:
      hti grid linear --out grids/m8                   # the paper's grid at m = 8 (64 runs)
      hti grid linear --m 6 --optim gd,adam --momentum on --lr 1e-4:1e0 --steps 200 --out grids/m6
      hti grid linear --out grids/m8 --workers 2       # two local processes
      hti grid linear --out grids/m8 --shard 1/4       # on 4 machines sharing grids/m8, then again
      hti grid deep --model cnn --data digits --steps 50 --out grids/cnn
    """
    from hti.analysis.grid import OPTIMIZERS, run_grid  # noqa: PLC0415

    given = {k for k in options if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    wrong = sorted(given & set(DEEP_ONLY if engine == "linear" else LINEAR_ONLY))
    if wrong:
        flags = " ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} {'apply' if len(wrong) > 1 else 'applies'} to ENGINE "
                         f"{'deep' if engine == 'linear' else 'linear'}; got ENGINE {engine}")  # fmt: skip
    optims = [o.strip() for o in optim.split(",") if o.strip()]
    bad = [o for o in optims if o not in OPTIMIZERS[engine]]
    if bad or not optims:
        raise InputError(f"--optim expects a comma-separated subset of {','.join(OPTIMIZERS[engine])} for ENGINE "
                         f"{engine}; got {optim!r}")  # fmt: skip
    base = _base_config(engine, optims[0], steps, {k: v for k, v in options.items() if v is not None})
    if engine == "linear":
        _check_memory(base, optims, workers)
    _announce(engine, base, optims, momentum, lrs, seeds, refine, shard, workers, out)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        outcome = run_grid(base, optims, momentum, lrs, seeds, out, refine_best=refine, select=select,
                           shard_of=shard, workers=workers, progress=_print_progress if show else None)  # fmt: skip
    except KeyboardInterrupt:  # between two runs (a run itself stops cleanly and says so)
        click.echo("interrupted; run the same command again to resume")
        sys.exit(130)
    for i, report in enumerate(outcome.reports, 1):
        n = len(report.outcomes)
        counts = [f"{report.count(a)} {a}" for a in ("ran", "resumed", "reused")]
        counts += [f"{report.count(a)} {a}" for a in ("rerun", "busy") if report.count(a)]
        failed = len(report.errors)
        counts += [f"{failed} failed"] if failed else []
        click.echo(f"phase {i}: {n} run{'s' if n != 1 else ''} in this shard: {', '.join(counts)}")
    for o in outcome.errors:
        click.echo(f"error: {_describe(o.cfg)}: {o.error}", err=True)
    for note in outcome.notes:
        click.echo(f"note: {note}")
    if not outcome.complete:
        click.echo(outcome.message)
        if outcome.interrupted:
            sys.exit(130)
        if outcome.errors:
            sys.exit(1)
        return
    click.echo(format_results(outcome.results, select))
    click.echo(f"grid: {outcome.grid_path}")
    _figure(outcome.grid_path)


def _base_config(engine: str, optim: str, steps, options: dict):
    if engine == "linear":
        from hti.linsoftmax.config import LinearConfig  # noqa: PLC0415

        steps = LinearConfig.steps if steps is None else steps
        options.setdefault("record_every", max(1, steps // 100))
        return LinearConfig(optim=optim, steps=steps, **options)
    if "model" not in options:
        raise InputError("ENGINE deep needs --model (simple-transformer, transformer, gpt2, cnn, linear); got none")
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError as err:
        raise InputError(f"ENGINE deep needs PyTorch ({err}); install it with pip install torch==2.13.0 (CPU) or hti[deep]") from None
    from hti.deep.config import DeepConfig  # noqa: PLC0415

    if "data_dir" in options:
        options["data_dir"] = str(options["data_dir"])
    if steps is not None:
        options["steps"] = steps
    return DeepConfig(optim=optim, **options)


def _check_memory(base, optims, workers: int) -> None:
    """Every optimizer's run fits, ``workers`` of them at once (exit 2 otherwise)."""
    from hti.backend import available_memory, device_name, xp_by_name  # noqa: PLC0415
    from hti.linsoftmax.memory import check_memory, format_bytes  # noqa: PLC0415

    xp = xp_by_name(base.device)
    for optim in optims:
        need = check_memory(base.replace(optim=optim), xp)["total"] * workers
        free = available_memory(xp)
        if need > free:
            raise InputError(f"{workers} workers of {optim} runs at m = {base.m} need about {format_bytes(need)}, but "
                             f"only {format_bytes(free)} is available on {device_name(xp)}; use fewer --workers")  # fmt: skip


def _announce(engine, base, optims, momentum, lrs, seeds, refine, shard, workers, out) -> None:
    what = f"m = {base.m}" if engine == "linear" else f"{base.model} on {base.data}"
    click.echo(f"hti grid {engine}: {what}, {base.steps} steps, optimizers {','.join(optims)}, momentum {momentum}, "
               f"lr {format_lr(lrs[0])}..{format_lr(lrs[-1])} ({len(lrs)} decades"
               f"{', then half-decades' if refine else ''}), {seeds} seed{'s' if seeds > 1 else ''}")  # fmt: skip
    extra = f"shard {shard[0]}/{shard[1]}, " if shard != (1, 1) else ""
    click.echo(f"  {extra}{workers} worker{'s' if workers > 1 else ''}, runs in {out}")


def _describe(cfg) -> str:
    from hti.analysis.grid import label  # noqa: PLC0415

    return f"{label(cfg.optim, cfg.momentum)} lr {format_lr(cfg.lr)} seed {cfg.seed}"


def _print_progress(done: int, total: int, outcome) -> None:
    if outcome.error is not None:
        what = f"error: {outcome.error}"
    elif outcome.action in ("reused", "busy"):
        what = outcome.action
    else:
        what = f"{outcome.action}, {outcome.status} in {outcome.seconds:.1f} s"
    click.echo(f"[{done}/{total}] {_describe(outcome.cfg)}: {what}", err=True)


def format_results(results: list[dict], select: str) -> str:
    """Per group: both selections (DISAGREE where they differ), and per step size the
    largest final loss over seeds, the largest loss over initial, and the statuses."""
    lines = []
    for g in results:
        paper, final = g["selected_lr_paper"], g["selected_lr_final"]
        head = f"{g['label']}: paper {format_lr(paper)}, final {format_lr(final)}"
        if g["disagree"]:
            head += "   DISAGREE"
            if g["paper_before_stability"] != paper:
                head += (f" (paper: {format_lr(g['paper_before_stability'])} rose above its initial loss during "
                         f"training, stability step)")  # fmt: skip
        lines += [head, f"  {'lr':>9}  {'max final loss':>14}  {'max loss/init':>13}  status"]
        by_lr: dict[float, list[dict]] = {}
        for r in g["runs"]:
            by_lr.setdefault(r["lr"], []).append(r)
        for lr, runs in by_lr.items():
            finals = [r["final_loss"] for r in runs]
            ratio = max(r["max_loss_ratio"] for r in runs)
            statuses = {}
            for r in runs:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            status = ", ".join(f"{s} x{k}" if k > 1 else s for s, k in statuses.items())
            mark = " <- " + "+".join(rule for rule, v in (("paper", paper), ("final", final)) if v == lr) if lr in (paper, final) else ""
            lines.append(f"  {format_lr(lr):>9}  {_max(finals):>14.4f}  {ratio:>13.3g}  {status}{mark}")
    lines.append(f"Selected step sizes (rule {select}):")
    for g in results:
        lines.append(f"  {g['label']:<9} {format_lr(g[f'selected_lr_{select}'])}")
    return "\n".join(lines)


def _max(values) -> float:
    """The largest value; NaN (a diverged run) counts as the largest."""
    return float("nan") if any(math.isnan(v) for v in values) else max(values)


def _figure(grid_path: Path) -> None:
    import json  # noqa: PLC0415

    try:
        from hti.analysis.figures import fig_grid  # noqa: PLC0415
    except ImportError:
        click.echo("figure: skipped (hti.analysis.figures.fig_grid is not available in this version)")
        return
    try:
        fig = fig_grid(json.loads(grid_path.read_text()))
        for ext in ("png", "pdf"):
            fig.savefig(grid_path.with_name(f"grid.{ext}"))
    except Exception as err:  # noqa: BLE001 (grid.json is written; the figure is an extra)
        click.echo(f"figure: failed ({type(err).__name__}: {err})", err=True)
        return
    click.echo(f"figure: {grid_path.with_name('grid.png')}, {grid_path.with_name('grid.pdf')}")
