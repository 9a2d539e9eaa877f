"""The step-size grid: the decade grid, the selection rules, shards, and a tiny real grid."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest

from hti.analysis.grid import (
    collect,
    execute,
    lr_grid,
    plan,
    refine,
    run_grid,
    run_path,
    score,
    select_final,
    select_groups,
    select_paper,
    shard,
    write_grid_json,
)
from hti.config import parse_lr
from hti.linsoftmax.config import LinearConfig
from hti.linsoftmax.train import run
from hti.storage import read_trajectory

I = 5.0  # the initial loss of the constructed runs


def _run(lr, final, ratio=1.0, seed=0, status="completed", initial=I, optim="gd", momentum=True):
    return {"optim": optim, "momentum": momentum, "lr": lr, "seed": seed, "status": status, "initial_loss": initial,
            "final_loss": final, "max_loss_ratio": ratio, "path": f"r-{lr}-{seed}.h5"}  # fmt: skip


# -- the step sizes -------------------------------------------------------------------------
def test_lr_grid_is_the_exact_powers_of_ten_both_bounds_included():
    grid = lr_grid(1e-6, 1e1)
    assert grid == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert all(type(lr) is float for lr in grid)
    assert grid == [parse_lr(f"1e{k}") for k in range(-6, 2)]  # what --lr 1e-3 gives: the same run ids
    assert lr_grid(parse_lr("10^-6"), parse_lr("10^1")) == grid  # 10^-6 written as a power
    assert lr_grid(1e-3, 1e-3) == [1e-3]
    assert lr_grid(1e-30, 1e-28) == [1e-30, 1e-29, 1e-28]


@pytest.mark.parametrize("lo, hi, message", [
    (2e-3, 1e-1, "lower bound of the step-size grid must be a power of ten like 1e-6; got 0.002"),
    (1e-3, 0.5, "upper bound of the step-size grid must be a power of ten like 1e-6; got 0.5"),
    (10**-2.5, 1.0, "lower bound .* got 0.00316"),
    (0.0, 1.0, "got 0.0"),
    (-1e-3, 1.0, "got -0.001"),
    (float("nan"), 1.0, "got nan"),
    (1e-1, 1e-3, "needs lower <= upper; got 1e-1 > 1e-3"),
])  # fmt: skip
def test_lr_grid_refuses_bad_bounds(lo, hi, message):
    with pytest.raises(ValueError, match=message):
        lr_grid(lo, hi)


def test_refine_gives_the_half_decade_neighbours_as_parse_lr_does():
    assert refine(1e-3) == [parse_lr("10^-3.5"), parse_lr("10^-2.5")]
    assert refine(1.0) == [10**-0.5, 10**0.5]
    assert refine(10.0) == [parse_lr("10^0.5"), parse_lr("10^1.5")]
    with pytest.raises(ValueError, match="refine expects a power of ten .* got 0.00316"):
        refine(10**-2.5)


# -- plan and shards ------------------------------------------------------------------------
def _base(**kw):
    return LinearConfig(**{"m": 3, "steps": 5, "dtype": "float64", **kw})


def test_plan_builds_every_config_in_a_fixed_order():
    configs = plan(_base(), ["adam", "gd"], "both", [1e-2, 1e-3], 2)
    assert len(configs) == 2 * 2 * 2 * 2 == len({c.run_id for c in configs})
    keys = [(c.optim, c.momentum, c.lr, c.seed) for c in configs]
    assert keys[:4] == [("gd", True, 1e-3, 0), ("gd", True, 1e-3, 1), ("gd", True, 1e-2, 0), ("gd", True, 1e-2, 1)]
    assert keys[4][:2] == ("gd", False) and keys[8][:2] == ("adam", True)
    assert all(c.m == 3 and c.steps == 5 and c.data_seed == 0 and not c.lr_default for c in configs)
    assert [c.run_id for c in plan(_base(), ["gd", "adam"], "both", [1e-3, 1e-2], [1, 0])] == [c.run_id for c in configs]
    assert {c.momentum for c in plan(_base(), ["gd"], "off", [1e-3], 1)} == {False}
    with pytest.raises(ValueError, match="optimizers of the linear engine are gd, adam, normgd, sign; got adamw"):
        plan(_base(), ["gd", "adamw"], "on", [1e-3], 1)
    with pytest.raises(ValueError, match="momentum must be one of on, off, both; got 'yes'"):
        plan(_base(), ["gd"], "yes", [1e-3], 1)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 40])
def test_shards_cover_the_grid_exactly_once(n):
    configs = plan(_base(), ["gd", "adam", "sign"], "both", lr_grid(1e-4, 1e0), 2)  # 60 configs
    parts = [shard(configs, i, n) for i in range(1, n + 1)]
    ids = [c.run_id for part in parts for c in part]
    assert sorted(ids) == sorted(c.run_id for c in configs)  # every config once, none twice
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [c.run_id for c in shard(configs[::-1], 1, n)] == [c.run_id for c in parts[0]]  # input order is irrelevant


@pytest.mark.parametrize("i, n", [(0, 2), (3, 2), (1, 0), (-1, 3)])
def test_bad_shards_are_refused(i, n):
    with pytest.raises(ValueError, match=rf"shard i/n needs 1 <= i <= n; got {i}/{n}"):
        shard([], i, n)


# -- the selection rules ----------------------------------------------------------------------
def test_a_diverged_run_scores_its_initial_loss():
    runs = [_run(1e-3, 4.0), _run(1e-2, float("nan"), math.inf, status="diverged"), _run(1e-1, 4.5)]
    assert score(runs[1], "paper") == score(runs[1], "final") == I
    assert select_paper(runs) == (1e-3, 1e-3) and select_final(runs) == 1e-3
    all_diverged = [_run(lr, math.inf, math.inf, status="diverged") for lr in (1e-3, 1e-2)]
    assert select_paper(all_diverged)[0] == 1e-3 and select_final(all_diverged) == 1e-3  # ties: the smaller


def test_a_run_ending_above_its_initial_loss_scores_its_initial_loss():
    runs = [_run(1e-3, 4.9), _run(1e-2, 5.2, 1.04), _run(1e-1, 6.0, 1.2)]
    assert [score(r, "paper") for r in runs] == [4.9, I, I]
    assert select_paper(runs) == (1e-3, 1e-3)


def test_the_score_is_the_max_over_seeds():
    runs = [_run(1e-3, 3.0, seed=0), _run(1e-3, 3.2, seed=1),  # max 3.2
            _run(1e-2, 1.0, seed=0), _run(1e-2, 3.5, seed=1),  # max 3.5: one bad seed spoils it
            _run(1e-1, 0.5, seed=0), _run(1e-1, 9.0, 2.0, seed=1)]  # max I: the second seed failed  # fmt: skip
    assert select_paper(runs) == (1e-3, 1e-3) and select_final(runs) == 1e-3
    runs[3] = _run(1e-2, 3.1, seed=1)
    assert select_paper(runs)[0] == 1e-2 and select_final(runs) == 1e-2


def test_ties_go_to_the_smaller_step_size():
    runs = [_run(1e-1, 2.0), _run(1e-3, 2.0), _run(1e-2, 2.0)]
    assert select_paper(runs) == (1e-3, 1e-3) and select_final(runs) == 1e-3


def test_the_stability_step_repeats_until_a_stable_step_size():
    runs = [_run(1e-4, 4.0), _run(1e-3, 3.0, 1.001), _run(1e-2, 2.0, 1.5), _run(10**-1.5, 1.5, 1.2), _run(1e-1, 1.0, 3.0)]
    assert select_paper(runs) == (1e-4, 1e-1)  # 1e-1, 10^-1.5, 1e-2, 1e-3 all rose above their initial loss
    assert select_final(runs) == 1e-1  # no stability step
    runs[0] = _run(1e-4, 4.0, 1.01)
    assert select_paper(runs) == (1e-4, 1e-1)  # down to the smallest, stable or not
    # one unstable seed is enough to step down
    seeds = [_run(1e-3, 3.0, seed=0), _run(1e-3, 3.0, seed=1), _run(1e-2, 2.0, seed=0), _run(1e-2, 2.0, 1.3, seed=1)]
    assert select_paper(seeds) == (1e-3, 1e-2)


def test_the_final_rule_fails_runs_only_above_1_5_times_their_initial_loss():
    runs = [_run(1e-3, 1.2 * I, 1.2), _run(1e-2, 1.6 * I, 1.6)]
    assert [score(r, "final") for r in runs] == [1.2 * I, I]  # 1.2x counts its final loss, 1.6x fails
    assert [score(r, "paper") for r in runs] == [I, I]
    assert select_final(runs) == 1e-2 and select_paper(runs) == (1e-3, 1e-3)
    assert select_final([_run(1e-3, 1.5 * I, 1.5), _run(1e-2, 2 * I, 2)]) == 1e-2  # 1.5x is not above 1.5x


def test_groups_flag_disagreement_and_keep_the_grid_order():
    runs = [_run(1e-3, 3.0, optim="adam", momentum=False), _run(1e-2, 2.0, 1.1, optim="adam", momentum=False),
            _run(1e-3, 3.0, optim="gd", momentum=False), _run(1e-2, 2.0, optim="gd", momentum=False),
            _run(1e-3, 3.0, optim="sign"), _run(1e-2, 4.0, optim="sign")]  # fmt: skip
    groups = select_groups(runs)
    assert [g["label"] for g in groups] == ["GD-m", "Adam-m", "Sign+m"]
    assert [(g["selected_lr_paper"], g["selected_lr_final"], g["disagree"]) for g in groups] == [
        (1e-2, 1e-2, False), (1e-3, 1e-2, True), (1e-3, 1e-3, False)]  # fmt: skip
    assert groups[1]["paper_before_stability"] == 1e-2


def test_selection_needs_finished_runs():
    with pytest.raises(ValueError, match="selection needs finished runs; 1 are not .*lr 0.01 seed 0 .interrupted"):
        select_paper([_run(1e-3, 3.0), _run(1e-2, 2.0, status="interrupted")])
    with pytest.raises(ValueError, match="selection needs finished runs; 1 are not .*missing"):
        select_final([_run(1e-3, None, None, status="missing", initial=None)])


def test_grid_json_has_the_schema_and_writes_non_finite_losses_as_null(tmp_path):
    runs = [_run(1e-3, 3.0), _run(1e-2, float("nan"), math.inf, status="diverged")]
    path = write_grid_json(tmp_path, select_groups(runs), "linear", "final")
    data = json.loads(path.read_text())
    assert data == {"engine": "linear", "select": "final", "results": [{
        "optim": "gd", "momentum": True, "label": "GD+m", "selected_lr": 1e-3, "selected_lr_paper": 1e-3,
        "selected_lr_final": 1e-3, "disagree": False, "runs": [
            {"lr": 1e-3, "seed": 0, "status": "completed", "initial_loss": I, "final_loss": 3.0, "max_loss_ratio": 1.0,
             "path": "r-0.001-0.h5"},
            {"lr": 1e-2, "seed": 0, "status": "diverged", "initial_loss": I, "final_loss": None, "max_loss_ratio": None,
             "path": "r-0.01-0.h5"}]}]}  # fmt: skip
    with pytest.raises(ValueError, match="select must be one of paper, final; got 'best'"):
        write_grid_json(tmp_path, [], "linear", "best")


# -- a tiny real grid -------------------------------------------------------------------------
GRID = {"optims": ["gd", "adam"], "momentum": "on", "lrs": [1e-2, 1e-1, 1.0], "seeds": 2}


def _plan(**kw):
    g = {**GRID, **kw}
    return plan(_base(), g["optims"], g["momentum"], g["lrs"], g["seeds"])


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")}


class _SignalAt:
    """A progress object that sends SIGINT to this process at a step (as in test_train.py)."""

    def __init__(self, step):
        self.step = step

    def start(self, first, last):
        pass

    def update(self, step, loss):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        pass


def test_execute_runs_collects_and_reuses(tmp_path):
    configs = _plan()
    seen = []
    report = execute(configs, tmp_path, progress=lambda done, total, o: seen.append((done, total, o.action)))
    assert report.count("ran") == 12 and not report.errors and not report.interrupted
    assert seen[-1] == (12, 12, "ran")
    runs = collect(tmp_path, configs)
    assert [(r["optim"], r["lr"], r["seed"]) for r in runs] == [(c.optim, c.lr, c.seed) for c in configs]
    for r, c in zip(runs, configs):
        data = read_trajectory(run_path(tmp_path, c), names=("loss",))
        assert r["status"] == data["attrs"]["status"] == "completed" and r["path"] == str(run_path(tmp_path, c))
        assert r["initial_loss"] == data["loss"][0] and r["final_loss"] == data["loss"][-1]
        assert r["max_loss_ratio"] == pytest.approx(data["loss"].max() / data["loss"][0])
    before = _mtimes(tmp_path)
    again = execute(configs, tmp_path)
    assert again.count("reused") == 12 and again.count("ran") == 0
    assert _mtimes(tmp_path) == before  # nothing was rewritten
    assert collect(tmp_path, configs) == runs


def test_an_interrupted_run_is_resumed_and_the_others_untouched(tmp_path):
    configs = _plan(optims=["adam"], seeds=1)
    execute(configs[1:], tmp_path)
    before = _mtimes(tmp_path)
    cut = run_path(tmp_path, configs[0])
    assert run(configs[0], cut, progress=_SignalAt(2)).status == "interrupted"
    assert read_trajectory(cut)["step"].tolist() == [0, 1, 2]
    missing = _plan(optims=["gd"], seeds=1)[0]
    report = execute([*configs, missing], tmp_path)
    assert (report.count("resumed"), report.count("reused"), report.count("ran")) == (1, 2, 1)
    data = read_trajectory(cut)
    assert data["attrs"]["status"] == "completed" and data["step"].tolist() == [0, 1, 2, 3, 4, 5]
    whole = run(configs[0], tmp_path / "whole.h5")  # resuming continues exactly
    assert np.array_equal(data["loss"], read_trajectory(whole.path)["loss"])
    assert {k: v for k, v in _mtimes(tmp_path).items() if k in before} == before


def test_a_killed_run_is_resumed(tmp_path):
    from hti.storage import HDF5Trajectory

    cfg = _plan(optims=["gd"], seeds=1)[0]
    path = run_path(tmp_path, cfg)
    run(cfg, path)
    with HDF5Trajectory.open(path) as store:  # what kill -9 leaves: status running
        store.set_status("running")
    assert execute([cfg], tmp_path).count("resumed") == 1
    assert read_trajectory(path)["attrs"]["status"] == "completed"


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    configs = _plan(optims=["gd"], seeds=1)
    run_path(tmp_path, configs[1]).mkdir(parents=True)  # a folder where the file should be: that run fails
    report = execute(configs, tmp_path)
    assert len(report.errors) == 1 and report.errors[0].cfg.run_id == configs[1].run_id
    assert report.count("ran") == 2 and not report.interrupted


def test_two_workers_give_the_results_of_one(tmp_path):
    configs = _plan(seeds=1)
    one = execute(configs, tmp_path / "one", workers=1)
    two = execute(configs, tmp_path / "two", workers=2)
    assert one.count("ran") == two.count("ran") == 6 and not two.errors
    strip = [{k: v for k, v in r.items() if k != "path"} for r in collect(tmp_path / "one", configs)]
    assert [{k: v for k, v in r.items() if k != "path"} for r in collect(tmp_path / "two", configs)] == strip


def test_workers_get_one_blas_thread_and_the_parent_keeps_its_environment():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from hti.analysis import execute as G

    before = {var: os.environ.get(var) for var in G.THREAD_VARS}
    with G._one_thread_children(), ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=G._init_worker
    ) as pool:
        assert [pool.submit(os.getenv, var).result() for var in G.THREAD_VARS] == ["1"] * len(G.THREAD_VARS)
    assert {var: os.environ.get(var) for var in G.THREAD_VARS} == before


def test_run_grid_refines_and_shards_finish_when_run_twice(tmp_path):
    kw = {**GRID, "seeds": 1}
    whole = run_grid(_base(), *kw.values(), tmp_path / "whole")
    assert whole.complete and whole.grid_path == tmp_path / "whole" / "grid.json"
    phase1 = select_groups(collect(tmp_path / "whole", whole.phase1))
    expected = {(g["optim"], lr) for g in phase1 for lr in refine(g["selected_lr_paper"]) if 1e-2 <= lr <= 1.0}
    assert expected and {(c.optim, c.lr) for c in whole.phase2} == expected
    assert len(whole.runs) == 6 + len(whole.phase2)
    first = run_grid(_base(), *kw.values(), tmp_path / "sh", shard_of=(1, 2))
    assert not first.complete and "phase 1: 3 of 6 runs are not finished yet" in first.message
    second = run_grid(_base(), *kw.values(), tmp_path / "sh", shard_of=(2, 2))
    assert not second.complete and "phase 2:" in second.message  # shard 1 has not run its phase 2 part
    again = run_grid(_base(), *kw.values(), tmp_path / "sh", shard_of=(1, 2))
    assert again.complete
    again2 = run_grid(_base(), *kw.values(), tmp_path / "sh", shard_of=(2, 2))
    assert again2.complete and again2.reports[1].count("reused") == len(again2.reports[1].outcomes)

    def strip(path):
        data = json.loads(path.read_text())
        for g in data["results"]:
            for r in g["runs"]:
                r.pop("path")
        return data

    assert strip(again.grid_path) == strip(whole.grid_path)
