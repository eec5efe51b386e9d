"""The learning-rate schedule: constant, then (``train.lr_decay``) a linear fall to 0.

The rate of step k depends on k alone, so a resumed run follows the same schedule. Each
parameter group keeps its undecayed rate under ``base_lr`` (saved with the optimiser's state),
which a rollback after a divergence halves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["decay_factor", "decay_start", "with_lr_decay"]


def decay_start(steps: int, share: float | None) -> int | None:
    """The step from which the learning rates fall, for a decay over the last ``share`` of
    ``steps`` (None: no decay).

    >>> decay_start(100_000, 0.4), decay_start(10, 1.0), decay_start(10, None)
    (60000, 0, None)
    """
    return None if share is None else round(steps * (1 - share))


def decay_factor(step: int, start: int | None, end: int) -> float:
    """The share of the base learning rate at generator step ``step`` (0-based): 1 before
    ``start``, then falling linearly to 0 at ``end`` (``start`` None: always 1)."""
    if start is None or step < start:
        return 1.0
    return max(0.0, (end - step) / (end - start))


def with_lr_decay(
    step_fn: Callable[[Any], dict[str, Tensor]], start: int | None, end: int
) -> Callable[[Any], dict[str, Tensor]]:
    """``step_fn`` with every optimiser's learning rates set for the step before it runs."""
    if start is None:
        return step_fn

    def step(state: Any) -> dict[str, Tensor]:
        factor = decay_factor(state.step, start, end)
        for opt in state.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
        return step_fn(state)

    return step
