"""Integrity: contamination of the evaluated split by each training split (counts per method with the
settings that decide them, a few example pairs, where every flagged example is listed), the metric on the
clean subset beside the full one, duplicates, and holdout reuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import (
    Contamination,
    Decontaminated,
    ExamplePair,
    Holdout,
    Integrity,
    MetricValue,
    StudyResults,
)
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


def _count(report: Contamination, method: str) -> str:
    n = (report.counts or {}).get(method)
    frac = f.num((report.fraction or {}).get(method))
    text = f.fmt_count(n)
    return text if frac is None or text == DASH else f"{text} ({frac * 100:.1f}%)"


def integrity_blocks(results: StudyResults) -> list[Block]:
    integ = results.integrity
    if integ is None or not integ.to_dict():
        return []
    out: list[Block] = [Heading("Integrity")]
    out += _holdout(integ.holdout, results.notes or [])
    out += _contamination(integ)
    out += _decontaminated(results, integ.decontaminated)
    out += _duplicates(integ.duplicates)
    return out if len(out) > 1 else []


def _holdout(hold: Holdout | None, notes: list[Any]) -> list[Block]:
    """Holdout-reuse counts, and its warnings unless the notes at the top already carry them."""
    if hold is None:
        return []
    out: list[Block] = []
    warnings = [str(w) for w in hold.warnings or []]
    fresh = [w for w in warnings if w not in {str(n) for n in notes}]
    if fresh:
        out.append(Bullets(fresh, title="Holdout reuse", warn=True))
    elif warnings:
        out.append(Para("Holdout reuse: see the warnings at the top of the report."))
    studies = ", ".join(str(s) for s in hold.studies or []) or DASH
    out.append(Para(f"Holdout use of the evaluated split in this store: {f.fmt_count(hold.evaluations)} "
                    f"report evaluation(s), {f.fmt_count(hold.selections)} selection(s) (early stopping, "
                    f"sweeps, picking a best candidate); studies: {studies}."))
    return out


def _param(key: str, value: Any) -> str:
    """A method setting as read: timings as durations, other floats to 4 significant digits."""
    if key.endswith("_seconds"):
        return f.fmt_seconds(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _contamination(integ: Integrity) -> list[Block]:
    against = integ.against
    if not against:
        return []
    evaluated = integ.evaluated or "evaluated"
    methods = _methods(against)
    rows, examples, params = [], [], []
    for split, rep in against.items():
        if rep is None:
            continue
        rows.append([f"{split} → {evaluated}", f.fmt_count(rep.n_train), f.fmt_count(rep.n_eval),
                     *(_count(rep, m) for m in methods)])
        for method, info in (rep.methods or {}).items():
            p = (info.params if info is not None else None) or {}
            ptext = ", ".join(f"{k} = {_param(k, v)}" for k, v in p.items())
            seconds = info.seconds if info is not None else None
            params.append(f"{split}, {method}: {ptext or 'defaults'} ({f.fmt_seconds(seconds)})")
        for method, pairs in (rep.examples or {}).items():
            for pair in (pairs or [])[:MAX_EXAMPLES]:
                examples.append(_example_row(str(split), str(method), pair))
    n_rows = len(integ.contaminated_rows or [])
    out: list[Block] = [
        Heading("Contamination", 3),
        Table(["training split → evaluated", "n train", "n eval",
               *(METHOD_LABELS.get(m, m.replace("_", " ")) for m in methods)], rows),
        Para(f"{n_rows} evaluated example(s) flagged by at least one method against any training split. "
             "Verbatim: byte-equal; exact: equal after normalising case, whitespace and punctuation, or equal "
             "with all spaces removed (merged or split words such as \"NJ-based\" / \"NJbased\", from 12 "
             "characters); n-gram: shared word n-grams (GPT-3 / lm-evaluation-harness method) that cover a "
             "stated share of the evaluated text, n-grams common to many texts (boilerplate) "
             "ignored; near-duplicate: MinHash/LSH Jaccard above the threshold." + _ngram_text(against),
             small=True),
    ]
    if any(rep is not None and rep.flagged for rep in against.values()):
        out.append(Para("Every flagged example, per method, with the training example it matches: "
                        "`leanbench report --flags flagged.csv` (or .json); in the results JSON under "
                        "integrity → against → split → flagged.", small=True))
    if params:
        out.append(Para("Settings: " + "; ".join(params) + ".", small=True))
    if examples:
        out.append(Table(["split", "method", "eval #", "train #", "similarity", "evaluated text", "training text"],
                         examples, text_cols=(5, 6), numeric_from=2))
    return out


def _ngram_text(against: Mapping[str, Contamination | None]) -> str:
    """The n-gram method's boilerplate guards as set, and what they changed, per training split."""
    parts = []
    for split, rep in against.items():
        info = (rep.methods or {}).get("ngram") if rep is not None else None
        p = (info.params if info is not None else None) or {}
        if "min_coverage" not in p:
            continue
        max_df = p.get("max_df")
        cut = (f"n-grams held by more than {max_df} texts (training and evaluated together) ignored as "
               f"boilerplate ({f.fmt_count(p.get('ignored_ngrams'))} distinct ones)" if max_df is not None
               else "no n-gram ignored")
        cov = f.num(p.get("min_coverage")) or 0.0
        flagged = (rep.counts or {}).get("ngram") if rep is not None else None
        parts.append(f"{split}: {p.get('n', 13)}-grams, {cut}, flagged when the shared ones cover at least "
                     f"{cov:.0%} of the text's other words: {f.fmt_count(flagged)} flagged, "
                     f"{f.fmt_count(p.get('below_coverage'))} sharing less; any shared n-gram (the plain "
                     f"GPT-3 rule) would flag {f.fmt_count(p.get('shared_any'))}")
    return (" N-gram settings — " + "; ".join(parts) + ".") if parts else ""


def _methods(against: Mapping[str, Contamination | None]) -> list[str]:
    """Methods counted in any split: the known ones first, others as found, "any" last."""
    found: dict[str, None] = {}
    for rep in against.values():
        if rep is not None and rep.counts is not None:
            found.update((str(k), None) for k in rep.counts)
    known = [m for m in METHOD_ORDER if m in found]
    return known + [m for m in found if m not in known and m != "any"] + (["any"] if "any" in found else [])


def _example_row(split: str, method: str, pair: ExamplePair) -> list[str]:
    sim = f.num(pair.similarity)
    return [split, method, f.fmt_count(pair.eval_index), f.fmt_count(pair.train_index),
            DASH if sim is None else f"{sim:.2f}", _clip(pair.eval_text if pair.has("eval_text") else DASH),
            _clip(pair.train_text if pair.has("train_text") else DASH)]


def _decontaminated(results: StudyResults, decon: Decontaminated | None) -> list[Block]:
    if decon is None or not decon.candidates:
        return []
    metric = str(decon.metric or f.decision_metric(results))
    fraction = f.is_fraction(results, metric)
    rows = []
    for name in names_in_order(results, decon.candidates):
        clean = decon.candidates.get(name) or MetricValue()
        full = next((f.metric_entry(c, metric) for c in f.candidates(results) if str(c.name) == name),
                    MetricValue())
        fv, cv = f.num(full.value), f.num(clean.value)
        change = DASH if fv is None or cv is None else f.fmt_diff_ci(cv - fv, None, None, fraction)
        rows.append([name, f.fmt_metric(full, fraction), f.fmt_metric(clean, fraction), change])
    n = f.n_examples(results)
    n_text = f"all {n:,}" if n is not None else "all"
    n_clean = f.num(decon.n_clean)
    clean_text = f"{n_clean:,.0f} clean" if n_clean is not None else "clean"
    conf = f.confidence_pct(results)
    return [Heading("Full vs decontaminated", 3),
            Table(["candidate", f"{metric}, {n_text} ({conf}% CI)", f"{metric}, {clean_text} ({conf}% CI)",
                   "change"], rows)]


def _duplicates(dup: dict[str, Any] | None) -> list[Block]:
    """Duplicates inside the evaluated split (free-form statistics): scalar facts as given, lists shown by
    their length."""
    if not dup:
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
