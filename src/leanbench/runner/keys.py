"""Cell keys: a content hash of everything that determines a cell's result.

Names are not part of a key (renaming a candidate reuses its cells); what a candidate was built from is,
through the parent's and the teacher's build keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from leanbench import __version__
from leanbench.plugins import TASK_KINDS
from leanbench.study import CandidateConfig, Study


def content_key(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# Settings added after results existed: at these values they stay out of a key, so the cells built before
# the setting existed (which behaved exactly so) are still found. A step's own such settings are in its
# descriptor (`StepPlugin.key_neutral`, `nested_key_neutral`).
KEY_NEUTRAL = {"group_by_length": False, "hidden": 128, "augment": None, "lr_ratio": 1.0, "vocab": "tokenizer",
               "use_dora": False, "init": "default", "allow_pickle": False}


def _without_neutral(value: Any, neutral: dict[str, Any] = KEY_NEUTRAL) -> Any:
    if isinstance(value, dict):
        return {k: _without_neutral(v, KEY_NEUTRAL) for k, v in value.items()
                if not (k in neutral and v == neutral[k])}
    return value


def _steps_payload(cand: CandidateConfig, build_keys: dict[str, str]) -> list[dict]:
    out = []
    for step in cand.steps:
        plugin = step.plugin
        cfg = _without_neutral(step.config.model_dump(mode="json"), {**KEY_NEUTRAL, **plugin.key_neutral})
        for field in plugin.names:
            cfg[field] = build_keys[cfg[field]]  # the teacher's content, not its name
        for field, neutral in plugin.nested_key_neutral.items():
            if isinstance(cfg.get(field), dict):
                cfg[field] = _without_neutral(cfg[field], dict(neutral))
        out.append({step.name: cfg})
    return out


def is_stochastic(cand: CandidateConfig) -> bool:
    """Whether building the candidate's own steps draws random numbers (initialisation, training, sampling).

    The seed enters the build key only then; a deterministic step on a seeded parent still differs per seed
    through the parent's key, and a pretrained model evaluated as it is gets one cell for all seeds.
    """
    fixed = getattr(cand.model, "deterministic", False)  # a model whose training draws nothing (TF-IDF)
    if cand.model is not None and not cand.model.pretrained and not fixed or cand.sweep is not None:
        return True
    for step in cand.steps:
        if fixed and step.plugin.starts_model:
            continue
        if step.plugin.is_stochastic(step.config):
            return True
    return False


def trains(cand: CandidateConfig) -> bool:
    """Whether the candidate's steps fit weights (early stopping then looks at the validation split)."""
    return any(s.plugin.trains(s.config) for s in cand.steps)


def build_keys(study: Study, fingerprints: dict[str, str], seed: int | None = None) -> dict[str, str]:
    """Build-cell key of every candidate for one seed (default: the study seed), in dependency order.

    A candidate built with fewer seeds (its `seeds:`) stands in at any other seed with its first seed's build:
    a dependant built at that seed starts from, or distils from, that build.
    """
    memo: dict[tuple[str, int], str] = {}

    def key(name: str, at: int) -> str:
        own = study.seeds_of(name)
        at = at if at in own else own[0]
        if (name, at) not in memo:
            cand = study.candidate(name)
            deps = {d: key(d, at) for d in study.dependencies(name)}
            memo[(name, at)] = content_key({
                "kind": "build",
                "model": _without_neutral(cand.model.model_dump(mode="json")) if cand.model else None,
                "parent": deps[cand.from_] if cand.from_ else None,
                "steps": _steps_payload(cand, deps),
                "sweep": cand.sweep.model_dump(mode="json") if cand.sweep else None,
                "data": {"train": fingerprints["train"], "validation": fingerprints["validation"]},
                "seed": at if is_stochastic(cand) else None,
                "version": __version__,
            })
        return memo[(name, at)]

    seed = study.seed if seed is None else seed
    return {name: key(name, seed) for name in study.build_order()}


def eval_key(study: Study, build_key: str, fingerprints: dict[str, str]) -> str:
    split = study.evaluate.split
    return content_key({
        "kind": "evaluate", "build": build_key, "split": split, "data": fingerprints[split],
        # dynamic int8 scales activations per batch: the batch size can change predictions
        "batch_size": study.evaluate.batch_size, "version": __version__,
        **TASK_KINDS.get(study.task.kind).eval_key,
        # GPU kernels round differently: a cuda evaluation is its own cell (cpu, the default, stays out of the key)
        **({"device": study.evaluate.device} if study.evaluate.device != "cpu" else {}),
    })


def serving_applies(study: Study) -> bool:
    """Whether the LLM serving figures can apply: a family that generates serves the study's task kind."""
    from leanbench.plugins import FAMILIES

    return any(f.generates and study.task.kind in f.serves for f in map(FAMILIES.get, FAMILIES.names()))


def measure_settings(study: Study) -> dict[str, Any]:
    """The measurement settings of a measure key; `serving` only where it applies (a classification study's
    measure cells keep the keys they had before it existed)."""
    out = study.measure.model_dump(mode="json")
    if not serving_applies(study):
        out.pop("serving", None)
    return out


def measure_key(study: Study, build_key: str, machine: dict[str, Any], group: list[str]) -> str:
    """A candidate's measure cell: its build, the protocol, the machine, and the builds it is measured with
    (every candidate of the study is timed together, so a new candidate means a new measurement of all)."""
    devices = {p.name: p.device for p in study.deploy.profiles if p.device != "cpu"}  # cpu: out of the key
    return content_key({
        "kind": "measure", "build": build_key, "measure": measure_settings(study),
        "machine": {"cpu": machine.get("cpu"), "cores": machine.get("cores"), "torch": machine.get("torch"),
                    **({"gpu": machine.get("gpu")} if devices else {})},
        "group": sorted(group), "version": __version__, **({"devices": devices} if devices else {}),
    })


def perturbed_key(study: Study, eval_cell: str, perturbation_key: str, scope: str | None = None) -> str:
    """`scope`: the fingerprint of the spans a text perturbation is confined to (`evaluate.perturb.spans_key`;
    multiple-choice and generation prompts), None where it changes the whole input (the key as before)."""
    parts = {"kind": "perturbed", "evaluate": eval_cell, "perturbation": perturbation_key, "seed": study.seed,
             "version": __version__}
    return content_key(parts if scope is None else {**parts, "scope": scope})


def integrity_key(study: Study, fingerprints: dict[str, str]) -> str:
    """The splits compared, the settings, and (only where there are any: other keys stay as they were) the sha256
    of every text corpus a step trains on (`integrity.corpora`)."""
    from leanbench.integrity.corpora import corpora_fingerprints

    split = study.evaluate.split
    parts = {"kind": "integrity", "train": fingerprints["train"], "validation": fingerprints["validation"],
             "evaluated": fingerprints[split], "config": study.integrity.model_dump(mode="json"),
             "version": __version__}
    corpora = corpora_fingerprints(study)
    return content_key({**parts, "corpora": corpora} if corpora else parts)
