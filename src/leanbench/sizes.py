"""Sizes as users write them ("512M", "2G", a number of MiB), in bytes."""

from __future__ import annotations

import re
from typing import Any

from leanbench.errors import ConfigError

_UNITS = {"": 2**20, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_memory(value: Any, where: str = "max_memory") -> int | None:
    """A memory size in bytes: a number (MiB) or a string with a unit ("512M", "2G", "1.5GiB"); None: none."""
    if value is None:
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if m is None or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise ConfigError([f"{where}: expected a positive size such as 512M or 4G (a plain number is MiB), "
                           f"got '{value}'"])
    return int(float(m.group(1)) * _UNITS[m.group(2)])
