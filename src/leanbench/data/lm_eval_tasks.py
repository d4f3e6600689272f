"""lm-evaluation-harness tasks as a data source: ``data: lm_eval:<task>`` (with ``include_path:`` for a folder
of local task YAMLs).

lm-eval's own ``TaskManager`` loads the task and builds its requests (``build_all_requests``: doc_to_text,
doc_to_choice, doc_to_target, target_delimiter, few-shot examples drawn with a seeded sampler, as
``simple_evaluate`` does with its default ``fewshot_random_seed``), so the contexts are byte for byte the ones
lm-eval scores; leanbench's own evaluators and statistics then score them. By output type:

- ``multiple_choice`` -> the multiple-choice kind: X = (context, choices), y = gold index; the YAML's
  target_delimiter joins context and choice;
- ``loglikelihood_rolling`` -> language-modeling: X = the documents (doc_to_target);
- ``generate_until`` -> generation: X = the contexts, targets = doc_to_target (a choice's text where
  doc_to_choice is set; a list for multiple targets); ``until`` and ``max_gen_toks`` from
  ``generation_kwargs``, the first filter list (regex, take_first, lowercase, ...) as the extraction, the
  ``exact_match`` options of ``metric_list``. Settings given in the leanbench task config win.

The task's evaluation docs are the test split (ids ``<task>:<doc_id>``). A task YAML whose dataset is local
files (``dataset_path: json`` + ``dataset_kwargs.data_files``) works offline; a hub dataset that cannot be
reached is one DataError saying so. Tasks are looked up in ``include_path`` first; lm-eval's built-in index
(~15 k names, seconds to build) is read only when the name is not found there.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leanbench.errors import ConfigError, DataError, require

PREFIX = "lm_eval:"
OUTPUT_KIND = {"multiple_choice": "multiple-choice", "loglikelihood_rolling": "language-modeling",
               "generate_until": "generation"}
FEWSHOT_SEED = 1234  # lm-eval's DEFAULT_OTHER_SEED, simple_evaluate's fewshot_random_seed


@contextlib.contextmanager
def _quiet() -> Any:
    """lm-eval and datasets log and draw progress bars while loading: keep them off the terminal."""
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _include_path(task: Any, base_dir: Path) -> str | None:
    if task.include_path is None:
        return None
    path = Path(task.include_path).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    if not path.is_dir():
        raise ConfigError([f"task.include_path: no folder {path}"])
    return str(path)


def _task_manager(name: str, include: str | None) -> Any:
    """A TaskManager that knows `name`: the include folder alone when it has it, else with lm-eval's tasks."""
    from lm_eval.tasks import TaskManager

    with _quiet():
        if include is not None:
            local = TaskManager(include_path=include, include_defaults=False)
            if name in local.all_tasks:
                return local
        manager = TaskManager(include_path=include)
    if name not in manager.all_tasks:
        from leanbench.registry import did_you_mean

        where = f" (searched {include} and lm-eval's own tasks)" if include else ""
        raise ConfigError([f"task.data: unknown lm-evaluation-harness task '{name}'"
                          f"{did_you_mean(name, manager.all_subtasks)}{where}"])
    return manager


def load_lm_eval_requests(task: Any, *, base_dir: Path, limit: int | None = None) -> tuple[Any, list[list[Any]]]:
    """(the lm-eval Task, its instances grouped by document in doc order)."""
    require("lm_eval", "lm", "an lm_eval: task source")
    name = str(task.data)[len(PREFIX):].strip()
    manager = _task_manager(name, _include_path(task, base_dir))
    try:
        with _quiet():
            loaded = manager.load([name])
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
        raise DataError(f"task.data: lm_eval:{name}: its dataset could not be loaded ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). Offline, an lm-eval task works when "
                        "its dataset is local files (dataset_path: json + dataset_kwargs.data_files)") from None
    lm_task = loaded["tasks"].get(name)
    if lm_task is None:
        raise ConfigError([f"task.data: lm_eval:{name} is a group of tasks ({', '.join(sorted(loaded['tasks']))}); "
                          "give one task"])
    want = OUTPUT_KIND.get(lm_task.OUTPUT_TYPE)
    if want is None:
        raise ConfigError([f"task.data: lm_eval:{name} has output_type '{lm_task.OUTPUT_TYPE}'; leanbench runs "
                          f"{', '.join(OUTPUT_KIND)}"])
    if want != task.kind:
        raise ConfigError([f"task.data: lm_eval:{name} is a {lm_task.OUTPUT_TYPE} task: use `kind: {want}` "
                          f"(got kind: {task.kind})"])
    if task.num_fewshot is not None:
        lm_task.set_config(key="num_fewshot", value=task.num_fewshot)
    elif lm_task.get_config("num_fewshot") is None:
        lm_task.set_config(key="num_fewshot", value=0)
    lm_task.set_fewshot_seed(seed=FEWSHOT_SEED)
    with _quiet():
        lm_task.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc: dict[int, list[Any]] = {}
    for inst in lm_task.instances:
        by_doc.setdefault(int(inst.doc_id), []).append(inst)
    for group in by_doc.values():
        group.sort(key=lambda inst: inst.idx)
    return lm_task, [by_doc[d] for d in sorted(by_doc)]


@dataclass
class LmEvalDocs:
    """An lm-eval task's evaluation docs as leanbench's task kinds read them (this module builds no split, so
    the data and evaluate modules can call it without an import circle). Per kind: multiple-choice `items` =
    (context, choices) with `gold` indices; language-modeling `items` = documents; generation `items` = prompts
    with `targets`, and `generation` = the settings (`evaluate.generation.Settings.to_json` form)."""

    name: str
    ids: list[str]
    items: list[Any]
    source: str
    meta: dict[str, Any]
    gold: list[int] = field(default_factory=list)
    targets: list[tuple[str, ...]] = field(default_factory=list)
    generation: dict[str, Any] | None = None
    unbounded: bool = False  # a generate_until task with neither `until` nor max_gen_toks


def _source_meta(lm_task: Any, name: str) -> tuple[str, dict]:
    cfg = lm_task.config
    import lm_eval

    meta = {"dataset": f"lm_eval:{name}", "lm_eval_version": lm_eval.__version__,
            "dataset_path": cfg.dataset_path, "dataset_name": cfg.dataset_name,
            "num_fewshot": cfg.num_fewshot, "fewshot_seed": FEWSHOT_SEED, "output_type": lm_task.OUTPUT_TYPE,
            "split_note": "the lm-eval task's evaluation docs, evaluated as test; train and validation are empty"}
    return f"lm_eval:{name} ({cfg.num_fewshot}-shot)", meta


def _gold_index(gold: Any, choices: list[str], where: str) -> int:
    if isinstance(gold, (int, np.integer)) and not isinstance(gold, bool):
        index = int(gold)
    elif isinstance(gold, str) and gold in choices:
        index = choices.index(gold)
    elif isinstance(gold, str) and gold.strip().isdigit():
        index = int(gold.strip())
    else:
        raise DataError(f"{where}: doc_to_target gave {gold!r}, neither a choice index nor one of the choices "
                        f"{choices!r} (multiple gold answers are not supported)")
    if not 0 <= index < len(choices):
        raise DataError(f"{where}: gold index {index} is out of range for {len(choices)} choices")
    return index


def _multiple_choice(docs: LmEvalDocs, lm_task: Any, groups: list[list[Any]]) -> None:
    delimiter = lm_task.config.target_delimiter
    docs.meta["target_delimiter"] = delimiter
    for group in groups:
        doc, where = group[0].doc, f"lm_eval:{docs.name}, doc {group[0].doc_id}"
        choices = [str(c) for c in lm_task.doc_to_choice(doc)]
        if [inst.args[1] for inst in group][:len(choices)] != [delimiter + c for c in choices]:
            raise DataError(f"{where}: its requests are not (context, delimiter + choice) pairs (multiple inputs "
                            "or mutual-information scoring are not supported)")
        docs.items.append((group[0].args[0], tuple(choices)))
        docs.gold.append(_gold_index(lm_task.doc_to_target(doc), choices, where))


def lm_eval_settings(lm_task: Any) -> tuple[dict[str, Any], bool]:
    """(the generation settings of a generate_until task: until, max_gen_toks, its first filter list and
    exact_match's options, as `Settings.to_json`; whether it gives neither stop sequences nor max_gen_toks)."""
    name = lm_task.config.task
    kwargs = dict(lm_task.config.generation_kwargs or {})
    if kwargs.get("do_sample"):
        raise ConfigError([f"lm_eval:{name}: generation_kwargs.do_sample is true; leanbench decodes greedily"])
    until = kwargs.get("until")
    until = [until] if isinstance(until, str) else list(until or [])
    max_new = next((kwargs[k] for k in ("max_gen_toks", "max_new_tokens", "max_tokens") if k in kwargs), None)
    filters: list[dict] = []
    for entry in (lm_task.config.filter_list or [])[:1]:
        for step in entry.get("filter", []):
            step = dict(step)
            fn = step.pop("function")
            if fn == "regex":
                step.setdefault("regex_pattern", r"#### (\-?[0-9\.\,]+)")  # lm-eval RegexFilter's default
                step.setdefault("group_select", 0)
                step.setdefault("fallback", "[invalid]")
            elif fn not in ("take_first", "lowercase", "uppercase", "remove_whitespace"):
                raise ConfigError([f"lm_eval:{name}: filter '{fn}' is not supported; leanbench applies regex, "
                                   "take_first, lowercase, uppercase and remove_whitespace (override with "
                                   "task.filters)"])
            filters.append({"function": fn, **step})
    em = dict((getattr(lm_task, "_metric_fn_kwargs", {}) or {}).get("exact_match", {}))
    em = {k: em[k] for k in ("ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore") if k in em}
    regex = next((f["regex_pattern"] for f in filters if f["function"] == "regex"), None)
    settings = {"until": [str(u) for u in until], "max_new_tokens": max_new, "filters": filters, "exact_match": em,
                "pass_regex": regex}
    return settings, not until and max_new is None


def _targets(lm_task: Any, doc: dict, where: str) -> tuple[str, ...]:
    gold = lm_task.doc_to_target(doc)
    if lm_task.config.doc_to_choice is not None:
        gold = lm_task.doc_to_choice(doc)[gold]
    gold = gold if isinstance(gold, list) else [gold]
    if not gold:
        raise DataError(f"{where}: no target answer")
    return tuple(str(g) for g in gold)


def _generation(docs: LmEvalDocs, lm_task: Any, groups: list[list[Any]]) -> None:
    docs.generation, docs.unbounded = lm_eval_settings(lm_task)
    for group in groups:
        docs.items.append(str(group[0].args[0]))
        docs.targets.append(_targets(lm_task, group[0].doc, f"lm_eval:{docs.name}, doc {group[0].doc_id}"))


def _own_spans(lm_task: Any, groups: list[list[Any]], docs: LmEvalDocs) -> dict[str, list[list[int]]]:
    """Per doc id, the span of its context that is the doc's own text (doc_to_text), after the description and
    the few-shot examples (`evaluate.perturb`: what perturbations change and slices read); a doc whose text is not
    found in its context keeps none (the whole context is its own)."""
    out = {}
    for doc_id, group, item in zip(docs.ids, groups, docs.items, strict=True):
        context = item[0] if isinstance(item, tuple) else item
        own = lm_task.doc_to_text(group[0].doc)
        at = context.rfind(own) if isinstance(own, str) and own else -1
        if at >= 0:
            out[doc_id] = [[at, at + len(own)]]
    return out


def load_lm_eval(task: Any, *, base_dir: Path) -> LmEvalDocs:
    """The evaluation docs of the task config's `lm_eval:<task>` for its kind (multiple-choice,
    language-modeling or generation, which must be the lm-eval task's output_type)."""
    lm_task, groups = load_lm_eval_requests(task, base_dir=base_dir, limit=task.limit)
    name = str(task.data)[len(PREFIX):].strip()
    if not groups:
        raise DataError(f"{task.data}: the task has no evaluation documents")
    source, meta = _source_meta(lm_task, name)
    docs = LmEvalDocs(name, [f"{name}:{g[0].doc_id}" for g in groups], [], source,
                      {**meta, "base_dir": str(base_dir)})
    if task.kind == "multiple-choice":
        _multiple_choice(docs, lm_task, groups)
    elif task.kind == "generation":
        _generation(docs, lm_task, groups)
    if task.kind in ("multiple-choice", "generation"):
        docs.meta["input_spans"] = {"test": _own_spans(lm_task, groups, docs)}
    else:
        docs.items = [str(g[0].args[0]) for g in groups]
    return docs
