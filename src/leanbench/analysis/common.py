"""What every analysis section reads: the study's config, plan and per-example rows, loaded once."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from leanbench.cost.ledger import closure  # noqa: F401  (re-exported for the analysis sections)
from leanbench.errors import LeanbenchError
from leanbench.store.db import Store


def seed_for(study_seed: int, *parts: str) -> int:
    """A bootstrap seed from the study seed and a label, stable across runs and machines."""
    return (study_seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**32)


def ci_dict(ci: Any) -> dict[str, float]:
    return {"value": float(ci.value), "ci_low": float(ci.low), "ci_high": float(ci.high)}


@dataclass
class Loaded:
    store: Store
    name: str
    info: dict
    cfg: dict
    rows: list[dict]
    seeds: list[int]  # the study's seeds
    seeds_of: dict[str, list[int]] = field(default_factory=dict)  # candidate -> the seeds it was built with
    preds: dict[str, list[dict]] = field(default_factory=dict)  # candidate -> one prediction set per seed
    perturbed: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # candidate -> label -> per seed
    builds: dict[str, dict | None] = field(default_factory=dict)  # first seed's build cell
    measures: dict[str, dict | None] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.cfg["reference"]

    @property
    def seed(self) -> int:
        return int(self.cfg.get("seed", 0))


def _predictions(store: Store, keys: list[str]) -> list[dict]:
    """The prediction sets of the distinct finished cells among `keys` (seeds sharing a cell count once)."""
    out, seen = [], set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        if store.cell(key) is not None:
            out.append(store.predictions(key))
    return out


def load(store: Store, study_name: str | None) -> Loaded:
    names = store.study_names()
    if not names:
        raise LeanbenchError(f"the store {store.path} holds no study yet; run one with `leanbench run`")
    name = study_name or names[-1]
    info = store.study(name)
    if info is None:
        from leanbench.registry import did_you_mean

        raise LeanbenchError(f"no study named '{name}' in {store.path}{did_you_mean(name, names)}; "
                             f"studies: {', '.join(names)}")
    cfg = info["config"]
    rows = store.candidates(name)
    seeds = list(cfg["evaluate"].get("seeds") or [cfg.get("seed", 0)])
    loaded = Loaded(store, name, info, cfg, rows, seeds)
    loaded.deps = {c["name"]: ([c["from"]] if c.get("from") else [])
                   + [s["distill"]["teacher"] for s in c["steps"] if s.get("distill")] for c in cfg["candidates"]}
    for r in rows:
        cells = r["cells"]
        seed_keys = [str(s) for s in seeds if str(s) in cells["evaluate"]]  # a candidate may have fewer
        loaded.seeds_of[r["name"]] = [int(s) for s in seed_keys]
        complete = all(store.cell(cells["evaluate"][s]) is not None for s in seed_keys)
        loaded.preds[r["name"]] = _predictions(store, [cells["evaluate"][s] for s in seed_keys]) if complete else []
        labels = list(cells["perturbed"].get(seed_keys[0], {}))
        loaded.perturbed[r["name"]] = {
            label: _predictions(store, [cells["perturbed"][s][label] for s in seed_keys]) for label in labels}
        loaded.builds[r["name"]] = store.cell(cells["build"][seed_keys[0]])
        loaded.measures[r["name"]] = store.cell(cells["measure"]) if cells["measure"] else None
    _check_same_examples(loaded)
    return loaded


def _check_same_examples(loaded: Loaded) -> None:
    ref = loaded.preds.get(loaded.reference)
    if not ref:
        return
    for name, runs in loaded.preds.items():
        for run in runs:
            if list(run["ids"]) != list(ref[0]["ids"]):
                raise LeanbenchError(f"'{name}' and the reference were evaluated on different examples")
