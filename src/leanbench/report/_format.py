"""Human units and the report's tables as plain text, shared by the Markdown and HTML renderers.

Everything here reads the typed results (`leanbench.analysis.results.StudyResults`; a results dict in the
"Results JSON" form of docs/architecture.md is read into one by `as_results`) and returns unescaped strings;
each renderer escapes them for its own output. Any number may be missing (None, or NaN after a failed
measurement): it is shown as an em dash, never as "nan" and never as a crash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from leanbench.analysis.results import (
    CandidateCost,
    CandidateResult,
    DecisionInfo,
    Latency,
    MetricValue,
    StudyResults,
    Throughput,
)

DASH = "—"
MINUS = "\u2212"  # typographic minus, as in "−0.3 pt"
VERDICTS = ("reference", "superior", "non-inferior", "inconclusive", "inferior")
VERDICT_COLORS = {
    "reference": "#5b6770", "superior": "#1a7f37", "non-inferior": "#2da44e",
    "inconclusive": "#bf8700", "inferior": "#cf222e",
}
VERDICT_COL = 6  # index of the verdict in VERDICT_COLUMNS
VERDICT_COLUMNS = (
    "candidate", "params", "size", "{metric} ({conf}% CI)", "Δ vs ref ({conf}% CI)",
    "p (McNemar)", "verdict", "p50 latency{profile}", "speed-up{profile} (95% CI)", "FLOPs/ex",
)


# ---------------------------------------------------------------------------------------------- numbers


def num(x: Any) -> float | None:
    """`x` as a finite float, or None when it is missing, not a number, NaN or infinite."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _scaled(value: float, units: Sequence[str], base: float) -> tuple[float, str]:
    """Divide by `base` until below it; returns the scaled value and its unit."""
    i = 0
    while abs(value) >= base and i < len(units) - 1:
        value /= base
        i += 1
    return value, units[i]


def fmt_num(x: Any, sig: int = 4) -> str:
    """Any number with at most `sig` significant digits (the report never prints a float's raw 17): 51.871460729999995
    -> "51.87", 0.0070084999 -> "0.007008", 106.906 -> "106.9", 4.0 -> "4", 123456.7 -> "123,457" (the integer
    part is kept whole), 1.2e-07 -> "1.2e-07"; integers are grouped: 33554432 -> "33,554,432"."""
    value = num(x)
    if value is None:
        return DASH
    if isinstance(x, int) or abs(value) >= 10 ** sig:
        text = f"{abs(value):,.0f}"
    else:
        text = f"{abs(value):.{sig}g}"
        text = f"{abs(value):,.0f}" if "e+" in text else text  # 9999.5 rounds up to 1e+04
    return f"{MINUS}{text}" if value < 0 and text.strip("0.,e+-") else text


def table_cell(x: Any) -> str:
    """A value in a plain or Markdown table of exports and `compare`: a float to 4 significant digits, an
    integer grouped, None as a dash, text with `|` escaped and line breaks as spaces."""
    if x is None:
        return DASH
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def fmt_value(value: Any) -> str:
    """A free-form value from the results (a manifest entry, a model's `describe()`, a step's settings) as text,
    every number through `fmt_num`: mappings as "key: value, ...", lists as "[a, b]"."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return fmt_num(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    return str(value)


def fmt_count(x: Any) -> str:
    """Counts with SI suffixes: 950 -> "950", 279562 -> "279.6k", 1.2e11 -> "120.0G"."""
    value = num(x)
    if value is None:
        return DASH
    if abs(value) < 1000:
        return f"{value:.0f}" if value == int(value) else f"{value:.3g}"
    scaled, unit = _scaled(value, ("", "k", "M", "G", "T", "P", "E"), 1000.0)
    return f"{scaled:.1f}{unit}"


def fmt_bytes(x: Any) -> str:
    """Bytes in decimal (SI) units, 1 kB = 1000 B: 1119000 -> "1.1 MB"."""
    value = num(x)
    if value is None:
        return DASH
    if abs(value) < 1000:
        return f"{value:.0f} B"
    scaled, unit = _scaled(value, ("B", "kB", "MB", "GB", "TB"), 1000.0)
    return f"{scaled:.1f} {unit}"


def fmt_ms(x: Any) -> str:
    """Milliseconds with two significant figures below 1 ms: 0.0512 -> "0.051 ms", 12.34 -> "12.3 ms"."""
    value = num(x)
    if value is None:
        return DASH
    if abs(value) < 1:
        return f"{value:#.2g} ms"
    if abs(value) < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if abs(value) < 100 else f"{value:.0f} ms"


def fmt_seconds(x: Any) -> str:
    """Durations: 0.05 -> "0.05 s", 4.2 -> "4.2 s", 750 -> "12.5 min", 7200 -> "2.0 h"."""
    value = num(x)
    if value is None:
        return DASH
    if value < 1:
        return f"{value:.2g} s"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def fmt_speedup(x: Any) -> str:
    """Speed-up factors: 1.914 -> "1.91×", 12.3 -> "12.3×"."""
    value = num(x)
    if value is None:
        return DASH
    return f"{value:.2f}×" if abs(value) < 10 else f"{value:.1f}×"


def fmt_speedup_ci(s: Any, fallback: Any = None) -> str:
    """An interleaved speed-up with its CI: "2.91× [2.70, 3.10]" when the CI excludes 1, else
    "no difference (1.02× [0.97, 1.08])"; without one (measured before intervals existed) the bare factor."""
    if s is None or num(getattr(s, "value", None)) is None:
        return fmt_speedup(fallback)
    lo = "?" if s.ci_low is None else f"{s.ci_low:.2f}"
    hi = "?" if s.ci_high is None else f"{s.ci_high:.2f}"
    figure = f"{fmt_speedup(s.value)} [{lo}, {hi}]"
    if s.faster or s.slower:
        return figure
    return f"no difference ({figure})"


def fmt_rate(x: Any) -> str:
    """Throughput in examples per second: 250000 -> "250.0k/s"."""
    text = fmt_count(x)
    return text if text == DASH else f"{text}/s"


def fmt_p(x: Any) -> str:
    """p-values: three decimals, "<0.001" below that."""
    value = num(x)
    if value is None:
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _signed(value: float, decimals: int) -> str:
    """A number with an explicit sign and a typographic minus; a value that rounds to zero has no sign."""
    text = f"{abs(value):.{decimals}f}"
    if float(text) == 0:
        return text
    return f"+{text}" if value > 0 else f"{MINUS}{text}"


def _plain(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.replace("-", MINUS) if float(text) != 0 else text.lstrip("-")


# ---------------------------------------------------------------------------------------------- inputs


def as_results(results: StudyResults | Mapping[str, Any]) -> StudyResults:
    """The typed results: `results` itself, or a results dict (the JSON form, possibly an old or partial
    one) read into them."""
    if isinstance(results, StudyResults):
        return results
    return StudyResults.from_dict(results) or StudyResults()


def as_candidate(cand: CandidateResult | Mapping[str, Any]) -> CandidateResult:
    if isinstance(cand, CandidateResult):
        return cand
    return CandidateResult.from_dict(cand) or CandidateResult()


def decision(results: StudyResults) -> DecisionInfo:
    return results.decision or DecisionInfo()


def cost_of(cand: CandidateResult) -> CandidateCost:
    return cand.cost or CandidateCost()


# ---------------------------------------------------------------------------------------------- metrics


def is_fraction(results: StudyResults, metric: str) -> bool:
    """True when the metric's unit is "fraction": it is then shown in percent (and differences in points)."""
    info = (results.metrics_info or {}).get(metric)
    return info is not None and info.unit == "fraction"


def higher_is_better(results: StudyResults, metric: str) -> bool:
    """Direction of a metric: from metrics_info, else from the decision block for the decision metric."""
    info = (results.metrics_info or {}).get(metric)
    if info is not None and info.higher_is_better is not None:
        return bool(info.higher_is_better)
    dec = decision(results)
    if dec.metric == metric and dec.higher_is_better is not None:
        return bool(dec.higher_is_better)
    return True


def metric_scale(results: StudyResults, metric: str) -> float:
    """Display scale: 100 for fraction metrics (percent / points), 1 otherwise."""
    return 100.0 if is_fraction(results, metric) else 1.0


def fmt_value_ci(value: Any, lo: Any, hi: Any, fraction: bool) -> str:
    """A metric with its CI: fractions as "97.2% [95.3, 98.6]", other units as "0.092 [0.061, 0.131]"."""
    v = num(value)
    if v is None:
        return DASH
    scale, decimals, suffix = (100.0, 1, "%") if fraction else (1.0, 3, "")
    text = f"{_plain(v * scale, decimals)}{suffix}"
    low, high = num(lo), num(hi)
    if low is None or high is None:
        return text
    return f"{text} [{_plain(low * scale, decimals)}, {_plain(high * scale, decimals)}]"


def fmt_metric(m: MetricValue | None, fraction: bool) -> str:
    """A MetricValue with its CI (see `fmt_value_ci`)."""
    return DASH if m is None else fmt_value_ci(m.value, m.ci_low, m.ci_high, fraction)


def fmt_diff_ci(diff: Any, lo: Any, hi: Any, fraction: bool) -> str:
    """A paired difference with its CI: fractions in points, "−0.3 pt [−1.4, +0.8]"."""
    d = num(diff)
    if d is None:
        return DASH
    scale, decimals, suffix = (100.0, 1, " pt") if fraction else (1.0, 3, "")
    text = f"{_signed(d * scale, decimals)}{suffix}"
    low, high = num(lo), num(hi)
    if low is None or high is None:
        return text
    return f"{text} [{_signed(low * scale, decimals)}, {_signed(high * scale, decimals)}]"


def fmt_margin(results: StudyResults, metric: str, margin: Any) -> str:
    """The non-inferiority margin in display units: "1.0 pt" for fractions, "0.050" otherwise."""
    m = num(margin)
    if m is None:
        return DASH
    return f"{m * 100:.1f} pt" if is_fraction(results, metric) else f"{m:.3g}"


def metric_names(results: StudyResults) -> list[str]:
    """Metrics in a stable order: those in metrics_info first, then any others found on candidates."""
    names = list(results.metrics_info or {})
    for cand in candidates(results):
        for name in cand.metrics or {}:
            if name not in names:
                names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- results


def candidates(results: StudyResults) -> list[CandidateResult]:
    """The candidate records."""
    return list(results.candidates or [])


def decision_metric(results: StudyResults) -> str:
    """The metric the verdicts are decided on (decision.metric, else the first vs_reference metric)."""
    metric = decision(results).metric
    if metric:
        return str(metric)
    for cand in candidates(results):
        if cand.vs_reference is not None and cand.vs_reference.metric:
            return str(cand.vs_reference.metric)
    return "accuracy"


def confidence_pct(results: StudyResults) -> str:
    """The CI level in percent, "95" by default."""
    conf = num(decision(results).confidence) or 0.95
    return f"{conf * 100:g}"


def verdict(cand: CandidateResult) -> str | None:
    return cand.verdict


def metric_entry(cand: CandidateResult, metric: str) -> MetricValue:
    return cand.metric(metric)


def primary_profile(results: StudyResults | Mapping[str, Any]) -> str | None:
    """The latency profile shown in tables and plots: the reference's first, else the first seen."""
    results = as_results(results)
    ref = reference_candidate(results)
    order = [ref] if ref is not None else []
    for cand in [*order, *candidates(results)]:
        for name in cand.latency or {}:
            return str(name)
    return None


def p50_ms(cand: CandidateResult | Mapping[str, Any], profile: str | None) -> float | None:
    lat = as_candidate(cand).latency_of(profile)
    return None if lat is None else num(lat.p50_ms)


def reference_candidate(results: StudyResults) -> CandidateResult | None:
    return results.reference_candidate


def n_examples(results: StudyResults) -> int | None:
    """Size of the evaluated split (task.splits[evaluated_split].n), else the power block's n."""
    task = results.task
    split = (task.splits or {}).get(task.evaluated_split or "test") if task is not None else None
    n = num(split.n) if split is not None else None
    if n is None and results.power is not None:
        n = num(results.power.n)
    return None if n is None else int(n)


def verdict_counts(results: StudyResults) -> dict[str, int]:
    """How many candidates got each verdict (the reference excluded)."""
    counts = {v: 0 for v in VERDICTS if v != "reference"}
    for cand in candidates(results):
        v = verdict(cand)
        if v in counts:
            counts[v] += 1
    return counts


# ---------------------------------------------------------------------------------------------- prose


def title(results: StudyResults) -> str:
    return f"leanbench report — {results.study or 'study'}"


def summary(results: StudyResults) -> str:
    """One paragraph: reference, decision rule, test size and the verdict counts."""
    metric = decision_metric(results)
    dec = decision(results)
    n = n_examples(results)
    split = (results.task.evaluated_split if results.task is not None else None) or "test"
    counts = verdict_counts(results)
    n_cand = sum(1 for c in candidates(results) if verdict(c) != "reference")
    missing = n_cand - sum(counts.values())
    parts = [f"{v} {k}" for k, v in counts.items()] + ([f"{missing} without a verdict"] if missing else [])
    tally = ", ".join(parts)
    alpha = num(dec.alpha)
    alpha_text = f", α = {alpha:g}" if alpha is not None else ""
    n_text = f"{n:,} " if n is not None else ""
    margin = fmt_margin(results, metric, dec.margin)
    return (
        f"Reference: {results.reference or DASH}. Each candidate is compared with it on {metric} "
        f"({'higher' if higher_is_better(results, metric) else 'lower'} is better) over the same {n_text}"
        f"{split} examples, with a non-inferiority margin of {margin} "
        f"({confidence_pct(results)}% confidence intervals{alpha_text}). "
        f"Of {n_cand} candidate{'s' if n_cand != 1 else ''}: {tally}."
    )


def warnings(results: StudyResults) -> list[str]:
    """The power warning (when the test set is too small for the margin) followed by the study's notes."""
    out: list[str] = []
    power = results.power
    if power is not None and power.underpowered:
        metric = decision_metric(results)
        n, need = num(power.n), num(power.required_n)
        mdm = fmt_margin(results, metric, power.minimum_detectable_margin)
        n_text = f"n = {n:,.0f}" if n is not None else "this test set"
        text = (
            f"Underpowered: with {n_text} the smallest difference this test can resolve is about {mdm}, "
            f"wider than the margin of {fmt_margin(results, metric, decision(results).margin)}"
        )
        text += f"; about {need:,.0f} examples would be needed." if need is not None else "."
        out.append(text)
    out.extend(str(note) for note in results.notes or [])
    return out


def verdict_legend(results: StudyResults) -> str:
    metric = decision_metric(results)
    margin = fmt_margin(results, metric, decision(results).margin)
    sign = MINUS if higher_is_better(results, metric) else "+"
    return (
        f"Δ = candidate − reference on {metric}, paired on the same examples; the margin is {sign}{margin}. "
        f"{family_sentence(results)}"
        "p is McNemar's test of the paired correct/incorrect outcomes. Latency is the median of timed runs. "
        "Every candidate is timed together in interleaved rounds (order shuffled per round); speed-up = median "
        "over rounds of reference / candidate per-round median latency, with a distribution-free 95% CI; "
        "\"no difference\" unless the whole interval is beyond ±min_speedup (5% by default: identical models "
        "timed side by side differ by up to 3%)."
    )


def family_sentence(results: StudyResults) -> str:
    """Which comparisons decide the verdict and how they were adjusted (empty for results from before the
    families: they adjusted every candidate x metric comparison together), with a trailing space."""
    dec = decision(results)
    families = dec.families or {}
    primary, secondary = families.get("primary"), families.get("secondary")
    if primary is None:
        return ""
    metric = decision_metric(results)
    k = num(primary.comparisons)
    adjust = (f", Holm-adjusted across the {k:.0f} candidate{'s' if k != 1 else ''}" if dec.correction and k
              else ", not adjusted for multiplicity" if not dec.correction else "")
    text = f"The verdict is decided on {metric} alone (the primary family{adjust}). "
    others = [str(m) for m in (secondary.metrics if secondary is not None else None) or [] if m is not None]
    if secondary is not None and others:
        m = num(secondary.comparisons)
        own = (f", Holm-adjusted on their own across {m:.0f} comparisons" if dec.correction and m else "")
        text += (f"The other metrics ({', '.join(others)}) are a secondary family{own}: they are "
                 "shown under 'Verdicts per metric' and never change a verdict. ")
    if any(c.vs_reference is not None and c.vs_reference.inconclusive_because for c in candidates(results)):
        text += ("The notes say why each inconclusive verdict is one: the multiplicity correction (decided "
                 "without it), a test set too small for the margin, or a CI that straddles the margin. ")
    return text


# ---------------------------------------------------------------------------------------------- tables


def verdict_header(results: StudyResults) -> list[str]:
    profile = primary_profile(results)
    fill = {
        "metric": decision_metric(results), "conf": confidence_pct(results),
        "profile": f" ({profile})" if profile else "",
    }
    return [col.format(**fill) for col in VERDICT_COLUMNS]


def verdict_row(results: StudyResults, cand: CandidateResult) -> list[str]:
    """One row of the verdict table; columns as in VERDICT_COLUMNS."""
    metric = decision_metric(results)
    fraction = is_fraction(results, metric)
    vs = cand.vs_reference
    is_ref = verdict(cand) == "reference"
    diff = DASH if is_ref or vs is None else fmt_diff_ci(vs.diff, vs.ci_low, vs.ci_high, fraction)
    return [
        DASH if cand.name is None else str(cand.name),
        fmt_count(cand.params),
        fmt_bytes(cand.size_bytes),
        fmt_metric(metric_entry(cand, metric), fraction),
        diff,
        DASH if is_ref or vs is None else fmt_p(vs.p_value),
        str(verdict(cand) or DASH),
        fmt_ms(p50_ms(cand, primary_profile(results))),
        fmt_speedup(cand.speedup_vs_reference) if is_ref
        else fmt_speedup_ci(cand.speedup_of(primary_profile(results)), cand.speedup_vs_reference),
        fmt_count(cand.flops_per_example),
    ]


def metrics_header(results: StudyResults) -> list[str]:
    cols = ["candidate"]
    for metric in metric_names(results):
        arrow = "↑" if higher_is_better(results, metric) else "↓"
        info = (results.metrics_info or {}).get(metric)
        unit = info.unit if info is not None else None
        unit_text = None if unit == "fraction" else unit
        cols.append(f"{metric} {arrow}" + (f" ({unit_text})" if unit_text else ""))
    return cols


def metrics_row(results: StudyResults, cand: CandidateResult) -> list[str]:
    row = [DASH if cand.name is None else str(cand.name)]
    for metric in metric_names(results):
        row.append(fmt_metric(metric_entry(cand, metric), is_fraction(results, metric)))
    return row


COST_COLUMNS = [
    "candidate", "from", "steps", "params", "non-zero params", "size", "FLOPs/ex", "throughput",
    "peak memory", "build time", "build FLOPs", "build time incl. parents",
]


def steps_text(cand: CandidateResult) -> str:
    steps = cand.steps or []
    return " → ".join(s if isinstance(s, str) else fmt_value(s) for s in steps) if steps else DASH


def cost_row(cand: CandidateResult) -> list[str]:
    """The bill of one candidate: what it weighs, runs at, and cost to build."""
    cost = cost_of(cand)
    return [
        DASH if cand.name is None else str(cand.name),
        str(cand.from_ or DASH),
        steps_text(cand),
        fmt_count(cand.params),
        fmt_count(cand.nonzero_params),
        fmt_bytes(cand.size_bytes),
        fmt_count(cand.flops_per_example),
        fmt_rate(cand.throughput_per_s),
        fmt_bytes(cand.peak_memory_bytes),
        fmt_seconds(cost.build_seconds_own),
        fmt_count(cost.build_flops),
        fmt_seconds(cost.build_seconds),
    ]


def _threads(x: Any) -> str:
    t = num(x)
    if t is None:
        return DASH
    return "all cores" if t == 0 else f"{t:.0f}"


def _setting(d: Latency | Throughput) -> str:
    return (
        f"threads {_threads(d.threads)}, batch {fmt_count(d.batch)}, "
        f"warm-up {fmt_count(d.warmup)}, timed runs {fmt_count(d.runs)}"
    )


def settings(results: StudyResults) -> list[str]:
    """Measurement settings, one line each: latency per profile, throughput, memory, FLOPs, machine, stats."""
    lines: list[str] = []
    seen: dict[str, set[str]] = {}
    for cand in candidates(results):
        for profile, lat in (cand.latency or {}).items():
            if lat is not None:
                seen.setdefault(str(profile), set()).add(_setting(lat))
        if cand.throughput is not None:
            seen.setdefault("\x00throughput", set()).add(_setting(cand.throughput))
    for key, values in seen.items():
        label = "Throughput" if key == "\x00throughput" else f"Latency, profile '{key}'"
        lines.extend(f"{label}: {v}" for v in sorted(values))
    if not seen:
        lines.append("Latency and throughput: not measured.")
    lines.extend(_methods(results))
    lines.append(_machine(results))
    lines.append(_stats_setting(results))
    return lines


def _methods(results: StudyResults) -> list[str]:
    """How peak memory and FLOPs were obtained, each distinct method once."""
    out = []
    mem = {c.memory.method for c in candidates(results) if c.memory is not None}
    flops = {c.flops_method for c in candidates(results)}
    mem, flops = {str(m) for m in mem if m}, {str(x) for x in flops if x}
    out.extend(f"Peak memory: {m}" for m in sorted(mem))
    out.extend(f"FLOPs: {f}" for f in sorted(flops))
    return out


def _machine(results: StudyResults) -> str:
    man = results.manifest
    cpu, cores, platform = (man.cpu, man.cores, man.platform) if man is not None else (None, None, None)
    n_cores = num(cores)
    cores_text = f", {n_cores:.0f} cores" if n_cores is not None else ""
    return f"Machine: {cpu or 'unknown CPU'}{cores_text}, {platform or 'unknown platform'}"


def _stats_setting(results: StudyResults) -> str:
    d = decision(results)
    boot = num(d.bootstrap)
    boot_text = f"{boot:,.0f} bootstrap resamples" if boot is not None else "bootstrap resamples not stated"
    return f"Statistics: {confidence_pct(results)}% confidence intervals from {boot_text}; α = {fmt_num(d.alpha)}"


def manifest_rows(results: StudyResults) -> list[tuple[str, str]]:
    """The provenance manifest as (key, value) text pairs, in the manifest's own order."""
    rows = []
    for key, value in results.manifest.items() if results.manifest is not None else []:
        text = fmt_seconds(value) if str(key).endswith("_seconds") else fmt_value(value)
        rows.append((str(key), text))
    if results.generated_at:
        rows.append(("generated_at", str(results.generated_at)))
    return rows


def data_lines(results: StudyResults) -> list[str]:
    """Where the examples came from: source, classes, and each split's size and fingerprint."""
    task = results.task
    if task is None or not task.to_dict():
        return []
    classes = num(task.n_classes)
    head = f"Data: {task.source or 'unknown source'}"
    head += f", {classes:.0f} classes" if classes is not None else ""
    head += f"; evaluated on the {task.evaluated_split or 'test'} split"
    lines = [head]
    for name, split in (task.splits or {}).items():
        fp = split.fingerprint if split is not None else None
        n = num(split.n) if split is not None else None
        n_text = f"{n:,.0f}" if n is not None else DASH
        lines.append(f"Split {name}: n = {n_text}" + (f", fingerprint {fp}" if fp else ""))
    return lines
