"""`leanbench export STUDY CANDIDATE --to DIR`: the candidate's built model (its first seed's build) in its
family's standard form (`ModelAdapter.export`) and a model card README.md (`model_card.py`).

Everything is written into a temporary folder beside DIR, which is then renamed to DIR: a failure leaves DIR
as it was. An existing non-empty DIR is refused unless `force` (it is then replaced as a whole)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leanbench.errors import LeanbenchError

if TYPE_CHECKING:
    from leanbench.export.source import StudySource

CARD = "README.md"


@dataclass
class ExportedModel:
    folder: Path
    files: list[Path]  # relative to `folder`
    form: str


def built_artifact(src: StudySource, name: str) -> tuple[str, Path]:
    """The build key and the saved folder of the candidate's first-seed build, or one message saying it was
    never built."""
    src.candidate(name)
    key = src.build_key(name)
    folder = src.store.artifact_dir(key) if key else None
    if key is None or src.store.cell(key) is None or folder is None or not folder.is_dir():
        source = src.source or "<study file>"
        raise LeanbenchError(f"candidate '{name}' of study '{src.name}' has not been built yet (no finished build "
                             f"cell{' ' + key[:12] if key else ''} with its model in {src.store.artifact_root});"
                             f" run `leanbench run {source}` first")
    return key, folder


def check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise LeanbenchError(f"--to {dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise LeanbenchError(f"--to {dest}: the folder is not empty; choose another or pass --force to replace it")


def export_candidate(src: StudySource, name: str, dest: Path, *, force: bool = False) -> ExportedModel:
    """Writes the candidate's model and its model card into `dest` (see the module docstring)."""
    from leanbench.export.model_card import render_card
    from leanbench.models.base import export_model

    cand = src.candidate(name)
    key, saved = built_artifact(src, name)
    dest = Path(dest)
    check_destination(dest, force)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        files, form = export_model(saved, tmp)
        (tmp / CARD).write_text(render_card(src, cand, form, key), encoding="utf-8")
        _replace_folder(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LeanbenchError(f"cannot write the export to {dest}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = sorted({f.relative_to(tmp) for f in files} | {Path(CARD)})
    return ExportedModel(dest, written, form)


def _replace_folder(new: Path, dest: Path) -> None:
    """`new` renamed to `dest`; an existing `dest` is moved aside first and removed once `new` is in place."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    had = dest.exists()
    if had:
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:
        if had:
            os.replace(old, dest)
        raise
    if had:
        shutil.rmtree(old, ignore_errors=True)
