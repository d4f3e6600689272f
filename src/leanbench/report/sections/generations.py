"""Generated text (generation tasks): the settings the generations were scored with, and a sample of examples
with each candidate's extracted answer and generation, those where a candidate's exact match differs from the
reference's first. The texts are model output and dataset text: the renderers escape them like every cell."""

from __future__ import annotations

import json

from leanbench.analysis.results import StudyResults
from leanbench.report.blocks import Block, Details, Heading, Para, Table
from leanbench.report.sections.common import names_in_order

MAX_CHARS = 200


def _short(text: object) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= MAX_CHARS else s[:MAX_CHARS] + "…"


def _settings(settings: dict) -> str:
    filters = ", ".join(f["function"] + (f" {f['regex_pattern']!r}" if f["function"] == "regex" else "")
                        for f in settings.get("filters") or []) or "none"
    em = ", ".join(k for k, v in (settings.get("exact_match") or {}).items() if v) or "none"
    return (f"Greedy decoding, stop sequences {json.dumps(settings.get('until') or [])}, at most "
            f"{settings.get('max_new_tokens')} new tokens; answer extraction: {filters}; exact-match "
            f"normalisation: {em}; regex_pass pattern {settings.get('pass_regex')!r}.")


def generation_blocks(results: StudyResults) -> list[Block]:
    gen = results.generations
    if not gen or not gen.get("examples"):
        return []
    examples = gen["examples"]
    names = names_in_order(results, dict.fromkeys(n for e in examples for n in e.get("outputs", {})))
    rows = []
    for e in examples:
        row = [str(e.get("id")), _short(" | ".join(map(str, e.get("targets") or [])))]
        for n in names:
            o = (e.get("outputs") or {}).get(n) or {}
            mark = "✓" if o.get("exact_match") == 1 else "✗" if o else ""
            row.append(f"{mark} {_short(o.get('answer'))} ⟵ {_short(o.get('generated'))}" if o else "")
        rows.append(row)
    n_diff = sum(1 for e in examples if e.get("differs"))
    return [Heading("Generations"),
            Para(_settings(gen.get("settings") or {}), small=True),
            Details(f"{len(examples)} of {gen.get('n')} examples ({n_diff} where a candidate's exact match differs "
                    "from the reference's, shown first): ✓/✗ exact match, the extracted answer ⟵ the generated text",
                    [Table(["id", "targets", *names], rows, text_cols=tuple(range(1, 2 + len(names))),
                           numeric_from=2 + len(names))])]
