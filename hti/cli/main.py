"""The ``hti`` command group; each subcommand lives in its own module.

Only click is imported at the top: ``hti --help`` and ``hti linear --help`` load neither
torch nor cupy. Bad input ends in one ``Error:`` line naming what was expected and what
arrived, with exit code 2, never a traceback.
"""

from __future__ import annotations

import functools

import click

from hti import __version__


class InputError(click.ClickException):
    """Bad input found after parsing (a file, memory, a device): exit code 2."""

    exit_code = 2


def reports_bad_input(func):
    """Turn the library's input errors into :class:`InputError`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from hti.backend import BackendUnavailable  # noqa: PLC0415
        from hti.config import ConfigError  # noqa: PLC0415
        from hti.storage import StorageError  # noqa: PLC0415

        try:
            return func(*args, **kwargs)
        except (ConfigError, StorageError, BackendUnavailable) as err:
            raise InputError(str(err)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hti")
def cli() -> None:
    """hti: heavy-tailed class imbalance, and why Adam beats GD on it.

    Reproduces Kunstner et al. (2024) with an exact softmax-regression engine.
    """


def _register() -> None:
    from hti.cli.linear import linear  # noqa: PLC0415

    cli.add_command(linear)


_register()
