"""Progress reporting: the runner calls a Reporter; the CLI gives it a rich progress display."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


class Reporter:
    """Callbacks the runner makes. The base class ignores them all."""

    def start(self, total_cells: int) -> None: ...
    def cell_start(self, label: str) -> None: ...
    def cell_done(self, label: str, *, reused: bool, seconds: float) -> None: ...
    def step_start(self, label: str) -> None: ...
    def step_progress(self, done: int, total: int, info: str) -> None: ...
    def finish(self) -> None: ...

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run (a damaged artifact rebuilt)."""
        print(f"warning: {message}", file=sys.stderr)


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
            self.progress.console.print(f"    {self._step_label}: {done}/{total} {info}".rstrip(), soft_wrap=True)

    def finish(self) -> None:
        self.progress.stop()

    def warn(self, message: str) -> None:
        from rich.markup import escape

        self.progress.console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True, highlight=False)


ETA_AFTER_S = 10.0  # a measurement shorter than this shows no estimate of the time left


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class MeasureProgress:
    """Progress of a measure cell for `Reporter.step_progress(done, total, info)`: the profile, the phase
    (auto batch, latency, end to end, throughput, energy, memory), rounds done of total, and, once the
    measurement has run `ETA_AFTER_S`, an estimate of the time left.

    The measurement plans its phases first (`plan`: units of progress, e.g. rounds, and the examples one unit
    runs over all candidates), then `start`s each and reports it with `advance(done, total)` in the phase's
    own units (`advance(0, total)` after its warm-up marks where timed rounds begin). The time left is the
    current phase's rounds left at its own pace so far, plus the later phases' examples at the pace of the
    work done so far (a rough figure that sharpens as phases start).
    """

    def __init__(self, report: Callable[[int, int, str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.report = report
        self.clock = clock
        self.phases: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.t0: float | None = None

    def plan(self, profile: str, phase: str, units: float, examples_per_unit: float, label: str = "round") -> None:
        self.phases.append({"profile": profile, "phase": phase, "units": float(units), "total": float(units),
                            "examples": float(examples_per_unit), "label": label, "done": 0.0, "base": 0.0,
                            "timed_from": None, "timed_done": 0.0})

    def start(self, profile: str, phase: str) -> None:
        """Starts the first planned, unfinished phase of that name (a phase not planned is added)."""
        if self.t0 is None:
            self.t0 = self.clock()
        if self.current is not None:
            self.current["done"] = self.current["total"]
        found = next((p for p in self.phases if p["profile"] == profile and p["phase"] == phase
                      and p["done"] < p["total"] and p is not self.current), None)
        if found is None:
            self.plan(profile, phase, 1, 0)
            found = self.phases[-1]
        self.current = found

    def repeat(self) -> None:
        """The current phase runs again (too many disturbed rounds): its units are added once more."""
        p = self.current
        if p is not None:
            p["base"] = p["done"] = p["total"]
            p["total"] += p["units"]
            p["timed_from"], p["timed_done"] = None, 0.0

    def advance(self, done: float, total: float) -> None:
        p = self.current
        if p is None or total <= 0:
            return
        p["done"] = p["base"] + p["units"] * min(done, total) / total
        if p["timed_from"] is None:  # the first report of an attempt follows its warm-up
            p["timed_from"], p["timed_done"] = self.clock(), p["done"]
        if self.report is not None:
            shown = f"{p['label']} {done:g}/{total:g}" if p["label"] else ""
            attempt = round(p["total"] / p["units"]) if p["units"] else 1
            again = f" (repeat {attempt - 1})" if attempt > 1 else ""
            info = " · ".join(s for s in (p["profile"], p["phase"] + again, shown, self._left()) if s)
            self.report(int(sum(q["done"] for q in self.phases)), int(sum(q["total"] for q in self.phases)), info)

    def rescale(self, profile: str, factor: float) -> None:
        """Scales the examples of a profile's phases not started yet (an `auto` batch, once chosen)."""
        for q in self.phases:
            if q["profile"] == profile and q["done"] == 0 and q is not self.current:
                q["examples"] *= factor

    def seconds_left(self) -> float | None:
        """The estimate of the time left (None until some work has been timed): the current phase at its own
        pace, the later phases of its profile (same batch, same threads) at its pace per example, those of
        other profiles at the pace per example of everything so far."""
        if self.t0 is None:
            return None
        now = self.clock()
        examples_done = sum(q["done"] * q["examples"] for q in self.phases)
        pace = (now - self.t0) / examples_done if examples_done > 0 else None  # seconds per example
        cur = self.current
        cur_pace = None
        if cur is not None and cur["timed_from"] is not None and cur["done"] > cur["timed_done"]:
            per_unit = (now - cur["timed_from"]) / (cur["done"] - cur["timed_done"])
            cur_pace = per_unit / cur["examples"] if cur["examples"] > 0 else None
        left = 0.0
        for q in self.phases:
            units_left = q["total"] - q["done"]
            if units_left <= 0:
                continue
            if q is cur and cur["timed_from"] is not None and cur["done"] > cur["timed_done"]:
                left += units_left * per_unit
                continue
            p = cur_pace if cur_pace is not None and cur is not None and q["profile"] == cur["profile"] else pace
            if p is None:
                if q["examples"] > 0:
                    return None
                continue
            left += units_left * q["examples"] * p
        return left

    def _left(self) -> str:
        if self.t0 is None or self.clock() - self.t0 < ETA_AFTER_S:
            return ""
        left = self.seconds_left()
        return "" if left is None or left < 1 else f"~{_duration(left)} left"
