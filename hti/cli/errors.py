"""How the CLI reports bad input: one ``Error:`` line and exit code 2, never a traceback."""

from __future__ import annotations

import functools

import click


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
