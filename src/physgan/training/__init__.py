"""The one training loop and what it needs: state, step functions, checkpoints, run dirs."""

from physgan.training import distributed
from physgan.training.checkpoint import load_checkpoint, save_checkpoint
from physgan.training.loop import Callback, fit
from physgan.training.seeding import derive_seed, step_generator
from physgan.training.state import GANState, LikelihoodState, TrainingState
from physgan.training.steps import gan_eval, gan_step

__all__ = [
    "Callback",
    "GANState",
    "LikelihoodState",
    "TrainingState",
    "derive_seed",
    "distributed",
    "fit",
    "gan_eval",
    "gan_step",
    "load_checkpoint",
    "save_checkpoint",
    "step_generator",
]
