"""Figures with their confidence intervals, the records every part of the typed results uses
(`leanbench.analysis.results`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanbench.analysis.record import Record, fld

# ---------------------------------------------------------------------------------------------- figures


@dataclass
class MetricValue(Record):
    """A figure from a sample with its confidence interval; `method` when it is not the default one."""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = fld(omit_none=True)

    @classmethod
    def of(cls, ci: Any) -> MetricValue:
        """From a stats CI object (`value`, `low`, `high`)."""
        return cls(value=float(ci.value), ci_low=float(ci.low), ci_high=float(ci.high))


@dataclass
class Interval(Record):
    """A cost figure with the bounds of its uncertainty (TCO, serving cost)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
