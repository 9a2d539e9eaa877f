"""The end of a run on the command line: the per-group summary, the status, the next step."""

from __future__ import annotations

import sys

import click


def report(result, command: str) -> None:
    """Print the summary of ``result`` (a :class:`hti.runs.RunResult`); exit 130 if interrupted."""
    from hti.analysis.summary import format_summary  # noqa: PLC0415
    from hti.storage import read_trajectory  # noqa: PLC0415

    if result.path is None:  # in memory, or not rank 0 of a distributed run
        return
    data = read_trajectory(result.path, names=("step", "loss", "class_loss", "class_counts", "eval_class_counts", "val_loss"))
    steps = data["step"]
    if steps.size:
        click.echo(format_summary(data["class_counts"], steps, data["class_loss"], data["loss"],
                                  weights=data.get("eval_class_counts")))
        if "val_loss" in data:
            click.echo(f"validation loss: {data['val_loss'][0]:.4f} at step {steps[0]}, "
                       f"{data['val_loss'][-1]:.4f} at step {steps[-1]}")  # fmt: skip
    taken = result.last_step - (result.resumed_from or 0)
    pace = f"{result.seconds_per_step * 1e3:.1f} ms per step" if result.seconds_per_step < 1 else f"{result.seconds_per_step:.3g} s per step"
    if result.unit != "steps" and result.seconds_per_step > 0:
        pace += f", {result.units_per_step / result.seconds_per_step:,.0f} {result.unit}/s"
    click.echo(f"status {result.status}: step {result.last_step} of {data['attrs']['config']['steps']}, {pace} "
               f"over {taken} steps (setup {result.setup_seconds:.1f} s); trajectory {result.path}")  # fmt: skip
    if result.status == "diverged":
        click.echo(f"the loss became NaN or inf at step {result.last_step}; the rows up to it are kept")
    elif result.status == "interrupted":
        click.echo(f"interrupted; continue with: hti {command} --resume {result.path}")
        sys.exit(130)
