"""Report sections beyond the verdict table, each a function `StudyResults -> list[Block]` that returns []
when its part of the results is missing or null (old stores, disabled features).

QUALITY sections follow the verdicts and plots; BILL sections follow the bill table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from leanbench.analysis.results import StudyResults
from leanbench.report.blocks import Block
from leanbench.report.sections.bill import bill_blocks
from leanbench.report.sections.failures import failed_cells_blocks
from leanbench.report.sections.generations import generation_blocks
from leanbench.report.sections.integrity import integrity_blocks
from leanbench.report.sections.llm_serving import llm_serving_blocks
from leanbench.report.sections.multitask import multitask_blocks
from leanbench.report.sections.robustness import robustness_blocks
from leanbench.report.sections.serving import serving_blocks
from leanbench.report.sections.slices import slice_blocks
from leanbench.report.sections.stats import seed_blocks, verdict_grid_blocks

Section = Callable[[StudyResults], list[Block]]
QUALITY: tuple[Section, ...] = (failed_cells_blocks, verdict_grid_blocks, seed_blocks, robustness_blocks, slice_blocks,
                                generation_blocks, integrity_blocks)
BILL: tuple[Section, ...] = (serving_blocks, llm_serving_blocks, bill_blocks)
# a study of several tasks: these take the place of the verdicts and QUALITY (each task's are inside them)
MULTI_TASK: tuple[Section, ...] = (multitask_blocks,)


def blocks(results: StudyResults, group: Sequence[Section]) -> list[Block]:
    """The blocks of every section in `group`, in order."""
    out: list[Block] = []
    for section in group:
        out.extend(section(results))
    return out


__all__ = ["BILL", "MULTI_TASK", "QUALITY", "blocks"]
