"""Progress bars on stderr: a live bar for a person at a terminal, a line every 5% in a log."""

from __future__ import annotations

import math
import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["progress_bar"]

_LINES = 20  # lines a whole bar writes when stderr is not a terminal: one every 5%


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self._last:
            self._last = line
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int, *, unit: str, initial: int = 0, desc: str | None = None) -> tqdm:
    """A tqdm bar for ``total`` units on stderr; when stderr is not a terminal (a log file, a
    pipe), a plain line every 5% of the way instead of a redraw per update."""
    stream = sys.stderr
    if stream.isatty():
        return tqdm(
            total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, file=stream
        )
    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        desc=desc,
        file=_Lines(stream),
        ncols=100,
        mininterval=0,
        maxinterval=math.inf,  # tqdm's monitor would otherwise drop miniters to 1 after 10 s
        miniters=max(1, (total - initial) // _LINES),
    )
