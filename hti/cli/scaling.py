"""``hti scaling``: the paper's Appendix E experiment (curvature vs class frequency)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from click.core import ParameterSource

from hti.cli.errors import InputError, reports_bad_input
from hti.linsoftmax.data import DTYPES, INPUTS


@click.command()
@click.option("--m", type=click.IntRange(2, 16), default=8, show_default=True, help="Data size, as hti linear.")
@click.option("--inputs", type=click.Choice(INPUTS), default="uniform", show_default=True)
@click.option("--input-mean", type=float, default=None, help="Gaussian inputs only. [default: 1.0]")
@click.option("--input-scale", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Gaussian inputs only. [default: 1.0]")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Input dimension d. [default: (m+1) 2^m]")
@click.option("--data-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--p", "p", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9, show_default=True,
              help="Probability each sample puts on its own class (Definition 1).")
@click.option("--spread", type=click.Choice(["frequency", "even"]), default="frequency", show_default=True,
              help="How each sample spreads 1 - p over the other classes: in proportion to their "
                   "frequencies (the paper's state) or evenly (a pitfall, for comparison).")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Evaluate the trained state of this run (hti linear) instead, at --at.")
@click.option("--at", "step", type=click.IntRange(min=0), default=None, help="With --from: a saved step.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result file. [default: runs/scaling-<setting>.h5]")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.pass_context
@reports_bad_input
def scaling(ctx, m, inputs, input_mean, input_scale, dim, data_seed, dtype, device, p, spread, source, step, out,
            force) -> None:  # fmt: skip
    """Fit how Tr(H_kk) and lambda_max(H_kk) scale with the class frequency pi_k.

    Evaluates every class block at the paper's Definition 1 state (each sample puts
    probability --p on its class), or at a trained state with --from RUN --at STEP, and
    fits log Tr(H_kk) and log lambda_max(H_kk) against log pi_k over all classes. Prints
    'trace_slope: X' and 'eig_slope: X' and stores the per-class values in --out.
    Expected: both near 1 for correlated inputs (uniform, N(1,1)); trace near 1 but
    eigenvalue near 0 for orthogonal inputs.

    \b
    Examples:
      hti scaling --inputs uniform
      hti scaling --inputs orthogonal
      hti scaling --inputs gaussian --input-mean 0
      hti scaling --from runs/m8-adam.h5 --at 1000
    """
    from hti.backend import to_device, xp_by_name  # noqa: PLC0415
    from hti.linsoftmax.data import heavy_tailed_data  # noqa: PLC0415
    from hti.linsoftmax.loss import logits, softmax  # noqa: PLC0415
    from hti.linsoftmax.posthoc import load_run  # noqa: PLC0415
    from hti.linsoftmax.scaling import good_prediction_probabilities, scaling_slopes  # noqa: PLC0415
    from hti.storage import write_arrays  # noqa: PLC0415

    if source is not None:
        given = sorted("--" + k.replace("_", "-") for k in ("m", "inputs", "input_mean", "input_scale", "dim",
                       "data_seed", "dtype", "p", "spread") if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE)  # fmt: skip
        if given:
            raise InputError(f"--from takes the data and the state from the run; expected no data options, got {' '.join(given)}")
        if step is None:
            raise InputError("--from needs --at STEP, a step saved with --save-params-at")
        run = load_run(source, device)
        W, b = run.params_at(step)
        X, counts = run.problem.X, run.problem.class_counts
        P = softmax(logits(X, W, b))
        setting = {"from": str(source), "at": step, **{k: v for k, v in run.config.to_dict().items()
                                                        if k in ("m", "inputs", "input_mean", "input_scale", "dim", "data_seed", "dtype")}}  # fmt: skip
        out = out or source.with_name(f"{source.stem}-scaling-step{step}.h5")
    else:
        if step is not None:
            raise InputError("--at applies with --from RUN only")
        if inputs != "gaussian" and (input_mean is not None or input_scale is not None):
            raise InputError(f"--input-mean and --input-scale apply to gaussian inputs only; got --inputs {inputs}")
        from hti.linsoftmax.data import dataset_shape  # noqa: PLC0415

        n, _, d = dataset_shape(m, dim)
        if inputs == "orthogonal" and d < n:
            raise InputError(f"orthogonal inputs need dim >= n = {n} (m = {m}); got dim = {d}")
        xp = xp_by_name(device)
        data = heavy_tailed_data(m, inputs=inputs, input_mean=input_mean, input_scale=input_scale, dim=dim,
                                 data_seed=data_seed, dtype=dtype)  # fmt: skip
        X, y, counts = (to_device(a, xp) for a in data)
        P = good_prediction_probabilities(y, counts, p, spread)
        setting = {"m": m, "inputs": inputs, "input_mean": input_mean, "input_scale": input_scale, "dim": dim,
                   "data_seed": data_seed, "dtype": dtype, "p": p, "spread": spread}  # fmt: skip
        tag = inputs if inputs != "gaussian" else f"gaussian{1.0 if input_mean is None else input_mean:g}"
        out = out or Path("runs") / f"scaling-m{m}-{tag}-p{p:g}-{spread}.h5"
    res = scaling_slopes(X, P, counts)
    click.echo(f"hti scaling: {json.dumps(setting)}")
    _group_table(res, np.asarray(res.pi))
    click.echo(f"trace_slope: {round(res.trace_slope, 4) + 0.0:.4f}")
    click.echo(f"eig_slope: {round(res.eig_slope, 4) + 0.0:.4f}")
    write_arrays(out, {"pi": res.pi, "hess_trace": res.hess_trace, "hess_eig_max": res.hess_eig_max,
                       "eig_iterations": res.eig_iterations},
                 {"setting": json.dumps(setting), "trace_slope": res.trace_slope, "eig_slope": res.eig_slope,
                  "trace_intercept": res.trace_intercept, "eig_intercept": res.eig_intercept}, force=force)  # fmt: skip
    click.echo(f"stored in {out}")


def _group_table(res, pi) -> None:
    """Mean trace and top eigenvalue over the classes of each distinct frequency."""
    click.echo(f"{'pi_k':>10}  {'#classes':>8}  {'mean Tr(H_kk)':>14}  {'mean lambda_max':>15}")
    for value in np.unique(pi)[::-1]:
        sel = pi == value
        click.echo(f"{value:>10.3g}  {int(sel.sum()):>8}  {res.hess_trace[sel].mean():>14.4g}  {res.hess_eig_max[sel].mean():>15.4g}")
