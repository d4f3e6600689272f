"""Verdict sections: the main verdict table's optional columns (verdict before correction, TOST, seed
mean ± std), the candidate × metric verdict grid, the p-values behind each verdict, and the seed spread."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from leanbench.analysis.results import CandidateResult, Comparison, Equivalence, SeedSpread, Speedup, StudyResults
from leanbench.report import _format as f
from leanbench.report.blocks import Block, Figure, Heading, Para, Table
from leanbench.report.sections.common import DASH, ph, scale_and_unit

P_FAMILIES = (("p_noninferiority", "non-inferiority"), ("p_superiority", "superiority"),
              ("p_inferiority", "inferiority"))


# ---------------------------------------------------------------------------------------------- main table


def _has_correction(results: StudyResults) -> bool:
    return bool(f.decision(results).correction)


def _equivalence(cand: CandidateResult) -> Equivalence | None:
    return cand.vs_reference.equivalence if cand.vs_reference is not None else None


def _has_equivalence(results: StudyResults) -> bool:
    return any(_equivalence(c) is not None for c in f.candidates(results))


def seed_count(results: StudyResults) -> int:
    """The largest number of seeds any candidate was built with (1 when none reports seeds)."""
    counts = [(f.num(c.seeds.n) if c.seeds is not None else None) or 1 for c in f.candidates(results)]
    return int(max(counts, default=1))


def fmt_tost(eq: Equivalence | None) -> str:
    """TOST outcome: "equivalent (p 0.003)" / "not shown (p 0.21)"."""
    if eq is None or eq.equivalent is None:
        return DASH
    word = "equivalent" if eq.equivalent else "not shown"
    return f"{word} (p {f.fmt_p(eq.p_value)})"


def fmt_seed_spread(results: StudyResults, seeds: SeedSpread | None) -> str:
    """ "97.6% ± 0.4 (3 seeds)" for fractions, "0.092 ± 0.004 (3 seeds)" otherwise."""
    mean = f.num(seeds.mean) if seeds is not None else None
    if seeds is None or mean is None:
        return DASH
    scale, suffix, _ = scale_and_unit(results, str(seeds.metric or f.decision_metric(results)))
    decimals = 1 if scale == 100 else 3
    mean, std = mean * scale, f.num(seeds.std)
    n = f.num(seeds.n)
    k_text = f" ({n:.0f} seeds)" if n is not None else ""
    if std is None:
        return f"{mean:.{decimals}f}{suffix}{k_text}"
    return f"{mean:.{decimals}f}{suffix} ± {std * scale:.{decimals}f}{k_text}"


def verdict_table(results: StudyResults | Mapping[str, Any]) -> Table:
    """The main verdict table: the base columns, then the optional ones whose data is present."""
    results = f.as_results(results)
    header = f.verdict_header(results)
    cands = f.candidates(results)
    rows = [f.verdict_row(results, c) for c in cands]
    classes: list[list[str | None]] = [[None] * len(header) for _ in cands]
    for i in range(len(cands)):
        classes[i][f.VERDICT_COL] = f"verdict v-{rows[i][f.VERDICT_COL]}"
    extra: list[tuple[str, Callable[[CandidateResult], Any], bool]] = []
    tokens = {_measure_tokens(c) for c in cands} - {None}
    profile = f.primary_profile(results)
    if len(tokens) == 1 and profile:  # causal LMs: latency over fixed-length prompts (prefill)
        n_tok = tokens.pop()
        extra.append((f"p50 per token ({profile}, {n_tok}-token prompts)",
                      lambda c: _per_token(f.p50_ms(c, profile), _measure_tokens(c)), False))
    if _has_correction(results):
        extra.append(("verdict before correction", lambda c: (c.vs_reference.verdict_unadjusted if c.vs_reference
                                                               else None)
                      or (f.verdict(c) if f.verdict(c) == "reference" else None), True))
    if _has_equivalence(results):
        extra.append(("TOST equivalence", lambda c: fmt_tost(_equivalence(c)), False))
    k = seed_count(results)
    if k > 1:
        extra.append((f"{f.decision_metric(results)}, mean ± std over {k} seeds",
                      lambda c: fmt_seed_spread(results, c.seeds), False))
    for title, getter, coloured in extra:
        header.append(title)
        for i, cand in enumerate(cands):
            value = getter(cand) or DASH
            rows[i].append(str(value))
            classes[i].append(f"verdict v-{value}" if coloured else None)
    return Table(header, rows, classes=classes)


MAIN_COLUMNS = (0, 2, 3, 4, 6, 7, 8)  # of VERDICT_COLUMNS: candidate, size, metric, Δ, verdict, p50, speed-up


def verdict_tables(results: StudyResults | Mapping[str, Any]) -> tuple[Table, Table]:
    """The verdict table in two, so the first fits a 1,400-px window: the decision (candidate, size, metric and
    Δ with CIs, verdict, p50 latency, speed-up over the reference) and its details (params, McNemar's p,
    FLOPs, the optional columns of `verdict_table`, and the speed-ups over the parent and the runtime control)."""
    results = f.as_results(results)
    full = verdict_table(results)
    rest = [0] + [j for j in range(1, len(full.header)) if j not in MAIN_COLUMNS]

    def pick(cols: Sequence[int]) -> tuple[list[str], list[list[str]], list[list[str | None]]]:
        classes = full.classes or [[None] * len(full.header) for _ in full.rows]
        return ([full.header[j] for j in cols], [[row[j] for j in cols] for row in full.rows],
                [[cls[j] for j in cols] for cls in classes])

    main = Table(*pick(MAIN_COLUMNS))
    header, rows, classes = pick(rest)
    profile = f.primary_profile(results)
    for title, getter in _derived_speedups(results, profile):
        header.append(title)
        for i, cand in enumerate(f.candidates(results)):
            rows[i].append(getter(cand))
            classes[i].append(None)
    derived = tuple(range(len(header) - len(_derived_speedups(results, profile)), len(header)))
    return main, Table(header, rows, classes=classes, text_cols=derived)  # those cells wrap


def _derived_speedups(results: StudyResults, profile: str | None) -> list[tuple[str, Callable[[CandidateResult], str]]]:
    """Columns for the speed-ups over the parent and over the runtime control, when any candidate has one."""
    cands = f.candidates(results)
    where = f" ({profile})" if profile else ""
    out: list[tuple[str, Callable[[CandidateResult], str]]] = []
    if any(c.speedup_vs_parent_of(profile) is not None for c in cands):
        out.append((f"speed-up vs parent{where}", lambda c: _vs(c.speedup_vs_parent_of(profile), c.from_)))
    if any(c.speedup_vs_control_of(profile) is not None for c in cands):
        out.append((f"speed-up vs runtime control{where}",
                    lambda c: _vs(c.speedup_vs_control_of(profile), c.runtime_control)))
    return out


def _vs(s: Speedup | None, baseline: Any) -> str:
    return DASH if s is None else f"{f.fmt_speedup_ci(s)} vs {baseline or s.baseline or DASH}"


def _measure_tokens(cand: CandidateResult) -> int | None:
    """Tokens per timed example of a causal LM (its `describe.measure_tokens`; `describe` is the model's own,
    free-form description), else None."""
    n = f.num((cand.describe or {}).get("measure_tokens"))
    return int(n) if n else None


def _per_token(p50: float | None, tokens: int | None) -> str | None:
    return f.fmt_ms(p50 / tokens) if p50 is not None and tokens else None


def correction_sentence(results: StudyResults | Mapping[str, Any]) -> str | None:
    """Which multiplicity correction was applied (None for old results that do not say)."""
    decision = f.decision(f.as_results(results))
    if not decision.has("correction"):
        return None
    if decision.correction:
        return f"Multiplicity: {decision.correction}. The verdicts shown are after this correction."
    return "Multiplicity: no correction was applied; each verdict is at its own level."


def test_sentence(results: StudyResults | Mapping[str, Any]) -> str | None:
    decision = f.decision(f.as_results(results))
    if decision.test == "equivalence":
        return ("Test: non-inferiority verdicts, plus a TOST equivalence test (two one-sided tests) at the same "
                "margin on both sides.")
    if decision.test:
        return f"Test: {decision.test}."
    return None


# ---------------------------------------------------------------------------------------------- grid


def _comparison_metrics(results: StudyResults) -> list[str]:
    names = [m for m in f.metric_names(results)]
    for cand in f.candidates(results):
        for m in cand.comparisons or {}:
            if m not in names:
                names.append(m)
    return [m for m in names if any(c.comparison(m) is not None for c in f.candidates(results))]


def verdict_grid_blocks(results: StudyResults) -> list[Block]:
    """Candidate × metric verdicts (after correction), coloured; a TOST mark where equivalence was shown."""
    metrics = _comparison_metrics(results)
    if not metrics:
        return []
    rows, classes = [], []
    for cand in f.candidates(results):
        is_ref = f.verdict(cand) == "reference" or cand.name == results.reference
        row, cls = [str(cand.name)], [None]
        for m in metrics:
            comp = cand.comparison(m)
            v = "reference" if is_ref else (comp.verdict if comp is not None else None) or DASH
            eq = comp.equivalence.equivalent if comp is not None and comp.equivalence is not None else None
            row.append(f"{v} ≡" if eq else str(v))
            cls.append(f"verdict v-{v}")
        rows.append(row)
        classes.append(cls)
    out: list[Block] = [Heading("Verdicts per metric"),
                        Table(["candidate", *metrics], rows, classes=classes)]
    note = _grid_note(results)
    note += "; ≡: equivalent by TOST." if any("≡" in c for r in rows for c in r) else "."
    out.append(Para(note, small=True))
    out.extend(_p_value_blocks(results))
    return out


def _grid_note(results: StudyResults) -> str:
    """What the grid's cells are: with families, which column decides and how each family was adjusted."""
    dec = f.decision(results)
    families = dec.families or {}
    primary, secondary = families.get("primary"), families.get("secondary")
    if primary is None:  # results from before the families: one correction over every candidate x metric
        return "Each cell is the verdict on that metric after the multiplicity correction"
    metric = f.decision_metric(results)
    if not dec.correction:
        return (f"The {metric} column is the verdict (the primary family); the other columns are the secondary "
                "family, for information, and never change a verdict; no multiplicity correction")
    text = (f"The {metric} column is the verdict (the primary family, Holm-adjusted across "
            f"{f.fmt_count(primary.comparisons)} candidates)")
    if secondary is not None and secondary.comparisons:
        text += (f"; the other columns are the secondary family, Holm-adjusted on their own across "
                 f"{f.fmt_count(secondary.comparisons)} comparisons, for information: they never change a verdict")
    return text


REASONS = {"multiplicity": "multiplicity correction", "power": "test set too small for the margin",
           "ci_straddles_margin": "CI straddles the margin"}


def _p_values(vs: Comparison) -> list[tuple[float | None, float | None]]:
    """(raw, adjusted) of each family in P_FAMILIES."""
    return [(vs.p_noninferiority, vs.p_noninferiority_adjusted), (vs.p_superiority, vs.p_superiority_adjusted),
            (vs.p_inferiority, vs.p_inferiority_adjusted)]


def _p_value_blocks(results: StudyResults) -> list[Block]:
    """The one-sided p-values behind the decision metric's verdicts, unadjusted and adjusted."""
    metric = f.decision_metric(results)
    fraction = f.is_fraction(results, metric)
    rows, classes = [], []
    why = any(c.vs_reference is not None and c.vs_reference.inconclusive_because for c in f.candidates(results))
    for cand in f.candidates(results):
        vs = cand.vs_reference
        if vs is None or f.verdict(cand) == "reference" or not vs.has("p_noninferiority"):
            continue
        classes.append([None] * 5 + [f"verdict v-{vs.verdict_unadjusted}", f"verdict v-{vs.verdict}", None, None])
        row = [str(cand.name), f.fmt_diff_ci(vs.diff, vs.ci_low, vs.ci_high, fraction)]
        for raw, adj in _p_values(vs):
            row.append(f.fmt_p(raw) + (f" → {f.fmt_p(adj)}" if adj is not None else ""))
        row += [str(vs.verdict_unadjusted or DASH), str(vs.verdict or DASH), fmt_tost(vs.equivalence)]
        if why:
            reason = vs.inconclusive_because
            row.append(REASONS.get(str(reason), str(reason)) if reason else DASH)
        rows.append(row)
    if not rows:
        return []
    header = ["candidate", f"Δ {metric}", *(f"p {name} (raw → adj.)" for _, name in P_FAMILIES),
              "verdict before correction", "verdict", "TOST", *(["why inconclusive"] if why else [])]
    method = next((str(c.vs_reference.method) for c in f.candidates(results)
                   if c.vs_reference is not None and c.vs_reference.method), None)
    text = f"One-sided p-values on {metric}"
    text += f" ({method})" if method else ""
    text += "; adjusted as stated above." if _has_correction(results) else "; no adjustment."
    return [Heading(f"Tests behind the {metric} verdicts", 3),
            Table(header, rows, classes=classes, text_cols=(8,) if why else ()),
            Para(text, small=True)]


# ---------------------------------------------------------------------------------------------- seeds


def _seeded(results: StudyResults) -> list[tuple[CandidateResult, SeedSpread]]:
    return [(c, c.seeds) for c in f.candidates(results)
            if c.seeds is not None and (f.num(c.seeds.n) or 0) > 1 and c.seeds.values]


def _planned(cand: CandidateResult) -> list[int] | None:
    return cand.seeds.planned if cand.seeds is not None and isinstance(cand.seeds.planned, list) else None


def seed_blocks(results: StudyResults) -> list[Block]:
    """Mean ± std over seeds per candidate, and a strip plot of the per-seed values."""
    cands = _seeded(results)
    if not cands:
        return []
    metric = str(cands[0][1].metric or f.decision_metric(results))
    scale, suffix, _ = scale_and_unit(results, metric)
    dec = 1 if scale == 100 else 3
    rows = []
    for cand, s in cands:
        values = ", ".join(f"{v * scale:.{dec}f}" for v in (f.num(x) for x in s.values or []) if v is not None)
        rows.append([str(cand.name), fmt_seed_spread(results, s),
                     f"{(f.num(s.min) or 0) * scale:.{dec}f}{suffix}",
                     f"{(f.num(s.max) or 0) * scale:.{dec}f}{suffix}", values])
    seeds = f.decision(results).seeds
    text = f"Each candidate built with several seeds ({', '.join(str(s) for s in seeds)}); " if seeds else ""
    text += ("std is the sample standard deviation over seeds (ddof = 1). The verdicts' CIs carry both the "
             "seed and the test-sample variance.")
    fewer = [(c, planned) for c in f.candidates(results)
             if seeds and (planned := _planned(c)) is not None and len(planned) < len(seeds)]
    if fewer:
        text += (" Built with fewer seeds by the study's choice: "
                 + ", ".join(f"{c.name} (seed {', '.join(str(s) for s in planned)})" for c, planned in fewer)
                 + "; their own seed variance is not in the CIs that involve them.")
    return [Heading("Seed spread"), Table(["candidate", f"{metric} mean ± std", "min", "max", "per seed"], rows,
                                          text_cols=(4,)),
            Figure(lambda: seed_figure(results), "lb-seeds"), Para(text, small=True)]


def seed_figure(results: StudyResults | Mapping[str, Any]) -> Any:
    """Strip plot: one dot per seed and a bar for the mean, per candidate (colour = verdict)."""
    import plotly.graph_objects as go

    from leanbench.report.plots import NEUTRAL, _layout

    results = f.as_results(results)
    cands = _seeded(results)
    metric = str(cands[0][1].metric or f.decision_metric(results)) if cands else "metric"
    scale, suffix, _ = scale_and_unit(results, metric)
    fig = go.Figure()
    for cand, seeds in cands:
        name = str(cand.name)
        values = [v * scale for v in (f.num(x) for x in seeds.values or []) if v is not None]
        color = f.VERDICT_COLORS.get(f.verdict(cand) or "", NEUTRAL)
        fig.add_trace(go.Scatter(x=[ph(name)] * len(values), y=values, mode="markers", name=ph(name), showlegend=False,
                                 marker={"color": color, "size": 10, "opacity": 0.8, "line": {"width": 1}},
                                 hoverinfo="text", hovertext=[f"{ph(name)}: {v:.3f}{suffix}" for v in values]))
        mean = f.num(seeds.mean)
        if mean is not None:
            fig.add_trace(go.Scatter(x=[ph(name)], y=[mean * scale], mode="markers", showlegend=False,
                                     name=f"{ph(name)} mean", marker={"symbol": "line-ew-open", "size": 28,
                                                                  "color": "#1f2328", "line": {"width": 2}},
                                     hoverinfo="text", hovertext=[f"{ph(name)} mean: {mean * scale:.3f}{suffix}"]))
    fig.update_layout(**_layout("", f"{metric}{' (%)' if scale == 100 else ''} per seed"))
    fig.update_layout(height=360)
    return fig
