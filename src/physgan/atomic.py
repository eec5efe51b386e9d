"""Atomic file writes: a temporary file beside the target, fsync, then a rename.

A reader (or a run resumed after a kill) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "remove_stale", "write_atomic"]


def _temporary(path: Path, pid: int | None = None) -> Path:
    # The writer's pid in the name: two processes writing one target (e.g. the same cached
    # dataset) never share, or delete, each other's temporary file.
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


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

    Only names :func:`atomic_path` makes (``.NAME.PID.tmpSUFFIX`` beside an intended
    ``NAME``) are touched, and only those of a process that no longer runs.
    """
    stale = []
    for p in Path(directory).glob(".*.*.tmp*"):
        name, _, pid = p.name[1:].rpartition(".tmp")[0].rpartition(".")
        if (
            p.is_file()
            and pid.isdigit()
            and _temporary(p.parent / name, int(pid)) == p
            and not _alive(int(pid))
        ):
            stale.append(p)
    for p in stale:
        p.unlink()
    return stale
