"""Analysis of trajectories: frequency groups and run summaries."""

from hti.analysis.groups import construction_groups, frequency_groups, group_loss
from hti.analysis.summary import format_summary, group_table

__all__ = ["frequency_groups", "construction_groups", "group_loss", "group_table", "format_summary"]
