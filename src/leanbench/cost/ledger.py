"""The ledger: every cost a study spends, one entry per phase and candidate, and the sums over it.

Phases (``PHASES``; ``<...>`` takes any name):

======================  ===========================================================================
``data``                loading and preparing the task data (study-level: no candidate)
``plan``                planning the cells (study-level)
``build:<step>``        one build step of a candidate (``build:train``, ``build:distill``, ``build:save``)
``sweep:trial``         one hyper-parameter trial, kept or discarded (``trial`` number, ``kept``)
``teacher-logits``      computing a teacher's logits for distillation (charged to the teacher)
``calibration``         calibration passes (e.g. quantization observers)
``evaluate``            predictions on the evaluated split (``evaluate:<variant>``: perturbed inputs)
``integrity``           contamination and duplicate checks
``measure``             latency, throughput, memory, energy (``measure:<profile>`` per deployment profile)
``analysis``            statistics over the store
``report``              rendering reports
``overhead``            the runner's own time between phases (store writes, loading models)
``abandoned:<cell>``    work of a cell that did not finish, ``abandoned:<kind>:<why>`` (``kind``: build,
                        evaluate, perturbed, measure, integrity; ``why``: ``interrupted`` by Ctrl-C or
                        ``error``); its candidate and cell key say which cell. The cell is not stored, so
                        a later run does it again and the ledger holds both: the bill counts the lost work
                        once, in this phase. Not part of any candidate's build cost.
======================  ===========================================================================

Money and CO2 (:func:`price`)::

    usd    = seconds / 3600 * usd_per_hour + kWh * usd_per_kwh
    co2_kg = kWh * co2_kg_per_kwh

``usd_per_hour`` is the price of the machine (an instance's hourly price, or purchase price amortised
over its life); ``usd_per_kwh`` the electricity bought on top of it (0 when the hourly price includes
power, as a cloud instance's does). Sums of energy add the per-entry bounds (``joules_low``,
``joules_high``): estimation errors of entries made with the same model are correlated, so the linear
sum, not a root-sum-square, is the honest bound.

A candidate's build cost (:func:`build_cost`) adds the build entries of every candidate it was derived
from (its ``from:`` chain and its distillation teachers, transitively), each ancestor once, whatever the
number of paths to it. Study-level entries (``data``, ``plan``, ``analysis``, ``report``, ``overhead``)
belong to no candidate and are reported beside the candidates, never inside one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from leanbench.errors import LeanbenchError
from leanbench.measure.energy import J_PER_KWH, EnergyReading

PHASES = ("data", "plan", "build:<step>", "sweep:trial", "teacher-logits", "calibration", "evaluate",
          "evaluate:<variant>", "integrity", "measure", "measure:<profile>", "analysis", "report", "overhead",
          "abandoned:<cell>")
ABANDONED = "abandoned:"  # prefix of the phases of unfinished work
_PREFIXED = tuple(p.split("<")[0] for p in PHASES if "<" in p)
BUILD_PHASES = ("build:", "sweep:trial", "teacher-logits", "calibration")
STUDY_KEY = "(study)"
RECONCILE_TOLERANCE = 0.05


def check_phase(phase: str) -> str:
    """Returns ``phase`` if it is a known phase, else raises a LeanbenchError listing them."""
    fixed = [p for p in PHASES if "<" not in p]
    if phase in fixed or any(phase.startswith(p) and len(phase) > len(p) for p in _PREFIXED):
        return phase
    raise LeanbenchError(f"ledger: unknown phase {phase!r}; phases: {', '.join(PHASES)}")


def is_build_phase(phase: str) -> bool:
    """Whether an entry of this phase is part of building a candidate (counted in its build cost)."""
    return phase.startswith(BUILD_PHASES)


@dataclass(frozen=True)
class LedgerEntry:
    """One cost. ``joules`` None means unknown (never zero for an unmeasured window)."""

    phase: str
    candidate: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    flops: float | None = None
    joules: float | None = None
    energy_method: str | None = None
    energy_uncertainty: float | None = None
    usd: float | None = None
    co2_kg: float | None = None
    trial: int | None = None
    kept: bool | None = None
    too_short: bool = False

    def __post_init__(self) -> None:
        check_phase(self.phase)
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise LeanbenchError(f"ledger entry {self.phase}: seconds must be >= 0, got {self.seconds!r}")

    @classmethod
    def from_reading(cls, phase: str, reading: EnergyReading, *, candidate: str | None = None,
                     flops: float | None = None, **extra: Any) -> LedgerEntry:
        """An entry for a window measured by :class:`~leanbench.measure.energy.EnergyMeter`."""
        return cls(phase=phase, candidate=candidate, seconds=reading.wall_s, cpu_seconds=reading.cpu_s,
                   flops=flops, joules=reading.joules, energy_method=reading.method,
                   energy_uncertainty=reading.uncertainty_rel, too_short=reading.too_short, **extra)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LedgerEntry:
        """An entry from a store row (extra columns such as ``id`` or ``run_id`` are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["too_short"] = bool(values.get("too_short") or False)
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def kwh(self) -> float | None:
        return None if self.joules is None else self.joules / J_PER_KWH

    @property
    def joules_bounds(self) -> tuple[float, float] | None:
        if self.joules is None:
            return None
        u = self.energy_uncertainty or 0.0
        return self.joules * (1 - u), self.joules * (1 + u)


# --------------------------------------------------------------------------- pricing
def price(entries: Iterable[LedgerEntry], usd_per_hour: float, usd_per_kwh: float,
          co2_kg_per_kwh: float) -> list[LedgerEntry]:
    """Entries with ``usd`` and ``co2_kg`` filled in (formulas in the module docstring).

    An entry without energy gets the machine-time part of ``usd`` only and ``co2_kg`` None.
    """
    for name, v in (("usd_per_hour", usd_per_hour), ("usd_per_kwh", usd_per_kwh),
                    ("co2_kg_per_kwh", co2_kg_per_kwh)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise LeanbenchError(f"cost.{name}: must be a finite number >= 0, got {v!r}")
    out = []
    for e in entries:
        kwh = e.kwh
        usd = e.seconds / 3600 * usd_per_hour + (kwh or 0.0) * usd_per_kwh
        out.append(replace(e, usd=usd, co2_kg=None if kwh is None else kwh * co2_kg_per_kwh))
    return out


# --------------------------------------------------------------------------- short windows
def aggregate_short_windows(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """Pools each run of too-short windows with the next full entry and shares the energy by wall time.

    Entries keep their order, phase, candidate and seconds; only ``joules`` changes: a group (too-short
    entries plus the full entry after them; trailing too-short entries join the last group) gets its
    total energy back split in proportion to each entry's wall seconds (equally when all are 0 s), with
    the group's widest uncertainty and ``, pooled over N windows`` appended to the method. A group whose
    total is 0 J with a positive duration (below the counter's resolution) gets ``joules`` None:
    unknown, not zero. Entries without energy are left as they are and do not break a group.
    """
    entries = list(entries)
    out = list(entries)
    for group in _short_groups(entries):
        for i, joules, method, u in _pool(group, entries):
            out[i] = replace(entries[i], joules=joules, energy_method=method, energy_uncertainty=u)
    return out


def _short_groups(entries: list[LedgerEntry]) -> list[list[int]]:
    groups: list[list[int]] = []
    pending: list[int] = []
    for i, e in enumerate(entries):
        if e.joules is None:
            continue
        pending.append(i)
        if not e.too_short:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    return [g for g in groups if len(g) > 1 or entries[g[0]].too_short]


def _pool(group: list[int], entries: list[LedgerEntry]) -> list[tuple[int, float | None, str, float | None]]:
    total = sum(entries[i].joules or 0.0 for i in group)
    seconds = [entries[i].seconds for i in group]
    weights = [s / sum(seconds) for s in seconds] if sum(seconds) > 0 else [1 / len(group)] * len(group)
    methods = sorted({entries[i].energy_method or "unknown" for i in group})
    u = max((entries[i].energy_uncertainty or 0.0) for i in group)
    method = f"{' + '.join(methods)}, pooled over {len(group)} windows"
    unknown = total == 0 and sum(seconds) > 0
    return [(i, None if unknown else total * w, method, None if unknown else u)
            for i, w in zip(group, weights, strict=True)]


# --------------------------------------------------------------------------- sums
def totals(entries: Iterable[LedgerEntry]) -> dict[str, Any]:
    """Sums over entries: seconds, CPU seconds, FLOPs, energy (with bounds), money, CO2, entry count.

    A sum over entries of which some have no value is the sum of the known ones; ``*_unknown`` counts
    the entries left out, and a sum with no known value at all is None.
    """
    entries = list(entries)
    bounds = [e.joules_bounds for e in entries if e.joules_bounds is not None]
    joules = _known_sum(e.joules for e in entries)
    methods = sorted({e.energy_method for e in entries if e.energy_method})
    return {
        "seconds": float(sum(e.seconds for e in entries)),
        "cpu_seconds": float(sum(e.cpu_seconds for e in entries)),
        "flops": _known_sum(e.flops for e in entries),
        "joules": joules,
        "joules_low": float(sum(b[0] for b in bounds)) if bounds else None,
        "joules_high": float(sum(b[1] for b in bounds)) if bounds else None,
        "kwh": None if joules is None else joules / J_PER_KWH,
        "energy_method": _method_label(methods),
        "energy_unknown": sum(e.joules is None for e in entries),
        "usd": _known_sum(e.usd for e in entries),
        "co2_kg": _known_sum(e.co2_kg for e in entries),
        "entries": len(entries),
    }


def _method_label(methods: list[str]) -> str | None:
    if len(methods) <= 1:
        return methods[0] if methods else None
    return "mixed: " + "; ".join(methods)


def _known_sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def by_phase(entries: Iterable[LedgerEntry]) -> dict[str, dict[str, Any]]:
    """:func:`totals` per phase, in first-seen order."""
    return _grouped(entries, lambda e: e.phase)


def by_candidate(entries: Iterable[LedgerEntry]) -> dict[str, dict[str, Any]]:
    """:func:`totals` per candidate; study-level entries (no candidate) under ``"(study)"``."""
    return _grouped(entries, lambda e: e.candidate or STUDY_KEY)


def _grouped(entries: Iterable[LedgerEntry], key: Any) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        groups.setdefault(key(e), []).append(e)
    return {k: totals(v) for k, v in groups.items()}


# --------------------------------------------------------------------------- build cost
def closure(name: str, deps: Mapping[str, Iterable[str]]) -> list[str]:
    """``name`` and every candidate it derives from (``deps``: candidate -> its ``from`` and teachers),
    each once, in depth-first order; cycles are not followed twice."""
    seen: list[str] = []
    stack = [name]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.append(n)
            stack.extend(reversed(list(deps.get(n, ()))))
    return seen


def build_cost(candidate: str, deps: Mapping[str, Iterable[str]],
               entries: Iterable[LedgerEntry]) -> dict[str, Any]:
    """The cost of building ``candidate`` including everything it was derived from, each ancestor once.

    Counts entries of build phases (``build:*``, ``sweep:trial``, ``teacher-logits``, ``calibration``)
    whose candidate is in :func:`closure`. Returns :func:`totals` plus ``candidates`` (the closure),
    ``own`` (totals of the candidate's own entries) and ``by_phase``.
    """
    members = closure(candidate, deps)
    entries = [e for e in entries if e.candidate in members and is_build_phase(e.phase)]
    own = [e for e in entries if e.candidate == candidate]
    return {**totals(entries), "candidates": members, "own": totals(own), "by_phase": by_phase(entries)}


def candidate_deps(candidates: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``deps`` for :func:`build_cost` from a study's candidate configs (``from`` and distill teachers)."""
    deps = {}
    for c in candidates:
        parents = [c["from"]] if c.get("from") else []
        for step in c.get("steps") or []:
            teacher = (step.get("distill") or {}).get("teacher") if isinstance(step, Mapping) else None
            if teacher and teacher not in parents:
                parents.append(teacher)
        deps[c["name"]] = parents
    return deps


# --------------------------------------------------------------------------- reconciliation
def reconcile(entries: Iterable[LedgerEntry], measured_wall: float,
              tolerance: float = RECONCILE_TOLERANCE) -> dict[str, Any]:
    """Checks that the entries account for a measured wall time.

    ``gap = measured - total`` (positive: time not in the ledger; negative: entries overlap or were
    counted twice), ``gap_rel = gap / measured``, ``ok = |gap_rel| <= tolerance`` (default 5 %).
    Pass the entries of the run whose wall time was measured, not those of earlier runs.
    """
    if not math.isfinite(measured_wall) or measured_wall < 0:
        raise LeanbenchError(f"reconcile: measured_wall must be a finite number >= 0, got {measured_wall!r}")
    total = float(sum(e.seconds for e in entries))
    gap = measured_wall - total
    gap_rel = gap / measured_wall if measured_wall > 0 else (0.0 if total == 0 else -math.inf)
    return {"total": total, "measured": float(measured_wall), "gap": gap, "gap_rel": gap_rel,
            "tolerance": tolerance, "ok": abs(gap_rel) <= tolerance}
