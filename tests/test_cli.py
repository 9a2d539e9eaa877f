"""The hti command: help, the happy path, and every bad input (exit 2, one message)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from hti.cli.main import cli
from hti.storage import read_trajectory


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args", [["--help"], ["linear", "--help"]])
def test_help_does_not_import_torch_or_cupy(args):
    code = (
        "import sys\nfrom hti.cli.main import cli\n"
        f"try:\n    cli({args!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('torch', 'cupy') if m in sys.modules]\nassert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage: " in result.stdout


def test_a_tiny_run_writes_a_file_and_prints_the_summary(tmp_path):
    out = tmp_path / "tiny.h5"
    result = invoke("linear", "--m", "3", "--steps", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "lr = 10^-3 (default: the paper's tuned value at m = 11)" in result.output
    assert "Loss by frequency group" in result.output and "status completed: step 3 of 3" in result.output
    data = read_trajectory(out)
    assert data["step"].tolist() == [0, 1, 2, 3] and data["attrs"]["config"]["m"] == 3


def test_options_reach_the_config(tmp_path):
    out = tmp_path / "o.h5"
    result = invoke("linear", "--m", "4", "--optim", "adam", "--no-momentum", "--lr", "10^-2", "--steps", "4",
                    "--inputs", "gaussian", "--input-mean", "0", "--input-scale", "2", "--dim", "50",
                    "--seed", "3", "--data-seed", "4", "--init", "zero", "--reweight", "inv",
                    "--dtype", "float64", "--record-every", "2", "--save-params-at", "0,2:4:2",
                    "--save-data", "--checkpoint-every", "2", "--beta2", "0.99", "--eps", "1e-6",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = read_trajectory(out)
    cfg = data["attrs"]["config"]
    expected = {"m": 4, "optim": "adam", "momentum": False, "lr": 0.01, "inputs": "gaussian", "input_mean": 0.0,
                "input_scale": 2.0, "dim": 50, "seed": 3, "data_seed": 4, "init": "zero", "reweight": "inv",
                "dtype": "float64", "record_every": 2, "save_params_at": [0, 2, 4], "save_data": True,
                "checkpoint_every": 2, "beta2": 0.99, "eps": 1e-6}  # fmt: skip
    assert {k: cfg[k] for k in expected} == expected
    assert data["step"].tolist() == [0, 2, 4] and data["data"]["X"].shape == (64, 50)


def test_dry_run_prints_the_estimate_and_writes_nothing(tmp_path):
    out = tmp_path / "dry.h5"
    result = invoke("linear", "--m", "11", "--optim", "adam", "--dry-run", "--out", str(out))
    assert result.exit_code == 0
    assert "m = 11 (n = 22528, c = 2047, d = 24576)" in result.output and "memory estimate: 3.4 GiB" in result.output
    assert not out.exists()


def test_a_diverging_run_exits_0_and_says_so(tmp_path):
    result = invoke("linear", "--m", "3", "--steps", "5", "--lr", "1e38", "--no-momentum", "--out", str(tmp_path / "d.h5"))
    assert result.exit_code == 0
    assert "status diverged" in result.output and "NaN or inf at step 1" in result.output


def test_an_interrupted_run_is_resumed_by_the_cli(tmp_path):
    import os
    import signal

    from hti.linsoftmax.config import LinearConfig
    from hti.linsoftmax.train import run

    class InterruptAt2:
        def start(self, first, last): ...
        def update(self, step, loss):
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)
        def close(self): ...

    out = tmp_path / "r.h5"
    assert run(LinearConfig(m=3, steps=4), out, progress=InterruptAt2()).status == "interrupted"
    result = invoke("linear", "--resume", str(out))
    assert result.exit_code == 0, result.output
    assert "resumed from step 2" in result.output and "status completed: step 4 of 4" in result.output
    assert read_trajectory(out)["step"].tolist() == [0, 1, 2, 3, 4]


BAD_INPUTS = [
    (["--optim", "sgin"], "'sgin' is not one of 'gd', 'adam', 'normgd', 'sign'"),
    (["--m", "1"], "1 is not in the range 2<=x<=16"),
    (["--m", "17"], "17 is not in the range 2<=x<=16"),
    (["--lr", "-1"], "must be a positive finite number; got '-1'"),
    (["--lr", "fast"], "must be a number like 1e-3 or 10^-2.5; got 'fast'"),
    (["--steps", "-1"], "-1 is not in the range x>=0"),
    (["--dim", "0"], "0 is not in the range x>=1"),
    (["--input-mean", "0"], "input_mean and input_scale apply to gaussian inputs only; got inputs=uniform"),
    (["--inputs", "orthogonal", "--m", "3", "--dim", "10"], "orthogonal inputs need dim >= n = 24 (m = 3); got dim = 10"),
    (["--save-params-at", "5", "--steps", "3"], "save_params_at entries must be in [0, steps = 3]; got 5"),
    (["--save-params-at", "a,b"], "expected integers or A:B:S ranges separated by commas; got 'a'"),
    (["--record-every", "0"], "0 is not in the range x>=1"),
    (["--m", "16"], "needs about"),
    (["--beta", "1"], "1.0 is not in the range 0<=x<1"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_one_message_and_exit_2(tmp_path, args, message):
    result = invoke("linear", *args, "--out", str(tmp_path / "x.h5"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.h5").exists()


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "x.h5"
    assert invoke("linear", "--m", "3", "--steps", "1", "--out", str(out)).exit_code == 0
    result = invoke("linear", "--m", "3", "--steps", "1", "--out", str(out))
    assert result.exit_code == 2 and "exists; pass --force to overwrite it or --resume to continue it" in result.output
    assert invoke("linear", "--m", "3", "--steps", "1", "--out", str(out), "--force").exit_code == 0


def test_resume_bad_inputs(tmp_path):
    out = tmp_path / "x.h5"
    assert invoke("linear", "--m", "3", "--steps", "1", "--out", str(out)).exit_code == 0
    result = invoke("linear", "--resume", str(out))
    assert result.exit_code == 2 and "has status completed: there is nothing to resume" in result.output
    result = invoke("linear", "--resume", str(out), "--lr", "0.1", "--m", "4")
    assert result.exit_code == 2 and "expected no other run options, got --lr --m" in result.output
    result = invoke("linear", "--resume", str(tmp_path / "none.h5"))
    assert result.exit_code == 2 and "none.h5 does not exist" in result.output
    (tmp_path / "junk.h5").write_text("junk")
    result = invoke("linear", "--resume", str(tmp_path / "junk.h5"))
    assert result.exit_code == 2 and "cannot open" in result.output


def test_missing_cupy_is_exit_2_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)
    result = invoke("linear", "--m", "3", "--device", "cuda", "--out", str(tmp_path / "g.h5"))
    assert result.exit_code == 2 and "pip install 'hti[gpu]'" in result.output


def test_ctrl_c_in_a_real_process_keeps_the_file_and_exits_130(tmp_path):
    import signal
    import time

    out = tmp_path / "c.h5"
    code = "from hti.cli.main import cli; cli()"
    proc = subprocess.Popen([sys.executable, "-c", code, "linear", "--m", "6", "--steps", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    for _ in range(300):  # wait until training has started (rows are being written)
        time.sleep(0.05)
        try:
            if read_trajectory(out, live=True)["attrs"]["iteration"] > 3:
                break
        except Exception:
            pass
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"interrupted; continue with: hti linear --resume {out}" in stdout
    data = read_trajectory(out)
    assert data["attrs"]["status"] == "interrupted" and data["step"].size > 3


def test_progress_lines_off_a_terminal_come_at_each_tenth():
    import io

    from hti.cli.progress import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, tty=False)
    bar.start(0, 100)
    for step in range(101):
        bar.update(step, 1.0 / (step + 1))
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("[##....") and lines[-1].startswith("[" + "#" * 24 + "] step 100/100  loss 0.0099")
    assert all("steps/s" in line for line in lines)
