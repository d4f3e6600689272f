"""Loading a study: YAML, ``${VAR}`` interpolation, and every problem reported at once.

Each problem carries its path (``candidates[2].steps[0].distill.temperature``), what was wrong and what was
given. Unknown keys get a "did you mean". Cross-references (``reference``, ``from:``, ``teacher:``) are
checked on the raw file too, so they are reported beside type errors. One error lists at most ``MAX_LISTED``
problems and counts the rest; a file whose aliases expand past ``MAX_NODES`` values is one error. For
``leanbench validate`` (``check_data``) the data files are opened (``leanbench.data.check``) and the optional
packages the models need are looked for, and their problems are listed with the others.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from leanbench.errors import MAX_LISTED, ConfigError
from leanbench.plugins import FAMILIES, MODEL_KINDS, STEPS, TASK_KINDS, model_kind, model_kind_of_mapping
from leanbench.registry import did_you_mean
from leanbench.study import PROBLEMS_SEP, TASK_OWN_KEYS, DataFiles, Study

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

MAX_NODES = 1_000_000  # values a study may expand to (YAML aliases repeat what an anchor holds)


class _TooLarge(Exception):
    pass


def _interpolate(node: Any, path: str, problems: list[str], budget: list[int] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values from the environment. Counts the values it copies
    in `budget` (a one-item list): past ``MAX_NODES`` it stops (a YAML alias bomb: nine levels of nine
    aliases are 387 million values)."""
    if budget is None:
        budget = [0]
    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise _TooLarge
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), problems, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems, budget) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                problems.append(f"{path}: environment variable {m.group(1)} is not set and has no default")
                return m.group(0)
            return value

        return _ENV.sub(sub, node)
    return node


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for k, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("~"):
            continue  # union tags are not part of the user's path
        elif part == "task" and k == 2 and loc[0] == "tasks":
            continue  # a named task's settings are written beside its name (`tasks[0].data`)
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed_keys(cls: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in cls.model_fields.items() if n != "base_dir"]


def _tagged_class(tag: str) -> Any:
    """The config class behind a union tag of an error's path ("~files", "~mlp", "~multiple-choice")."""
    name = tag[1:]
    if name == "files":
        return DataFiles
    for registry in (MODEL_KINDS, TASK_KINDS):
        if name in registry:
            entry = registry.get(name)
            return getattr(entry, "spec", None) or entry.config
    return None


def _known_keys_at(loc: tuple[Any, ...]) -> list[str]:
    """Keys allowed at the parent of an unknown key, for the "did you mean"."""
    cls: Any = Study
    parts = loc[:-1]
    for k, part in enumerate(parts):
        if isinstance(part, int):
            continue
        if isinstance(part, str) and part.startswith("~"):  # a plugin-declared union: model, task, data
            cls = _tagged_class(part) or cls
        elif k >= 2 and parts[k - 2] == "steps" and isinstance(parts[k - 1], int) and part in STEPS:
            cls = STEPS.get(part).config  # a step's own settings
        else:
            fields = getattr(cls, "model_fields", {})
            field = fields.get(part) or {f.alias: f for f in fields.values() if f.alias}.get(part)
            if field is None:
                return []
            cls = _model_in(field.annotation)  # None for a plugin union: its tag comes next
    own = list(TASK_OWN_KEYS) if len(parts) == 4 and parts[0] == "tasks" else []  # beside a named task's keys
    return _allowed_keys(cls) + own if hasattr(cls, "model_fields") else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = format_loc(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) >= 3 and isinstance(loc[-2], int) and loc[-3] == "steps":
            return (f"{where}: unknown step '{key}'{did_you_mean(key, STEPS.in_order())}; "
                    f"known: {', '.join(STEPS.in_order())}")
        return f"{where}: unknown key '{key}'{did_you_mean(key, _known_keys_at(loc))}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[0].lower() + msg[1:]
    given = err.get("input")
    if err["type"] in ("missing",) or isinstance(given, dict) or given is None:
        return f"{where}: {msg}"
    return f"{where}: {msg}, got {given!r}"


def _split_top_level(err: dict[str, Any]) -> list[str]:
    """A study-level check's problems, one each (`PROBLEMS_SEP` between them, each starting with its path)."""
    text = _describe(err)
    if err["loc"] or PROBLEMS_SEP not in text:
        return [text]
    return [p for p in text.split(PROBLEMS_SEP)[1:] if p]


def reference_problems(raw: Any) -> list[str]:
    """Checks `reference`, `from:` and `teacher:` on the raw mapping: missing names and cycles."""
    if not isinstance(raw, dict) or not isinstance(raw.get("candidates"), list):
        return []
    names: dict[str, int] = {}
    problems: list[str] = []
    edges: dict[str, list[str]] = {}
    ev = raw.get("evaluate") if isinstance(raw.get("evaluate"), dict) else {}
    study_seeds = ev.get("seeds") if isinstance(ev.get("seeds"), list) else [raw.get("seed", 0)]
    for i, c in enumerate(raw["candidates"]):
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            if c["name"] in names:
                problems.append(f"candidates[{i}].name: duplicate candidate name '{c['name']}'")
            names.setdefault(c["name"], i)
    known = list(names)
    ref = raw.get("reference")
    if isinstance(ref, str) and ref not in names:
        problems.append(f"reference: no candidate named '{ref}'{did_you_mean(ref, known)}")
    for i, c in enumerate(raw["candidates"]):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            continue
        deps = edges.setdefault(c["name"], [])
        if isinstance(c.get("from"), str):
            deps.append(c["from"])
            if c["from"] not in names:
                problems.append(f"candidates[{i}].from: no candidate named '{c['from']}'"
                                f"{did_you_mean(c['from'], known)}")
        for j, step in enumerate(c.get("steps") or []):
            for where, t in _named_in_step(step):
                deps.append(t)
                if t not in names:
                    problems.append(f"candidates[{i}].steps[{j}].{where}: no candidate named '{t}'"
                                    f"{did_you_mean(t, known)}")
        own = c.get("seeds")
        if isinstance(own, list) and not set(own) <= set(study_seeds):
            problems.append(f"candidates[{i}].seeds: {sorted(set(own) - set(study_seeds))} not among the study's "
                            f"seeds {study_seeds} (evaluate.seeds)")
    problems.extend(_cycles(edges, names))
    return problems


def _named_in_step(step: Any) -> list[tuple[str, str]]:
    """(path, name) of every candidate a raw step mapping names (its descriptor's `names` fields)."""
    if not isinstance(step, dict) or len(step) != 1:
        return []
    name, cfg = next(iter(step.items()))
    if name not in STEPS or not isinstance(cfg, dict):
        return []
    return [(f"{name}.{f}", cfg[f]) for f in STEPS.get(name).names if isinstance(cfg.get(f), str)]


def _cycles(edges: dict[str, list[str]], index: dict[str, int]) -> list[str]:
    found: list[str] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in edges.get(node, []):
            if dep not in edges:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(f"candidates[{index[cycle[0]]}]: 'from'/'teacher' references form a cycle: "
                                 + " -> ".join(cycle))
            elif state.get(dep) is None:
                walk(dep, stack + [dep])
        state[node] = 2

    for node in edges:
        if node not in state:
            walk(node, [node])
    return found


def _extract_spaces(raw: dict, problems: list[str], bad_paths: set[str]) -> dict:
    """Moves search spaces out of step parameters into `sweep.space` and puts a representative value in
    their place, so the steps validate as usual (each space is checked on its own; the paths of bad
    spaces go to `bad_paths` so their placeholder type errors are not reported twice)."""
    from leanbench.search.sweep import apply_params, find_search_space, placeholder_params, validate_space

    cands = raw.get("candidates")
    if not isinstance(cands, list):
        return raw
    out = []
    for i, cand in enumerate(cands):
        space = find_search_space({"steps": cand.get("steps")}) if isinstance(cand, dict) else {}
        if not space:
            out.append(cand)
            continue
        good = {}
        for path, spec in space.items():
            bad = validate_space({path: spec})
            problems.extend(f"candidates[{i}].{p}" for p in bad)
            if bad:
                bad_paths.add(f"candidates[{i}].{path}")
            else:
                good[path] = spec
        steps = apply_params({"steps": cand["steps"]}, placeholder_params(good))["steps"]
        out.append({**cand, "steps": steps, "sweep": {**(cand.get("sweep") or {}), "space": good}})
    return {**raw, "candidates": out}


def parse_study(raw: Any, source: str | None = None, base_dir: str | Path = ".", *,
                check_data: bool = False) -> Study:
    """Validates a mapping (from YAML) into a Study, or raises ConfigError with every problem (the first
    ``MAX_LISTED`` listed, the rest counted). `check_data`: also open the data (headers and first rows) and
    look for the optional packages the models and steps need (``leanbench validate``)."""
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): a study is a mapping of keys, got {type(raw).__name__}"], source)
    problems: list[str] = []
    try:
        raw = _interpolate(raw, "", problems)
    except RecursionError:
        raise ConfigError(["(top level): the study is nested too deeply"], source) from None
    except _TooLarge:
        raise ConfigError([f"(top level): the study expands to more than {MAX_NODES:,} values: YAML aliases "
                           "(`*name`) repeat what their anchor (`&name`) holds, and aliases of aliases multiply; "
                           "a study is far smaller, so check its anchors and aliases"], source) from None
    bad_spaces: set[str] = set()
    raw = _extract_spaces(raw, problems, bad_spaces)
    more = 0  # schema errors past the listed ones: counted, not described (800,000 unknown keys)
    try:
        study = Study.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_context=False):
            if format_loc(tuple(err["loc"])) in bad_spaces:
                continue
            for problem in _split_top_level(err):
                if len(problems) < MAX_LISTED:
                    problems.append(problem)
                else:
                    more += 1
        study = None
    listed = set(problems)
    problems.extend(p for p in reference_problems(raw) if p not in listed)
    if not problems and study is not None:  # the families each step gets need a whole, acyclic study
        problems.extend(study.plugin_problems())
    if not problems and study is not None:
        problems.extend(study.device_problems())
    tasks = task_blocks(study)
    for where, task in tasks:
        if getattr(task, "sample", None) is not None and study.evaluate.split != "test":
            problems.append(f"{where}.sample: samples the test split, but evaluate.split is "
                            f"'{study.evaluate.split}'; evaluate on test, or leave {where}.sample out")
    if check_data:
        if study is not None and study.tasks is not None:
            subs = [s for _, s in study.per_task()] if not problems else []
            problems.extend(dict.fromkeys(p for sub in subs for p in extras_problems(raw, sub)))
            problems.extend(model_file_problems(study, Path(base_dir)))
            for where, task in tasks:
                problems.extend(where + p[len("task"):] if p.startswith("task") else p
                                for p in _data_problems(raw, None, Path(base_dir), task))
        else:
            problems.extend(extras_problems(raw, study))
            problems.extend(model_file_problems(study, Path(base_dir)))
            problems.extend(_data_problems(raw, study, Path(base_dir)))
    if problems or more:
        raise ConfigError(problems, source, more)
    assert study is not None
    return study


# --------------------------------------------------------------------------- what validate checks beyond the file
# optional packages that are not a model family's or a step's (those are in their descriptors' `requires`)
SWEEP_NEEDS = (("optuna", "sweep"),)
GGUF_NEEDS = (("gguf", "lm"),)


def _family_needs(family: str | None) -> tuple[tuple[str, str], ...]:
    return FAMILIES.get(family).requires if family in FAMILIES else ()


def extras_problems(raw: dict, study: Study | None) -> list[str]:
    """One problem per optional package that a model, step or sweep of the study needs and that is not
    installed, at the first place that needs it, naming the extra that installs it (from the descriptors'
    `requires`, along each candidate's family path)."""
    needs: list[tuple[str, str, str, str]] = []  # (where, what, module, extra)

    def need(where: str, what: str, wanted: tuple[tuple[str, str], ...]) -> None:
        needs.extend((where, what, module, extra) for module, extra in wanted)

    if study is not None:
        index = {c.name: i for i, c in enumerate(study.candidates)}
        for name, path in study.family_paths().items():
            cand, i = study.candidate(name), index[name]
            if cand.model is not None:
                need(f"candidates[{i}].model", f"a {model_kind(cand.model)} model", _family_needs(path[0][1]))
                if getattr(cand.model, "gguf_file", None):
                    need(f"candidates[{i}].model.gguf_file", "a GGUF checkpoint", GGUF_NEEDS)
            for j, step in enumerate(cand.steps):
                where = f"candidates[{i}].steps[{j}].{step.name}"
                need(where, f"step '{step.name}'", step.plugin.requires)
                before, after = path[j][1], path[j + 1][1]
                if after is not None and after != before:
                    need(where, f"a {after} model", _family_needs(after))
            if cand.sweep is not None:
                need(f"candidates[{i}].sweep", "a sweep", SWEEP_NEEDS)
    elif isinstance(raw.get("candidates"), list):  # the study does not validate: what the raw models name
        task = raw.get("task")
        task_kind = str(task.get("kind", "classification")) if isinstance(task, dict) else "classification"
        for i, cand in enumerate(raw["candidates"]):
            model = cand.get("model") if isinstance(cand, dict) else None
            if isinstance(model, dict) and (name := model_kind_of_mapping(model)) in MODEL_KINDS:
                family = MODEL_KINDS.get(name).family_for(task_kind)
                need(f"candidates[{i}].model", f"a {name} model", _family_needs(family))
            steps = cand.get("steps") if isinstance(cand, dict) else None
            for j, step in enumerate(steps if isinstance(steps, list) else []):
                if isinstance(step, dict) and len(step) == 1 and (step_name := str(next(iter(step)))) in STEPS:
                    need(f"candidates[{i}].steps[{j}].{step_name}", f"step '{step_name}'",
                         STEPS.get(step_name).requires)
    from leanbench.data import check as data_check

    installed: dict[str, bool] = {}
    missing: dict[str, list[tuple[str, str, str]]] = {}  # module -> the places that need it, in order
    for where, what, module, extra in needs:
        if module not in installed:
            installed[module] = data_check.installed(module)
        if not installed[module]:
            missing.setdefault(module, []).append((where, what, extra))
    out = []
    for module, places in missing.items():
        (where, what, extra), others = places[0], [w for w, _, _ in places[1:]]
        also = f"; also needed by {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}" if others else ""
        out.append(f"{where}: {what} needs the package '{module}', which is not installed: "
                   f"pip install 'leanbench[{extra}]'{also}")
    return out


def model_file_problems(study: Study | None, base_dir: Path) -> list[str]:
    """What a model spec finds wrong with its own files (a spec with `file_problems`: a `gguf:` file that is
    missing, does not parse, or is larger than a profile's memory_cap_mb)."""
    if study is None:
        return []
    caps = {p.name: p.memory_cap_mb for p in study.deploy.profiles if p.memory_cap_mb is not None}
    out: list[str] = []
    for i, cand in enumerate(study.candidates):
        check = getattr(cand.model, "file_problems", None)
        if callable(check):
            out.extend(check(base_dir, caps, f"candidates[{i}].model"))
    return out


def task_blocks(study: Study | None) -> list[tuple[str, Any]]:
    """(path, task config) of every task of a validated study: `task`, or `tasks[i]` of a multi-task one."""
    if study is None:
        return []
    if study.tasks is None:
        return [("task", study.task)]
    return [(f"tasks[{i}]", t.task) for i, t in enumerate(study.tasks)]


def _data_problems(raw: dict, study: Study | None, base_dir: Path, task: Any = None) -> list[str]:
    """The data checks of ``leanbench.data.check`` on the study's task (or `task`), or on the `task:` block
    alone when the rest of the study does not validate (so its data problems are listed with the others)."""
    from leanbench.data.check import data_problems

    task = task if task is not None else study.task if study is not None else None
    if task is None and isinstance(raw.get("task"), dict):
        from pydantic import TypeAdapter

        from leanbench.schema.tasks import TaskSpec

        try:
            task = TypeAdapter(TaskSpec).validate_python(raw["task"])
        except (ValidationError, ValueError, TypeError):
            return []  # its schema problems are already listed
    return data_problems(task, base_dir) if task is not None else []


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error instead of the last one winning
    silently (two `reference:` lines, two `seeds:` in a candidate). Keys brought in by a merge (`<<: *anchor`)
    may still be overridden: that is what merging is for."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' given twice in one mapping (first on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)

_FastUniqueKeyLoader: Any = None
if hasattr(yaml, "CSafeLoader"):  # libyaml's parser, the same constructor: 3x faster on a large file
    class _FastUniqueKeyLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        pass

    _FastUniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read_yaml(text: str) -> Any:
    """The YAML document in `text` (safe tags only, no key twice in a mapping). A file the fast parser rejects
    is read again by the pure-Python one, whose messages name the problem more clearly."""
    if _FastUniqueKeyLoader is not None:
        try:
            return yaml.load(text, Loader=_FastUniqueKeyLoader)  # a SafeLoader
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader


def load_study(path: str | Path, *, check_data: bool = False) -> Study:
    """Reads and validates a study YAML file (`check_data`: and its data and optional packages, see
    ``parse_study``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"study file not found: {p}"], None)
    try:
        raw = _read_yaml(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"], str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"malformed YAML: {where}{problem}"], str(p)) from None
    except RecursionError:
        raise ConfigError(["malformed YAML: nested too deeply"], str(p)) from None
    return parse_study(raw, source=str(p), base_dir=p.resolve().parent, check_data=check_data)


def select_candidates(study: Study, names: list[str], source: str | None = None) -> Study:
    """The study restricted to `names`, the reference and everything they are built from (`from:`,
    `teacher:`), in the file's order. Build keys do not depend on the other candidates, so the cells are
    the ones a full run makes and reuses. Unknown names raise one ConfigError."""
    known = [c.name for c in study.candidates]
    problems = [f"--only: no candidate named '{n}'{did_you_mean(n, known)}" for n in names if n not in known]
    if problems:
        raise ConfigError(problems, source)
    keep = set(study.build_order([study.reference, *names]))
    return study.model_copy(update={"candidates": [c for c in study.candidates if c.name in keep]})
