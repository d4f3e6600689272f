"""The command line: run, validate, report, export, compare, ls, demo.

User errors (bad config, missing data, unwritable store) print one message and exit with code 2,
without a traceback. Heavy libraries load only inside the commands that need them.

Streams: stdout carries only the output a command was asked for (`ls`, `validate`'s verdict, a report written
to stdout: `--format md|json` without `-o`, or `-o -`); status and progress lines (`status()`) go to stderr, so
`leanbench report -f json | jq` and `leanbench ls --json > ls.json` stay clean. `-h` is `--help` everywhere.
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
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)

StoreOpt = Annotated[  # a str: a URL's "//" must survive (a Path would fold it)
    str | None,
    typer.Option("--store", help="Result store: a SQLite file or a SQLAlchemy URL (postgresql+psycopg://user:"
                                 "password@host/db). Default: $LEANBENCH_STORE or .leanbench/leanbench.db"),
]
ArtifactsOpt = Annotated[
    Path | None,
    typer.Option("--artifacts", help="Folder of the built models (default: artifacts/ beside a SQLite store; "
                                      ".leanbench/artifacts here for a server URL)"),
]
FORMATS = ("html", "md", "json")


def _fail(exc: LeanbenchError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=exc.exit_code)


def status(message: str) -> None:
    """A status line (what was done, where a file went): always stderr; stdout is for the asked-for output."""
    typer.echo(message, err=True)


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


PlotlyOpt = Annotated[str, typer.Option(
    "--plotly", help="How the HTML report loads plotly.js: inline (default; the page opens offline, ~5 MB) or "
                     "cdn (a small page that loads a pinned plotly.js from cdn.plot.ly)")]


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
    artifacts: ArtifactsOpt = None,
    plotly: PlotlyOpt = "inline",
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="Cells at a time, each in a process of its own (default: the study's run.jobs, "
                             "else 1 in this process)")] = None,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="local (this process) | pool (a process per cell) | ray (Ray tasks; pip install "
                           "'leanbench[ray]'); default: pool with --jobs > 1, --timeout or --max-memory")] = None,
    address: Annotated[str | None, typer.Option(
        "--address", help="With --executor ray: the cluster to join (default: a local cluster for the run)")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds a cell may run before it is killed and recorded as failed "
                          "(default: the study's run.timeout, else none)")] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", help="Memory a cell's process may use, e.g. 2G or 512M (default: the study's "
                             "run.max_memory, else none); a cell past it is recorded as failed")] = None,
) -> None:
    """Run a study (resuming from the store: finished cells are reused). A cell that fails in a process of its
    own is recorded and the run goes on without what needs it; the run then exits with code 1."""
    _check_plotly(plotly)  # a bad option fails before the run, not after it
    execution = {"executor": executor, "jobs": jobs, "timeout_s": timeout, "max_memory": max_memory,
                 "address": address}
    path = _run(study, store, quiet, [n.strip() for n in only.split(",") if n.strip()] if only else None,
                artifacts=artifacts, execution=execution)
    if report:
        _write_report(path, None, "html", report, plotly=plotly)
    if execution.get("failed"):
        raise typer.Exit(code=1)


def _check_plotly(mode: str) -> None:
    from leanbench.report import check_plotly

    try:
        check_plotly(mode)
    except LeanbenchError as exc:
        _fail(exc)


INTERRUPTED = "interrupted; rerun to resume"


def _run(study: Path, store: str | None, quiet: bool, only: list[str] | None = None,
         artifacts: Path | None = None, execution: dict | None = None) -> str:
    """Runs a study. Ctrl-C prints one line (`INTERRUPTED`, no traceback) and exits with 130 (128 + SIGINT);
    the runner has recorded the run as `interrupted` and the unfinished cell's work in the ledger.
    `execution`: the executor options of `run`; the failed cells are put in it under "failed"."""
    try:
        return _run_study(study, store, quiet, only, artifacts, execution)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        raise typer.Exit(code=130) from None


def _run_study(study: Path, store: str | None, quiet: bool, only: list[str] | None,
               artifacts: Path | None = None, execution: dict | None = None) -> str:
    """Runs a study; returns the store as `--store` names it (a URL with its password), for the report."""
    from leanbench.study_loader import load_study, select_candidates

    execution = {} if execution is None else execution
    try:
        s = load_study(study)
        if only:
            s = select_candidates(s, only, str(study))
        from leanbench.runner.executors import choose

        executor, settings = choose(execution.get("executor"), execution.get("jobs"), execution.get("timeout_s"),
                                    execution.get("max_memory"), execution.get("address"), s.run)
        from leanbench.runner.local import load_data, run_study
        from leanbench.runner.multitask import load_task_data, run_tasks

        data = load_data(s) if s.tasks is None else load_task_data(s)  # bad data fails before the store is opened
        from leanbench.runner.executors import preflight

        for name, sub in s.per_task():  # and so do Ray missing, a memory cap too small
            preflight(executor, settings, sub, data if s.tasks is None else data[name])
        from leanbench.runner.progress import Reporter, RichReporter
        from leanbench.store import Store

        st = Store.open(store, artifacts=artifacts)
        reporter = Reporter() if quiet else RichReporter()
        run = run_study if s.tasks is None else run_tasks  # several tasks: each task's study in turn
        summary = run(s, st, reporter, source=str(study), data=data, executor=executor, settings=settings)
    except LeanbenchError as exc:
        _fail(exc)
    failed = f", {len(summary.cells_failed)} failed" if summary.cells_failed else ""
    status(f"study '{summary.study}': {len(summary.cells_run)} cells run, {len(summary.cells_reused)} reused"
           f"{failed}, {summary.seconds:.1f} s; store: {st.location}")
    if summary.cells_failed:
        _print_failed(summary.cells_failed)
        execution["failed"] = summary.cells_failed
    return st.target


def _print_failed(failed: list[dict]) -> None:
    """The cells that failed, with why, and how many were not run because of them."""
    own = [f for f in failed if f["blocked_by"] is None]
    typer.echo(f"{len(own)} cell(s) failed; rerun to retry them:", err=True)
    for f in own:
        needs = sum(1 for g in failed if g["blocked_by"] == f["cell"])
        after = f" ({needs} cell(s) that need it not run)" if needs else ""
        typer.echo(f"  - {f['cell']}: {f['error']}{after}", err=True)


def _write_report(store: str | None, study: str | None, fmt: str, output: Path | None,
                  plotly: str = "inline") -> Path | None:
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
        results = analyse(Store.open(store, readonly=True), study)
        text = render(results, fmt, plotly=plotly)
        if output is None and fmt != "html" or str(output) == "-":
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
    status(f"report: {out}")
    return out


@app.command()
def report(
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the latest run)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html | md | json")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                   help="Output file, `-` for stdout (default: "
                                                        "reports/<study>.html; md and json go to stdout)")] = None,
    store: StoreOpt = None,
    flags: Annotated[Path | None, typer.Option(
        "--flags", help="Instead of the report, write every evaluated example the contamination check flagged "
                        "(per training split and method, with the training example it matches) to this .csv or "
                        ".json file")] = None,
    plotly: PlotlyOpt = "inline",
) -> None:
    """Render the report of a study from the store (HTML, Markdown or JSON), or export its contamination flags."""
    if flags is not None:
        _write_flags(store, study, flags)
        return
    _check_plotly(plotly)
    _write_report(store, study, fmt, output, plotly=plotly)


def _write_flags(store: str | None, study: str | None, path: Path) -> None:
    from leanbench.analysis import analyse
    from leanbench.integrity.export import write_flags
    from leanbench.store import Store

    try:
        n = write_flags(analyse(Store.open(store, readonly=True), study), path)
    except OSError as exc:
        _fail(LeanbenchError(f"cannot write the flags: {exc}"))
    except LeanbenchError as exc:
        _fail(exc)
    status(f"flags: {n} row(s) in {path}")


@app.command(name="export")
def export_(
    study: Annotated[str, typer.Argument(help="Study name in the store")],
    candidate: Annotated[str | None, typer.Argument(help="Candidate whose built model to export (with --to)")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Folder for the model in its standard form (an HF folder, "
                                                         "the ONNX file, ...) and its model card README.md")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a --to folder that is not empty")] = False,
    predictions: Annotated[Path | None, typer.Option(
        "--predictions", help="Per-example rows of every candidate, seed and perturbation: .csv or .parquet")] = None,
    table: Annotated[Path | None, typer.Option("--table", help="The verdict table: .csv or .md")] = None,
    mlflow: Annotated[str | None, typer.Option("--mlflow", metavar="URI",
                                               help="Log one MLflow run per candidate to this tracking URI")] = None,
    store: StoreOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Export a study: a candidate's model with a model card, the predictions, the verdict table, MLflow runs."""
    from leanbench.export.command import export_command

    try:
        lines = export_command(store, study, candidate, to, force=force, predictions=predictions, table=table,
                               mlflow=mlflow, artifacts=artifacts)
    except LeanbenchError as exc:
        _fail(exc)
    for line in lines:
        status(line)


@app.command()
def compare(
    sources: Annotated[list[str], typer.Argument(
        help="Each a JSON report (`leanbench report -f json`), STORE::STUDY, a store file or URL (its latest "
             "study), or a study name in --store")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the comparison to a .md or .json "
                                                                         "file instead of the terminal")] = None,
    store: StoreOpt = None,
) -> None:
    """Put the candidates of several studies or machines in one table, latencies also normalised by each
    machine's score, and list what is not comparable."""
    from leanbench import compare as cmp

    try:
        if output is not None:
            cmp.check_output(output)
        result = cmp.compare(cmp.load_sources(sources, store))
        if output is not None:
            cmp.write(result, output)
    except LeanbenchError as exc:
        _fail(exc)
    if output is None:
        cmp.show(result, sys.stdout)
    else:
        status(f"comparison: {output}")


@app.command(name="ls")
def list_(
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (studies, candidates, counts, "
                                                         "model folders) instead of tables")] = False,
    artifacts: ArtifactsOpt = None,
) -> None:
    """List the studies and candidates in the store: what is finished and where each built model sits.
    Plain text when stdout is not a terminal or NO_COLOR is set."""
    import json

    from leanbench.listing import COLUMNS, plain_table, plain_wanted, rows, store_listing, title
    from leanbench.store import Store

    try:
        listing = store_listing(Store.open(store, readonly=True, artifacts=artifacts))
    except LeanbenchError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    if not listing["studies"]:
        typer.echo(f"{listing['store']}: no studies yet")
        return
    if plain_wanted(sys.stdout):
        typer.echo("\n\n".join(plain_table(title(s), COLUMNS, rows(s)) for s in listing["studies"]))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for s in listing["studies"]:  # Text: names and paths are shown as they are, never read as markup
        table = Table(title=Text(title(s)), title_justify="left")
        for col in COLUMNS:
            table.add_column(col, overflow="fold")
        for row in rows(s):
            table.add_row(*(Text(v) for v in row))
        console.print(table)


@app.command()
def demo(
    store: StoreOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the reports")] = Path("reports"),
) -> None:
    """Run the embedded default study (digits) and write its HTML, Markdown and JSON reports."""
    study = demo_study_path()
    status(f"running the embedded default study: {study}")
    path = _run(study, store, quiet=False)
    html = _write_report(path, "digits", "html", output / "digits.html")
    _write_report(path, "digits", "md", output / "digits.md")
    _write_report(path, "digits", "json", output / "digits.json")
    status(f"open {html} in a browser; Markdown and JSON beside it")


def demo_study_path() -> Path:
    return Path(str(resources.files("leanbench") / "studies" / "digits.yaml"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
