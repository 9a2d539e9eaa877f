"""Click parameter types of hti's options: step sizes and step lists."""

from __future__ import annotations

import click

from hti.config import ConfigError, parse_lr


class StepSize(click.ParamType):
    """A positive step size: ``1e-3``, ``0.001`` or ``10^-2.5``."""

    name = "LR"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            return parse_lr(value)
        except ConfigError as err:
            self.fail(str(err).removeprefix("lr "), param, ctx)


class StepList(click.ParamType):
    """Comma-separated steps; ``A:B:S`` adds A, A+S, ... up to B inclusive.

    >>> StepList().convert("0,1,5:20:5", None, None)
    (0, 1, 5, 10, 15, 20)
    """

    name = "LIST"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        steps: set[int] = set()
        for item in filter(None, (s.strip() for s in str(value).split(","))):
            try:
                parts = [int(p) for p in item.split(":")]
            except ValueError:
                self.fail(f"expected integers or A:B:S ranges separated by commas; got {item!r}", param, ctx)
            if len(parts) == 1:
                steps.add(parts[0])
            elif len(parts) == 3 and parts[2] > 0:
                steps.update(range(parts[0], parts[1] + 1, parts[2]))
            else:
                self.fail(f"a range is A:B:S with S > 0; got {item!r}", param, ctx)
        if any(s < 0 for s in steps):
            self.fail(f"steps must be >= 0; got {sorted(s for s in steps if s < 0)}", param, ctx)
        return tuple(sorted(steps))


class TrackList(click.ParamType):
    """Comma-separated curvature quantities to track: eig, top, coupling.

    >>> TrackList().convert("coupling,eig", None, None)
    ('eig', 'coupling')
    """

    name = "LIST"

    def convert(self, value, param, ctx):
        from hti.linsoftmax.curvature import TRACKABLE  # noqa: PLC0415

        if isinstance(value, tuple):
            return value
        items = [s.strip() for s in str(value).split(",") if s.strip()]
        bad = [s for s in items if s not in TRACKABLE]
        if bad:
            self.fail(f"expected a comma-separated subset of {','.join(TRACKABLE)}; got {','.join(bad)}", param, ctx)
        return tuple(t for t in TRACKABLE if t in items)
