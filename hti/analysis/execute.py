"""Running the runs of a grid: reuse, resume or start each one, in one or K processes.

Every run is the file ``DIR/<run id>.h5`` (:func:`run_path`); the run id hashes the
config, so :func:`execute` reuses a finished run (completed or diverged), resumes an
unfinished one (running after a kill, or interrupted) and starts a missing one. With
``workers > 1`` the runs go to K spawned processes that run one BLAS/OpenMP thread each
(:data:`THREAD_VARS` = 1), so that K workers use K cores instead of oversubscribing them;
a worker that dies has its run retried once, resumed, and the others go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

FINISHED = ("completed", "diverged")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")  # fmt: skip


def engine_of(cfg) -> str:
    """``"linear"`` for a LinearConfig, ``"deep"`` for a DeepConfig."""
    name = type(cfg).__name__
    if name == "LinearConfig":
        return "linear"
    if name == "DeepConfig":
        return "deep"
    raise TypeError(f"expected a LinearConfig or a DeepConfig; got {name}")


def run_path(folder: str | os.PathLike, cfg) -> Path:
    """``folder/<run id>.h5``."""
    return Path(folder) / f"{cfg.run_id}.h5"



def unfinished(runs: Iterable[dict]) -> list[dict]:
    """The runs that are not completed or diverged (missing, running, interrupted, ...)."""
    return [r for r in runs if r["status"] not in FINISHED or r["initial_loss"] is None]


class Outcome(NamedTuple):
    """What :func:`execute` did with one config: ``action`` reused/run/resumed/rerun."""

    cfg: Any
    action: str
    status: str | None
    seconds: float
    error: str | None = None


@dataclass
class ExecuteReport:
    """All outcomes of :func:`execute`; ``interrupted`` after Ctrl-C or SIGTERM."""

    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, action: str) -> int:
        return sum(o.action == action and o.error is None for o in self.outcomes)

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]


def _action(path: Path) -> str:
    """What a run's file needs: reuse, run, resume, rerun or busy (another process writes it)."""
    from hti.storage import StorageError, read_trajectory  # noqa: PLC0415

    if not path.exists():
        return "run"
    try:
        status = read_trajectory(path, names=())["attrs"].get("status")
    except StorageError as err:
        if "being written" in str(err):
            return "busy"
        return "rerun"  # a file cut short before its attributes were written: start over
    if status in FINISHED:
        return "reuse"
    return "resume"  # running (killed) or interrupted


def _train_module(engine: str):
    if engine == "linear":
        from hti.linsoftmax import train  # noqa: PLC0415
    else:
        from hti.deep import train  # noqa: PLC0415
    return train


def _config_class(engine: str):
    if engine == "linear":
        from hti.linsoftmax.config import LinearConfig  # noqa: PLC0415

        return LinearConfig
    from hti.deep.config import DeepConfig  # noqa: PLC0415

    return DeepConfig


def _work(engine: str, cfg_json: str, path: str, action: str) -> tuple[str, float]:
    """Run or resume one config (in this process or a worker); returns (status, seconds)."""
    train = _train_module(engine)
    t0 = time.perf_counter()
    if action == "resume":
        result = train.resume(path)
    else:
        result = train.run(_config_class(engine).from_json(cfg_json), path, force=action == "rerun")
    return result.status, time.perf_counter() - t0


def _init_worker() -> None:
    """One thread per worker. The variables are also set in the parent before the workers
    are spawned (:func:`_one_thread_children`): a worker imports NumPy while unpickling
    this very function, and BLAS reads them only when it loads."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    import sys  # noqa: PLC0415

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@contextmanager
def _one_thread_children():
    old = {var: os.environ.get(var) for var in THREAD_VARS}
    os.environ.update({var: "1" for var in THREAD_VARS})
    try:
        yield
    finally:
        for var, value in old.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


Progress = Callable[[int, int, Outcome], None]


def execute(
    configs: Sequence, folder: str | os.PathLike, workers: int = 1, progress: Progress | None = None
) -> ExecuteReport:
    """Bring every run of ``configs`` to a finished state in ``folder``.

    Finished files (completed, diverged) are reused untouched; running (killed) or
    interrupted ones are resumed with the engine's ``resume``; missing ones are run. With
    ``workers`` > 1 the runs go to that many spawned processes, each with one BLAS/OpenMP
    thread (environment variables :data:`THREAD_VARS` = 1, set before the workers import
    NumPy or torch). An exception in a run, or a worker that dies, is recorded as that
    run's error (a dead worker's run is retried once, resumed) and the other runs go on.
    Ctrl-C or SIGTERM interrupts the runs in progress cleanly (status ``interrupted``,
    resumable) and starts no more; ``report.interrupted`` is then set.

    ``progress(done, total, outcome)`` is called after each config.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = ExecuteReport()
    todo = []
    total = len(configs)

    def done(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if progress is not None:
            progress(len(report.outcomes), total, outcome)

    for cfg in configs:
        action = _action(run_path(folder, cfg))
        if action == "reuse":
            done(Outcome(cfg, "reused", None, 0.0))
        elif action == "busy":  # another process runs it: unfinished for now, not an error
            done(Outcome(cfg, "busy", None, 0.0))
        else:
            todo.append((cfg, action))
    if workers == 1 or len(todo) <= 1:
        _sequential(todo, folder, report, done)
    else:
        _parallel(todo, folder, min(workers, len(todo)), report, done)
    return report


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _label_action(action: str) -> str:
    return {"run": "ran", "resume": "resumed", "rerun": "rerun"}[action]


def _sequential(todo, folder: Path, report: ExecuteReport, done) -> None:
    for cfg, action in todo:
        t0 = time.perf_counter()
        try:
            status, seconds = _work(engine_of(cfg), cfg.to_json(), str(run_path(folder, cfg)), action)
        except KeyboardInterrupt:  # a second Ctrl-C: the run marked itself interrupted
            done(Outcome(cfg, _label_action(action), "interrupted", time.perf_counter() - t0))
            report.interrupted = True
            return
        except Exception as err:  # noqa: BLE001 (recorded, and the grid goes on)
            done(Outcome(cfg, _label_action(action), None, time.perf_counter() - t0, _error(err)))
            continue
        done(Outcome(cfg, _label_action(action), status, seconds))
        if status == "interrupted":
            report.interrupted = True
            return


def _parallel(todo, folder: Path, workers: int, report: ExecuteReport, done) -> None:
    """A window of ``workers`` runs in flight, so that the runs of a dead worker are known.

    A worker that dies breaks the pool: every run then in flight is retried once (resumed)
    in a new pool, and a run whose worker dies twice is recorded as an error.
    """
    import multiprocessing  # noqa: PLC0415

    queue = list(todo)
    tries: dict[str, int] = {}
    while queue and not report.interrupted:
        with _one_thread_children(), ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        ) as pool, _sigterm_to_workers(pool):
            flying: dict = {}
            broken = False
            try:
                while queue or flying:
                    while queue and len(flying) < workers and not (broken or report.interrupted):
                        cfg, action = queue.pop(0)
                        if action is None:  # a retry: look at its file now that the old pool is gone
                            action = _action(run_path(folder, cfg))
                            if action in ("reuse", "busy"):
                                done(Outcome(cfg, "reused" if action == "reuse" else "busy", None, 0.0))
                                continue
                        tries[cfg.run_id] = tries.get(cfg.run_id, 0) + 1
                        path = str(run_path(folder, cfg))
                        future = pool.submit(_work, engine_of(cfg), cfg.to_json(), path, action)
                        flying[future] = (cfg, action, time.perf_counter())
                    if not flying:
                        break
                    finished, _ = wait(list(flying), return_when=FIRST_COMPLETED)
                    for future in finished:
                        broken |= _settle(future, *flying.pop(future), queue, tries, report, done)
            except KeyboardInterrupt:  # Ctrl-C reached every process: the runs in flight stop cleanly
                report.interrupted = True
                for future, item in flying.items():
                    _settle(future, *item, queue, tries, report, done)


@contextmanager
def _sigterm_to_workers(pool):
    """SIGTERM to this process: pass it to the workers (their runs stop cleanly) and
    raise KeyboardInterrupt here, as Ctrl-C does (it reaches every process by itself)."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        workers = getattr(pool, "_processes", None) or {}  # pid -> Process (a private attribute)
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _settle(future, cfg, action: str, t0: float, queue: list, tries: dict, report, done) -> bool:
    """Record a finished future (or queue its retry); True if its worker died."""
    try:
        status, seconds = future.result()
    except BrokenProcessPool as err:
        if tries[cfg.run_id] < 2 and not report.interrupted:
            queue.insert(0, (cfg, None))  # its action is decided when it is resubmitted
        else:
            done(Outcome(cfg, _label_action(action), None, time.perf_counter() - t0,
                         f"its worker process died (tries: {tries[cfg.run_id]}): {err}"))  # fmt: skip
        return True
    except Exception as err:  # noqa: BLE001 (recorded, and the grid goes on)
        done(Outcome(cfg, _label_action(action), None, time.perf_counter() - t0, _error(err)))
        return False
    done(Outcome(cfg, _label_action(action), status, seconds))
    if status == "interrupted":  # SIGTERM or Ctrl-C reached the worker
        report.interrupted = True
    return False
