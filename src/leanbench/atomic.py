"""Atomic file writes: the content goes to a temporary file in the target's folder, which is then renamed
over the target (``os.replace``, atomic on POSIX and Windows within one file system). A reader sees the old
file or the new one, never a half-written one; a failed write removes its temporary file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` (``<name>.<pid>.tmp``) for the caller to write; when the block
    ends without an exception the file replaces `path`, otherwise it is removed. The folder must exist."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
