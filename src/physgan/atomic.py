"""Atomic file writes: a temporary file beside the target, fsync, then a rename.

A reader (or a run resumed after a kill) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "remove_stale", "write_atomic"]


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it goes.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['a.txt'])
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def remove_stale(directory: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; return them.

    Only names :func:`atomic_path` makes (``.NAME.tmpSUFFIX`` beside an intended ``NAME``)
    are touched.
    """
    stale = [
        p
        for p in Path(directory).glob(".*.tmp*")
        if p.is_file() and _temporary(p.parent / p.name[1:].split(".tmp")[0]) == p
    ]
    for p in stale:
        p.unlink()
    return stale
