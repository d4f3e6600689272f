"""Artifact folders: their checksum, taken when a build cell is committed and verified when it is reused.

A folder's checksum is sha256 over its files in sorted order of their paths (relative, '/'-separated), each
as its path, its size and its bytes, so that a truncated, changed, added, removed or renamed file changes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PREFIX = "sha256:"
_CHUNK = 1 << 20


def checksum(folder: str | Path) -> str:
    """"sha256:<hex>" of a folder's files (raises OSError when it cannot be read)."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())
    for rel, path in files:
        name = rel.encode("utf-8")
        h.update(len(name).to_bytes(8, "little") + name + path.stat().st_size.to_bytes(8, "little"))
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return PREFIX + h.hexdigest()


def matches(folder: str | Path, recorded: str | None) -> bool:
    """Whether the folder exists and has the recorded checksum (None recorded: committed before checksums
    were; only its existence can be checked)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    if recorded is None:
        return True
    try:
        return checksum(folder) == recorded
    except OSError:
        return False
