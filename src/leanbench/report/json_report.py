"""JSON report: the results JSON (a results dict itself), with every key kept and nothing that is not valid JSON.

Strict JSON has no NaN or Infinity (RFC 8259 §6), so non-finite floats become null. numpy scalars and
arrays (anything with `.tolist()`) become plain numbers and lists; tuples become lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from leanbench.analysis.results import StudyResults
from leanbench.errors import LeanbenchError


def to_jsonable(obj: Any, path: str = "results") -> Any:
    """A copy of `obj` made only of dict/list/str/int/float/bool/None, finite floats only, keys in order."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return to_jsonable(obj.tolist(), path)
    raise LeanbenchError(f"cannot write {path} to JSON: got a {type(obj).__name__} ({obj!r:.60})")


def render_json(results: StudyResults | Mapping[str, Any]) -> str:
    """The results as indented JSON (a dict as it is, typed results by `to_dict()`), keys in their order,
    NaN/inf written as null."""
    clean = to_jsonable(results.to_dict() if isinstance(results, StudyResults) else results)
    return json.dumps(clean, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"
