"""What every run configuration shares: its error type, step-size parsing, checks.

Each engine has a frozen, validated config dataclass (:class:`hti.linsoftmax.config.
LinearConfig`); validation raises :class:`ConfigError` naming what was expected and what
arrived. Step sizes may be given as floats or as ``"10^-2.5"`` strings (the paper's grid
is in powers of ten); the resolved float is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any


class ConfigError(ValueError):
    """An invalid option value; the message names what was expected and what arrived."""


_POW10 = re.compile(r"^\s*10\s*(\^|\*\*)\s*([+-]?\d+(\.\d*)?)\s*$")


def parse_lr(text: str | float) -> float:
    """A positive finite step size from ``1e-3``, ``0.001`` or ``10^-2.5``.

    >>> parse_lr("10^-2.5") == 10**-2.5, parse_lr("1e-3")
    (True, 0.001)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _POW10.match(str(text))
        try:
            value = 10 ** float(match.group(2)) if match else float(text)
        except ValueError:
            raise ConfigError(f"lr must be a number like 1e-3 or 10^-2.5; got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"lr must be a positive finite number; got {text!r}")
    return value


def format_lr(lr: float) -> str:
    """``10^-2.5`` when lr is a half-integer power of ten, else ``%g``.

    >>> format_lr(10**-3.5), format_lr(0.002)
    ('10^-3.5', '0.002')
    """
    e = math.log10(lr)
    if abs(2 * e - round(2 * e)) < 1e-9:
        e = round(2 * e) / 2
        return f"10^{int(e)}" if e == int(e) else f"10^{e}"
    return f"{lr:g}"


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be {rng}; got {value}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_float(name: str, value: Any, lo: float, hi: float, hi_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or value > hi or (hi_open and value == hi):
        bracket = ")" if hi_open else "]"
        raise ConfigError(f"{name} must be a number in [{lo}, {hi}{bracket}; got {value!r}")



class SerializableConfig:
    """JSON round trip, changes and a content hash for the frozen config dataclasses.

    Tuples are stored as JSON lists (``tuple_fields`` names them so that they come back
    as tuples); ``lr_default`` (whether the step size was a default) travels along but
    is not part of the identity.
    """

    tuple_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in self.tuple_fields:
            out[name] = list(out[name])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} fields {unknown}; expected some of {sorted(known)}")
        data = dict(data)
        lr_default = bool(data.pop("lr_default", False))
        for name in cls.tuple_fields:
            if name in data:
                data[name] = tuple(data[name])
        cfg = cls(**data)
        object.__setattr__(cfg, "lr_default", lr_default)
        return cfg

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """12 hex digits of a hash of every field but ``lr_default``."""
        key = self.to_dict()
        key.pop("lr_default", None)
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
