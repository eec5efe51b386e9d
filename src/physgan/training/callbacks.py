"""Loop callbacks: metrics as JSON lines (and TensorBoard), checkpoints, a progress bar."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from physgan.errors import CheckpointError, TrainingDiverged
from physgan.training.checkpoint import save_checkpoint

__all__ = ["Checkpointer", "FiniteGuard", "MetricsLogger", "ProgressBar"]

log = logging.getLogger(__name__)


class MetricsLogger:
    """Every ``every`` steps, append the step's logs plus ``evaluate(state)`` to a JSONL file.

    Also writes the same scalars to TensorBoard under ``tensorboard_dir`` when the optional
    ``tensorboard`` package is installed. ``latest`` holds the last logged line.
    """

    def __init__(
        self,
        path: Path,
        *,
        every: int,
        evaluate: Callable[[Any], dict[str, float]] | None = None,
        tensorboard_dir: Path | None = None,
    ) -> None:
        self.path, self.every, self.evaluate = path, every, evaluate
        self.latest: dict[str, float] = {}
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.debug("tensorboard not installed; metrics go to %s only", path)
            else:
                self._tb = SummaryWriter(str(tensorboard_dir))

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None:
        if state.step % self.every:
            return
        row: dict[str, float] = {"step": state.step}
        row.update({k: float(v) for k, v in logs.items()})
        if self.evaluate is not None:
            row.update(self.evaluate(state))
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in row.items():
                if key != "step":
                    self._tb.add_scalar(key, value, state.step)
        self.latest = row

    def on_end(self, state: Any) -> None:
        if self._tb is not None:
            self._tb.close()


def _non_finite_weight(state: Any) -> str | None:
    for name, module in state.modules().items():
        for key, value in module.state_dict().items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                return f"{name}.{key}"
    return None


class FiniteGuard:
    """Raise :class:`TrainingDiverged` at the first step whose logged losses are not finite.

    Put it before the :class:`Checkpointer`, so that a diverged state is never saved. It looks
    every ``every`` steps (each look waits for the device; the Checkpointer checks the weights
    themselves either way).
    """

    def __init__(self, every: int = 1) -> None:
        self.every = every

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None:
        if state.step % self.every:
            return
        values = torch.stack([v.detach().float().reshape(()) for v in logs.values()])
        if torch.isfinite(values).all():  # one host synchronisation per step
            return
        bad = next(k for k, v in logs.items() if not torch.isfinite(v).all())
        raise TrainingDiverged(
            f"training diverged at step {state.step}: {bad} = {float(logs[bad])}", state.step
        )

    def on_end(self, state: Any) -> None:
        pass


class Checkpointer:
    """Save the state every ``every`` steps and at the end (atomic; see ``save_checkpoint``).

    A state with a non-finite weight is not saved (:class:`TrainingDiverged`); ``saved_at`` is
    the step of the last checkpoint written (-1: none yet).
    """

    def __init__(self, path: Path, *, every: int, extra: dict[str, Any] | None = None) -> None:
        self.path, self.every, self.extra = path, every, extra
        self.saved_at = -1

    def _save(self, state: Any) -> None:
        bad = _non_finite_weight(state)
        if bad is not None:
            raise TrainingDiverged(
                f"training diverged at step {state.step}: weight {bad} is not finite", state.step
            )
        try:
            save_checkpoint(self.path, state, self.extra)
        except OSError as err:
            kept = f"step {self.saved_at}" if self.saved_at >= 0 else "none yet"
            raise CheckpointError(
                f"{self.path}: cannot write the checkpoint at step {state.step} "
                f"({err.strerror}); the last one ({kept}) is kept"
            ) from None
        self.saved_at = state.step

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None:
        if state.step % self.every == 0:
            self._save(state)

    def on_end(self, state: Any) -> None:
        if self.saved_at != state.step:
            self._save(state)


class ProgressBar:
    """A progress bar on stderr with the last logged losses, for the CLI (see
    :func:`physgan.progress.progress_bar`: plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, initial: int, metrics: MetricsLogger | None = None) -> None:
        from physgan.progress import progress_bar

        self.bar = progress_bar(total, initial=initial, unit="step")
        self.metrics = metrics
        self._shown: dict[str, float] = {}

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None:
        self.bar.update(1)
        if self.metrics is not None and self.metrics.latest is not self._shown:
            self._shown = self.metrics.latest
            keys = ("d_loss", "g_loss", "jsd_bound", "loss", "holdout_elbo", "holdout_nll")
            shown = {k: f"{self._shown[k]:.3f}" for k in keys if k in self._shown}
            self.bar.set_postfix(shown, refresh=False)  # shown at the bar's next redraw

    def on_end(self, state: Any) -> None:
        self.bar.close()
