"""Thread settings for measurements: every timing states the intra-op thread count it ran under."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from leanbench.errors import ConfigError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity on Linux, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_threads(n: int) -> int:
    """The thread count a setting means: ``n`` itself, or every available core when ``n == 0``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError([f"threads: must be an integer >= 0 (0 = all cores), got {n!r}"])
    return available_cores() if n == 0 else n


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Runs the block with ``torch.set_num_threads(n)`` (0 = all cores) and restores the previous count.

    Yields the thread count actually in force. Only intra-op threads are set: torch cannot change the
    inter-op pool once it has been used, so it is left alone.
    """
    wanted = resolve_threads(n)
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
