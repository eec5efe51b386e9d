"""A trained run loaded from its directory, and samples drawn from it in the data's units:
cache-sized forward passes, rejection sampling, conditions given or drawn from the data.
"""

from __future__ import annotations

import copy
import logging
import math
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
from physgan.image_ratio import (
    OBSERVABLES,
    ObservableRatio,
    fit_observable_ratio,
    image_observables,
)
from physgan.metrics.support import support_features
from physgan.models.draw import CHUNK, draw
from physgan.sampling import rejection_sample
from physgan.training.builder import build_state, load_data
from physgan.training.calibration import calibrated_discriminator, calibration_steps
from physgan.training.checkpoint import (
    load_checkpoint,
    load_weights,
    read_weights,
    save_tensors,
    save_weights,
    saved_modules,
)
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

_REJECT_FLOATS = 1 << 24  # sample floats per round of class-by-class rejection (64 MiB)
_BURN_IN = 4096  # fewest candidates per round, the first of which set the cap


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
    if isinstance(state, GANState) and state.calibrated is None:
        state.calibrated = _stored_calibration(run, config, state)
    return LoadedRun(run, config, meta, state)


def _stored_calibration(run: RunDir, config: Config, state: GANState) -> nn.Module | None:
    """The D in ``RUN/calibrated.safetensors`` if it was calibrated for this generator's step
    with these settings (sampling writes it after calibrating; a shipped generator ships it)."""
    steps = calibration_steps(config, state.step)
    if not (steps and run.calibrated.is_file()):
        return None
    D = copy.deepcopy(state.discriminator)
    saved = load_weights(run.calibrated, D)
    if (saved.get("step"), saved.get("calibrate_steps")) != (state.step, steps):
        return None
    return D.eval()


@torch.no_grad()
def generate(model: nn.Module, n: int, cond: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` samples of a generator (or VAE, flow) in normalised units, seeded by ``seed``."""
    return draw(model, n, cond, torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE)))


Score = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def _generate_rejected(
    config: Config,
    G: nn.Module,
    score: Score,
    net_cond: np.ndarray | None,
    n: int,
    seed: int,
    sample_shape: tuple[int, ...],
) -> np.ndarray:
    """``n`` samples of G by rejection with ``score(x, cond)``, an estimate of log(p_data /
    p_g) of candidates x in network units (cond: one condition row, or None). A
    class-conditional run is sampled class by class: each row of ``net_cond`` gets a sample
    drawn and accepted with its own one-hot condition and that class's cap."""
    G = G.eval()
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.REJECT))
    if net_cond is None:
        x, _ = rejection_sample(
            _proposal(config, G, gen),
            lambda x: score(x, None),
            n,
            generator=gen,
            cap_quantile=config.sample.cap_quantile,
            chunk=CHUNK,
        )
        return x.numpy()
    out: np.ndarray | None = None
    largest = max(_BURN_IN, _REJECT_FLOATS // math.prod(sample_shape))
    for row in np.unique(net_cond, axis=0):
        where = np.flatnonzero((net_cond == row).all(axis=1))
        c = torch.as_tensor(row)
        # Rounds of as many candidates as the class asks for: at least a burn-in's worth for
        # the cap, at most 64 MiB of samples.
        chunk = min(CHUNK, largest, max(_BURN_IN, len(where)))
        x, rate = rejection_sample(
            lambda k, c=c: torch.from_numpy(draw(G, k, c.expand(k, -1), gen)),
            lambda x, c=c: score(x, c),
            len(where),
            generator=gen,
            cap_quantile=config.sample.cap_quantile,
            chunk=chunk,
        )
        log.info("rejection sampling, condition %s: acceptance %.3f", row.tolist(), rate)
        if out is None:
            out = np.empty((n, *x.shape[1:]), dtype=np.float32)
        out[where] = x.numpy()
    assert out is not None  # net_cond has n >= 1 rows
    return out


def _discriminator_score(D: nn.Module, rows: int = 1024) -> Score:
    """``score(x, cond)``: D's logits of ``x``, all at once without a condition, else with
    the one condition row ``cond`` in passes of ``rows`` samples."""

    @torch.no_grad()
    def score(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is None:
            return D(x)
        return torch.cat(
            [D(part, cond.expand(len(part), -1)).reshape(-1) for part in x.split(rows)]
        )

    return score


def _observables_score(ratio: ObservableRatio, transform: Any) -> Score:
    """``score(x, cond)``: the observables' log-ratio of ``x`` (network units) as images in
    GeV, with the one condition row ``cond`` (or none)."""

    def score(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        features = image_observables(_physical(transform, x.numpy()))
        rows = None if cond is None else np.broadcast_to(cond.numpy(), (len(x), cond.shape[-1]))
        return torch.from_numpy(ratio(features, rows).astype(np.float32))

    return score


def _kept_ratio(path: Path, classes: int) -> tuple[ObservableRatio | None, int | None]:
    """The ratio in ``RUN/ratio.safetensors`` and the generator step it was fitted for; (None,
    None) if it was fitted on other observables, for another number of classes or by other
    code, so that it is made again."""
    try:
        tensors, meta = read_weights(path)
        ratio = ObservableRatio.from_tensors(tensors)
    except (CheckpointError, ValueError):
        return None, None
    if meta.get("observables") != list(OBSERVABLES) or len(ratio.classes) != classes:
        return None, None
    return ratio, meta.get("step")


def _observable_ratio(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    data: TrainingData | None,
    transform: Any,
) -> ObservableRatio:
    """The observables' ratio for this generator: ``RUN/ratio.safetensors`` if fitted for its
    step, else fitted now on the training images against as many generated with their classes
    (seeded by the run's seed) and kept in the run (not in a shipped one)."""
    if len(meta["sample_shape"]) != 3:
        raise ConfigError("sample.ratio: observables is for jet images (n, 1, P, P) only")
    if run.ratio.is_file():
        ratio, step = _kept_ratio(run.ratio, max(1, int(meta["cond_dim"])))
        if ratio is not None and step == state.step:
            return ratio
    if run.shipped:
        raise ConfigError(
            f"{run.root}: ships no ratio.safetensors for this generator and these "
            "observables to sample by rejection with"
        )
    data = data if data is not None else load_data(config)
    cond = _net_cond_train(meta, data)
    seed = derive_seed(config.seed, Stream.RATIO)
    fake = _physical(transform, generate(state.sampler, len(data.x_train), cond, seed))
    real = image_observables(data.x_train)
    ratio = fit_observable_ratio(real, image_observables(fake), cond, seed=seed)
    save_tensors(run.ratio, ratio.tensors(), {"step": state.step, "observables": OBSERVABLES})
    return ratio


def _rejection_score(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: GANState,
    data: TrainingData | None,
    transform: Any,
) -> Score:
    """What rejection scores candidates with: the observables' ratio, or D (calibrated now,
    and kept in the run, if it has no calibrated copy for this generator)."""
    if config.sample.ratio == "observables":
        return _observables_score(
            _observable_ratio(run, config, meta, state, data, transform), transform
        )
    if state.calibrated is None and not run.checkpoint.is_file():
        raise ConfigError(
            f"{run.root}: rejection by the discriminator needs it, and this directory "
            "holds the generator alone"
        )
    steps = calibration_steps(config, state.step)
    if steps and state.calibrated is None:
        data = data if data is not None else load_data(config)
        x_train, cond_train = transform.forward(data.x_train), _net_cond_train(meta, data)
        state.calibrated = calibrated_discriminator(config, state, x_train, cond_train)
        if not run.shipped:  # kept for the next sampling of this generator
            meta_out = {"step": state.step, "calibrate_steps": steps}
            save_weights(run.calibrated, state.calibrated, meta_out)
    D = state.calibrated if state.calibrated is not None else state.discriminator
    return _discriminator_score(D.eval())


def _net_cond_train(meta: dict[str, Any], data: TrainingData) -> np.ndarray | None:
    """The training data's conditions as the networks see them (None if unconditional)."""
    if data.cond_train is None:
        return None
    return cond_transform_of(meta).forward(data.cond_train).astype(np.float32)


def _one_hot(cond: np.ndarray) -> bool:
    """Whether each row of ``cond`` is a one-hot class label."""
    return bool(np.isin(cond, (0.0, 1.0)).all() and (cond.sum(axis=1) == 1).all())


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
    used = _conditions(run, config, meta, cond, n, seed, data)
    net_cond = None
    if used is not None:
        net_cond = cond_transform_of(meta).forward(used).astype(np.float32)
    if rejection:
        if net_cond is not None and not _one_hot(net_cond):
            raise ConfigError(
                "sample.rejection: supported for unconditional runs and one-hot class "
                "conditions only"
            )
        if not config.sample.rejection:  # asked for by argument: check the config allows it
            parse_config({**config.to_dict(), "sample": {"rejection": True}})
        assert isinstance(state, GANState)  # the config check above refuses other families
        score = _rejection_score(run, config, meta, state, data, transform)
        shape = tuple(meta["sample_shape"])
        x_norm = _generate_rejected(config, state.sampler, score, net_cond, n, seed, shape)
    else:
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
