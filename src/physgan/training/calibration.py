"""The discriminator calibrated for rejection sampling, once training has ended (see
:func:`physgan.sampling.calibrate_discriminator`), and kept in the final checkpoint.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from physgan.config import Config, parse_config
from physgan.losses import OBJECTIVES
from physgan.sampling import calibrate_discriminator
from physgan.training.checkpoint import save_checkpoint
from physgan.training.rundir import RunDir
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import GANState, TrainingState

log = logging.getLogger(__name__)

__all__ = ["calibrated_discriminator", "calibration_steps", "store_calibrated"]


def calibration_steps(config: Config, step: int) -> int:
    """``sample.calibrate_steps``, but at most the ``step`` steps D was trained for: a short
    run (``--set train.steps=200``) calibrates briefly instead of for the full recipe's steps."""
    return min(config.sample.calibrate_steps, step)


def calibrated_discriminator(
    config: Config,
    state: GANState,
    x_train: np.ndarray | None,
    cond_train: np.ndarray | None = None,
) -> nn.Module:
    """A copy of D calibrated against the fixed sampler (see :func:`calibration_steps`), on
    the CPU and seeded by the run's seed (so the same whenever it is made); D itself, without.
    ``x_train`` and ``cond_train`` (a conditional run's) are in the networks' units."""
    steps = calibration_steps(config, state.step)
    if not steps or x_train is None:
        return state.discriminator.eval()
    t = config.train
    G = copy.deepcopy(state.sampler).cpu().eval()
    gen = torch.Generator().manual_seed(derive_seed(config.seed, Stream.CALIBRATE))
    return calibrate_discriminator(
        state.discriminator,
        lambda k, cond=None: G(G.sample_latent(k, generator=gen), cond),
        torch.as_tensor(x_train, dtype=torch.float32),
        OBJECTIVES.get(config.loss.name).d_loss,
        real_cond=None if cond_train is None else torch.as_tensor(cond_train, dtype=torch.float32),
        steps=steps,
        batch_size=t.batch_size,
        lr=t.lr_d,
        betas=t.betas_d,
        generator=gen,
    )


def store_calibrated(
    config: Config,
    state: TrainingState,
    run: RunDir,
    x_train: np.ndarray,
    cond_train: np.ndarray | None = None,
) -> None:
    """Calibrate D for rejection sampling once, when training has ended, and keep the copy in
    the final checkpoint (with the ``calibrate_steps`` it took), so sampling need not repeat it.
    ``x_train``, ``cond_train``: the training samples and (one-hot) conditions in network units.
    The sampling settings are those of the run's config.yaml (a resume may not change them)."""
    config = config.model_copy(update={"sample": parse_config(run.read_config()).sample})
    steps = calibration_steps(config, state.step)
    by_d = config.sample.rejection and config.sample.ratio == "discriminator"
    if not (isinstance(state, GANState) and by_d and steps):
        return
    log.info("calibrating D for rejection sampling: %d steps", steps)
    state.calibrated = calibrated_discriminator(config, state, x_train, cond_train)
    save_checkpoint(run.checkpoint, state, {"calibrate_steps": steps})
