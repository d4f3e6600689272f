"""Human units and the report's tables as plain text, shared by the Markdown and HTML renderers.

Everything here reads one *results dict* (the "Results JSON" contract in docs/architecture.md) and returns
unescaped strings; each renderer escapes them for its own output. Any number may be missing (None, or NaN
after a failed measurement): it is shown as an em dash, never as "nan" and never as a crash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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
    "p (McNemar)", "verdict", "p50 latency{profile}", "speed-up", "FLOPs/ex",
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


# ---------------------------------------------------------------------------------------------- metrics


def is_fraction(results: Mapping[str, Any], metric: str) -> bool:
    """True when the metric's unit is "fraction": it is then shown in percent (and differences in points)."""
    info = (results.get("metrics_info") or {}).get(metric) or {}
    return info.get("unit") == "fraction"


def higher_is_better(results: Mapping[str, Any], metric: str) -> bool:
    """Direction of a metric: from metrics_info, else from the decision block for the decision metric."""
    info = (results.get("metrics_info") or {}).get(metric) or {}
    if info.get("higher_is_better") is not None:
        return bool(info["higher_is_better"])
    decision = results.get("decision") or {}
    if decision.get("metric") == metric and decision.get("higher_is_better") is not None:
        return bool(decision["higher_is_better"])
    return True


def metric_scale(results: Mapping[str, Any], metric: str) -> float:
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


def fmt_margin(results: Mapping[str, Any], metric: str, margin: Any) -> str:
    """The non-inferiority margin in display units: "1.0 pt" for fractions, "0.050" otherwise."""
    m = num(margin)
    if m is None:
        return DASH
    return f"{m * 100:.1f} pt" if is_fraction(results, metric) else f"{m:.3g}"


def metric_names(results: Mapping[str, Any]) -> list[str]:
    """Metrics in a stable order: those in metrics_info first, then any others found on candidates."""
    names = list((results.get("metrics_info") or {}).keys())
    for cand in candidates(results):
        for name in cand.get("metrics") or {}:
            if name not in names:
                names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- results


def candidates(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The candidate records, skipping anything that is not a mapping."""
    return [c for c in results.get("candidates") or [] if isinstance(c, Mapping)]


def decision_metric(results: Mapping[str, Any]) -> str:
    """The metric the verdicts are decided on (decision.metric, else the first vs_reference metric)."""
    metric = (results.get("decision") or {}).get("metric")
    if metric:
        return str(metric)
    for cand in candidates(results):
        if (cand.get("vs_reference") or {}).get("metric"):
            return str(cand["vs_reference"]["metric"])
    return "accuracy"


def confidence_pct(results: Mapping[str, Any]) -> str:
    """The CI level in percent, "95" by default."""
    conf = num((results.get("decision") or {}).get("confidence")) or 0.95
    return f"{conf * 100:g}"


def verdict(cand: Mapping[str, Any]) -> str | None:
    return (cand.get("vs_reference") or {}).get("verdict")


def metric_entry(cand: Mapping[str, Any], metric: str) -> Mapping[str, Any]:
    return (cand.get("metrics") or {}).get(metric) or {}


def primary_profile(results: Mapping[str, Any]) -> str | None:
    """The latency profile shown in tables and plots: the reference's first, else the first seen."""
    ref = reference_candidate(results)
    order = [ref] if ref is not None else []
    for cand in [*order, *candidates(results)]:
        for name in cand.get("latency") or {}:
            return str(name)
    return None


def p50_ms(cand: Mapping[str, Any], profile: str | None) -> float | None:
    if profile is None:
        return None
    return num(((cand.get("latency") or {}).get(profile) or {}).get("p50_ms"))


def reference_candidate(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = results.get("reference")
    for cand in candidates(results):
        if cand.get("name") == ref:
            return cand
    return None


def n_examples(results: Mapping[str, Any]) -> int | None:
    """Size of the evaluated split (task.splits[evaluated_split].n), else the power block's n."""
    task = results.get("task") or {}
    split = ((task.get("splits") or {}).get(task.get("evaluated_split") or "test")) or {}
    n = num(split.get("n"))
    if n is None:
        n = num((results.get("power") or {}).get("n"))
    return None if n is None else int(n)


def verdict_counts(results: Mapping[str, Any]) -> dict[str, int]:
    """How many candidates got each verdict (the reference excluded)."""
    counts = {v: 0 for v in VERDICTS if v != "reference"}
    for cand in candidates(results):
        v = verdict(cand)
        if v in counts:
            counts[v] += 1
    return counts


# ---------------------------------------------------------------------------------------------- prose


def title(results: Mapping[str, Any]) -> str:
    return f"leanbench report — {results.get('study') or 'study'}"


def summary(results: Mapping[str, Any]) -> str:
    """One paragraph: reference, decision rule, test size and the verdict counts."""
    metric = decision_metric(results)
    decision = results.get("decision") or {}
    n = n_examples(results)
    split = (results.get("task") or {}).get("evaluated_split") or "test"
    counts = verdict_counts(results)
    n_cand = sum(1 for c in candidates(results) if verdict(c) != "reference")
    missing = n_cand - sum(counts.values())
    parts = [f"{v} {k}" for k, v in counts.items()] + ([f"{missing} without a verdict"] if missing else [])
    tally = ", ".join(parts)
    alpha = num(decision.get("alpha"))
    alpha_text = f", α = {alpha:g}" if alpha is not None else ""
    n_text = f"{n:,} " if n is not None else ""
    margin = fmt_margin(results, metric, decision.get("margin"))
    return (
        f"Reference: {results.get('reference') or DASH}. Each candidate is compared with it on {metric} "
        f"({'higher' if higher_is_better(results, metric) else 'lower'} is better) over the same {n_text}"
        f"{split} examples, with a non-inferiority margin of {margin} "
        f"({confidence_pct(results)}% confidence intervals{alpha_text}). "
        f"Of {n_cand} candidate{'s' if n_cand != 1 else ''}: {tally}."
    )


def warnings(results: Mapping[str, Any]) -> list[str]:
    """The power warning (when the test set is too small for the margin) followed by the study's notes."""
    out: list[str] = []
    power = results.get("power") or {}
    if power.get("underpowered"):
        metric = decision_metric(results)
        margin = (results.get("decision") or {}).get("margin")
        n, need = num(power.get("n")), num(power.get("required_n"))
        mdm = fmt_margin(results, metric, power.get("minimum_detectable_margin"))
        n_text = f"n = {n:,.0f}" if n is not None else "this test set"
        text = (
            f"Underpowered: with {n_text} the smallest difference this test can resolve is about {mdm}, "
            f"wider than the margin of {fmt_margin(results, metric, margin)}"
        )
        text += f"; about {need:,.0f} examples would be needed." if need is not None else "."
        out.append(text)
    out.extend(str(note) for note in results.get("notes") or [])
    return out


def verdict_legend(results: Mapping[str, Any]) -> str:
    metric = decision_metric(results)
    margin = fmt_margin(results, metric, (results.get("decision") or {}).get("margin"))
    sign = MINUS if higher_is_better(results, metric) else "+"
    return (
        f"Δ = candidate − reference on {metric}, paired on the same examples; the margin is {sign}{margin}. "
        "p is McNemar's test of the paired correct/incorrect outcomes. Latency is the median of timed runs; "
        "speed-up = reference p50 / candidate p50 under the same setting."
    )


# ---------------------------------------------------------------------------------------------- tables


def verdict_header(results: Mapping[str, Any]) -> list[str]:
    profile = primary_profile(results)
    fill = {
        "metric": decision_metric(results), "conf": confidence_pct(results),
        "profile": f" ({profile})" if profile else "",
    }
    return [col.format(**fill) for col in VERDICT_COLUMNS]


def verdict_row(results: Mapping[str, Any], cand: Mapping[str, Any]) -> list[str]:
    """One row of the verdict table; columns as in VERDICT_COLUMNS."""
    metric = decision_metric(results)
    fraction = is_fraction(results, metric)
    m = metric_entry(cand, metric)
    vs = cand.get("vs_reference") or {}
    is_ref = verdict(cand) == "reference"
    diff = DASH if is_ref else fmt_diff_ci(vs.get("diff"), vs.get("ci_low"), vs.get("ci_high"), fraction)
    return [
        str(cand.get("name", DASH)),
        fmt_count(cand.get("params")),
        fmt_bytes(cand.get("size_bytes")),
        fmt_value_ci(m.get("value"), m.get("ci_low"), m.get("ci_high"), fraction),
        diff,
        DASH if is_ref else fmt_p(vs.get("p_value")),
        str(verdict(cand) or DASH),
        fmt_ms(p50_ms(cand, primary_profile(results))),
        fmt_speedup(cand.get("speedup_vs_reference")),
        fmt_count(cand.get("flops_per_example")),
    ]


def metrics_header(results: Mapping[str, Any]) -> list[str]:
    cols = ["candidate"]
    for metric in metric_names(results):
        arrow = "↑" if higher_is_better(results, metric) else "↓"
        unit = ((results.get("metrics_info") or {}).get(metric) or {}).get("unit")
        unit_text = None if unit == "fraction" else unit
        cols.append(f"{metric} {arrow}" + (f" ({unit_text})" if unit_text else ""))
    return cols


def metrics_row(results: Mapping[str, Any], cand: Mapping[str, Any]) -> list[str]:
    row = [str(cand.get("name", DASH))]
    for metric in metric_names(results):
        m = metric_entry(cand, metric)
        fraction = is_fraction(results, metric)
        row.append(fmt_value_ci(m.get("value"), m.get("ci_low"), m.get("ci_high"), fraction))
    return row


COST_COLUMNS = [
    "candidate", "from", "steps", "params", "non-zero params", "size", "FLOPs/ex", "throughput",
    "peak memory", "build time", "build FLOPs", "build time incl. parents",
]


def cost_row(cand: Mapping[str, Any]) -> list[str]:
    """The bill of one candidate: what it weighs, runs at, and cost to build."""
    cost = cand.get("cost") or {}
    steps = cand.get("steps") or []
    return [
        str(cand.get("name", DASH)),
        str(cand.get("from") or DASH),
        " → ".join(str(s) for s in steps) if steps else DASH,
        fmt_count(cand.get("params")),
        fmt_count(cand.get("nonzero_params")),
        fmt_bytes(cand.get("size_bytes")),
        fmt_count(cand.get("flops_per_example")),
        fmt_rate(cand.get("throughput_per_s")),
        fmt_bytes(cand.get("peak_memory_bytes")),
        fmt_seconds(cost.get("build_seconds_own")),
        fmt_count(cost.get("build_flops")),
        fmt_seconds(cost.get("build_seconds")),
    ]


def _threads(x: Any) -> str:
    t = num(x)
    if t is None:
        return DASH
    return "all cores" if t == 0 else f"{t:.0f}"


def _setting(d: Mapping[str, Any]) -> str:
    return (
        f"threads {_threads(d.get('threads'))}, batch {fmt_count(d.get('batch'))}, "
        f"warm-up {fmt_count(d.get('warmup'))}, timed runs {fmt_count(d.get('runs'))}"
    )


def settings(results: Mapping[str, Any]) -> list[str]:
    """Measurement settings, one line each: latency per profile, throughput, memory, FLOPs, machine, stats."""
    lines: list[str] = []
    seen: dict[str, set[str]] = {}
    for cand in candidates(results):
        for profile, lat in (cand.get("latency") or {}).items():
            if isinstance(lat, Mapping):
                seen.setdefault(str(profile), set()).add(_setting(lat))
        if isinstance(cand.get("throughput"), Mapping):
            seen.setdefault("\x00throughput", set()).add(_setting(cand["throughput"]))
    for key, values in seen.items():
        label = "Throughput" if key == "\x00throughput" else f"Latency, profile '{key}'"
        lines.extend(f"{label}: {v}" for v in sorted(values))
    if not seen:
        lines.append("Latency and throughput: not measured.")
    lines.extend(_methods(results))
    lines.append(_machine(results))
    lines.append(_stats_setting(results))
    return lines


def _methods(results: Mapping[str, Any]) -> list[str]:
    """How peak memory and FLOPs were obtained, each distinct method once."""
    out = []
    mem = {(c.get("memory") or {}).get("method") for c in candidates(results)}
    flops = {c.get("flops_method") for c in candidates(results)}
    mem, flops = {str(m) for m in mem if m}, {str(x) for x in flops if x}
    out.extend(f"Peak memory: {m}" for m in sorted(mem))
    out.extend(f"FLOPs: {f}" for f in sorted(flops))
    return out


def _machine(results: Mapping[str, Any]) -> str:
    man = results.get("manifest") or {}
    cores = num(man.get("cores"))
    cores_text = f", {cores:.0f} cores" if cores is not None else ""
    platform = man.get("platform") or "unknown platform"
    return f"Machine: {man.get('cpu') or 'unknown CPU'}{cores_text}, {platform}"


def _stats_setting(results: Mapping[str, Any]) -> str:
    d = results.get("decision") or {}
    boot = num(d.get("bootstrap"))
    boot_text = f"{boot:,.0f} bootstrap resamples" if boot is not None else "bootstrap resamples not stated"
    alpha = d.get("alpha", DASH)
    return f"Statistics: {confidence_pct(results)}% confidence intervals from {boot_text}; α = {alpha}"


def manifest_rows(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The provenance manifest as (key, value) text pairs, in the manifest's own order."""
    rows = []
    for key, value in (results.get("manifest") or {}).items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        rows.append((str(key), DASH if value is None else str(value)))
    if results.get("generated_at"):
        rows.append(("generated_at", str(results["generated_at"])))
    return rows


def data_lines(results: Mapping[str, Any]) -> list[str]:
    """Where the examples came from: source, classes, and each split's size and fingerprint."""
    task = results.get("task") or {}
    if not task:
        return []
    classes = num(task.get("n_classes"))
    head = f"Data: {task.get('source') or 'unknown source'}"
    head += f", {classes:.0f} classes" if classes is not None else ""
    head += f"; evaluated on the {task.get('evaluated_split') or 'test'} split"
    lines = [head]
    for name, split in (task.get("splits") or {}).items():
        split = split or {}
        fp = split.get("fingerprint")
        n = num(split.get("n"))
        n_text = f"{n:,.0f}" if n is not None else DASH
        lines.append(f"Split {name}: n = {n_text}" + (f", fingerprint {fp}" if fp else ""))
    return lines
