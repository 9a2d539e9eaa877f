"""Analysis of trajectories: loading, frequency groups, summaries, figures, grid search.

Importing this package loads neither matplotlib nor torch; :mod:`hti.analysis.figures`
(matplotlib) and the figure and grid drivers import what they need when used.
"""

from hti.analysis.groups import construction_groups, frequency_groups, group_loss
from hti.analysis.loading import Run, load, load_runs
from hti.analysis.summary import format_summary, group_table

__all__ = [
    "load", "load_runs", "Run",
    "frequency_groups", "construction_groups", "group_loss",
    "group_table", "format_summary",
]  # fmt: skip
