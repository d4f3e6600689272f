"""A classification head nothing trained: a candidate whose chain starts from a checkpoint without a head for
the task's labels (the builder drew a new head from the seed: its `describe()["head"]` says "new: ...") and
none of whose steps (its own and its `from:` ancestors') trains. Its predictions are those of a random head,
not the checkpoint's: the report says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leanbench.analysis.common import Loaded


def untrained_heads(loaded: Loaded) -> list[str]:
    """One note naming every candidate with a new head and no training step, or none."""
    study = loaded.study
    found = []
    for cand in study.candidates:
        chain = [cand]
        while chain[-1].from_ is not None:
            chain.append(study.candidate(chain[-1].from_))
        build = loaded.builds.get(chain[-1].name)
        head = (build.result.describe or {}).get("head") if build is not None else None
        trained = any(s.plugin.trains(s.config) for c in chain for s in c.steps)
        if isinstance(head, str) and head.startswith("new") and not trained:
            found.append(repr(cand.name))
    if not found:
        return []
    return [f"Untrained classification head: {', '.join(found)} start from a checkpoint without a head for the task's "
            "labels (a new head drawn from the seed) and no step trains it, so their predictions are a random "
            "head's, not the checkpoint's; add a finetune step, or use a checkpoint trained on these labels."]
