"""Everything that changes during training, and nothing else: one state class per family."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel

__all__ = ["GANState", "LikelihoodState", "TrainingState"]


@dataclass
class GANState:
    """Networks, their optimisers, the generator's EMA, the fp16 grad scalers (one per
    optimiser, by its name), the number of generator steps done and, once training has ended,
    the copy of D calibrated for rejection sampling (``sample.calibrate_steps``)."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: Optimizer
    opt_d: Optimizer
    ema: AveragedModel | None = None
    step: int = 0
    scalers: dict[str, torch.amp.GradScaler] = field(default_factory=dict)
    calibrated: nn.Module | None = None

    @property
    def sampler(self) -> nn.Module:
        """The generator used for sampling: the EMA copy when enabled."""
        return self.generator if self.ema is None else self.ema.module

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            mods["ema"] = self.ema
        if self.calibrated is not None:
            mods["calibrated"] = self.calibrated
        return mods

    def optimizers(self) -> dict[str, Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}


@dataclass
class LikelihoodState:
    """A VAE or a flow (one network trained on a likelihood), its optimiser, EMA, fp16 grad
    scaler (under ``opt``) and step."""

    model: nn.Module
    opt: Optimizer
    ema: AveragedModel | None = None
    step: int = 0
    scalers: dict[str, torch.amp.GradScaler] = field(default_factory=dict)

    @property
    def sampler(self) -> nn.Module:
        """The model used for sampling: the EMA copy when enabled."""
        return self.model if self.ema is None else self.ema.module

    def modules(self) -> dict[str, nn.Module]:
        mods = {"model": self.model}
        if self.ema is not None:
            mods["ema"] = self.ema
        return mods

    def optimizers(self) -> dict[str, Optimizer]:
        return {"opt": self.opt}


TrainingState = GANState | LikelihoodState
