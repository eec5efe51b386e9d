"""SIGINT and SIGTERM during training: stop after the current step, checkpoint, exit 130 / 143."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["StopFlag", "stop_on_signals"]


class StopFlag:
    """Set by SIGINT or SIGTERM: training stops after the current step and checkpoints."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        stop.signal = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
