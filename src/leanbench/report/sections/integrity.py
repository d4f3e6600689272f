"""Integrity: contamination of the evaluated split by each training split (counts per method, a few
example pairs), the metric on the clean subset beside the full one, duplicates, and holdout reuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.report import _format as f
from leanbench.report.blocks import Block, Bullets, Heading, Para, Table
from leanbench.report.sections.common import DASH, names_in_order

METHOD_ORDER = ("exact", "exact_rows", "ngram", "near_duplicate")
METHOD_LABELS = {"ngram": "n-gram", "near_duplicate": "near-duplicate", "exact_rows": "exact rows"}
MAX_EXAMPLES = 3
MAX_TEXT = 160


def _clip(text: Any) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _count(report: Mapping[str, Any], method: str) -> str:
    n = (report.get("counts") or {}).get(method)
    frac = f.num((report.get("fraction") or {}).get(method))
    text = f.fmt_count(n)
    return text if frac is None or text == DASH else f"{text} ({frac * 100:.1f}%)"


def integrity_blocks(results: Mapping[str, Any]) -> list[Block]:
    integ = results.get("integrity")
    if not isinstance(integ, Mapping) or not integ:
        return []
    out: list[Block] = [Heading("Integrity")]
    out += _holdout(integ.get("holdout"), results.get("notes") or [])
    out += _contamination(integ)
    out += _decontaminated(results, integ.get("decontaminated"))
    out += _duplicates(integ.get("duplicates"))
    return out if len(out) > 1 else []


def _holdout(hold: Any, notes: list[Any]) -> list[Block]:
    """Holdout-reuse counts, and its warnings unless the notes at the top already carry them."""
    if not isinstance(hold, Mapping):
        return []
    out: list[Block] = []
    warnings = [str(w) for w in hold.get("warnings") or []]
    fresh = [w for w in warnings if w not in {str(n) for n in notes}]
    if fresh:
        out.append(Bullets(fresh, title="Holdout reuse", warn=True))
    elif warnings:
        out.append(Para("Holdout reuse: see the warnings at the top of the report."))
    studies = ", ".join(str(s) for s in hold.get("studies") or []) or DASH
    out.append(Para(f"Holdout use of the evaluated split in this store: {f.fmt_count(hold.get('evaluations'))} "
                    f"report evaluation(s), {f.fmt_count(hold.get('selections'))} selection(s) (early stopping, "
                    f"sweeps, picking a best candidate); studies: {studies}."))
    return out


def _param(key: str, value: Any) -> str:
    """A method setting as read: timings as durations, other floats to 4 significant digits."""
    if key.endswith("_seconds"):
        return f.fmt_seconds(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _contamination(integ: Mapping[str, Any]) -> list[Block]:
    against = integ.get("against")
    if not isinstance(against, Mapping) or not against:
        return []
    evaluated = integ.get("evaluated") or "evaluated"
    methods = _methods(against)
    rows, examples, params = [], [], []
    for split, rep in against.items():
        if not isinstance(rep, Mapping):
            continue
        rows.append([f"{split} → {evaluated}", f.fmt_count(rep.get("n_train")), f.fmt_count(rep.get("n_eval")),
                     *(_count(rep, m) for m in methods)])
        for method, info in (rep.get("methods") or {}).items():
            p = (info or {}).get("params") or {}
            ptext = ", ".join(f"{k} = {_param(k, v)}" for k, v in p.items()) if isinstance(p, Mapping) else str(p)
            params.append(f"{split}, {method}: {ptext or 'defaults'} ({f.fmt_seconds((info or {}).get('seconds'))})")
        for method, pairs in (rep.get("examples") or {}).items():
            for pair in (pairs or [])[:MAX_EXAMPLES]:
                if isinstance(pair, Mapping):
                    examples.append(_example_row(str(split), str(method), pair))
    n_rows = len(integ.get("contaminated_rows") or [])
    out: list[Block] = [
        Heading("Contamination", 3),
        Table(["training split → evaluated", "n train", "n eval",
               *(METHOD_LABELS.get(m, m.replace("_", " ")) for m in methods)], rows),
        Para(f"{n_rows} evaluated example(s) flagged by at least one method against any training split. "
             "Exact: equal after normalising case, whitespace and punctuation; n-gram: a shared word n-gram "
             "(GPT-3 / lm-evaluation-harness method); near-duplicate: MinHash/LSH Jaccard above the threshold.",
             small=True),
    ]
    if params:
        out.append(Para("Settings: " + "; ".join(params) + ".", small=True))
    if examples:
        out.append(Table(["split", "method", "eval #", "train #", "similarity", "evaluated text", "training text"],
                         examples, text_cols=(5, 6), numeric_from=2))
    return out


def _methods(against: Mapping[str, Any]) -> list[str]:
    """Methods counted in any split: the known ones first, others as found, "any" last."""
    found: dict[str, None] = {}
    for rep in against.values():
        if isinstance(rep, Mapping) and isinstance(rep.get("counts"), Mapping):
            found.update((str(k), None) for k in rep["counts"])
    known = [m for m in METHOD_ORDER if m in found]
    return known + [m for m in found if m not in known and m != "any"] + (["any"] if "any" in found else [])


def _example_row(split: str, method: str, pair: Mapping[str, Any]) -> list[str]:
    sim = f.num(pair.get("similarity"))
    return [split, method, f.fmt_count(pair.get("eval_index")), f.fmt_count(pair.get("train_index")),
            DASH if sim is None else f"{sim:.2f}", _clip(pair.get("eval_text", DASH)),
            _clip(pair.get("train_text", DASH))]


def _decontaminated(results: Mapping[str, Any], decon: Any) -> list[Block]:
    if not isinstance(decon, Mapping) or not decon.get("candidates"):
        return []
    metric = str(decon.get("metric") or f.decision_metric(results))
    fraction = f.is_fraction(results, metric)
    rows = []
    for name in names_in_order(results, decon["candidates"]):
        clean = decon["candidates"].get(name) or {}
        full = next((f.metric_entry(c, metric) for c in f.candidates(results) if str(c.get("name")) == name), {})
        fv, cv = f.num(full.get("value")), f.num(clean.get("value"))
        change = DASH if fv is None or cv is None else f.fmt_diff_ci(cv - fv, None, None, fraction)
        rows.append([name, f.fmt_value_ci(full.get("value"), full.get("ci_low"), full.get("ci_high"), fraction),
                     f.fmt_value_ci(clean.get("value"), clean.get("ci_low"), clean.get("ci_high"), fraction),
                     change])
    n = f.n_examples(results)
    n_text = f"all {n:,}" if n is not None else "all"
    n_clean = f.num(decon.get("n_clean"))
    clean_text = f"{n_clean:,.0f} clean" if n_clean is not None else "clean"
    conf = f.confidence_pct(results)
    return [Heading("Full vs decontaminated", 3),
            Table(["candidate", f"{metric}, {n_text} ({conf}% CI)", f"{metric}, {clean_text} ({conf}% CI)",
                   "change"], rows)]


def _duplicates(dup: Any) -> list[Block]:
    """Duplicates inside the evaluated split: scalar facts as given, lists shown by their length."""
    if not isinstance(dup, Mapping) or not dup:
        return []
    items = []
    for key, value in dup.items():
        label = str(key).replace("_", " ")
        if isinstance(value, (list, tuple)):
            items.append(f"{label}: {len(value)} group(s)")
        elif isinstance(value, Mapping):
            items.append(f"{label}: {len(value)} entr{'y' if len(value) == 1 else 'ies'}")
        else:
            items.append(f"{label}: {DASH if value is None else value}")
    return [Heading("Duplicates in the evaluated split", 3), Bullets(items)]
