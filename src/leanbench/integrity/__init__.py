"""leanbench.integrity: contamination between splits, duplicates inside a split, holdout reuse."""

from leanbench.integrity.contamination import (
    ContaminationReport,
    MethodResult,
    check_contamination,
    normalize_text,
)
from leanbench.integrity.duplicates import DuplicateReport, find_duplicates
from leanbench.integrity.holdout import EvaluationRecord, holdout_summary, holdout_warnings

__all__ = [
    "ContaminationReport",
    "DuplicateReport",
    "EvaluationRecord",
    "MethodResult",
    "check_contamination",
    "find_duplicates",
    "holdout_summary",
    "holdout_warnings",
    "normalize_text",
]
