"""A trained run loaded from its directory, and samples drawn from it in the data's units:
cache-sized forward passes, rejection sampling, conditions given or drawn from the data.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from physgan.config import Config, parse_config
from physgan.data.datasets import TrainingData, class_names
from physgan.data.jets import canonical_cloud, is_cloud, sort_by_pt
from physgan.data.transforms import Identity, ParticleStandardize, Standardize, transform_from_dict
from physgan.errors import CheckpointError, ConfigError, DataError
from physgan.metrics.support import support_features
from physgan.models.draw import CHUNK, draw
from physgan.sampling import rejection_sample
from physgan.training.builder import build_state, load_data
from physgan.training.calibration import calibrated_discriminator, calibration_steps
from physgan.training.checkpoint import load_checkpoint, load_weights, saved_modules
from physgan.training.rundir import RunDir
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import GANState, TrainingState
from physgan.truncation import TruncatedSampler

__all__ = [
    "LoadedRun",
    "Weights",
    "cond_transform_of",
    "generate",
    "load_run",
    "sample_run",
    "sample_with_conditions",
]

log = logging.getLogger(__name__)


class LoadedRun(NamedTuple):
    """A run directory with its config, meta.json and state (weights loaded, on the CPU)."""

    run: RunDir
    config: Config
    meta: dict[str, Any]
    state: TrainingState


def cond_transform_of(meta: dict[str, Any]) -> Standardize | ParticleStandardize | Identity:
    """The run's transform of conditions (identity for runs saved before there was one)."""
    return transform_from_dict(meta.get("cond_transform", {"kind": "none"}))


Weights = Literal["best", "last"]


def load_run(
    run_dir: str | Path, weights: Weights = "best", truncation: float | None = None
) -> LoadedRun:
    """A trained run from its directory, checked (version, data shape, checkpoint), on the CPU;
    with the calibrated D the final checkpoint keeps, unless the settings have changed since.

    ``weights``: ``best`` samples with the best-scored generator of ``train.select_every``
    (``RUN/best.safetensors``) where the run has one, ``last`` with the last checkpoint's. A
    directory with best weights and no checkpoint (a shipped generator) loads them alone.
    ``truncation`` replaces the config's ``sample.truncation`` (None: kept; 0: off).
    """
    run = RunDir(run_dir)
    config = parse_config(run.read_config())
    if truncation is not None and truncation != config.sample.truncation:
        raw = config.to_dict()
        config = parse_config({**raw, "sample": {**raw["sample"], "truncation": truncation}})
    meta = run.read_json(run.meta)  # checks the version and the data shape
    best = weights == "best" and run.best.is_file()
    if not (run.checkpoint.is_file() or best):
        raise CheckpointError(f"{run.root}: no checkpoint yet (train it first)")
    state = build_state(config, tuple(meta["sample_shape"]), int(meta["cond_dim"]))
    if run.checkpoint.is_file():
        calibrates = isinstance(state, GANState) and config.sample.calibrate_steps > 0
        if calibrates and "calibrated" in saved_modules(run.checkpoint):
            state.calibrated = copy.deepcopy(state.discriminator)
        saved = load_checkpoint(run.checkpoint, state)
        if calibrates and saved.get("calibrate_steps") != calibration_steps(config, state.step):
            state.calibrated = None  # calibrated with other settings: again when sampling
    if best:
        state.step = load_weights(run.best, state.sampler)["step"]
        if isinstance(state, GANState):
            state.calibrated = None  # calibrated for the last generator, not this one
    return LoadedRun(run, config, meta, state)


@torch.no_grad()
def generate(model: nn.Module, n: int, cond: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` samples of a generator (or VAE, flow) in normalised units, seeded by ``seed``."""
    return draw(model, n, cond, torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE)))


def _generate_rejected(
    config: Config, state: GANState, x_train: np.ndarray | None, n: int, seed: int
) -> np.ndarray:
    D = state.calibrated
    if D is None:  # stored by training; absent if it stopped early or predates storing it
        D = calibrated_discriminator(config, state, x_train)
    G = state.sampler.eval()
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.REJECT))
    propose = _proposal(config, G, gen)
    with torch.no_grad():
        x, _ = rejection_sample(
            propose,
            D,
            n,
            generator=gen,
            cap_quantile=config.sample.cap_quantile,
            chunk=CHUNK,
        )
    return x.numpy()


def _proposal(config: Config, G: nn.Module, gen: torch.Generator) -> Callable[[int], torch.Tensor]:
    """k -> k draws of G in normalised units, Jacobian-truncated if ``sample.truncation``."""
    if config.sample.truncation:
        return TruncatedSampler(G, config.sample.truncation, gen)
    return lambda k: G(G.sample_latent(k, generator=gen))


def sample_run(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    n: int,
    seed: int,
    cond: np.ndarray | Mapping[str, float | str] | None = None,
    rejection: bool | None = None,
    data: TrainingData | None = None,
) -> np.ndarray:
    """``n`` samples of a loaded run in the data's units; ``data``: the run's training data if
    the caller has it loaded (read again when needed otherwise)."""
    return sample_with_conditions(run, config, meta, state, n, seed, cond, rejection, data)[0]


def sample_with_conditions(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    n: int,
    seed: int,
    cond: np.ndarray | Mapping[str, float | str] | None = None,
    rejection: bool | None = None,
    data: TrainingData | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """As :func:`sample_run`, and the conditions (n, cond_dim) in physics units that the
    samples were generated with (given or drawn; None for an unconditional run)."""
    if rejection is None:
        rejection = config.sample.rejection
    transform = transform_from_dict(run.read_json(run.transform))
    used = net_cond = None
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
        used = _conditions(run, config, meta, cond, n, seed, data)
        if used is not None:
            net_cond = cond_transform_of(meta).forward(used).astype(np.float32)
        if config.sample.truncation:  # the config allows it for unconditional runs only
            gen = torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE))
            G = state.sampler.eval()
            x_norm = TruncatedSampler(G, config.sample.truncation, gen)(n).numpy()
        else:
            x_norm = generate(state.sampler, n, net_cond, seed)
    x = _physical(transform, x_norm)
    box = run.read_support() if config.sample.in_support and not rejection else None
    if box is not None and is_cloud(x.shape[1:]):
        x = _within_support(state.sampler, transform, x, net_cond, box, seed)
    return x, used


def _physical(transform: Any, x_norm: np.ndarray) -> np.ndarray:
    """Samples in the data's units; clouds in the file layout (0/1 mask, zero padding, highest
    pT first)."""
    x = transform.inverse(x_norm).astype(np.float32)
    if is_cloud(x.shape[1:]):
        x = sort_by_pt(canonical_cloud(x))
    return x


def _within_support(
    model: nn.Module,
    transform: Any,
    x: np.ndarray,
    cond: np.ndarray | None,
    box: tuple[np.ndarray, np.ndarray],
    seed: int,
    rounds: int = 20,
) -> np.ndarray:
    """``x`` with each jet outside the support ``box`` (min, max of the support features)
    drawn again, with its own condition, up to ``rounds`` times; any left outside are kept
    (and logged). Features of zero range in the box are not checked."""
    # A feature constant in the training jets (e.g. every sum of pt_rel exactly 1) is a rule a
    # generator meets only to rounding: drawing again would not help, so it is not checked.
    lo, hi = box
    live = hi > lo

    def outside(jets: np.ndarray) -> np.ndarray:
        feats = support_features(jets)[:, live]
        return ((feats < lo[live]) | (feats > hi[live])).any(axis=1)

    redraw = np.flatnonzero(outside(x))
    for attempt in range(rounds):
        if not len(redraw):
            return x
        c = None if cond is None else cond[redraw]
        again = generate(model, len(redraw), c, derive_seed(seed, Stream.SUPPORT, attempt))
        x[redraw] = _physical(transform, again)
        redraw = redraw[outside(x[redraw])]  # only the jets just drawn can have changed
    if len(redraw):
        log.warning(
            "%d jets still outside the training support after %d draws", len(redraw), rounds
        )
    return x


def _named_condition(config: Config, cond: Mapping[str, float | str]) -> np.ndarray:
    """One condition row from values by name: each of ``data.condition_on`` (numbers), or
    ``class`` (a class name) for data conditioned on a one-hot class."""
    classes = class_names(config.data.name, config.data.conditional)
    names = ["class"] if classes else config.data.condition_on or []
    if sorted(cond) != sorted(names):
        raise ConfigError(
            f"cond: the run is conditioned on {', '.join(names) or 'nothing by name'}; "
            f"got {', '.join(sorted(cond)) or 'nothing'}"
        )
    if classes:
        if cond["class"] not in classes:
            raise ConfigError(
                f"cond: class must be one of {', '.join(classes)}; got {cond['class']!r}"
            )
        return np.eye(len(classes), dtype=np.float32)[classes.index(str(cond["class"]))]
    text = [name for name in names if isinstance(cond[name], str)]
    if text:
        raise ConfigError(f"cond: {text[0]} needs a number, got {cond[text[0]]!r}")
    return np.array([cond[name] for name in names], dtype=np.float32)


def _conditions(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    cond: np.ndarray | Mapping[str, float | str] | None,
    n: int,
    seed: int,
    data: TrainingData | None = None,
) -> np.ndarray | None:
    """The checked ``cond`` given by the caller (rows, or one value per name of
    ``data.condition_on``), else conditions drawn from the training data: those the run saved
    (``conditions.npy``), else ``data`` if loaded, else the data loaded again."""
    if isinstance(cond, Mapping):
        cond = np.tile(_named_condition(config, cond), (n, 1))
    if cond is not None:
        cond = np.asarray(cond, dtype=np.float32)
        if cond.shape != (n, meta["cond_dim"]) or not np.isfinite(cond).all():
            raise DataError(
                f"cond: expected {n} finite rows of {meta['cond_dim']} conditions, "
                f"got shape {cond.shape}"
            )
    elif meta["cond_dim"]:
        cond_train = run.read_conditions(meta["cond_dim"])
        if cond_train is None:
            cond_train = (data if data is not None else load_data(config)).cond_train
        rng = np.random.default_rng([seed, int(Stream.SAMPLE)])
        cond = cond_train[rng.integers(cond_train.shape[0], size=n)]
    return cond
