"""Holdout reuse: warnings from the record of how often, and for what, a test split was looked at.

Every look at a test set that informs a decision (early stopping, a sweep, picking the "best" candidate)
makes later test numbers optimistically biased: the test set has become part of the training loop
(Dwork et al. 2015, "The reusable holdout: preserving validity in adaptive data analysis", Science 349;
Recht et al. 2019, "Do ImageNet classifiers generalize to ImageNet?"). leanbench's rule: select on the
validation split, evaluate the test split for reporting.

The store keeps one record per evaluation of a split: its fingerprint (`data.base.Split.fingerprint`),
the purpose ("report": the numbers shown; "selection": the result fed a choice), who looked (study /
candidate / step) and the study. `holdout_warnings` turns those records into report sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from leanbench.errors import LeanbenchError

PURPOSES = ("report", "selection")


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of a split: fingerprint, purpose ("report" | "selection"), who, study."""

    fingerprint: str
    purpose: str
    who: str
    study: str | None = None

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise LeanbenchError(f"evaluation record of '{self.who}': purpose must be one of "
                                 f"{', '.join(PURPOSES)}, got {self.purpose!r}")


def _record(r: EvaluationRecord | Mapping[str, Any]) -> EvaluationRecord:
    if isinstance(r, EvaluationRecord):
        return r
    return EvaluationRecord(str(r["fingerprint"]), str(r["purpose"]), str(r.get("who", "?")), r.get("study"))


def _names(items: Iterable[str], limit: int = 5) -> str:
    items = sorted(set(items))
    shown = ", ".join(f"'{x}'" for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def holdout_summary(records: Iterable[EvaluationRecord | Mapping[str, Any]], fingerprint: str
                    ) -> dict[str, Any]:
    """Counts for the report: evaluations, selections and distinct studies that used this test split."""
    recs = [r for r in map(_record, records) if r.fingerprint == fingerprint]
    return {
        "fingerprint": fingerprint,
        "n_evaluations": sum(r.purpose == "report" for r in recs),
        "n_selection": sum(r.purpose == "selection" for r in recs),
        "studies": sorted({r.study or r.who for r in recs}),
        "selected_by": sorted({r.who for r in recs if r.purpose == "selection"}),
    }


def holdout_warnings(records: Iterable[EvaluationRecord | Mapping[str, Any]], fingerprint: str, *,
                     max_studies: int = 1, split: str = "test") -> list[str]:
    """Warnings about the evaluated split with `fingerprint` (named `split`); [] when its use looks clean.

    - any "selection" record on it: the split fed a choice, so its numbers are optimistic;
    - "report" records from more than `max_studies` studies: the same split has been evaluated
      repeatedly, and choices made between those studies looked at it too.
    """
    recs = [r for r in map(_record, records) if r.fingerprint == fingerprint]
    out = []
    selection = [r for r in recs if r.purpose == "selection"]
    if selection:
        times = f"{len(selection)} time{'s' if len(selection) != 1 else ''}"
        advice = ("Select on the validation split and evaluate the test split only to report." if split == "test"
                  else "Expected when screening on it; confirm the choice on the test split.")
        out.append(
            f"The {split} split (fingerprint {fingerprint}) was used for selection {times} (by "
            f"{_names(r.who for r in selection)}): early stopping, a sweep or picking a candidate looked at "
            f"it, so its numbers are optimistically biased. {advice}")
    reports = [r for r in recs if r.purpose == "report"]
    studies = {r.study or r.who for r in reports}
    if len(studies) > max_studies:
        out.append(
            f"The {split} split (fingerprint {fingerprint}) has been evaluated {len(reports)} times in "
            f"this store, by {len(studies)} studies ({_names(studies)}). Every look that informs a decision "
            "spends the holdout; treat its numbers as optimistic or confirm on fresh data.")
    return out


__all__ = ["PURPOSES", "EvaluationRecord", "holdout_summary", "holdout_warnings"]
