"""Failed cells: the cells of the study's last run that failed (a crash, a kill, the memory cap, the time
limit, an error) and those not run because they need one; the run went on without them and a rerun retries
them. Nothing when none failed."""

from __future__ import annotations

from leanbench.analysis.results import StudyResults
from leanbench.report.blocks import Block, Heading, Para, Table


def failed_cells_blocks(results: StudyResults) -> list[Block]:
    failed = results.failed_cells or []
    if not failed:
        return []
    own = [c for c in failed if c.blocked_by is None]
    rows = [[c.cell or "", c.error or ""] for c in own]
    rows += [[c.cell or "", f"not run: needs {c.blocked_by}"] for c in failed if c.blocked_by is not None]
    return [Heading("Failed cells"),
            Para(f"{len(own)} cell(s) failed in the last run and {len(failed) - len(own)} were not run because they "
                 "need one; the figures above lack them. Rerun the study to retry them."),
            Table(["cell", "why"], rows, text_cols=(0, 1))]
