"""What ``leanbench ls`` shows: the studies of a store, their candidates, what is finished and where each
built model sits (its artifact folder), as a dict (``ls --json``) and as plain-text tables (``ls`` when stdout
is not a terminal or ``NO_COLOR`` is set; a terminal gets the same columns as a rich table). Read-only."""

from __future__ import annotations

import os
from typing import Any

COLUMNS = ("candidate", "from", "steps", "built", "evaluated", "measured", "model folder")


def store_listing(st: Any) -> dict[str, Any]:
    """``{"store": path, "studies": [{"name", "last_run": {"started_at", "status"}, "candidates": [{"name",
    "from", "steps", "built"|"evaluated"|"measured": {"done", "total"}, "artifacts": {seed: folder | null}}]}]}``:
    the store as messages name it (a server URL without its password); a folder (absolute, as `Store.cell` gives
    it) is null until its build cell is done."""
    studies = []
    for name in st.study_names():
        run = (st.study(name) or {}).get("run") or {}
        studies.append({"name": name, "last_run": {"started_at": run.get("started_at"), "status": run.get("status")},
                        "candidates": [_candidate(st, c) for c in st.candidates(name)]})
    return {"store": st.location, "studies": studies}


def _candidate(st: Any, c: dict) -> dict[str, Any]:
    cells = c["cells"]
    done = {key: st.cell(key) for key in [*cells["build"].values(), *cells["evaluate"].values(),
                                           *([cells["measure"]] if cells.get("measure") else [])]}

    def count(keys: list[str]) -> dict[str, int]:
        return {"done": sum(done[k] is not None for k in keys), "total": len(keys)}

    artifacts = {str(seed): (done[key] or {}).get("artifact") for seed, key in cells["build"].items()}
    return {"name": c["name"], "from": c["from_"], "steps": list(c["steps"]),
            "built": count(list(cells["build"].values())), "evaluated": count(list(cells["evaluate"].values())),
            "measured": count([cells["measure"]] if cells.get("measure") else []), "artifacts": artifacts}


def rows(study: dict[str, Any]) -> list[list[str]]:
    """One row of `COLUMNS` per candidate: counts as done/total, the first seed's model folder (shown relative
    to the working directory when it is below it) and how many more seeds have their own."""
    out = []
    for c in study["candidates"]:
        folders = [f for f in c["artifacts"].values() if f]
        where = _short(folders[0]) + (f" (+{len(folders) - 1} seeds)" if len(folders) > 1 else "") if folders else "-"
        marks = [f"{c[k]['done']}/{c[k]['total']}" if c[k]["total"] else "-"
                 for k in ("built", "evaluated", "measured")]
        out.append([c["name"], c["from"] or "-", " -> ".join(c["steps"]) or "-", *marks, where])
    return out


def title(study: dict[str, Any]) -> str:
    run = study["last_run"]
    return f"{study['name']}  (last run {run['started_at'] or '?'}, {run['status'] or '?'})"


def _short(folder: str) -> str:
    rel = os.path.relpath(folder)
    return folder if rel.startswith("..") else rel


def plain_table(head: str, columns: tuple[str, ...], body: list[list[str]]) -> str:
    """A title line and columns padded with spaces: no markup, no colour, no box characters."""
    widths = [max(len(str(r[i])) for r in [list(columns), *body]) for i in range(len(columns))]
    lines = [head, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def plain_wanted(stream: Any) -> bool:
    """Plain text when the stream is not a terminal or NO_COLOR is set (https://no-color.org: any non-empty
    value)."""
    return bool(os.environ.get("NO_COLOR")) or not (hasattr(stream, "isatty") and stream.isatty())
