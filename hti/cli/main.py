"""The ``hti`` command group; each subcommand lives in its own module.

Only click is imported at the top: ``hti --help`` and ``hti linear --help`` load neither
torch nor cupy. Bad input ends in one ``Error:`` line naming what was expected and what
arrived, with exit code 2, never a traceback.
"""

from __future__ import annotations

import click

from hti import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hti")
def cli() -> None:
    """hti: heavy-tailed class imbalance, and why Adam beats GD on it.

    Reproduces Kunstner et al. (2024) with an exact softmax-regression engine.
    """


from hti.cli.deep import deep  # noqa: E402 (subcommands import no heavy modules)
from hti.cli.figure import figure, report  # noqa: E402
from hti.cli.grid import grid  # noqa: E402
from hti.cli.linear import linear  # noqa: E402
from hti.cli.plot import plot  # noqa: E402
from hti.cli.scaling import scaling  # noqa: E402
from hti.cli.spectrum import spectrum  # noqa: E402

for command in (linear, spectrum, scaling, deep, plot, figure, grid, report):
    cli.add_command(command)
