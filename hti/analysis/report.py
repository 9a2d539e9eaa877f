"""``hti report``: one self-contained HTML page about every run in a folder.

For each trajectory: its status, engine and config, the per-group summary table (the
loss of ten frequency groups at the first and last recorded step), and its figures
(per-group losses; gradient norms vs curvature when recorded; spectra when ``hti
spectrum`` stored them). A grid search's ``grid.json`` adds its selection table and
figure; ``figure-N.png`` files in the folder (``hti figure``) are included too. Figures
are embedded as base64 PNG, so the page needs no server and no other file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th { background: #f4f4f4; } td.k { text-align: left; font-family: monospace; }
.status-completed { color: #1a7f37; } .status-diverged { color: #b3261e; } .status-interrupted,
.status-running { color: #9a6700; }
img { max-width: 100%; margin: 0.5em 0; } details { margin: 0.5em 0; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(run) -> str:
    from hti.analysis.summary import group_table  # noqa: PLC0415

    steps = run["step"]
    if steps.size == 0:
        return "<p>No rows yet.</p>"
    weights = run["eval_class_counts"] if "eval_class_counts" in run else None
    rows = group_table(run.class_counts, run["class_loss"][0], run["class_loss"][-1], weights=weights)
    out = [[r["group"], f"{int(r['classes'].min())}-{int(r['classes'].max())}", r["classes"].size,
            f"{r['share']:.1%}", f"{r['initial']:.4f}", f"{r['final']:.4f}"] for r in rows]  # fmt: skip
    out.append(["all", "", run.class_counts.size, "100%", f"{run['loss'][0]:.4f}", f"{run['loss'][-1]:.4f}"])
    return _table(["group", "classes", "#classes", "samples", f"loss @ {steps[0]}", f"loss @ {steps[-1]}"], out)


def _run_section(run) -> str:
    from hti.analysis.figures import fig_grad_hess, fig_per_group, fig_spectrum  # noqa: PLC0415

    status = html.escape(str(run.status))
    parts = [f"<h2>{html.escape(run.path.name)}</h2>",
             f'<p>{html.escape(run.engine)} run, <b>{html.escape(run.label)}</b>, status '
             f'<b class="status-{status}">{status}</b></p>']  # fmt: skip
    config = _table(["option", "value"], [[k, json.dumps(v)] for k, v in sorted(run.config.items())])
    parts.append(f"<details><summary>config</summary>{config.replace('<td>', '<td class=k>', 2)}</details>")
    parts.append(_summary(run))
    figures = [(fig_per_group, [run], "loss by frequency group")]
    if "grad_norm" in run:
        figures.append((fig_grad_hess, run, "gradient norms and curvature"))
    if "spectra" in run:
        figures.append((fig_spectrum, run, "spectra"))
    for draw, arg, alt in figures:
        try:
            parts.append(_img(_png(draw(arg)), alt))
        except Exception as err:  # a figure that cannot be drawn must not lose the page
            parts.append(f"<p>({html.escape(alt)}: not drawn: {html.escape(str(err))})</p>")
    return "\n".join(parts)


def _grid_section(path: Path) -> str:
    from hti.analysis.figures import fig_grid  # noqa: PLC0415

    grid = json.loads(path.read_text())
    rows = [[r["label"], r.get("selected_lr_paper"), r.get("selected_lr_final"), "yes" if r.get("disagree") else "",
             len(r["runs"])] for r in grid["results"]]  # fmt: skip
    parts = [f"<h2>Grid search ({html.escape(str(path))})</h2>",
             _table(["optimizer", "selected lr (paper rule)", "selected lr (code's rule)", "disagree", "runs"], rows)]
    try:
        parts.append(_img(_png(fig_grid(grid)), "grid"))
    except Exception as err:
        parts.append(f"<p>(grid figure not drawn: {html.escape(str(err))})</p>")
    return "\n".join(parts)


def html_report(folder: str | Path, out: str | Path) -> Path:
    """Write the page for every run under ``folder`` to ``out``; returns its path."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from hti.analysis.loading import load_runs  # noqa: PLC0415
    from hti.config import ConfigError  # noqa: PLC0415

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"hti report expects a folder of runs; {folder} is not a folder")
    runs = load_runs(folder)
    grids = sorted(folder.rglob("grid.json"))
    pictures = sorted(folder.glob("figure-*.png"))
    if not runs and not grids and not pictures:
        raise ConfigError(f"{folder} holds no hti trajectory, grid.json or figure-N.png")
    sections = [f"<h1>hti report: {html.escape(str(folder))}</h1>",
                f"<p>{len(runs)} runs, {len(grids)} grid searches, {len(pictures)} figures.</p>"]  # fmt: skip
    overview = [[r.path.name, r.engine, r.label, r.status, r["step"][-1] if r["step"].size else "",
                 f"{r['loss'][-1]:.4f}" if r["step"].size and np.isfinite(r["loss"][-1]) else ""] for r in runs]  # fmt: skip
    if runs:
        sections.append(_table(["file", "engine", "optimizer", "status", "last step", "final loss"], overview))
    for p in pictures:
        sections.append(f"<h2>{html.escape(p.name)}</h2>" + _img(base64.b64encode(p.read_bytes()).decode(), p.name))
    sections += [_grid_section(g) for g in grids]
    sections += [_run_section(r) for r in runs]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>hti report</title><style>{_CSS}</style></head>" \
           f"<body>{''.join(sections)}</body></html>"  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
