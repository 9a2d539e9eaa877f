"""hti linear --track, hti spectrum and hti scaling from the command line."""

from __future__ import annotations

import h5py
import pytest
from click.testing import CliRunner

from hti.cli.main import cli
from hti.storage import read_trajectory


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def saved_run(tmp_path):
    out = tmp_path / "run.h5"
    result = invoke("linear", "--m", 4, "--steps", 10, "--save-params-at", "0,10", "--track", "eig,coupling",
                    "--curvature-every", 5, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_track_writes_the_curvature_table(saved_run):
    data = read_trajectory(saved_run)
    assert data["curvature_step"].tolist() == [0, 5, 10]
    assert data["hess_eig"].shape == (3, 15, 1) and "hess_top" not in data


def test_spectrum_prints_and_stores(saved_run):
    result = invoke("spectrum", saved_run, "--at", "0,10", "--classes", "0,3")
    assert result.exit_code == 0, result.output
    assert "dense spectra of classes 0, 3" in result.output and "stored under spectra/" in result.output
    spectra = read_trajectory(saved_run)["spectra"]
    assert spectra["step"].tolist() == [0, 10] and spectra["eigenvalues"].shape == (2, 2, 64)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--at", "5"], "step 5 was not saved in"),
        (["--at", "0", "--classes", "15"], "classes must be in [0, 14] for m = 4; got [15]"),
        (["--at", "0", "--eig-k", "100"], "eig_k must be in [1, 64]; got 100"),
        (["--at", "x"], "expected integers or A:B:S ranges"),
    ],
)
def test_spectrum_bad_input(saved_run, args, message):
    result = invoke("spectrum", saved_run, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_spectrum_bad_files(tmp_path):
    result = invoke("spectrum", tmp_path / "none.h5", "--at", 0)
    assert result.exit_code == 2 and "does not exist" in result.output
    bare = tmp_path / "bare.h5"
    assert invoke("linear", "--m", 3, "--steps", 1, "--out", bare).exit_code == 0
    result = invoke("spectrum", bare, "--at", 0)
    assert result.exit_code == 2 and "has no saved parameters; rerun it with --save-params-at" in result.output
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    result = invoke("spectrum", tmp_path / "other.h5", "--at", 0)
    assert result.exit_code == 2 and "not an hti trajectory" in result.output


def _slopes(output):
    lines = dict(line.split(": ", 1) for line in output.splitlines() if line.startswith(("trace_slope", "eig_slope")))
    return float(lines["trace_slope"]), float(lines["eig_slope"])


def test_scaling_prints_the_slopes_and_stores_them(tmp_path):
    out = tmp_path / "s.h5"
    result = invoke("scaling", "--m", 5, "--out", out)
    assert result.exit_code == 0, result.output
    trace, eig = _slopes(result.output)
    assert 0.9 < trace < 1.1 and 0.9 < eig < 1.1  # correlated inputs: both follow pi
    with h5py.File(out, "r") as f:
        assert f.attrs["trace_slope"] == pytest.approx(trace, abs=1e-4)
        assert f["hess_eig_max"].shape == (31,)
    result = invoke("scaling", "--m", 5, "--inputs", "orthogonal", "--out", tmp_path / "o.h5")
    trace, eig = _slopes(result.output)
    assert 0.9 < trace < 1.1 and abs(eig) < 1e-3  # orthogonal: lambda_max = p(1-p) d/n for all


def test_scaling_from_a_run(saved_run, tmp_path):
    result = invoke("scaling", "--from", saved_run, "--at", 10, "--out", tmp_path / "f.h5")
    assert result.exit_code == 0, result.output
    assert '"from": ' in result.output and "eig_slope: " in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input-mean", "0"], "--input-mean and --input-scale apply to gaussian inputs only; got --inputs uniform"),
        (["--inputs", "orthogonal", "--m", "3", "--dim", "5"], "orthogonal inputs need dim >= n = 24 (m = 3); got dim = 5"),
        (["--p", "1.5"], "1.5 is not in the range 0<x<1"),
        (["--at", "3"], "--at applies with --from RUN only"),
        (["--spread", "flat"], "'flat' is not one of 'frequency', 'even'"),
    ],
)
def test_scaling_bad_input(tmp_path, args, message):
    result = invoke("scaling", *args, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_scaling_from_bad_input(saved_run, tmp_path):
    result = invoke("scaling", "--from", saved_run, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "--from needs --at STEP" in result.output
    result = invoke("scaling", "--from", saved_run, "--at", 3, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "step 3 was not saved" in result.output
    result = invoke("scaling", "--from", saved_run, "--at", 0, "--m", 5, "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "expected no data options, got --m" in result.output
    assert invoke("scaling", "--m", 3, "--out", tmp_path / "y.h5").exit_code == 0
    result = invoke("scaling", "--m", 3, "--out", tmp_path / "y.h5")
    assert result.exit_code == 2 and "exists; pass --force" in result.output


def test_bad_track_list(tmp_path):
    result = invoke("linear", "--track", "eig,hessian", "--out", tmp_path / "x.h5")
    assert result.exit_code == 2 and "expected a comma-separated subset of eig,top,coupling; got hessian" in result.output
