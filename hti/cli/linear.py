"""``hti linear``: full-batch softmax regression on the paper's heavy-tailed data."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from hti.cli.errors import InputError, reports_bad_input
from hti.cli.params import StepList, StepSize, TrackList
from hti.cli.report import report
from hti.config import format_lr
from hti.linsoftmax.data import DTYPES, INPUTS
from hti.linsoftmax.optim import OPTIMIZERS
from hti.linsoftmax.params import INITS
from hti.linsoftmax.stats import REWEIGHT

_LR_HELP = ", ".join(
    f"{name} {format_lr(spec.default_lr[0])}/{format_lr(spec.default_lr[1])}" for name, spec in OPTIMIZERS.items()
)


@click.command()
@click.option("--m", type=click.IntRange(2, 16), default=8, show_default=True,
              help="Data size: n = m 2^m samples, c = 2^m - 1 classes, d = (m+1) 2^m.")
@click.option("--optim", type=click.Choice(list(OPTIMIZERS)), default="gd", show_default=True)
@click.option("--momentum/--no-momentum", default=True, show_default=True,
              help="Heavy ball (Adam: beta1) with coefficient --beta, or none.")
@click.option("--lr", type=StepSize(), default=None,
              help=f"Step size, e.g. 1e-3 or 10^-2.5. Default: the paper's tuned m = 11 value "
                   f"(without/with momentum: {_LR_HELP}).")
@click.option("--steps", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Optimizer steps (full-batch gradient steps).")
@click.option("--inputs", type=click.Choice(INPUTS), default="uniform", show_default=True,
              help="uniform U[0,1) (the paper's Fig. 3), gaussian N(mean, scale^2), or exactly "
                   "orthogonal rows of squared norm d (needs d >= n).")
@click.option("--input-mean", type=float, default=None, help="Gaussian inputs only. [default: 1.0]")
@click.option("--input-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Gaussian inputs only. [default: 1.0]")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Input dimension d. [default: (m+1) 2^m]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Initialization seed.")
@click.option("--data-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data seed (an independent stream, even when equal to --seed).")
@click.option("--init", type=click.Choice(INITS), default="uniform", show_default=True,
              help="uniform: U(-1/sqrt(d), 1/sqrt(d)) as torch.nn.Linear; zero: W = 0, b = 0.")
@click.option("--reweight", type=click.Choice(REWEIGHT), default="none", show_default=True,
              help="Train the loss with class weights 1/pi_k (inv) or 1/sqrt(pi_k) (inv-sqrt); "
                   "the unweighted statistics are still recorded.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cpu: NumPy; cuda: CuPy (pip install 'hti[gpu]').")
@click.option("--record-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Write a row every K steps (and always at steps 0 and N).")
@click.option("--save-params-at", type=StepList(), default="", metavar="LIST",
              help="Steps whose W and b are stored under params/, e.g. 0,1,5,10 or 0:1000:100.")
@click.option("--save-data", is_flag=True, help="Also store X and y under data/.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Save the resume state (W, b, optimizer state) every K steps.")
@click.option("--track", type=TrackList(), default="", metavar="LIST",
              help="Curvature to record in the 'curvature' table, any of eig,top,coupling. Each "
                   "row costs: eig = top --eig-k eigenvalues of every class block H_kk (batched "
                   "Lanczos: ~1-2 training steps' worth for correlated inputs, ~10-20 for flat "
                   "spectra such as N(0,1), plus X X^T once per run); top = top --eig-k "
                   "eigenvalues of the full Hessian (eigsh: ~20-60 steps' worth); coupling = "
                   "||H_kk||_F and the off-diagonal block mass (~4-6 steps' worth, float64). "
                   "Off by default.")
@click.option("--curvature-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Curvature rows at step 0, every K steps and at the last step.")
@click.option("--eig-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many top eigenvalues --track eig and top record.")
@click.option("--beta", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True,
              help="Momentum coefficient (Adam's beta1) when --momentum.")
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True,
              help="Adam's beta2.")
@click.option("--eps", type=click.FloatRange(0, 1), default=1e-8, show_default=True, help="Adam's epsilon.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trajectory file. [default: runs/<run id>.h5]")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue the interrupted or killed run in this file (takes no other option).")
@click.option("--dry-run", is_flag=True, help="Print the sizes and memory estimate, then stop.")
@click.option("--progress/--no-progress", default=None, help="Progress line. [default: on a terminal]")
@click.pass_context
@reports_bad_input
def linear(ctx: click.Context, resume, dry_run, progress, out, force, **options) -> None:
    """Train softmax regression full batch on random heavy-tailed labels.

    Records at every row the loss, and per class the loss, accuracy, gradient norm and
    Hessian-block trace, in an HDF5 trajectory; prints a per-group summary at the end.
    Each step costs two GEMMs (n x d by d x c, and c x n by n x d); --reweight adds a
    third on recorded steps.

    \b
    Examples:
      hti linear                                  # m = 8, GD+m, 1000 steps, about 40 s
      hti linear --m 11 --optim sign --steps 100  # the paper's size (about 23 s/step on 2 cores)
      hti linear --optim adam --inputs gaussian --input-mean 0
      hti linear --resume runs/linear-m8-gd+m-0123456789ab.h5
    """
    from hti.linsoftmax.config import LinearConfig  # noqa: PLC0415

    bar = _progress(progress)
    if resume is not None:
        given = sorted(
            "--" + name.replace("_", "-")
            for name in list(options) + ["out", "force", "dry_run"]
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        )
        if given:
            raise InputError(
                f"--resume takes the configuration from the file; expected no other run options, got {' '.join(given)}"
            )
        _resume(resume, bar)
        return
    cfg = LinearConfig(**options)
    _announce(cfg, out)
    if dry_run:
        return
    _run(cfg, out, force, bar)


def _progress(flag):
    from hti.cli.progress import ProgressBar  # noqa: PLC0415

    if flag is False:
        return None
    bar = ProgressBar()
    if flag is None and not bar.tty:
        return None
    return bar


def _announce(cfg, out) -> None:
    from hti.linsoftmax.memory import describe, estimate  # noqa: PLC0415
    from hti.linsoftmax.train import default_path  # noqa: PLC0415

    n, c, d = cfg.shape
    inputs = cfg.inputs if cfg.inputs != "gaussian" else f"gaussian N({cfg.input_mean:g}, {cfg.input_scale:g}^2)"
    lr_note = " (default: the paper's tuned value at m = 11)" if cfg.lr_default else ""
    click.echo(f"hti linear: m = {cfg.m} (n = {n}, c = {c}, d = {d}), {inputs} inputs, {cfg.dtype} on {cfg.device}")
    click.echo(f"  {cfg.legend}, lr = {format_lr(cfg.lr)}{lr_note}, {cfg.steps} steps"
               + (f", reweight {cfg.reweight}" if cfg.reweight != "none" else ""))
    click.echo(f"  memory estimate: {describe(estimate(cfg))}")
    click.echo(f"  trajectory: {out if out is not None else default_path(cfg)}")


def _run(cfg, out, force, bar) -> None:
    from hti.linsoftmax.train import run  # noqa: PLC0415

    report(run(cfg, out, force=force, progress=bar), "linear")


def _resume(path, bar) -> None:
    from hti.linsoftmax.train import resume  # noqa: PLC0415

    click.echo(f"hti linear: resuming {path}")
    result = resume(path, progress=bar)
    click.echo(f"  resumed from step {result.resumed_from}")
    report(result, "linear")
