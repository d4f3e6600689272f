"""The progress display: live bars on a terminal; plain lines (one per tenth of a step) in a log file."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from leanbench.runner.progress import RichReporter


def _run(console: Console) -> str:
    rep = RichReporter(console)
    rep.start(2)
    rep.cell_start("build teacher")
    rep.step_start("teacher: finetune")
    for done in range(0, 101, 5):
        rep.step_progress(done, 100, f"loss {1 - done / 100:.2f}")
    rep.cell_done("build teacher", reused=False, seconds=3.2)
    rep.finish()
    return console.file.getvalue()


def test_a_log_file_gets_a_line_per_tenth_of_a_step():
    out = _run(Console(file=io.StringIO(), force_terminal=False, width=120))
    lines = [ln.strip() for ln in out.splitlines() if "finetune:" in ln]
    assert lines[0] == "teacher: finetune: 0/100 loss 1.00" and lines[-1] == "teacher: finetune: 100/100 loss 0.00"
    assert len(lines) == 11  # 0%, 10%, ..., 100%: not one per update
    assert "✓ build teacher (3.2s)" in out


def test_a_terminal_gets_no_extra_lines():
    out = _run(Console(file=io.StringIO(), force_terminal=True, width=120))
    assert "finetune: 10/100" not in out.replace("\x1b", "")


def test_a_second_phase_of_a_step_gets_its_own_tenths():
    # distill labels the transfer set (one total) and then trains (another) under one step label
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    rep = RichReporter(console)
    rep.start(1)
    rep.step_start("kd: distill")
    for done in (50, 100):
        rep.step_progress(done, 100, "teacher logits")
    for done in range(0, 2001, 100):
        rep.step_progress(done, 2000, "loss")
    rep.finish()
    lines = [ln.strip() for ln in console.file.getvalue().splitlines() if "distill:" in ln]
    assert "kd: distill: 200/2000 loss" in lines and "kd: distill: 1000/2000 loss" in lines
    assert len([ln for ln in lines if ln.endswith("loss")]) == 11


# measurement progress -----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_measure_progress_names_profile_phase_rounds_and_estimates_the_time_left():
    from leanbench.runner.progress import MeasureProgress

    calls: list[tuple[int, int, str]] = []
    clock = Clock()
    prog = MeasureProgress(lambda done, total, info: calls.append((done, total, info)), clock=clock)
    prog.plan("edge", "latency", 20, 100)
    prog.plan("edge", "throughput", 10, 200)
    prog.start("edge", "latency")
    clock.t = 2.0  # warm-up
    prog.advance(0, 20)
    for r in range(1, 11):
        clock.t += 1.0
        prog.advance(r, 20)
    assert calls[0] == (0, 30, "edge · latency · round 0/20")
    done, total, info = calls[-1]
    # 12 s in: the latency phase runs at 1 s a round (10 left); the throughput phase of the same profile (2,000
    # examples) at the latency phase's pace per example (1 s for 100): 10 + 20 s
    assert (done, total) == (10, 30) and info == "edge · latency · round 10/20 · ~30 s left"
    prog.start("edge", "throughput")
    prog.advance(3, 10)
    assert calls[-1][:2] == (23, 30) and calls[-1][2].startswith("edge · throughput · round 3/10")
    # a later profile's phases at the pace of everything so far; an auto batch, once chosen, rescales them
    prog.plan("server", "latency", 10, 50)
    clock.t += 3.0  # 15 s in all, for 2,000 (latency, ended) + 1,200 examples
    prog.advance(6, 10)  # throughput: 3 rounds in 3 s, 4 left at 1 s
    assert prog.seconds_left() == pytest.approx(4 + 10 * 50 * 15 / 3200)
    prog.rescale("server", 2.0)
    assert prog.seconds_left() == pytest.approx(4 + 10 * 100 * 15 / 3200)


def test_a_short_measurement_shows_no_estimate_and_a_repeat_adds_its_rounds():
    from leanbench.runner.progress import MeasureProgress

    calls: list[tuple[int, int, str]] = []
    clock = Clock()
    prog = MeasureProgress(lambda *a: calls.append(a), clock=clock)
    prog.plan("server", "throughput", 6, 10)
    prog.start("server", "throughput")
    for r in range(7):
        clock.t += 0.1
        prog.advance(r, 6)
    assert "left" not in calls[-1][2]
    prog.repeat()  # too many disturbed rounds: measured again
    prog.advance(2, 6)
    assert calls[-1] == (8, 12, "server · throughput (repeat 1) · round 2/6")


def test_a_run_reports_progress_while_it_measures():
    from leanbench.runner.local import run_study
    from leanbench.runner.progress import Reporter
    from leanbench.store import Store
    from leanbench.study_loader import parse_study

    class Collect(Reporter):
        def __init__(self) -> None:
            self.steps: list[str] = []
            self.progress: list[tuple[str, int, int, str]] = []

        def step_start(self, label: str) -> None:
            self.steps.append(label)

        def step_progress(self, done: int, total: int, info: str) -> None:
            self.progress.append((self.steps[-1], done, total, info))

    study = parse_study({
        "name": "progress", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "a",
        "candidates": [{"name": "a", "model": {"arch": "mlp", "hidden": [32]}, "steps": [{"train": {"epochs": 2}}]},
                       {"name": "b", "model": {"arch": "mlp", "hidden": [4]}, "steps": [{"train": {"epochs": 2}}]}],
        "evaluate": {"bootstrap": 100, "perturbations": "none"}, "integrity": {"contamination": False},
        "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1},
                                {"name": "server", "threads": 0, "batch": "auto"}], "auto_batches": [1, 8]},
    })
    rep = Collect()
    run_study(study, Store.open("s.db"), rep)
    measuring = [p for p in rep.progress if p[0] == "measure: 2 candidates together"]
    infos = [p[3] for p in measuring]
    for expected in ("edge · latency · round 0/6", "edge · latency · round 6/6", "edge · throughput · round 3/3",
                     "edge · memory · candidate 2/2", "edge · energy · candidate 2/2",
                     "server · auto batch · round 14/14", "server · latency · round 6/6"):
        assert expected in infos, (expected, infos)
    done = [p[1] for p in measuring]
    assert done == sorted(done) and measuring[-1][1] == measuring[-1][2]  # rounds done of the total, to the end
