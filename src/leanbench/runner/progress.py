"""Progress reporting: the runner calls a Reporter; the CLI gives it a rich progress display."""

from __future__ import annotations

from typing import Any


class Reporter:
    """Callbacks the runner makes. The base class ignores them all."""

    def start(self, total_cells: int) -> None: ...
    def cell_start(self, label: str) -> None: ...
    def cell_done(self, label: str, *, reused: bool, seconds: float) -> None: ...
    def step_start(self, label: str) -> None: ...
    def step_progress(self, done: int, total: int, info: str) -> None: ...
    def finish(self) -> None: ...


NullReporter = Reporter


class RichReporter(Reporter):
    """An overall bar over cells and a second bar for the step in flight (epochs)."""

    def __init__(self, console: Any | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console, transient=False,
        )
        self._overall: Any = None
        self._step: Any = None
        # not a terminal (a log file, CI, a batch job): no live bars, so steps print a line per tenth done
        self._plain = not self.console.is_terminal
        self._step_label, self._step_tenth, self._step_total = "", -1, None

    def start(self, total_cells: int) -> None:
        self.progress.start()
        self._overall = self.progress.add_task("cells", total=total_cells, info="")

    def cell_start(self, label: str) -> None:
        self.progress.update(self._overall, info=label)

    def cell_done(self, label: str, *, reused: bool, seconds: float) -> None:
        self.progress.advance(self._overall)
        if self._step is not None:
            self.progress.remove_task(self._step)
            self._step = None
        how = "reused" if reused else f"{seconds:.1f}s"
        self.progress.console.print(f"  {'·' if reused else '✓'} {label} [dim]({how})[/dim]")

    def step_start(self, label: str) -> None:
        if self._step is not None:
            self.progress.remove_task(self._step)
        self._step = self.progress.add_task(label, total=None, info="")
        self._step_label, self._step_tenth, self._step_total = label, -1, None

    def step_progress(self, done: int, total: int, info: str) -> None:
        if self._step is not None:
            self.progress.update(self._step, completed=done, total=total, info=info)
        if total != self._step_total:  # a new phase of the same step (labelling, then training): count anew
            self._step_total, self._step_tenth = total, -1
        tenth = 10 * done // total if total else -1
        if self._plain and tenth > self._step_tenth:
            self._step_tenth = tenth
            self.progress.console.print(f"    {self._step_label}: {done}/{total} {info}".rstrip())

    def finish(self) -> None:
        self.progress.stop()
