"""The progress display: live bars on a terminal; plain lines (one per tenth of a step) in a log file."""

from __future__ import annotations

import io

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
