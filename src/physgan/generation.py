"""A trained run loaded from its directory, and samples drawn from it in the data's units:
cache-sized forward passes, rejection sampling, conditions given or drawn from the data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from physgan.config import Config, parse_config
from physgan.data.datasets import TrainingData
from physgan.data.jets import canonical_cloud, is_cloud, sort_by_pt
from physgan.data.transforms import Identity, ParticleStandardize, Standardize, transform_from_dict
from physgan.errors import CheckpointError, ConfigError, DataError
from physgan.sampling import rejection_sample
from physgan.training.builder import build_state, load_data
from physgan.training.calibration import calibrated_discriminator, calibration_steps
from physgan.training.checkpoint import load_checkpoint, saved_modules
from physgan.training.rundir import RunDir
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import GANState, TrainingState

__all__ = [
    "CHUNK",
    "LoadedRun",
    "cond_transform_of",
    "generate",
    "load_run",
    "sample_run",
]

CHUNK = 65_536  # latent draws per call of sample_latent
_CACHE_FLOATS = 1 << 17  # latent floats per forward pass when sampling (see generate)


class LoadedRun(NamedTuple):
    """A run directory with its config, meta.json and state (weights loaded, on the CPU)."""

    run: RunDir
    config: Config
    meta: dict[str, Any]
    state: TrainingState


def cond_transform_of(meta: dict[str, Any]) -> Standardize | ParticleStandardize | Identity:
    """The run's transform of conditions (identity for runs saved before there was one)."""
    return transform_from_dict(meta.get("cond_transform", {"kind": "none"}))


def load_run(run_dir: str | Path) -> LoadedRun:
    """A trained run from its directory, checked (version, data shape, checkpoint), on the CPU;
    with the calibrated D the final checkpoint keeps, unless the settings have changed since."""
    run = RunDir(run_dir)
    config = parse_config(run.read_config())
    meta = run.read_json(run.meta)  # checks the version and the data shape
    if not run.checkpoint.is_file():
        raise CheckpointError(f"{run.root}: no checkpoint yet (train it first)")
    state = build_state(config, tuple(meta["sample_shape"]), int(meta["cond_dim"]))
    calibrates = isinstance(state, GANState) and config.sample.calibrate_steps > 0
    if calibrates and "calibrated" in saved_modules(run.checkpoint):
        state.calibrated = copy.deepcopy(state.discriminator)
    saved = load_checkpoint(run.checkpoint, state)
    if calibrates and saved.get("calibrate_steps") != calibration_steps(config, state.step):
        state.calibrated = None  # calibrated with other settings: again when sampling
    return LoadedRun(run, config, meta, state)


@torch.no_grad()
def generate(model: nn.Module, n: int, cond: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` samples of a generator (or VAE, flow) in normalised units, seeded by ``seed``."""
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE))
    model.eval()
    chunks = []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        z = model.sample_latent(size, generator=gen)
        c = None if cond is None else torch.as_tensor(cond[start : start + size])
        # Forward passes over a few hundred samples keep the activations in the CPU's cache:
        # 3.6x the rate of one pass over 10^4 jets (EPiC demo size, one thread).
        rows = max(256, _CACHE_FLOATS // z[0].numel())
        for i in range(0, size, rows):
            chunks.append(model(z[i : i + rows], None if c is None else c[i : i + rows]).numpy())
    return np.concatenate(chunks)  # n >= 1: the callers check it


def _generate_rejected(
    config: Config, state: GANState, x_train: np.ndarray | None, n: int, seed: int
) -> np.ndarray:
    D = state.calibrated
    if D is None:  # stored by training; absent if it stopped early or predates storing it
        D = calibrated_discriminator(config, state, x_train)
    G = state.sampler.eval()
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.REJECT))
    with torch.no_grad():
        x, _ = rejection_sample(
            lambda k: G(G.sample_latent(k, generator=gen)),
            D,
            n,
            generator=gen,
            cap_quantile=config.sample.cap_quantile,
            chunk=CHUNK,
        )
    return x.numpy()


def sample_run(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    n: int,
    seed: int,
    cond: np.ndarray | Mapping[str, float] | None = None,
    rejection: bool | None = None,
    data: TrainingData | None = None,
) -> np.ndarray:
    """``n`` samples of a loaded run in the data's units; ``data``: the run's training data if
    the caller has it loaded (read again when needed otherwise)."""
    if rejection is None:
        rejection = config.sample.rejection
    transform = transform_from_dict(run.read_json(run.transform))
    if rejection:
        if meta["cond_dim"] or cond is not None:
            raise ConfigError("sample.rejection: supported for unconditional runs only")
        if not config.sample.rejection:  # asked for by argument: check the config allows it
            parse_config({**config.to_dict(), "sample": {"rejection": True}})
        x_train = None
        calibrates = calibration_steps(config, state.step) > 0
        if calibrates and getattr(state, "calibrated", None) is None:
            x_train = transform.forward((data if data is not None else load_data(config)).x_train)
        x_norm = _generate_rejected(config, state, x_train, n, seed)
    else:
        cond = _conditions(config, meta, cond, n, seed, data)
        if cond is not None:
            cond = cond_transform_of(meta).forward(cond).astype(np.float32)
        x_norm = generate(state.sampler, n, cond, seed)
    x = transform.inverse(x_norm).astype(np.float32)
    if is_cloud(x.shape[1:]):  # the file layout: 0/1 mask, zero padding, highest pT first
        x = sort_by_pt(canonical_cloud(x))
    return x


def _conditions(
    config: Config,
    meta: dict[str, Any],
    cond: np.ndarray | Mapping[str, float] | None,
    n: int,
    seed: int,
    data: TrainingData | None = None,
) -> np.ndarray | None:
    """The checked ``cond`` given by the caller (rows, or one value per name of
    ``data.condition_on``), else conditions drawn from the training data (``data``, if loaded)."""
    if isinstance(cond, Mapping):
        names = config.data.condition_on or []
        if sorted(cond) != sorted(names):
            raise ConfigError(
                f"cond: the run is conditioned on {', '.join(names) or 'nothing by name'}; "
                f"got {', '.join(sorted(cond)) or 'nothing'}"
            )
        cond = np.tile(np.array([cond[name] for name in names], dtype=np.float32), (n, 1))
    if cond is not None:
        cond = np.asarray(cond, dtype=np.float32)
        if cond.shape != (n, meta["cond_dim"]) or not np.isfinite(cond).all():
            raise DataError(
                f"cond: expected {n} finite rows of {meta['cond_dim']} conditions, "
                f"got shape {cond.shape}"
            )
    elif meta["cond_dim"]:
        cond_train = (data if data is not None else load_data(config)).cond_train
        rng = np.random.default_rng([seed, int(Stream.SAMPLE)])
        cond = cond_train[rng.integers(cond_train.shape[0], size=n)]
    return cond
