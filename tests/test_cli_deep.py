"""hti deep from the command line: a tiny run, resume, and every bad input (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from helpers import assert_help_imports_none_of  # noqa: E402

from hti.cli.main import cli  # noqa: E402
from hti.storage import read_trajectory  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_deep_help_does_not_import_torch():
    assert_help_imports_none_of("from hti.cli.main import cli as command", ["deep", "--help"])


def test_a_tiny_cnn_run(tmp_path):
    out = tmp_path / "cnn.h5"
    result = invoke("deep", "cnn", "--steps", 2, "--eval-every", 1, "--optim", "adam", "--out", out)
    assert result.exit_code == 0, result.output
    assert "hti deep: cnn on digits" in result.output and "Loss by frequency group" in result.output
    assert "images/s" in result.output and "validation loss" in result.output
    data = read_trajectory(out)
    assert data["attrs"]["engine"] == "deep" and data["step"].tolist() == [0, 1, 2]
    assert data["val_class_loss"].shape == (3, 10) and data["class_counts"].sum() == 1438


def test_resume_from_the_cli(tmp_path):
    import os
    import signal

    from hti.deep.config import DeepConfig
    from hti.deep.train import run

    class Stop:
        def start(self, *a, **k): ...
        def update(self, step, loss):
            if step == 1:
                os.kill(os.getpid(), signal.SIGINT)
        def close(self): ...

    out = tmp_path / "r.h5"
    assert run(DeepConfig(model="linear", data="digits", steps=3, eval_every=1), out, progress=Stop()).status == "interrupted"
    result = invoke("deep", "--resume", out)
    assert result.exit_code == 0, result.output
    assert "resumed from step 1" in result.output and read_trajectory(out)["step"].tolist() == [0, 1, 2, 3]


BAD = [
    (["cnn", "--data", "ptb"], "model cnn needs an image data set"),
    (["transformer", "--data", "digits"], "model transformer needs a text data set"),
    (["cnn", "--data", "mnist"], "--data mnist reads its files from --data-dir DIR; got no --data-dir"),
    (["linear", "--batch", "full", "--batch-size", "4"], "--batch full and --batch-size are exclusive"),
    (["cnn", "--dtype", "bfloat16"], "--dtype bfloat16 (autocast) needs --device cuda"),
    (["cnn", "--train-last-layer-only"], "--train-last-layer-only applies to simple-transformer"),
    (["cnn", "--tokenizer", "gpt2"], "--tokenizer and --seq-len apply to text data; got --data digits"),
    (["gpt2", "--optim", "rmsprop"], "'rmsprop' is not one of"),
    ([], "expected a MODEL"),
    (["mlp"], "'mlp' is not one of"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_input_is_one_message_and_exit_2(tmp_path, args, message):
    result = invoke("deep", *args, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_data_files_are_named(tmp_path):
    result = invoke("deep", "transformer", "--data", "wikitext2", "--data-dir", tmp_path, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "wiki.train" in result.output
    result = invoke("deep", "cnn", "--data", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "train-images-idx3-ubyte" in result.output


def test_resume_bad_input(tmp_path):
    out = tmp_path / "done.h5"
    assert invoke("deep", "linear", "--data", "digits", "--steps", 1, "--out", out).exit_code == 0
    result = invoke("deep", "--resume", out)
    assert result.exit_code == 2 and "has status completed" in result.output
    result = invoke("deep", "cnn", "--resume", out)
    assert result.exit_code == 2 and "expected no MODEL or run options, got cnn" in result.output
    result = invoke("deep", "linear", "--data", "digits", "--steps", 1, "--out", out)
    assert result.exit_code == 2 and "exists; pass --force" in result.output
    lin = tmp_path / "lin.h5"
    assert invoke("linear", "--m", 3, "--steps", 1, "--out", lin).exit_code == 0
    result = invoke("deep", "--resume", lin)
    assert result.exit_code == 2 and "hti deep resumes deep runs" in result.output


def test_cuda_without_a_gpu_is_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = invoke("deep", "cnn", "--device", "cuda", "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "no CUDA device" in result.output
