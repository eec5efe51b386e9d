"""``fit``: the only training loop. Model families differ by their step function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import Tensor

__all__ = ["Callback", "fit"]


class Callback(Protocol):
    """Hooks the loop calls; ``logs`` holds the step's detached scalar tensors."""

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None: ...

    def on_end(self, state: Any) -> None: ...


def fit(
    state: Any,
    step_fn: Callable[[Any], dict[str, Tensor]],
    *,
    max_steps: int,
    callbacks: Sequence[Callback] = (),
    stop: Callable[[], bool] | None = None,
) -> Any:
    """Run ``step_fn`` until ``state.step == max_steps`` or ``stop()`` is true after a step;
    resume by passing a loaded state. The callbacks' ``on_end`` runs either way."""
    while state.step < max_steps:
        logs = step_fn(state)
        state.step += 1
        for callback in callbacks:
            callback.on_step(state, logs)
        if stop is not None and stop():
            break
    for callback in callbacks:
        callback.on_end(state)
    return state
