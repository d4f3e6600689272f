"""`leanbench export`: checks every requested output before any is written, then writes them in turn (the
model folder, the predictions, the verdict table, the MLflow runs). Each output is written whole or not at
all; a problem is one message (exit code 2)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from leanbench.errors import LeanbenchError


def _check(candidate: str | None, to: Path | None, force: bool, predictions: Path | None, table: Path | None,
           mlflow: str | None) -> None:
    from leanbench.export import predictions as preds
    from leanbench.export import table as tab
    from leanbench.export.mlflow_export import MLFLOW_HINT
    from leanbench.export.model import check_destination

    if candidate is not None and to is None:
        raise LeanbenchError(f"give --to DIR: the folder to write candidate '{candidate}' and its model card to")
    if to is not None and candidate is None:
        raise LeanbenchError("--to needs a CANDIDATE: `leanbench export STUDY CANDIDATE --to DIR`")
    if to is None and predictions is None and table is None and mlflow is None:
        raise LeanbenchError("nothing to export: give CANDIDATE --to DIR, --predictions FILE, --table FILE "
                             "or --mlflow URI")
    if to is not None:
        check_destination(to, force)
    for path, formats, option in ((predictions, preds.FORMATS, "--predictions"), (table, tab.FORMATS, "--table")):
        if path is not None:
            preds.output_kind(path, formats, option)
            if path.is_dir():
                raise LeanbenchError(f"{option} {path}: is a folder; give a file name")
    if mlflow is not None and importlib.util.find_spec("mlflow") is None:
        raise LeanbenchError(f"--mlflow: logging to MLflow needs the mlflow package, which is not installed; "
                             f"{MLFLOW_HINT}")


def _file(path: Path, option: str, write: object) -> int:
    """Creates the file's folder and runs `write`; an OSError is one message naming the option."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write()  # type: ignore[operator]
    except OSError as exc:
        raise LeanbenchError(f"{option} {path}: cannot write: {exc.strerror or exc}") from None


def export_command(store: str | os.PathLike | None, study: str, candidate: str | None = None,
                   to: Path | None = None, *, force: bool = False, predictions: Path | None = None,
                   table: Path | None = None, mlflow: str | None = None,
                   artifacts: str | os.PathLike | None = None) -> list[str]:
    """Runs `leanbench export` (the store opened read-only; `artifacts`: the folder of built models when it
    is not beside the store); returns one line per output written."""
    from leanbench.export.source import open_study
    from leanbench.store import Store

    _check(candidate, to, force, predictions, table, mlflow)
    src = open_study(Store.open(store, readonly=True, artifacts=artifacts), study)
    lines = []
    if candidate is not None and to is not None:
        from leanbench.export.model import built_artifact, export_candidate

        built_artifact(src, candidate)  # an unknown or unbuilt candidate fails before anything is written
        done = export_candidate(src, candidate, to, force=force)
        lines.append(f"model: {len(done.files)} file(s) in {done.folder} ({done.form})")
    if predictions is not None:
        from leanbench.export.predictions import write_predictions

        n = _file(predictions, "--predictions", lambda: write_predictions(src, predictions))
        lines.append(f"predictions: {n:,} row(s) in {predictions}")
    if table is not None:
        from leanbench.export.table import write_table

        n = _file(table, "--table", lambda: write_table(src.results, table))
        lines.append(f"table: {n} candidate(s) in {table}")
    if mlflow is not None:
        from leanbench.export.mlflow_export import export_mlflow

        out = export_mlflow(src, mlflow)
        lines.append(f"mlflow: {len(out.logged)} run(s) logged to experiment '{src.name}' at {mlflow}"
                     + (f", {len(out.skipped)} already there" if out.skipped else ""))
    return lines
