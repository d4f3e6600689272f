"""The recommendation at the top of every report: what to ship and why in one line, or why no candidate
qualifies and what to do next, then (collapsed) how each candidate fared against the rule. It reads
`StudyResults.recommendation` (`leanbench.analysis.recommendation`); results written before it existed get
one computed the same way, from the constraints the results record."""

from __future__ import annotations

from leanbench.analysis.recommendation import (
    KEEP_REFERENCE,
    SHIP,
    CandidateCheck,
    ProfileCheck,
    Recommendation,
    recommend,
)
from leanbench.analysis.results import StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Box, Bullets, Details, Heading, Para, Table
from leanbench.report.sections.common import DASH, fmt_usd
from leanbench.report.sections.serving import pct_label

BLOCKER_WORDS = {
    "not_evaluated": "not evaluated", "inferior": "inferior", "underpowered": "underpowered",
    "multiplicity": "inconclusive (multiplicity)", "ci_straddles_margin": "inconclusive (CI straddles the margin)",
    "inconclusive": "inconclusive", "slo_missed": "SLO missed", "slo_uncertain": "SLO not shown met",
    "memory_cap": "memory cap exceeded", "not_measured": "not measured",
}


def recommendation_of(results: StudyResults) -> Recommendation:
    """The results' recommendation, or one computed from them (results from before it existed)."""
    return results.recommendation or recommend(results)


def headline(rec: Recommendation) -> str:
    if rec.status == SHIP:
        return f"Ship '{rec.choice}'"
    if rec.status == KEEP_REFERENCE:
        return f"Keep the reference '{rec.choice}'"
    return "No model qualifies yet"


def recommendation_blocks(results: StudyResults) -> list[Block]:
    """The recommendation box: headline, why, the runners-up, why not and what next, the checks collapsed."""
    rec = recommendation_of(results)
    inner: list[Block] = [Para(rec.why or DASH)]
    runners = [n for n in rec.ship or [] if n != rec.choice]
    if runners:
        inner.append(Para(_runners_up(rec, runners), small=True))
    if rec.why_not:
        inner.append(Bullets(rec.why_not, title="Why no candidate qualifies" if not rec.ship
                             else "What held the other candidates back"))
    if rec.next_steps:
        inner.append(Bullets(rec.next_steps, title="What to do next"))
    table = checks_table(results, rec)
    if table is not None:
        inner.append(Details("How each candidate fared against the rule", [Para(rec.rule or "", small=True), table]))
    kind = {SHIP: "ship", KEEP_REFERENCE: "keep"}.get(str(rec.status), "none")
    return [Heading("Recommendation"), Box(headline(rec), inner, kind=kind)]


def _runners_up(rec: Recommendation, names: list[str]) -> str:
    figures = []
    for name in names:
        c = rec.check(name)
        tco = fmt_usd(c.tco_usd) if c is not None and c.tco_usd is not None else None
        figures.append(f"'{name}'" + (f" (TCO {tco})" if tco else ""))
    lead = "Also qualif" + ("ies" if len(names) == 1 else "y, in order")
    return f"{lead}: {', '.join(figures)}."


def checks_table(results: StudyResults, rec: Recommendation) -> Table | None:
    """One row per candidate: its verdict, each constrained profile's SLO and memory cap, TCO, p50, outcome."""
    checks = rec.checks or []
    if not checks:
        return None
    metric = f.decision_metric(results)
    profiles = [str(c.profile) for c in rec.constraints or []]
    header = ["candidate", f"verdict ({metric})", *(f"'{p}': SLO, memory" for p in profiles),
              "TCO", f"p50 ({f.primary_profile(results) or 'latency'})", "qualifies"]
    rows, classes = [], []
    for c in checks:
        verdict = "reference" if c.reference else ", ".join(str(t.verdict or DASH) for t in c.tasks or []) or DASH
        row = [str(c.name), verdict]
        row += [_profile_cell(_profile(c, p)) for p in profiles]
        row += [fmt_usd(c.tco_usd), f.fmt_ms(c.p50_ms), _outcome(rec, c)]
        rows.append(row)
        cls: list[str | None] = [None, f"verdict v-{verdict}"] + [None] * (len(row) - 2)
        cls[-1] = "slo-ok" if c.qualifies else "slo-miss"
        classes.append(cls)
    return Table(header, rows, classes=classes, text_cols=(*range(2, 2 + len(profiles)), len(header) - 1))


def _profile(c: CandidateCheck, name: str) -> ProfileCheck | None:
    return next((p for p in c.profiles or [] if p.profile == name), None)


def _profile_cell(p: ProfileCheck | None) -> str:
    if p is None:
        return DASH
    parts = []
    if p.slo is not None:
        pct = pct_label(p.percentile)
        if p.slo == "not measured":
            parts.append(f"{pct} not measured (SLO {f.fmt_ms(p.slo_ms)})")
        else:
            mark = {"meets": "✓", "misses": "✗"}.get(p.slo, "?")
            latency = f" {f.fmt_ms(p.latency_ms)}" if f.num(p.latency_ms) is not None else ""
            parts.append(f"{mark} {pct}{latency} ≤ {f.fmt_ms(p.slo_ms)}")
    if p.memory is not None:
        cap = f"{f.fmt_num(p.memory_cap_mb, 3)} MB cap" if f.num(p.memory_cap_mb) is not None else "memory cap"
        if p.memory == "not measured":
            parts.append(f"memory not measured ({cap})")
        else:
            peak = f" {f.fmt_num(p.peak_mb, 3)} MB" if f.num(p.peak_mb) is not None else ""
            parts.append(f"{'✓' if p.memory == 'fits' else '✗'}{peak} {'within' if p.memory == 'fits' else 'over'} "
                         f"the {cap}")
    return "; ".join(parts) or DASH


def _outcome(rec: Recommendation, c: CandidateCheck) -> str:
    if c.name == rec.choice:
        return "yes: recommended" if not c.reference else "meets the constraints: kept"
    if c.qualifies:
        return "meets the constraints" if c.reference else "yes"
    return "no: " + ", ".join(BLOCKER_WORDS.get(b, b) for b in c.blockers or [])
