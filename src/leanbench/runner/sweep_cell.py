"""A build cell with a hyper-parameter search: Optuna TPE trials, each building the candidate's steps with one
set of values and scoring it on the validation split; the best trial's model is kept. Every trial, kept or
discarded, is a `sweep:trial` ledger entry, so the search's cost lands in the candidate's build cost."""

from __future__ import annotations

from typing import Any

from leanbench.study import CandidateConfig, Study


class _TrialProgress:
    """The step progress callback of one trial; its `report` feeds intermediate values to the pruner."""

    def __init__(self, progress: Any, trial: Any):
        self._progress, self._trial = progress, trial

    def __call__(self, done: int, total: int, info: str) -> None:
        self._progress(done, total, f"trial {self._trial.number}: {info}")

    def report(self, epoch: int, val_loss: float) -> None:
        from leanbench.search.sweep import report

        report(self._trial, -float(val_loss), epoch)  # higher is better, as the objective


def validation_score(model: Any, study: Study, data: Any, metric_name: str) -> float:
    from leanbench.evaluate.metrics import get_metric
    from leanbench.plugins import TASK_KINDS

    out = TASK_KINDS.get(study.task.kind).implementation().evaluate(model, data.validation, study, data)
    return float(get_metric(metric_name).fn(data.validation.y, out.scores))


def run_search(cand: CandidateConfig, study: Study, data: Any, build: Any, energy: Any,
               progress: Any) -> tuple[Any, Any, list[dict]]:
    """Runs the sweep. `build(candidate, progress)` builds one configuration and returns
    (model, flops, build_info). Returns (best model, SweepResult, best trial's build_info)."""
    from leanbench.evaluate.metrics import get_metric
    from leanbench.search.sweep import apply_params, run_sweep

    sweep = cand.sweep
    metric = sweep.metric or study.decision.metric
    direction = "maximize" if get_metric(metric).higher_is_better else "minimize"
    base = cand.model_dump(mode="json", by_alias=True)
    best: dict[str, Any] = {"score": None}

    def objective(params: dict[str, Any], trial: Any) -> float:
        trial_cand = CandidateConfig.model_validate(apply_params(base, params))
        model, _, info = build(trial_cand, _TrialProgress(progress, trial))
        score = validation_score(model, study, data, metric)
        if best["score"] is None or (score > best["score"] if direction == "maximize" else score < best["score"]):
            best.update(score=score, number=trial.number, model=model, info=info)
        return score

    result = run_sweep(objective, sweep.space, sweep.n_trials, seed=study.seed, direction=direction,
                       pruner=sweep.pruner if sweep.pruner != "none" else None, energy=energy)
    if result.best_trial != best.get("number"):
        raise RuntimeError(f"sweep: best trial {result.best_trial} is not the kept one {best.get('number')}")
    return best["model"], result, best["info"]
