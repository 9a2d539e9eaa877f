"""``hti spectrum``: curvature and block spectra of a saved run, at chosen steps."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from hti.cli.errors import reports_bad_input
from hti.cli.params import StepList


@click.command()
@click.argument("run", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--at", "steps", type=StepList(), required=True, metavar="LIST",
              help="Steps to analyse, e.g. 0,10,100 (each saved with --save-params-at).")
@click.option("--classes", type=StepList(), default=None, metavar="LIST",
              help="Class blocks whose whole spectrum is computed. [default: the first class of "
                   "each construction group: 0, 1, 3, 7, ...]")
@click.option("--full", is_flag=True, help="Dense eigh of every chosen block whatever its size.")
@click.option("--eig-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Top eigenvalues per class block (all classes) and of the full Hessian.")
@click.option("--extremes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Without dense spectra: how many largest and smallest eigenvalues (eigsh).")
@click.option("--probes", type=click.IntRange(min=1), default=16, show_default=True,
              help="Without dense spectra: SLQ probes per class.")
@click.option("--lanczos-steps", type=click.IntRange(min=2), default=60, show_default=True,
              help="Without dense spectra: SLQ Lanczos steps per probe.")
@reports_bad_input
def spectrum(run, steps, classes, full, eig_k, extremes, probes, lanczos_steps) -> None:
    """Curvature of a saved linear run at chosen steps, stored under spectra/ in RUN.

    Regenerates the data from the run's config, loads the saved parameters, and computes
    at each step: the top --eig-k eigenvalues of every class block and of the full
    Hessian, the block Frobenius norms (diagonal and off-diagonal mass), the
    gradient-norm/curvature correlations, and the whole spectrum of the chosen class
    blocks (dense when min(n, d) <= 4096 or --full; else extremes and an SLQ density).

    \b
    Example:
      hti linear --m 6 --save-params-at 0,10,100 --out runs/m6.h5
      hti spectrum runs/m6.h5 --at 0,10,100 --classes 0,1,62
    """
    from hti.linsoftmax.posthoc import spectra_of_run  # noqa: PLC0415

    res = spectra_of_run(run, list(steps), classes=None if classes is None else list(classes), full=full, k=eig_k,
                         extremes=extremes, probes=probes, lanczos_steps=lanczos_steps)  # fmt: skip
    classes = res["classes"]
    click.echo(f"hti spectrum: {run}, steps {', '.join(map(str, res['step']))}; "
               f"{res['attrs']['method']} spectra of classes {', '.join(map(str, classes))}")  # fmt: skip
    off = res["hess_offdiag_frob"] / np.maximum(res["hess_diag_frob"], np.finfo(float).tiny)
    click.echo(f"{'step':>6}  {'corr(log g, log tr)':>19}  {'corr(log g, log eig)':>20}  "
               f"{'lambda_max(H)':>13}  {'median offdiag/diag':>19}")  # fmt: skip
    for i, s in enumerate(res["step"]):
        click.echo(f"{s:>6}  {res['grad_hess_corr'][i]:>19.3f}  {res['grad_eig_corr'][i]:>20.3f}  "
                   f"{res['hess_top'][i, 0]:>13.4g}  {np.median(off[i]):>19.3f}")  # fmt: skip
    click.echo(f"{'step':>6}  {'class':>6}  {'lambda_max(H_kk)':>16}  {'Tr(H_kk)':>10}  {'lambda_max/Tr':>13}")
    for i, s in enumerate(res["step"]):
        for k in classes:
            lam, tr = res["hess_eig"][i, k, 0], res["hess_trace"][i, k]
            click.echo(f"{s:>6}  {k:>6}  {lam:>16.4g}  {tr:>10.4g}  {lam / tr if tr > 0 else float('nan'):>13.3f}")
    click.echo(f"stored under spectra/ in {run}")
