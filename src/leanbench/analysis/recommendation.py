"""The decision at a glance: which model to ship under the study's constraints, with one line of why, or why
no candidate qualifies and what to do next.

`recommend(results, constraints)` is a pure function of the typed results (`StudyResults`) and the deployment
profiles' constraints (`constraints_of(study)`); `analyse` hangs its answer on `StudyResults.recommendation`,
and a report of results that carry none (JSON written before it existed) computes it the same way, with the
constraints read off the results (`constraints_from`: the SLOs they record; a memory cap's value is then
unknown, only whether it was met).

The rule, in order:

1. **quality**: the verdict on the decision metric (after the multiplicity correction) is non-inferior or
   superior, on every task (`task_checks`; a study has one task today, several later);
2. **latency**: every profile with an SLO meets it (the CI of its percentile within the SLO: `Slo.meets`; a
   CI that straddles it does not count as met);
3. **memory**: every profile with a memory cap fits it (peak memory at the profile's batch);
4. among the candidates that pass, and the reference when it passes 2-3, the lowest TCO (`cost/tco.py`:
   build + serving at the study's traffic over the horizon), then the lowest p50 latency (the reference's
   first profile), then the smallest size. When the reference ranks first, the advice is to keep it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from leanbench.analysis.figures import Interval
from leanbench.analysis.record import Record, fld

SHIP, KEEP_REFERENCE, NONE = "ship", "keep-reference", "none"
PASSING = ("non-inferior", "superior")

# blocker codes, in the order their sentences and advice are given
NOT_EVALUATED = "not_evaluated"
INFERIOR = "inferior"
UNDERPOWERED = "underpowered"
MULTIPLICITY = "multiplicity"
STRADDLES = "ci_straddles_margin"
INCONCLUSIVE = "inconclusive"
SLO_MISSED = "slo_missed"
SLO_UNCERTAIN = "slo_uncertain"
MEMORY = "memory_cap"
NOT_MEASURED = "not_measured"
BLOCKERS = (NOT_EVALUATED, INFERIOR, UNDERPOWERED, MULTIPLICITY, STRADDLES, INCONCLUSIVE, SLO_MISSED,
            SLO_UNCERTAIN, MEMORY, NOT_MEASURED)


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Constraint(Record):
    """One deployment profile's limits: a latency SLO at a percentile (a fraction, 0.9 = p90), a memory cap.
    `memory_cap` True with no `memory_cap_mb`: a cap was set but the results record only whether it was met."""

    profile: str | None = None
    slo_ms: float | None = None
    slo_percentile: float | None = None
    memory_cap_mb: float | None = None
    memory_cap: bool | None = fld(omit_none=True)

    @property
    def capped(self) -> bool:
        return self.memory_cap_mb is not None or bool(self.memory_cap)


@dataclass
class TaskCheck(Record):
    """A candidate against the reference on one task's decision metric."""

    task: str | None = None
    metric: str | None = None
    verdict: str | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float | None = None
    inconclusive_because: str | None = fld(omit_none=True)
    verdict_unadjusted: str | None = fld(omit_none=True)


@dataclass
class ProfileCheck(Record):
    """A candidate against one profile's constraints: `slo` is "meets", "misses", "uncertain" or
    "not measured" (None: the profile sets no SLO); `memory` is "fits", "exceeds" or "not measured" (None: no
    cap)."""

    profile: str | None = None
    slo: str | None = None
    slo_ms: float | None = None
    percentile: float | None = None
    latency_ms: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    memory: str | None = None
    memory_cap_mb: float | None = None
    peak_mb: float | None = None


@dataclass
class CandidateCheck(Record):
    """How one candidate fared against the rule: `blockers` are codes (`BLOCKERS`), `why_not` their sentences."""

    name: str | None = None
    reference: bool | None = None
    qualifies: bool | None = None
    tasks: list[TaskCheck] | None = None
    profiles: list[ProfileCheck] | None = None
    tco_usd: float | None = None
    p50_ms: float | None = None
    size_bytes: int | None = None
    blockers: list[str] | None = None
    why_not: list[str] | None = None


@dataclass
class Recommendation(Record):
    """What to ship. `status`: "ship" (`choice` is the best qualifying candidate; `ship` lists every qualifying
    one, best first), "keep-reference" (no candidate qualifies, or those that do cost more than the reference,
    which meets the constraints) or "none" (not even the reference meets them, or nothing was evaluated).
    `why` is one line; `why_not` says, reason by reason, what held the other candidates back, and
    `next_steps` what to do about it."""

    status: str | None = None
    choice: str | None = None
    ship: list[str] | None = None
    why: str | None = None
    why_not: list[str] | None = None
    next_steps: list[str] | None = None
    rule: str | None = None
    constraints: list[Constraint] | None = None
    checks: list[CandidateCheck] | None = None

    def check(self, name: str) -> CandidateCheck | None:
        return next((c for c in self.checks or [] if c.name == name), None)


# ---------------------------------------------------------------------------------------------- constraints


def constraints_of(study: Any) -> list[Constraint]:
    """The constraints of a `Study`'s deployment profiles (those that set an SLO or a memory cap)."""
    out = []
    for p in study.deploy.profiles:
        if p.slo_ms is not None or p.memory_cap_mb is not None:
            out.append(Constraint(profile=p.name, slo_ms=p.slo_ms,
                                  slo_percentile=p.slo_percentile if p.slo_ms is not None else None,
                                  memory_cap_mb=p.memory_cap_mb))
    return out


def constraints_from(results: Any) -> list[Constraint]:
    """The constraints as the results record them (for results without a recommendation): a profile's SLO from
    any candidate's `Slo`; a memory cap where any candidate says whether it fits (its value is not recorded)."""
    found: dict[str, Constraint] = {}
    for cand in results.candidates or []:
        for name, prof in (cand.profiles or {}).items():
            if prof is None:
                continue
            c = found.setdefault(str(name), Constraint(profile=str(name)))
            if prof.slo is not None and _num(prof.slo.slo_ms) is not None and c.slo_ms is None:
                c.slo_ms, c.slo_percentile = prof.slo.slo_ms, _fraction_pct(prof.slo.percentile)
            if prof.memory_cap_ok is not None:
                c.memory_cap = True  # a cap was set; its value is not in the results
    return [c for c in found.values() if c.slo_ms is not None or c.capped]


def _fraction_pct(p: Any) -> float | None:
    v = _num(p)
    return None if v is None else (v / 100 if v > 1 else v)


# ---------------------------------------------------------------------------------------------- checks


def _task_name(results: Any) -> str:
    task = results.task
    return str((task.source or task.kind) if task is not None and (task.source or task.kind) else "task")


def task_checks(results: Any, cand: Any) -> list[TaskCheck]:
    """The candidate's verdict on the decision metric, per task: the one task of a one-task study, or every task
    of a study of several (`results.tasks`; the verdicts corrected across them), so that it qualifies only when it
    passes on every one. A task it cannot serve, or has no evaluation on, has no verdict: it does not qualify."""
    if results.tasks:
        entries = cand.tasks or {}
        return [_task_check(str(t.name), entries.get(str(t.name)), t.metric) for t in results.tasks]
    return [_task_check(_task_name(results), cand, _decision_metric(results))]


def _task_check(task: str, entry: Any, metric: Any) -> TaskCheck:
    """One task's check from a candidate's entry on it (`metrics`, `vs_reference`; None: not evaluated)."""
    vs = entry.vs_reference if entry is not None else None
    if vs is None or not entry.metrics:
        return TaskCheck(task=task, metric=str(metric) if metric else None)
    return TaskCheck(task=task, metric=vs.metric or metric, verdict=vs.verdict, diff=vs.diff, ci_low=vs.ci_low,
                     ci_high=vs.ci_high, margin=vs.margin, inconclusive_because=vs.inconclusive_because or _reason(vs),
                     verdict_unadjusted=vs.verdict_unadjusted if vs.verdict_unadjusted != vs.verdict else None)


def _reason(vs: Any) -> str | None:
    """Why an inconclusive verdict is one, for results written before they said so."""
    lo, hi, margin = _num(vs.ci_low), _num(vs.ci_high), _num(vs.margin)
    if vs.verdict != "inconclusive" or lo is None or hi is None or margin is None:
        return None
    from leanbench.stats.multiplicity import inconclusive_reason

    return inconclusive_reason(vs.verdict, vs.verdict_unadjusted, lo, hi, margin)


def profile_checks(cand: Any, constraints: list[Constraint]) -> list[ProfileCheck]:
    """The candidate against each constrained profile."""
    out = []
    for c in constraints:
        prof = (cand.profiles or {}).get(c.profile)
        check = ProfileCheck(profile=c.profile)
        if c.slo_ms is not None:
            check.slo_ms, check.percentile = c.slo_ms, c.slo_percentile
            slo = prof.slo if prof is not None else None
            if slo is None or (slo.meets is None and _num(slo.latency_ms) is None):
                check.slo = "not measured"
            else:
                check.slo = {True: "meets", False: "misses"}.get(slo.meets, "uncertain")
                check.latency_ms, check.ci_low, check.ci_high = slo.latency_ms, slo.ci_low, slo.ci_high
        if c.capped:
            check.memory_cap_mb = c.memory_cap_mb
            peak = _num(prof.peak_memory_bytes) if prof is not None else None
            check.peak_mb = None if peak is None else peak / 1e6
            ok = prof.memory_cap_ok if prof is not None else None
            if ok is None and peak is not None and check.memory_cap_mb is not None:
                ok = peak <= check.memory_cap_mb * 1e6
            check.memory = "not measured" if ok is None else ("fits" if ok else "exceeds")
        out.append(check)
    return out


def _task_blockers(checks: list[TaskCheck]) -> list[str]:
    out = []
    for t in checks:
        if t.verdict is None:
            out.append(NOT_EVALUATED)
        elif t.verdict == "inferior":
            out.append(INFERIOR)
        elif t.verdict == "inconclusive":
            out.append({"power": UNDERPOWERED, "multiplicity": MULTIPLICITY,
                        "ci_straddles_margin": STRADDLES}.get(str(t.inconclusive_because), INCONCLUSIVE))
    return out


def _profile_blockers(checks: list[ProfileCheck]) -> list[str]:
    out = []
    for p in checks:
        out += {"misses": [SLO_MISSED], "uncertain": [SLO_UNCERTAIN], "not measured": [NOT_MEASURED]}.get(
            str(p.slo), [])
        out += {"exceeds": [MEMORY], "not measured": [NOT_MEASURED]}.get(str(p.memory), [])
    return out


def candidate_check(results: Any, cand: Any, constraints: list[Constraint]) -> CandidateCheck:
    """One candidate against the whole rule (the reference against the constraints only)."""
    is_ref = cand.name == results.reference or cand.verdict == "reference"
    tasks = [] if is_ref else task_checks(results, cand)
    profiles = profile_checks(cand, constraints)
    blockers = _task_blockers(tasks) + _profile_blockers(profiles)
    blockers = [b for b in BLOCKERS if b in blockers]
    check = CandidateCheck(name=cand.name, reference=is_ref, qualifies=not blockers, tasks=tasks or None,
                           profiles=profiles or None, tco_usd=_tco(cand), p50_ms=_p50(results, cand),
                           size_bytes=cand.size_bytes, blockers=blockers)
    check.why_not = [_sentence(results, b, check) for b in blockers]
    return check


# ---------------------------------------------------------------------------------------------- the answer


def recommend(results: Any, constraints: list[Constraint] | None = None) -> Recommendation:
    """The recommendation for `results` (a `StudyResults`) under `constraints` (default: read off the
    results, `constraints_from`)."""
    if constraints is None:
        constraints = constraints_from(results)
    checks = [candidate_check(results, c, constraints) for c in results.candidates or []]
    rec = Recommendation(rule=rule_sentence(results, constraints), constraints=constraints, checks=checks)
    ref = next((c for c in checks if c.reference), None)
    contenders = [c for c in checks if c.qualifies and (not c.reference or c is ref)]
    fields = ranking_fields(contenders)
    ranked = sorted(contenders, key=lambda c: (*(_num(getattr(c, f)) or 0.0 for f in fields), bool(c.reference)))
    passing = [c for c in ranked if not c.reference]
    rec.ship = [str(c.name) for c in passing]
    compared = [c for c in checks if not c.reference and any(t.verdict is not None for t in c.tasks or [])]
    if ref is None or not compared:
        return _nothing_evaluated(results, rec)
    if passing and ranked[0] is not ref:
        rec.status, rec.choice = SHIP, passing[0].name
        rec.why = _why_ship(results, passing[0], passing, ref if ref.qualifies else None, fields)
        return rec
    rec.why_not = _why_not(results, [c for c in checks if not c.reference and not c.qualifies])
    rec.next_steps = _next_steps(results, checks)
    if ref is not None and ref.qualifies:
        rec.status, rec.choice = KEEP_REFERENCE, ref.name
        rec.why = _why_keep(results, ref, passing)
    else:
        rec.status = NONE
        rec.why = _why_none(results, ref)
    return rec


def _nothing_evaluated(results: Any, rec: Recommendation) -> Recommendation:
    rec.status = NONE
    if not results.candidates:
        rec.why = "No candidate in the results: nothing to recommend."
    else:
        rec.why = (f"Nothing to recommend yet: no candidate has been compared with the reference "
                   f"'{results.reference}' (the run is unfinished, or the reference was not evaluated).")
    rec.next_steps = ["Finish the run: `leanbench run STUDY.yaml` resumes it, reusing every finished cell."]
    return rec


FIGURES = {"tco_usd": "total cost of ownership", "p50_ms": "p50 latency", "size_bytes": "size"}


def ranking_fields(group: list[CandidateCheck]) -> list[str]:
    """The figures that rank `group`: TCO, then p50 latency, then size, each only when every member has it (a
    candidate whose cost was not priced is not ranked below one that was)."""
    return [f for f in FIGURES if all(_num(getattr(c, f)) is not None for c in group)]


def _fmt(field: str, value: Any) -> str:
    return {"tco_usd": _usd, "p50_ms": _ms, "size_bytes": _mb}[field](value)


def rule_sentence(results: Any, constraints: list[Constraint]) -> str:
    """The rule as applied to these results, in one sentence."""
    metric = _decision_metric(results)
    margin = _margin_text(results)
    parts = [f"non-inferior or superior to the reference on {metric} at the margin of {margin}"]
    slos = [f"{_pct(c.slo_percentile)} ≤ {_ms(c.slo_ms)} on '{c.profile}'" for c in constraints if c.slo_ms]
    caps = [f"'{c.profile}'" + (f" ≤ {_g(c.memory_cap_mb)} MB" if _num(c.memory_cap_mb) is not None else "")
            for c in constraints if c.capped]
    if slos:
        parts.append("the latency SLO met (" + ", ".join(slos) + ", the whole CI within it)")
    if caps:
        parts.append("the memory cap met (" + ", ".join(caps) + ")")
    if not slos and not caps:
        parts.append("no latency SLO or memory cap set (`deploy.profiles`)")
    return ("A candidate qualifies when it is " + "; ".join(parts) + ". Among those, and the reference, the lowest "
            "total cost of ownership wins, then the lowest p50 latency, then the smallest size (each figure used "
            "when every one of them has it).")


# ---------------------------------------------------------------------------------------------- sentences


def _why_ship(results: Any, best: CandidateCheck, passing: list[CandidateCheck], ref: CandidateCheck | None,
              fields: list[str]) -> str:
    t = best.tasks[0] if best.tasks else TaskCheck()
    text = f"Ship '{best.name}': {t.verdict} on {t.metric} ({_diff(results, t)}, margin {_margin_text(results)})"
    if len(best.tasks or []) > 1:  # several tasks: it passed on each; the closest call is the one to show
        t = min(best.tasks or [], key=lambda x: _num(x.diff) if _num(x.diff) is not None else math.inf)
        text = (f"Ship '{best.name}': non-inferior or superior on all {len(best.tasks or [])} tasks (its lowest "
                f"difference: {_diff(results, t)} on {t.task}, {t.metric}, margin {_margin_text(results, t.margin)})")
    met = [f"the {_pct(p.percentile)} SLO on '{p.profile}'"
           + (f" ({_ms(p.latency_ms)} ≤ {_ms(p.slo_ms)})" if _num(p.latency_ms) is not None else "")
           for p in best.profiles or [] if p.slo == "meets"]
    met += [f"the memory cap on '{p.profile}'" for p in best.profiles or [] if p.memory == "fits"]
    if met:
        text += ", meets " + (", ".join(met[:-1]) + " and " + met[-1] if len(met) > 1 else met[0])
    others = [c for c in passing if c is not best]
    return f"{text}; {_ranked_by(best, others, ref, fields)}."


def _ranked_by(best: CandidateCheck, others: list[CandidateCheck], ref: CandidateCheck | None,
               fields: list[str]) -> str:
    """Why `best` comes first: the first ranking figure, with the others' (the reference's when it qualifies)."""
    if not fields:
        return ("the first of the qualifying candidates in the study's order (no TCO, latency or size for all of "
                "them to rank by)" if others else "the only candidate that qualifies")
    field = fields[0]
    vs = [f"{_fmt(field, getattr(o, field))} for '{o.name}'" for o in others[:3]]
    vs += [f"{len(others) - 3} more"] if len(others) > 3 else []
    if ref is not None:
        vs.append(f"the reference {_fmt(field, getattr(ref, field))}")
    figures = _fmt(field, getattr(best, field)) + (" vs " + ", ".join(vs) if vs else "")
    if others:
        return f"the lowest {FIGURES[field]} of the {len(others) + 1} that qualify ({figures})"
    return f"the only candidate that qualifies ({FIGURES[field]} {figures})"


def _why_keep(results: Any, ref: CandidateCheck, passing: list[CandidateCheck]) -> str:
    fields = ranking_fields([ref, *passing])
    if passing and fields:
        field = fields[0]
        names = ", ".join(f"'{c.name}'" for c in passing)
        figures = ", ".join(f"{_fmt(field, getattr(c, field))} for '{c.name}'" for c in passing[:3])
        return (f"Keep the reference '{ref.name}': {names} qualif{'y' if len(passing) > 1 else 'ies'}, but its "
                f"{FIGURES[field]} is lower ({_fmt(field, getattr(ref, field))} vs {figures}).")
    return (f"Keep the reference '{ref.name}': no candidate qualifies yet (see why below); the reference meets "
            "the deployment constraints.")


def _why_none(results: Any, ref: CandidateCheck | None) -> str:
    held = "; ".join(ref.why_not or []) if ref is not None else ""
    return ("No model qualifies: no candidate passes the rule, and the reference does not meet the deployment "
            "constraints either" + (f" ({held})" if held else "") + ".")


def _why_not(results: Any, failing: list[CandidateCheck]) -> list[str]:
    """One sentence per blocker, naming the candidates it holds back, with their figures."""
    out = []
    for code in BLOCKERS:
        held = [c for c in failing if code in (c.blockers or [])]
        if held:
            out.append(_group_sentence(results, code, held))
    return out


def _group_sentence(results: Any, code: str, held: list[CandidateCheck]) -> str:
    names = [f"'{c.name}'" for c in held]
    details = "; ".join(f"'{c.name}' {_detail(results, code, c)}".rstrip() for c in held)
    power = results.power
    if code == UNDERPOWERED and power is not None:
        n, need, mdm = _num(power.n), _num(power.required_n), power.minimum_detectable_margin
        text = (f"Too few test examples for the margin (underpowered): {', '.join(names)} "
                "inconclusive because the test set is too small to resolve it")
        if n is not None:
            text += (f": {n:,.0f} examples resolve about {_margin_text(results, mdm)}, wider than the margin of "
                     f"{_margin_text(results)}")
        text += f"; about {need:,.0f} examples are needed" if need is not None else ""
        return text + (f" ({details})." if len(held) == 1 else ".")  # the differences are in the verdict table
    heads = {
        NOT_EVALUATED: "Not evaluated", INFERIOR: f"Inferior on {_decision_metric(results)}",
        UNDERPOWERED: "Too few test examples for the margin (underpowered)",
        MULTIPLICITY: "Inconclusive after the multiplicity correction",
        STRADDLES: "Inconclusive, the CI straddles the margin", INCONCLUSIVE: "Inconclusive",
        SLO_MISSED: "Latency SLO missed", SLO_UNCERTAIN: "Latency SLO not shown met (its CI straddles it)",
        MEMORY: "Memory cap exceeded", NOT_MEASURED: "Not measured under a constrained profile",
    }
    return f"{heads[code]}: {details}."


def _detail(results: Any, code: str, c: CandidateCheck) -> str:
    t = next((t for t in c.tasks or [] if _task_blockers([t]) == [code]), c.tasks[0] if c.tasks else TaskCheck())
    several = len(c.tasks or []) > 1
    if code in (INFERIOR, UNDERPOWERED, MULTIPLICITY, STRADDLES, INCONCLUSIVE):
        before = f"{t.verdict_unadjusted} before it, " if code == MULTIPLICITY and t.verdict_unadjusted else ""
        return f"({before}{_diff(results, t)}{' on ' + str(t.task) if several else ''})"
    if code == SLO_MISSED:
        return "(" + "; ".join(
            f"{_pct(p.percentile)} {_ms(p.latency_ms)} on '{p.profile}', over the {_ms(p.slo_ms)} SLO by "
            f"{_ms((_num(p.latency_ms) or 0) - (_num(p.slo_ms) or 0))}"
            for p in c.profiles or [] if p.slo == "misses") + ")"
    if code == SLO_UNCERTAIN:
        return "(" + "; ".join(
            f"{_pct(p.percentile)} {_ms(p.latency_ms)} [{_ms(p.ci_low)}, {_ms(p.ci_high)}] on '{p.profile}' "
            f"against {_ms(p.slo_ms)}" for p in c.profiles or [] if p.slo == "uncertain") + ")"
    if code == MEMORY:
        return "(" + "; ".join(_memory_detail(p) for p in c.profiles or [] if p.memory == "exceeds") + ")"
    if code == NOT_MEASURED:
        return "(" + ", ".join(f"'{p.profile}'" for p in c.profiles or []
                               if "not measured" in (p.slo, p.memory)) + ")"
    return ""


def _memory_detail(p: ProfileCheck) -> str:
    peak, cap = _num(p.peak_mb), _num(p.memory_cap_mb)
    text = f"peak {_g(peak)} MB" if peak is not None else "peak memory"
    text += f" on '{p.profile}', over the {_g(cap)} MB cap" if cap is not None else f" on '{p.profile}', over its cap"
    if peak is not None and cap is not None:
        text += f" by {_g(peak - cap)} MB"
    return text


def _sentence(results: Any, code: str, c: CandidateCheck) -> str:
    """The sentence for one candidate and one blocker."""
    return _group_sentence(results, code, [c])


def _next_steps(results: Any, checks: list[CandidateCheck]) -> list[str]:
    """Advice for each blocker that held a candidate back, most useful first."""
    found = {b for c in checks if not c.reference for b in c.blockers or []}
    profiles = {code: sorted({str(p.profile) for c in checks for p in c.profiles or []
                              if (code == SLO_MISSED and p.slo == "misses")
                              or (code == MEMORY and p.memory == "exceeds")})
                for code in (SLO_MISSED, MEMORY)}
    power = results.power
    out = []
    if UNDERPOWERED in found:
        need = _num(power.required_n) if power is not None else None
        n = _num(power.n) if power is not None else None
        mdm = power.minimum_detectable_margin if power is not None else None
        text = ("Evaluate on more examples" + (f": about {need:,.0f} (now {n:,.0f})" if need and n else "")
                + ", with a larger test split or `task.sample`, or add seeds")
        if _num(mdm) is not None:
            text += f"; or accept a margin of about {_margin_text(results, mdm)} if a loss that large is acceptable"
        out.append(text + ".")
    if MULTIPLICITY in found:
        out.append("Raise `evaluate.bootstrap` (the smallest p-value B resamples give is 1/(B + 1)) or compare "
                   "fewer candidates, so that the Holm correction can decide.")
    if STRADDLES in found or INCONCLUSIVE in found:
        out.append("A larger test set narrows the CI: the difference lies close to the margin.")
    if INFERIOR in found:
        out.append("Compress less where a candidate is inferior (a wider student, lower sparsity, a higher rank "
                   "or energy), or distil longer or with a transfer set.")
    if SLO_MISSED in found:
        out.append(f"Make it faster for profile {_names(profiles[SLO_MISSED])}: a faster runtime (ONNX Runtime, "
                   "int8) or a smaller model; or relax its `slo_ms` if the product allows.")
    if SLO_UNCERTAIN in found:
        out.append("Measure with more rounds (`measure.rounds`, `measure.runs`) on a quiet machine to narrow the "
                   "latency CIs that straddle the SLO.")
    if MEMORY in found:
        out.append(f"Shrink the model for profile {_names(profiles[MEMORY])} (quantize, prune, a smaller "
                   "student) or a smaller batch; or raise its `memory_cap_mb`.")
    if NOT_EVALUATED in found or NOT_MEASURED in found:
        out.append("Finish the run: `leanbench run STUDY.yaml` resumes it, reusing every finished cell.")
    return out


# ---------------------------------------------------------------------------------------------- figures


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decision_metric(results: Any) -> str:
    dec = results.decision
    return str(dec.metric) if dec is not None and dec.metric else "accuracy"


def _is_fraction(results: Any, metric: str) -> bool:
    info = (results.metrics_info or {}).get(metric)
    return info is not None and info.unit == "fraction"


def _margin_text(results: Any, margin: Any = None) -> str:
    metric = _decision_metric(results)
    m = _num(margin if margin is not None else (results.decision.margin if results.decision else None))
    if m is None:
        return "—"
    return f"{m * 100:.1f} pt" if _is_fraction(results, metric) else _g(m)


def _signed(x: float, fraction: bool) -> str:
    text = f"{x * 100:+.1f}" if fraction else f"{x:+.3g}"
    return text.replace("-", "\u2212")


def _diff(results: Any, t: TaskCheck) -> str:
    d = _num(t.diff)
    if d is None:
        return "no difference computed"
    fraction = _is_fraction(results, str(t.metric))
    text = _signed(d, fraction) + (" pt" if fraction else "")
    lo, hi = _num(t.ci_low), _num(t.ci_high)
    return text if lo is None or hi is None else f"{text} [{_signed(lo, fraction)}, {_signed(hi, fraction)}]"


def _g(x: Any) -> str:
    v = _num(x)
    return "—" if v is None else (f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}")


def _ms(x: Any) -> str:
    v = _num(x)
    return "—" if v is None else f"{_g(v)} ms"


def _mb(x: Any) -> str:
    v = _num(x)
    return "—" if v is None else f"{_g(v / 1e6)} MB"


def _usd(x: Any) -> str:
    v = _num(x)
    if v is None:
        return "—"
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:.2f}" if abs(v) >= 1 else f"${v:.3g}"


def _pct(p: Any) -> str:
    v = _fraction_pct(p)
    return "latency" if v is None else f"p{v * 100:g}"


def _names(items: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in items)


def _tco(cand: Any) -> float | None:
    serving = cand.cost.serving if cand.cost is not None else None
    tco = serving.tco_usd if serving is not None else None
    return _num(tco.value if isinstance(tco, Interval) else tco)


def _p50(results: Any, cand: Any) -> float | None:
    ref = results.reference_candidate
    profile = next(iter((ref.latency if ref is not None else None) or cand.latency or {}), None)
    lat = cand.latency_of(profile)
    return None if lat is None else _num(lat.p50_ms)
