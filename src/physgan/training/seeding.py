"""Per-step random streams derived from (seed, step, stream): resuming at step k is exact."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch

__all__ = ["Stream", "derive_seed", "step_generator"]


class Stream(IntEnum):
    """Keys mixed into ``derive_seed(seed, stream)``: one per independent use of a run's seed
    outside the training steps (which use (seed, step, rank))."""

    INIT = 2  # the networks' initial weights
    SAMPLE = 3  # latent draws (and drawn conditions) when sampling
    EVAL_TRUTH = 4  # a toy's true samples that evaluation compares with
    REJECT = 5  # rejection sampling's draws
    CALIBRATE = 6  # calibrating D for rejection sampling
    SELECT = 7  # model selection: the held-out split and the latent draws it scores
    SUPPORT = 8  # draws again of generated jets outside the training support
    RATIO = 9  # fitting the observables' ratio for rejection sampling (images)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (non-negative integers), via NumPy SeedSequence.

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(1, 0)
    True
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def step_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``derive_seed(*keys)``."""
    return torch.Generator(device).manual_seed(derive_seed(*keys))
