"""The run manifest: what ran, where, with which versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from leanbench import __version__


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_manifest(seed: int, study_dir: Path | None = None) -> dict:
    import numpy
    import torch

    from leanbench.measure.reference_bench import reference_score
    from leanbench.models.device import gpu_name

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {
        "leanbench": __version__,
        "git_commit": git_commit(study_dir),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu": cpu_model(),
        "cores": cores,
        "platform": platform.platform(),
        "gpu": gpu_name(),  # CUDA device 0 (None without one): a `device: cuda` profile is timed there
        "seed": seed,
        # a fixed matmul workload: latencies divided by its time compare across machines
        "reference_score": reference_score(),
    }
