"""The text corpora a study's steps train on beside the task's own splits, for the integrity cell.

A step declares the config fields that name a corpus in its descriptor (`StepPlugin.corpora`; the causal-LM
`distill` step's `data`: the text the student learns the teacher's next-token distribution on). Every such file
of every candidate is one training source of the study: the integrity cell checks the evaluated examples of each
task against it as against the train and validation splits (`integrity.report`). The corpus is read as the step
reads it (`evaluate.language_modeling.read_documents`: blank-line separated documents of a .txt file, or the
`text` column of JSONL / CSV), one document per training example.

The integrity cell's key holds each corpus by the sha256 of its file (`corpora_fingerprints`), so an edited
corpus is checked again; a study without one keeps the key it had before corpora were checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Corpus:
    """One corpus file: where the study names it (`candidates[2].steps[0].distill.data`) and its path."""

    where: str
    path: Path

    @property
    def name(self) -> str:
        """The training source's name in the integrity result: "corpus <file name>"."""
        return f"corpus {self.path.name}"


def study_corpora(study: Any) -> list[Corpus]:
    """Every corpus file the study's candidates' steps name (once each, in candidate and step order)."""
    from leanbench.data.loaders import resolve_path

    found: dict[Path, Corpus] = {}
    for c, cand in enumerate(study.candidates):
        for s, step in enumerate(cand.steps):
            for field in getattr(step.plugin, "corpora", ()):
                given = getattr(step.config, field, None)
                if not isinstance(given, str):
                    continue
                where = f"candidates[{c}].steps[{s}].{step.name}.{field}"
                path = resolve_path(given, Path(study.base_dir), where=where).resolve()
                found.setdefault(path, Corpus(where, path))
    return list(found.values())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def corpora_fingerprints(study: Any) -> dict[str, str]:
    """{where: sha256 of the file} of every corpus (what the integrity key adds; {} without corpora)."""
    return {c.where: file_sha256(c.path) for c in study_corpora(study)}


def corpus_split(corpus: Corpus) -> Any:
    """The corpus as a Split of its documents (ids "<file name>:<document number>", from 1)."""
    from leanbench.data.base import Split
    from leanbench.evaluate.language_modeling import read_documents

    docs = read_documents(corpus.path, "text")
    X = np.empty(len(docs), dtype=object)
    X[:] = docs
    ids = np.array([f"{corpus.path.name}:{i + 1}" for i in range(len(docs))], dtype=object)
    return Split(corpus.name, X, np.zeros(len(docs), dtype=np.int64), ids)


def training_sources(study: Any, data: Any) -> dict[str, Any]:
    """Every source of training text of a study: its train and validation splits and its steps' corpora."""
    out = {"train": data.train, "validation": data.validation}
    for corpus in study_corpora(study):
        out[corpus.name if corpus.name not in out else f"{corpus.name} ({corpus.where})"] = corpus_split(corpus)
    return out


__all__ = ["Corpus", "corpora_fingerprints", "corpus_split", "study_corpora", "training_sources"]
