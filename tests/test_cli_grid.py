"""hti grid from the command line: a tiny grid, reruns, shards, and every bad input (exit 2)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import assert_help_imports_none_of

from hti.cli.grid import format_results, grid

TINY = ["linear", "--m", "3", "--steps", "5", "--dtype", "float64", "--optim", "gd,adam", "--momentum", "on",
        "--lr", "1e-2:1e0", "--seeds", "2"]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(grid, [str(a) for a in args], catch_exceptions=False)


def test_help_does_not_import_torch():
    assert_help_imports_none_of("from hti.cli.grid import grid as command", ["--help"])


def test_a_tiny_grid_writes_grid_json_and_prints_the_selection(tmp_path):
    result = invoke(*TINY, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "grid.json").read_text())
    assert data["engine"] == "linear" and data["select"] == "paper"
    assert [g["label"] for g in data["results"]] == ["GD+m", "Adam+m"]
    for g in data["results"]:
        assert list(g) == ["optim", "momentum", "label", "selected_lr", "selected_lr_paper", "selected_lr_final",
                           "disagree", "runs"]  # fmt: skip
        assert g["selected_lr"] == g["selected_lr_paper"] and g["disagree"] == (g["selected_lr_paper"] != g["selected_lr_final"])
        assert all(list(r) == ["lr", "seed", "status", "initial_loss", "final_loss", "max_loss_ratio", "path"] for r in g["runs"])
        lrs = sorted({r["lr"] for r in g["runs"]})
        assert len(g["runs"]) == 2 * len(lrs) and len(lrs) in (4, 5)  # 3 decades + 1 or 2 half-decades
    assert "phase 1: 12 runs in this shard: 12 ran" in result.output
    assert "Selected step sizes (rule paper):" in result.output
    for g in data["results"]:
        assert f"{g['label']}: paper " in result.output
    runs = len(list(tmp_path.glob("*.h5")))
    again = invoke(*TINY, "--out", tmp_path)
    assert again.exit_code == 0 and "12 reused" in again.output and " 0 ran" in again.output
    assert len(list(tmp_path.glob("*.h5"))) == runs
    assert invoke(*TINY, "--out", tmp_path, "--select", "final").exit_code == 0  # may refine around other picks
    final = json.loads((tmp_path / "grid.json").read_text())
    assert final["select"] == "final" and all(g["selected_lr"] == g["selected_lr_final"] for g in final["results"])


def test_shards_stop_after_phase_1_until_every_shard_has_run(tmp_path):
    args = [*TINY[:-2], "--seeds", "1", "--no-refine", "--out", tmp_path]
    first = invoke(*args, "--shard", "1/2")
    assert first.exit_code == 0, first.output
    assert "phase 1: 3 runs in this shard" in first.output
    assert "phase 1: 3 of 6 runs are not finished yet (other shards)" in first.output and "run the command again" in first.output
    assert not (tmp_path / "grid.json").exists()
    second = invoke(*args, "--shard", "2/2")
    assert second.exit_code == 0 and (tmp_path / "grid.json").exists()


def test_deep_engine_on_synthetic_data(tmp_path):
    pytest.importorskip("torch")
    result = invoke("deep", "--model", "linear", "--m", "3", "--steps", "3", "--eval-every", "1", "--optim", "adamw,sign",
                    "--momentum", "off", "--lr", "1e-2:1e-1", "--no-refine", "--out", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "grid.json").read_text())
    assert data["engine"] == "deep" and [g["label"] for g in data["results"]] == ["Sign-m", "AdamW-m"]


def test_format_results_marks_disagreement():
    runs = [{"lr": lr, "seed": 0, "status": "completed", "initial_loss": 5.0, "final_loss": f, "max_loss_ratio": q,
             "path": ""} for lr, f, q in ((1e-2, 3.0, 1.0), (1e-1, 1.0, 2.0))]  # fmt: skip
    text = format_results([{"label": "Adam+m", "selected_lr_paper": 1e-2, "selected_lr_final": 1e-1, "disagree": True,
                            "paper_before_stability": 1e-1, "runs": runs}], "paper")  # fmt: skip
    assert "Adam+m: paper 10^-2, final 10^-1   DISAGREE (paper: 10^-1 rose above its initial loss" in text
    assert "<- paper" in text and "<- final" in text and text.endswith("Adam+m    10^-2")


BAD_INPUTS = [
    (["--lr", "1e-1:1e-3"], "needs lower <= upper; got 1e-1 > 1e-3"),
    (["--lr", "2e-3:1e-1"], "must be a power of ten like 1e-6; got 0.002"),
    (["--lr", "10^-2.5:1"], "must be a power of ten like 1e-6; got 0.00316"),
    (["--lr", "1e-3"], "expected LO:HI with two powers of ten, e.g. 1e-6:1e1; got '1e-3'"),
    (["--lr", "a:1"], "must be a number like 1e-3 or 10^-2.5; got 'a'"),
    (["--optim", "gd,adamw"], "--optim expects a comma-separated subset of gd,adam,normgd,sign for ENGINE linear; got 'gd,adamw'"),
    (["--optim", "sgin"], "got 'sgin'"),
    (["--optim", ","], "got ','"),
    (["--shard", "3/2"], "expected i/N with 1 <= i <= N; got '3/2'"),
    (["--shard", "0/2"], "expected i/N with 1 <= i <= N; got '0/2'"),
    (["--shard", "1-2"], "expected i/N such as 1/4; got '1-2'"),
    (["--workers", "0"], "0 is not in the range x>=1"),
    (["--seeds", "0"], "0 is not in the range x>=1"),
    (["--momentum", "maybe"], "'maybe' is not one of 'on', 'off', 'both'"),
    (["--select", "best"], "'best' is not one of 'paper', 'final'"),
    (["--model", "cnn"], "--model applies to ENGINE deep; got ENGINE linear"),
    (["--m", "1"], "1 is not in the range 2<=x<=16"),
    (["--input-mean", "0"], "input_mean and input_scale apply to gaussian inputs only"),
    (["--m", "16"], "needs about"),
    (["--m", "12", "--optim", "adam", "--workers", "64"], "use fewer --workers"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_one_message_and_exit_2(tmp_path, args, message):
    out = tmp_path / "g"
    result = invoke("linear", "--m", "3", "--steps", "1", *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_engine_and_out_are_required(tmp_path):
    result = invoke("linear", "--m", "3")
    assert result.exit_code == 2 and "Missing option '--out'" in result.output
    result = invoke("quadratic", "--out", tmp_path / "g")
    assert result.exit_code == 2 and "'quadratic' is not one of 'linear', 'deep'" in result.output
    result = invoke("linear", "--record-every", "2", "--eval-every", "3", "--out", tmp_path / "g")
    assert result.exit_code == 2 and "--eval-every applies to ENGINE deep; got ENGINE linear" in result.output
    result = invoke("deep", "--out", tmp_path / "g")
    assert result.exit_code == 2 and "ENGINE deep needs --model" in result.output
    result = invoke("deep", "--model", "linear", "--record-every", "2", "--out", tmp_path / "g")
    assert result.exit_code == 2 and "--record-every applies to ENGINE linear; got ENGINE deep" in result.output
