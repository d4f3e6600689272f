"""`leanbench compare A B ...`: the candidates of several studies, stores or machines in one table, and a
list of what makes their figures not comparable, stated rather than hidden.

A source is a results JSON (`leanbench report --format json`), `STORE::STUDY` (a store file or URL and a
study in it), a store alone (its latest study), or a study name in the default store (`--store`). Each is
read into the typed results (`StudyResults`): a JSON report through `StudyResults.from_dict`, a store through
`analyse` (read-only).

Latencies are shown as measured and normalised by the machine's score on the manifest's fixed matmul
benchmark (`measure/reference_bench.py`: latency x machine score / REFERENCE_GFLOPS, "reference-machine ms"):
the analysis's `normalised_ms` where the results carry it, else computed here from the manifest's score.

Checked against the first source (the baseline), each difference listed with what it affects:
- the evaluated examples (the evaluated split's fingerprint and size): metric values and verdicts;
- the decision rule (metric, margin, alpha) and the reference's name: verdicts;
- the metrics evaluated: the missing ones;
- runtime and library versions in the manifest (leanbench and its commit, Python, torch, NumPy and any
  other library the manifest records): every figure, latencies first;
- the machine (CPU, cores) and the method of its score: raw latencies, and normalised ones when the scores
  were measured differently;
- the setting of a deployment profile of the same name (threads, batch): its latencies.

A study of several tasks (`tasks:`) gives one row per candidate and task (each task's decision metric, value and
difference from the reference with their CIs) and one row `across tasks` (the macro-average difference with its
CI); the table then has a `task` column (empty for a one-task source). The evaluated examples and the decision
rule are checked task by task (a task's one-task results), and sources whose tasks differ say so. Tables of
one-task sources only are as they always were.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from leanbench.analysis.results import ReferenceScore, StudyResults
from leanbench.errors import LeanbenchError
from leanbench.report._format import table_cell as _f

# manifest keys that describe the run or the machine, not a version
NOT_VERSIONS = {"cpu", "cores", "platform", "seed", "run_id", "started_at", "run_seconds", "reference_score"}
FORMATS = (".md", ".json")


@dataclass
class Source:
    label: str
    where: str  # the file or store it came from
    results: StudyResults

    @property
    def machine(self) -> str:
        m = self.results.manifest
        if m is None or not m.cpu:
            return "unknown machine"
        return f"{m.cpu}, {m.cores} cores" if m.cores else str(m.cpu)

    @property
    def score(self) -> ReferenceScore | None:
        ref = self.results.manifest.reference_score if self.results.manifest else None
        if isinstance(ref, (int, float)) and not isinstance(ref, bool):
            return ReferenceScore(score=float(ref))
        return ref if isinstance(ref, ReferenceScore) and ref.score else None


@dataclass
class Issue:
    what: str  # the kind of difference: "test split", "decision rule", "versions", "machine", ...
    detail: str  # what differs, between which sources, and what it affects


@dataclass
class Comparison:
    sources: list[Source]
    rows: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    not_comparable: list[Issue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sources": [{"label": s.label, "where": s.where, "study": s.results.study, "machine": s.machine,
                             "machine_score": s.score.score if s.score else None} for s in self.sources],
                "candidates": self.rows,
                "not_comparable": [{"what": i.what, "detail": i.detail} for i in self.not_comparable]}


# ---------------------------------------------------------------------------------------------- reading


def _read_json(path: Path) -> StudyResults:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LeanbenchError(f"compare: cannot read {path} as a JSON report: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("candidates"), list):
        raise LeanbenchError(f"compare: {path} is not a leanbench results JSON (no 'candidates' list); write one "
                             "with `leanbench report --format json -o FILE`")
    return StudyResults.from_dict(data) or StudyResults()


def _read_store(store: str | Path | None, study: str | None) -> tuple[str, StudyResults]:
    """(the store as messages name it: a URL without its password, the study's results)."""
    from leanbench.analysis import analyse
    from leanbench.store import Store

    st = Store.open(store, readonly=True)
    return st.location, analyse(st, study)


def _is_json(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def read_source(arg: str, store: str | Path | None = None) -> tuple[str, StudyResults]:
    """(where, results) of one command-line source (see the module docstring)."""
    if "::" in arg:
        where, study = arg.rsplit("::", 1)
        return _read_store(where, study or None)
    path = Path(arg)
    if path.is_file():
        return (arg, _read_json(path)) if _is_json(path) else _read_store(path, None)
    if "://" in arg:
        return _read_store(arg, None)
    if path.suffix.lower() == ".json":
        raise LeanbenchError(f"compare: no such file: {arg}")
    return _read_store(store, arg)


def load_sources(args: list[str], store: str | Path | None = None) -> list[Source]:
    out: list[Source] = []
    for arg in args:
        where, results = read_source(arg, store)
        label = str(results.study or Path(where).stem)
        if any(s.label == label for s in out):
            label = f"{label}#{len(out) + 1}"
        out.append(Source(label, where, results))
    return out


# ---------------------------------------------------------------------------------------------- the table


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def normalised_p50(src: Source, lat: Any) -> float | None:
    """The p50 in reference-machine ms: the analysis's figure, else latency x machine score / reference."""
    norm = lat.normalised_ms
    if isinstance(norm, dict):
        norm = norm.get("p50_ms")
    if _num(norm) is not None:
        return float(norm)
    p50, score = _num(lat.p50_ms), src.score
    if p50 is None or score is None or _num(score.score) is None or score.score <= 0:
        return None
    from leanbench.analysis.core import REFERENCE_GFLOPS
    from leanbench.measure.reference_bench import normalise_latency

    return normalise_latency(p50, float(score.score), REFERENCE_GFLOPS)


ACROSS_TASKS = "across tasks"  # the task column of a candidate's cross-task row


def task_results(res: StudyResults) -> dict[str | None, StudyResults]:
    """Each task's one-task results (a study of several tasks), or the study itself under None."""
    if not res.tasks:
        return {None: res}
    per = res.task_results or {}
    return {t.name: r for t in res.tasks if (r := per.get(str(t.name))) is not None}


def _quality(res: StudyResults, cand: Any, task: str | None) -> dict[str, Any]:
    """The decision metric's value and the difference from the reference, with their CIs (of `task`)."""
    if task is None:
        metrics, vs = cand.metrics, cand.vs_reference
    else:
        entry = (cand.tasks or {}).get(task)
        metrics, vs = (entry.metrics, entry.vs_reference) if entry is not None else (None, None)
    metric = (res.decision.metric if res.decision else None) or (vs.metric if vs else None)
    m = (metrics or {}).get(metric) if metric else None
    return {"verdict": vs.verdict if vs else None, "metric": metric, "value": m.value if m else None,
            "ci_low": m.ci_low if m else None, "ci_high": m.ci_high if m else None, "diff": vs.diff if vs else None,
            "diff_ci_low": vs.ci_low if vs else None, "diff_ci_high": vs.ci_high if vs else None,
            "margin": vs.margin if vs else None}


def _across(cand: Any) -> dict[str, Any]:
    """The cross-task row's quality part: the macro-average difference with its CI."""
    cross = cand.cross_task
    macro = cross.macro_diff if cross is not None else None
    return {"verdict": None, "metric": "mean diff over tasks" if macro else None, "value": None, "ci_low": None,
            "ci_high": None, "diff": macro.value if macro else None, "diff_ci_low": macro.ci_low if macro else None,
            "diff_ci_high": macro.ci_high if macro else None, "margin": None}


def _rows(src: Source, cand: Any, profiles: list[str], with_task: bool) -> list[dict[str, Any]]:
    """The candidate's row (one-task), or one per task and one across tasks, each with the candidate's
    size and latencies."""
    res = src.results
    common: dict[str, Any] = {"params": cand.params, "size_bytes": cand.size_bytes, "machine": src.machine,
                              "machine_score": src.score.score if src.score else None}
    for p in profiles:
        lat = cand.latency_of(p)
        common[f"p50_ms:{p}"] = lat.p50_ms if lat else None
        common[f"p50_normalised_ms:{p}"] = normalised_p50(src, lat) if lat else None
    head = {"source": src.label, "study": res.study}
    if not res.tasks:
        task = {"task": None} if with_task else {}
        return [{**head, **task, "candidate": cand.name, **_quality(res, cand, None), **common}]
    out = [{**head, "task": t, "candidate": cand.name, **_quality(sub, cand, t), **common}
           for t, sub in task_results(res).items() if (cand.tasks or {}).get(str(t)) is not None]
    if cand.cross_task is not None:
        out.append({**head, "task": ACROSS_TASKS, "candidate": cand.name, **_across(cand), **common})
    return out


def compare(sources: list[Source]) -> Comparison:
    """The table of every candidate of every source and the list of what is not comparable."""
    profiles = list(dict.fromkeys(p for s in sources for c in s.results.candidates for p in (c.latency or {})))
    cmp = Comparison(sources, profiles=profiles)
    with_task = any(s.results.tasks for s in sources)
    cmp.rows = [r for s in sources for c in s.results.candidates for r in _rows(s, c, profiles, with_task)]
    base = sources[0]
    for other in sources[1:]:
        cmp.not_comparable.extend(differences(base, other))
    return cmp


# ---------------------------------------------------------------------------------------------- differences


def _split(res: StudyResults) -> tuple[str | None, str | None, int | None]:
    task = res.task
    name = task.evaluated_split if task else None
    info = (task.splits or {}).get(name or "") if task else None
    return name, info.fingerprint if info else None, info.n if info else None


def _versions(res: StudyResults) -> dict[str, str]:
    items = res.manifest.items() if res.manifest else []
    return {k: str(v) for k, v in items if k not in NOT_VERSIONS and isinstance(v, (str, int, float))}


def differences(a: Source, b: Source) -> list[Issue]:
    """What makes the figures of `b` not comparable with those of `a` (the baseline)."""
    pair = f"'{a.label}' vs '{b.label}'"
    out = _split_issues(a, b, pair) + _rule_issues(a, b, pair)
    va, vb = _versions(a.results), _versions(b.results)
    changed = [f"{k} {va.get(k, '—')} vs {vb.get(k, '—')}" for k in dict.fromkeys([*va, *vb])
               if va.get(k) != vb.get(k)]
    if changed:
        out.append(Issue("versions", f"{pair}: different runtime or library versions ({'; '.join(changed)}): "
                                     "latencies (and possibly metric values) may differ for that reason alone"))
    return out + _machine_issues(a, b, pair) + _profile_issues(a, b, pair)


def _task_names(res: StudyResults) -> str:
    tasks = [t for t in task_results(res) if t is not None]
    return f"tasks {', '.join(tasks)}" if tasks else f"one task ({res.task.source if res.task else '?'})"


def _common_tasks(a: Source, b: Source, pair: str) -> tuple[list[tuple[str, StudyResults, StudyResults]],
                                                             list[Issue]]:
    """(pair label, results of a, results of b) for each task both sources have (the study itself for two
    one-task sources), and an issue when their tasks differ."""
    ta, tb = task_results(a.results), task_results(b.results)
    issues = []
    if list(ta) != list(tb):
        issues.append(Issue("tasks", f"{pair}: different tasks ({_task_names(a.results)} vs "
                                     f"{_task_names(b.results)}): only the tasks of the same name are compared, the "
                                     "others are not comparable"))
    common = [(pair if t is None else f"{pair}, task '{t}'", ta[t], tb[t]) for t in ta if t in tb]
    return common, issues


def _split_issues(a: Source, b: Source, pair: str) -> list[Issue]:
    common, out = _common_tasks(a, b, pair)
    for label, ra, rb in common:
        out += _split_issue(a, b, ra, rb, label)
    return out


def _split_issue(a: Source, b: Source, ra: StudyResults, rb: StudyResults, pair: str) -> list[Issue]:
    (na, fa, sa), (nb, fb, sb) = _split(ra), _split(rb)
    if fa and fb and fa == fb:
        return []
    if not fa or not fb:
        return [Issue("test split", f"{pair}: the evaluated split's fingerprint is unknown for "
                                    f"'{a.label if not fa else b.label}': cannot tell whether the metric values "
                                    "come from the same examples")]
    return [Issue("test split", f"{pair}: evaluated on different examples ({na} split, fingerprint {fa}, n={sa} vs "
                                f"{nb} split, fingerprint {fb}, n={sb}): metric values and verdicts are not "
                                "comparable")]


def _rule_issues(a: Source, b: Source, pair: str) -> list[Issue]:
    out = []
    for label, ra, rb in _common_tasks(a, b, pair)[0]:
        da, db = ra.decision, rb.decision
        rule_a = (da.metric, da.margin, da.alpha) if da else (None, None, None)
        rule_b = (db.metric, db.margin, db.alpha) if db else (None, None, None)
        if rule_a != rule_b:
            out.append(Issue("decision rule", f"{label}: verdicts decided differently (metric {rule_a[0]}, margin "
                                              f"{rule_a[1]}, alpha {rule_a[2]} vs metric {rule_b[0]}, margin "
                                              f"{rule_b[1]}, alpha {rule_b[2]}): verdicts are not comparable"))
    if a.results.reference != b.results.reference:
        out.append(Issue("reference", f"{pair}: verdicts against different references ('{a.results.reference}' "
                                      f"vs '{b.results.reference}')"))
    ma, mb = set(a.results.metrics_info or {}), set(b.results.metrics_info or {})
    if ma != mb:
        out.append(Issue("metrics", f"{pair}: different metrics evaluated (only in '{a.label}': "
                                    f"{', '.join(sorted(ma - mb)) or '—'}; only in '{b.label}': "
                                    f"{', '.join(sorted(mb - ma)) or '—'})"))
    return out


def _machine_issues(a: Source, b: Source, pair: str) -> list[Issue]:
    out = []
    if a.machine != b.machine:
        out.append(Issue("machine", f"{pair}: measured on different machines ({a.machine} vs {b.machine}): raw "
                                    "latencies are not comparable; the normalised columns divide out each "
                                    "machine's matmul score (a ranking aid: int8 or memory-bound models may scale "
                                    "differently)"))
    sa, sb = a.score, b.score
    if sa is None or sb is None:
        missing = [s.label for s in (a, b) if s.score is None]
        out.append(Issue("machine score", f"{pair}: no machine score for {', '.join(map(repr, missing))}: its "
                                          "latencies cannot be normalised"))
    elif (sa.method, sa.size, sa.threads) != (sb.method, sb.size, sb.threads):
        out.append(Issue("machine score", f"{pair}: machine scores measured differently ({sa.method} vs "
                                          f"{sb.method}): normalised latencies are not comparable"))
    return out


def _profile_issues(a: Source, b: Source, pair: str) -> list[Issue]:
    def settings(src: Source) -> dict[str, tuple[Any, Any]]:
        out: dict[str, tuple[Any, Any]] = {}
        for c in src.results.candidates:
            for p, lat in (c.latency or {}).items():
                if lat is not None:
                    out.setdefault(p, (lat.threads, lat.batch))
        return out

    sa, sb = settings(a), settings(b)
    return [Issue("profile", f"{pair}: profile '{p}' measured at threads {sa[p][0]}, batch {sa[p][1]} vs threads "
                             f"{sb[p][0]}, batch {sb[p][1]}: its latencies are not comparable")
            for p in sa if p in sb and sa[p] != sb[p]]


# ---------------------------------------------------------------------------------------------- output




def _with_ci(value: Any, low: Any, high: Any) -> str:
    if value is None:
        return "—"
    return _f(value) + (f" [{_f(low)}, {_f(high)}]" if low is not None and high is not None else "")


def table_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted cells of the comparison table."""
    with_task = any("task" in r for r in cmp.rows)
    head = ["source", *(["task"] if with_task else []), "candidate", "verdict", "metric", "value [CI]", "diff [CI]",
            "size (bytes)"]
    for p in cmp.profiles:
        head += [f"p50 ms ({p})", f"norm. p50 ms ({p})"]
    body = []
    for r in cmp.rows:
        cells = [_f(r["source"]), *([_f(r.get("task"))] if with_task else []), _f(r["candidate"]), _f(r["verdict"]),
                 _f(r["metric"]), _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                 _with_ci(r["diff"], r["diff_ci_low"], r["diff_ci_high"]), _f(r["size_bytes"])]
        for p in cmp.profiles:
            cells += [_f(r[f"p50_ms:{p}"]), _f(r[f"p50_normalised_ms:{p}"])]
        body.append(cells)
    return head, body


def _source_lines(cmp: Comparison) -> list[str]:
    return [f"{s.label}: study '{s.results.study}' from {s.where}; {s.machine}; machine score "
            f"{_f(s.score.score) + ' ' + (s.score.unit or 'GFLOP/s') if s.score else '—'}" for s in cmp.sources]


def _issue_lines(cmp: Comparison) -> list[str]:
    if not cmp.not_comparable:
        return ["none found: same evaluated examples, decision rule, metrics, versions, machine and profile "
                "settings"] if len(cmp.sources) > 1 else ["one source: nothing to compare it with"]
    return [f"{i.what}: {i.detail}" for i in cmp.not_comparable]


def plain_text(cmp: Comparison) -> str:
    from leanbench.listing import plain_table

    head, body = table_rows(cmp)
    return "\n".join(["Sources:", *(f"  {line}" for line in _source_lines(cmp)), "",
                      plain_table("Candidates:", tuple(head), body), "", "Not comparable:",
                      *(f"  - {line}" for line in _issue_lines(cmp))])


def markdown(cmp: Comparison) -> str:
    head, body = table_rows(cmp)

    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["# Comparison", "", "## Sources", "", *(f"- {esc(line)}" for line in _source_lines(cmp)), "",
             "## Candidates", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    lines += ["", "## Not comparable", "", *(f"- {esc(line)}" for line in _issue_lines(cmp))]
    return "\n".join(lines) + "\n"


def show(cmp: Comparison, stream: TextIO) -> None:
    """The comparison on a terminal (rich tables) or as plain text (not a terminal, or NO_COLOR)."""
    from leanbench.listing import plain_wanted

    if plain_wanted(stream):
        stream.write(plain_text(cmp) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream)
    for line in _source_lines(cmp):
        console.print(Text(line))
    head, body = table_rows(cmp)
    table = Table(title=Text("Candidates"), title_justify="left")
    for col in head:
        table.add_column(col, overflow="fold")
    for row in body:
        table.add_row(*(Text(c) for c in row))
    console.print(table)
    console.print(Text("Not comparable:", style="bold"))
    for line in _issue_lines(cmp):
        console.print(Text(f"  - {line}"))


def check_output(path: Path) -> str:
    """The output file's suffix (.md or .json), or one message."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS or path.is_dir():
        raise LeanbenchError(f"-o {path}: give a file ending in {' or '.join(FORMATS)} (or no -o for the terminal)")
    return suffix


def write(cmp: Comparison, path: Path) -> None:
    """The comparison as Markdown or JSON (by the file's suffix), written atomically."""
    from leanbench.atomic import atomic_path

    suffix = check_output(path)
    text = json.dumps(cmp.to_dict(), indent=2) + "\n" if suffix == ".json" else markdown(cmp)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LeanbenchError(f"-o {path}: cannot write: {exc.strerror or exc}") from None
