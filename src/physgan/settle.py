"""A network trained to convergence: Adam with the learning rate falling linearly to 0, so that
it settles at the optimum of its loss instead of oscillating around it (the calibrated D of
rejection sampling)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["settle"]


def settle(
    module: nn.Module,
    batch_loss: Callable[[], Tensor],
    *,
    steps: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> None:
    """Train ``module`` in place for ``steps`` Adam steps on ``batch_loss()`` (called once per
    step, on a fresh batch), the learning rate falling linearly from ``lr`` to 0."""
    opt = torch.optim.Adam(module.parameters(), lr=lr, betas=betas)
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - i / steps)
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
