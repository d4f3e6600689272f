"""The command line: run, validate, report, ls, demo.

User errors (bad config, missing data, unwritable store) print one message and exit with code 2,
without a traceback. Heavy libraries load only inside the commands that need them.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from leanbench import __version__
from leanbench.errors import LeanbenchError

app = typer.Typer(
    name="leanbench",
    help="Prove or disprove that a smaller model does the job, and show the whole bill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Result store (SQLite file). Default: $LEANBENCH_STORE or .leanbench/leanbench.db"),
]
FORMATS = ("html", "md", "json")


def _fail(exc: LeanbenchError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=exc.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leanbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """leanbench: build compact candidates, evaluate them with statistics, measure the bill, report."""


@app.command()
def validate(study: Annotated[Path, typer.Argument(help="Study YAML file")]) -> None:
    """Check a study file, its data (headers and first rows) and the optional packages it needs; print every
    problem at once (exit code 2) or a one-line summary."""
    from leanbench.study_loader import load_study

    try:
        s = load_study(study, check_data=True)
    except LeanbenchError as exc:
        _fail(exc)
    typer.echo(f"{study}: ok — study '{s.name}', {len(s.candidates)} candidates, reference '{s.reference}', "
               f"build order: {' -> '.join(s.build_order())}")


@app.command()
def run(
    study: Annotated[Path, typer.Argument(help="Study YAML file")],
    store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option("--report", "-o",
                                                   help="Also write the HTML report here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display")] = False,
    only: Annotated[str | None, typer.Option(
        "--only", help="Comma-separated candidates to run, with the reference and what they are built from; "
                       "their cells are the ones a full run makes and reuses")] = None,
) -> None:
    """Run a study (resuming from the store: finished cells are reused)."""
    path = _run(study, store, quiet, [n.strip() for n in only.split(",") if n.strip()] if only else None)
    if report:
        _write_report(path, None, "html", report)


INTERRUPTED = "interrupted; rerun to resume"


def _run(study: Path, store: Path | None, quiet: bool, only: list[str] | None = None) -> Path:
    """Runs a study. Ctrl-C prints one line (`INTERRUPTED`, no traceback) and exits with 130 (128 + SIGINT);
    the runner has recorded the run as `interrupted` and the unfinished cell's work in the ledger."""
    try:
        return _run_study(study, store, quiet, only)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        raise typer.Exit(code=130) from None


def _run_study(study: Path, store: Path | None, quiet: bool, only: list[str] | None) -> Path:
    from leanbench.study_loader import load_study, select_candidates

    try:
        s = load_study(study)
        if only:
            s = select_candidates(s, only, str(study))
        from leanbench.runner.local import load_data, run_study

        data = load_data(s)  # bad data fails before the store is opened
        from leanbench.runner.progress import Reporter, RichReporter
        from leanbench.store import Store

        st = Store.open(store)
        reporter = Reporter() if quiet else RichReporter()
        summary = run_study(s, st, reporter, source=str(study), data=data)
    except LeanbenchError as exc:
        _fail(exc)
    typer.echo(f"study '{summary.study}': {len(summary.cells_run)} cells run, {len(summary.cells_reused)} reused, "
               f"{summary.seconds:.1f} s; store: {st.path}")
    return st.path


def _write_report(store: Path | None, study: str | None, fmt: str, output: Path | None) -> Path | None:
    from leanbench.analysis import analyse
    from leanbench.report import render
    from leanbench.store import Store

    try:
        if fmt not in FORMATS:
            from leanbench.registry import did_you_mean

            raise LeanbenchError(f"--format: unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                                 f"known: {', '.join(FORMATS)}")
        if output is not None and output.is_dir():
            raise LeanbenchError(f"cannot write the report to {output}: it is a folder; give a file name, "
                                 f"e.g. -o {output / ('report.' + fmt)}")
        results = analyse(Store.open(store, create=False), study)
        text = render(results, fmt)
        if output is None and fmt != "html":
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return None
        out = output or Path("reports") / f"{results.study}.html"
        if out.is_dir():
            raise LeanbenchError(f"cannot write the report to {out}: it is a folder; give a file name with -o")
        out.parent.mkdir(parents=True, exist_ok=True)
        from leanbench.atomic import atomic_path

        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(LeanbenchError(f"cannot write the report: {exc}"))
    except LeanbenchError as exc:
        _fail(exc)
    typer.echo(f"report: {out}", err=fmt != "html")
    return out


@app.command()
def report(
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the latest run)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html | md | json")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                   help="Output file (default: reports/<study>.html; "
                                                        "md and json go to stdout)")] = None,
    store: StoreOpt = None,
    flags: Annotated[Path | None, typer.Option(
        "--flags", help="Instead of the report, write every evaluated example the contamination check flagged "
                        "(per training split and method, with the training example it matches) to this .csv or "
                        ".json file")] = None,
) -> None:
    """Render the report of a study from the store (HTML, Markdown or JSON), or export its contamination flags."""
    if flags is not None:
        _write_flags(store, study, flags)
        return
    _write_report(store, study, fmt, output)


def _write_flags(store: Path | None, study: str | None, path: Path) -> None:
    from leanbench.analysis import analyse
    from leanbench.integrity.export import write_flags
    from leanbench.store import Store

    try:
        n = write_flags(analyse(Store.open(store, create=False), study), path)
    except OSError as exc:
        _fail(LeanbenchError(f"cannot write the flags: {exc}"))
    except LeanbenchError as exc:
        _fail(exc)
    typer.echo(f"flags: {n} row(s) in {path}")


@app.command(name="ls")
def list_(store: StoreOpt = None) -> None:
    """List the studies and candidates in the store, with what is finished."""
    from rich.console import Console
    from rich.table import Table

    from leanbench.store import Store

    try:
        st = Store.open(store, create=False)
    except LeanbenchError as exc:
        _fail(exc)
    console = Console()
    names = st.study_names()
    if not names:
        console.print(f"{st.path}: no studies yet")
        return
    for name in names:
        info = st.study(name)
        run = info["run"] or {}
        table = Table(title=f"{name}  (last run {run.get('started_at', '?')}, {run.get('status', '?')})",
                      title_justify="left")
        for col in ("candidate", "from", "steps", "built", "evaluated", "measured"):
            table.add_column(col)
        for c in st.candidates(name):
            cells = c["cells"]
            groups = (list(cells["build"].values()), list(cells["evaluate"].values()),
                      [cells["measure"]] if cells["measure"] else [])
            marks = [f"{sum(st.cell(k) is not None for k in keys)}/{len(keys)}" if keys else "—" for keys in groups]
            table.add_row(c["name"], c["from_"] or "", " → ".join(c["steps"]), *marks)
        console.print(table)


@app.command()
def demo(
    store: StoreOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the reports")] = Path("reports"),
) -> None:
    """Run the embedded default study (digits) and write its HTML, Markdown and JSON reports."""
    study = demo_study_path()
    typer.echo(f"running the embedded default study: {study}")
    path = _run(study, store, quiet=False)
    html = _write_report(path, "digits", "html", output / "digits.html")
    _write_report(path, "digits", "md", output / "digits.md")
    _write_report(path, "digits", "json", output / "digits.json")
    typer.echo(f"open {html} in a browser; Markdown and JSON beside it")


def demo_study_path() -> Path:
    return Path(str(resources.files("leanbench") / "studies" / "digits.yaml"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
