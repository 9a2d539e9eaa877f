"""A progress line for long runs: step, loss, steps per second, time left."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Redraws one line on a terminal at most every ``interval`` seconds.

    Off a terminal (a log file), prints a line at each tenth of the run instead.
    """

    def __init__(self, stream=None, interval: float = 0.25, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._first = self._last = 0
        self._t0 = self._shown = 0.0
        self._next_tenth = 1
        self._unit, self._per_step = "steps", 1.0

    def start(self, first_step: int, last_step: int, *, unit: str = "steps", per_step: float = 1.0) -> None:
        """Begin at ``first_step``; the rate is shown in ``unit``/s, ``per_step`` units a step."""
        self._first, self._last = first_step, last_step
        self._unit, self._per_step = unit, per_step
        self._t0 = self._shown = time.perf_counter()
        self._next_tenth = 1

    def update(self, step: int, loss: float) -> None:
        now = time.perf_counter()
        span = max(1, self._last - self._first)
        done = step - self._first
        if self.tty:
            if now - self._shown < self.interval and step != self._last:
                return
        elif done < self._next_tenth * span / 10 and step != self._last:
            return
        else:
            self._next_tenth = int(10 * done / span) + 1
        self._shown = now
        rate = done / (now - self._t0) if now > self._t0 and done else 0.0
        left = (self._last - step) / rate if rate else float("nan")
        width = 24
        filled = int(width * done / span)
        text = (
            f"[{'#' * filled}{'.' * (width - filled)}] step {step}/{self._last}  loss {loss:.4f}  "
            f"{rate * self._per_step:.1f} {self._unit}/s  {left:.0f}s left"
        )
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
