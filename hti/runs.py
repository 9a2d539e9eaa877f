"""What both training loops share: how a run ends, and Ctrl-C as a clean stop."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RunResult:
    """How a run ended: status, the store it wrote, its file, timings and throughput.

    ``units_per_step`` ``unit`` (tokens, images, samples) are processed per step.
    """

    status: str
    store: Any
    path: Path | None
    last_step: int
    seconds_per_step: float
    setup_seconds: float
    resumed_from: int | None = None
    units_per_step: float = 0.0
    unit: str = "steps"


class StopOnSignal:
    """Turn the first SIGINT/SIGTERM into a request to stop after the current row."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: abort now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
