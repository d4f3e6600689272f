"""The report's note on disturbed latencies: model-only slower than end to end, which contains it."""

from types import SimpleNamespace

from leanbench.analysis.core import disturbed_timings
from leanbench.analysis.stored import Cell, MeasureCell


def _cell(result):
    """A finished measure cell holding `result`, as the analysis loads it from the store."""
    return MeasureCell.of(Cell(key="k", kind="measure", run_id=1, seconds=0.0, cpu_seconds=0.0, flops=None,
                               result=result))


def _measure(p50, p90, e2e_p50, e2e_p90):
    return _cell({"latency": {"edge": {"p50_ms": p50, "p90_ms": p90, "p99_ms": None,
                                       "end_to_end": {"p50_ms": e2e_p50, "p90_ms": e2e_p90}}}})


def test_model_only_above_end_to_end_is_flagged_once_per_candidate():
    # bilstm-kd's edge figures of the 2026-12-04 SST-2 run: p90 3.59 ms model-only, 1.45 ms end to end
    loaded = SimpleNamespace(measures={
        "bilstm-kd": _measure(0.961, 3.59, 1.19, 1.45),
        "bilstm-hard": _measure(0.886, 1.09, 1.24, 1.45),   # end to end above model-only: normal
        "tfidf": _measure(0.0059, 0.0074, 6.98, 7.5),
        "close": _measure(1.0, 1.2, 0.95, 1.0),             # within the factor: noise, not flagged
        "unmeasured": None,
    })
    notes = disturbed_timings(loaded)
    assert len(notes) == 1
    assert "'bilstm-kd' (edge: model-only p90 3.59 ms, end to end 1.45 ms)" in notes[0]
    assert "bilstm-hard" not in notes[0] and "close" not in notes[0]


def test_no_end_to_end_figure_no_note():
    loaded = SimpleNamespace(measures={"lm": _cell({"latency": {"edge": {"p50_ms": 5.0}}})})
    assert disturbed_timings(loaded) == []
