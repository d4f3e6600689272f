"""leanbench.stats: pure functions, arrays in, numbers out (numpy here; scipy imported where used)."""

from leanbench.stats.bootstrap import (
    CI,
    bootstrap_ci,
    bootstrap_indices,
    bootstrap_mean_ci,
    iter_bootstrap_indices,
    paired_bootstrap_diff,
    paired_bootstrap_mean_diff,
    percentile_ci,
    resampled_means,
)
from leanbench.stats.decision import (
    VERDICTS,
    minimum_detectable_margin,
    orient,
    power_note,
    required_n_noninferiority,
    verdict,
)
from leanbench.stats.tests import McNemarResult, holm_adjust, mcnemar_exact, mcnemar_exact_p

__all__ = [
    "CI",
    "VERDICTS",
    "McNemarResult",
    "bootstrap_ci",
    "bootstrap_indices",
    "bootstrap_mean_ci",
    "holm_adjust",
    "iter_bootstrap_indices",
    "mcnemar_exact",
    "mcnemar_exact_p",
    "minimum_detectable_margin",
    "orient",
    "paired_bootstrap_diff",
    "paired_bootstrap_mean_diff",
    "percentile_ci",
    "power_note",
    "required_n_noninferiority",
    "resampled_means",
    "verdict",
]
