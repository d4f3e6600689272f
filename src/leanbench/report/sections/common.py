"""Units and small readers shared by the report sections (money, energy, intervals, CIs of ms)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from leanbench.analysis.results import Interval, MetricValue, StudyResults
from leanbench.report import _format as f

DASH = f.DASH


def fmt_usd(x: Any) -> str:
    """Money: "$1,234", "$12.34", "$0.123", three significant digits below a cent ("$0.00196"), and tiny amounts
    in scientific form ("$1.96e-05")."""
    v = f.num(x)
    if v is None:
        return DASH
    a = abs(v)
    if a >= 100:
        text = f"{a:,.0f}"
    elif a >= 1:
        text = f"{a:.2f}"
    elif a >= 0.01 or a == 0:
        text = f"{a:.3f}" if a else "0"
    elif a >= 1e-4:
        text = f"{a:.3g}"
    else:
        text = f"{a:.2e}"
    return f"{f.MINUS if v < 0 else ''}${text}"


def fmt_kwh(x: Any) -> str:
    """Energy: kWh above 1 Wh, else Wh or mWh ("2.3 mWh")."""
    v = f.num(x)
    if v is None:
        return DASH
    wh = v * 1000
    if abs(v) >= 1:
        return f"{v:.3g} kWh"
    return f"{wh:.3g} Wh" if abs(wh) >= 1 or wh == 0 else f"{wh * 1000:.3g} mWh"


def fmt_joules(x: Any) -> str:
    v = f.num(x)
    if v is None:
        return DASH
    return f"{v:.3g} J" if abs(v) >= 1 or v == 0 else f"{v * 1000:.3g} mJ"


def fmt_co2(x: Any) -> str:
    v = f.num(x)
    if v is None:
        return DASH
    return f"{v:.3g} kg" if abs(v) >= 1 else f"{v * 1000:.3g} g"


def fmt_interval(d: Interval | MetricValue | Any, fmt: Any) -> str:
    """An Interval {value, low, high} or a MetricValue {value, ci_low, ci_high} (or a plain number) as
    "v [low, high]" with `fmt` applied to each."""
    if isinstance(d, Interval):
        text, lo, hi = fmt(d.value), f.num(d.low), f.num(d.high)
    elif isinstance(d, MetricValue):
        text, lo, hi = fmt(d.value), f.num(d.ci_low), f.num(d.ci_high)
    else:
        return fmt(d)
    if text == DASH or lo is None or hi is None:
        return text
    return f"{text} [{fmt(lo)}, {fmt(hi)}]"


def fmt_ms_ci(value: Any, ci: Any) -> str:
    """A latency with its CI; a missing bound is shown as "?" (e.g. too few runs for a p99 upper bound)."""
    text = f.fmt_ms(value)
    if text == DASH or not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return text
    lo, hi = (f.num(b) for b in ci)
    if lo is None and hi is None:
        return text
    lo_t = f.fmt_ms(lo).removesuffix(" ms") if lo is not None else "?"
    hi_t = f.fmt_ms(hi).removesuffix(" ms") if hi is not None else "?"
    return f"{text} [{lo_t}, {hi_t}]"


def fmt_queries(x: Any) -> str:
    """Query counts: "315,820", "5.14 million", "3.65 billion"."""
    v = f.num(x)
    if v is None:
        return DASH
    if abs(v) < 1e6:
        return f"{v:,.0f}"
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {word}"
    return f"{v:,.0f}"  # pragma: no cover


def short_method(method: Any) -> str:
    """The kind of an energy method for a table cell: "measured: rapl" kept, "estimated: <model>" cut to
    "estimated" (the full text goes in a note under the table, see `method_note`)."""
    text = str(method or "method not stated")
    return text.split(":", 1)[0].strip() if text.startswith("estimated") else text


def method_note(methods: Any, what: str = "Energy") -> str | None:
    """One sentence listing each distinct energy method once."""
    distinct = list(dict.fromkeys(str(m) for m in methods if m))
    if not distinct:
        return None
    return f"{what}: " + "; ".join(distinct) + "."


def scale_and_unit(results: StudyResults, metric: str) -> tuple[float, str, str]:
    """(display scale, value suffix, difference suffix): (100, "%", " pt") for fractions, else (1, "", "")."""
    return (100.0, "%", " pt") if f.is_fraction(results, metric) else (1.0, "", "")


def names_in_order(results: StudyResults, present: Iterable[Any]) -> list[str]:
    """Candidate names in the results' order restricted to `present`, then any others in `present`."""
    order = [str(c.name) for c in f.candidates(results)]
    keys = [str(k) for k in present]
    return [n for n in order if n in keys] + [k for k in keys if k not in order]


def ph(text: Any) -> str:
    """Escape data text for plotly labels, hovers and annotations (plotly renders a subset of HTML there)."""
    import html

    return html.escape(str(text))
