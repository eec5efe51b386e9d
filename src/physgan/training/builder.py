"""A training state, its data and its step functions, built from a run's config.

Models (``physgan.models``), losses and data take plain arguments; this module turns the
validated :class:`~physgan.config.Config` into them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from physgan import observables
from physgan.config import Config, FlowModelConfig, GANModelConfig, VAEModelConfig
from physgan.data import images
from physgan.data.datasets import TrainingData, class_names, load_training_data
from physgan.data.jets import is_cloud
from physgan.data.stream import StreamingSampler
from physgan.data.transforms import (
    Identity,
    InverseTransform,
    ParticleStandardize,
    SqrtScale,
    Standardize,
    Transform,
)
from physgan.errors import ConfigError
from physgan.losses import OBJECTIVES, ObservableMMD
from physgan.metrics.jetfeatures import jet_features
from physgan.models import DISCRIMINATORS, GENERATORS, VAE, Flow
from physgan.models.pointcloud import multiplicity_counts
from physgan.training.runtime import Runtime
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import GANState, LikelihoodState, TrainingState
from physgan.training.steps import (
    BatchSampler,
    gan_eval,
    gan_step,
    nll_eval,
    nll_step,
    vae_eval,
    vae_step,
)

__all__ = [
    "build_state",
    "fit_cond_transform",
    "fit_transform",
    "load_data",
    "mmd_term",
    "real_batches",
    "state_from_data",
    "step_functions",
    "to_tensor",
    "total_power",
]


# Training images an observable's spread is taken over (tau_21 of all of them takes minutes).
SPREAD_IMAGES = 10_000


def _shape_kwargs(kind: str, role: str, shape: tuple[int, ...]) -> dict[str, Any]:
    if kind == "mlp":  # vectors, or anything flattened (e.g. particle clouds (N, 4))
        return {
            "out_dim" if role == "generator" else "in_dim": shape[0] if len(shape) == 1 else shape
        }
    if kind == "dcgan" and len(shape) == 3 and shape[1] == shape[2]:
        return {"channels": shape[0], "image_size": shape[1]}
    if kind == "lagan" and len(shape) == 3 and shape[1] == shape[2] == 25:
        return {"channels": shape[0], "image_size": 25}
    if kind == "epic" and len(shape) == 2 and shape[1] >= 2:
        return {"n_particles": shape[0], "features": shape[1] - 1}
    want = {
        "dcgan": "square images (n, channels, size, size)",
        "lagan": "25x25 images (n, channels, 25, 25)",
        "epic": "particle clouds (n, particles, features + mask)",
    }[kind]
    raise ConfigError(
        f"config: model.{role}.kind: {kind} needs {want}; the data have shape (n, "
        f"{', '.join(map(str, shape))})"
    )


def build_state(
    config: Config,
    sample_shape: tuple[int, ...],
    cond_dim: int,
    multiplicity: np.ndarray | None = None,
    runtime: Runtime | None = None,
    cond_transform: Standardize | Identity | None = None,
    totals: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> TrainingState:
    """Models (on the runtime's device), optimisers, EMA and fp16 grad scalers;
    ``multiplicity`` (counts of real particles per jet in the training data) sets a point-cloud
    generator's distribution of particle numbers, ``cond_transform`` (the standardisation of
    ``data.condition_on``) the units of the multiplicity it is conditioned on, if it is;
    ``totals`` (the training images' pixel sums in normalised units, and their one-hot
    conditions or None) the totals an image generator with ``draw_total`` draws from."""
    t = config.train
    model_cfg = config.model
    runtime = runtime or Runtime()  # sampling and evaluation: one process on the CPU
    # Initialise the weights from the run's seed without touching the global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, Stream.INIT))
        if isinstance(model_cfg, GANModelConfig):
            gcfg = model_cfg.generator.model_dump()
            dcfg = model_cfg.discriminator.model_dump()
            gkind, dkind = gcfg.pop("kind"), dcfg.pop("kind")
            conditions = config.data.condition_on or []
            if gkind == "epic" and "n_particles" in conditions:
                gcfg["multiplicity_cond"] = conditions.index("n_particles")
            if gcfg.get("draw_total"):
                gcfg["total_power"] = total_power(config)
            if dcfg.get("observables"):
                dcfg["pixel_power"] = total_power(config)
            G = GENERATORS.get(gkind)(
                **_shape_kwargs(gkind, "generator", sample_shape), cond_dim=cond_dim, **gcfg
            )
            D = DISCRIMINATORS.get(dkind)(
                **_shape_kwargs(dkind, "discriminator", sample_shape), cond_dim=cond_dim, **dcfg
            )
        else:
            kwargs = model_cfg.model_dump(exclude={"family", "beta", "kl_warmup", "dequantize"})
            family = VAE if model_cfg.family == "vae" else Flow
            model = family(sample_shape=sample_shape, cond_dim=cond_dim, **kwargs)
    if isinstance(model_cfg, GANModelConfig):
        if multiplicity is not None and hasattr(G, "set_multiplicity"):
            G.set_multiplicity(multiplicity)
        if totals is not None and getattr(G, "total", None) is not None:
            G.set_totals(*totals)
        column = getattr(G, "multiplicity_cond", None)
        if column is not None and isinstance(cond_transform, Standardize):
            G.set_multiplicity_condition(cond_transform.mean[column], cond_transform.std[column])
        G, D = G.to(runtime.device), D.to(runtime.device)
        opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=t.betas_g)
        opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=t.betas_d)
        state: TrainingState = GANState(G, D, opt_g, opt_d, _ema(G, t.ema))
    else:
        model = model.to(runtime.device)
        opt = torch.optim.Adam(model.parameters(), lr=t.lr_g, betas=t.betas_g)
        state = LikelihoodState(model, opt, _ema(model, t.ema))
    for name in state.optimizers():
        scaler = runtime.grad_scaler()
        if scaler is not None:
            state.scalers[name] = scaler
    return state


def state_from_data(
    config: Config,
    data: TrainingData,
    transform: Transform,
    cond_transform: Standardize | Identity,
    runtime: Runtime,
) -> TrainingState:
    """:func:`build_state` for training on ``data``: a GAN's point-cloud generator gets the
    training jets' multiplicities, an image generator with ``draw_total`` their pixel sums
    (in ``transform``'s units, to the config's total power), a discriminator that sees the
    images' mass and tau_21 (``observables``) their mean and spread over training images."""
    gan = config.model.family == "gan"
    counts = multiplicity_counts(data.x_train) if gan and is_cloud(data.sample_shape) else None
    totals = None
    if gan and getattr(config.model.generator, "draw_total", False):
        pixels = transform.forward(data.x_train) ** total_power(config)
        totals = (pixels.sum(axis=(1, 2, 3)), data.cond_train)
    state = build_state(
        config, data.sample_shape, data.cond_dim, counts, runtime, cond_transform, totals
    )
    if gan and getattr(config.model.discriminator, "observables", False):
        images = transform.forward(data.x_train[:SPREAD_IMAGES])
        state.discriminator.set_observables(torch.as_tensor(images, dtype=torch.float32))
    return state


def _ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def step_functions(
    config: Config,
    sample_real: BatchSampler,
    holdout: tuple[torch.Tensor, torch.Tensor | None],
    runtime: Runtime,
    mmd: ObservableMMD | None = None,
) -> tuple[Any, Any]:
    """The family's training step and its held-out evaluation, for ``fit`` and the logger;
    ``mmd`` (see :func:`mmd_term`) joins G's loss."""
    t, model = config.train, config.model
    common = {
        "sample_real": sample_real,
        "batch_size": t.batch_size,
        "seed": config.seed,
        "runtime": runtime,
    }
    if isinstance(model, VAEModelConfig):
        return vae_step(**common, beta=model.beta, warmup=model.kl_warmup), partial(
            vae_eval, holdout=holdout, seed=config.seed, runtime=runtime
        )
    if isinstance(model, FlowModelConfig):
        return nll_step(**common, dequantize=model.dequantize), partial(
            nll_eval, holdout=holdout, seed=config.seed
        )
    objective = OBJECTIVES.get(config.loss.name)
    step = gan_step(
        **common,
        objective=objective,
        n_critic=t.n_critic,
        r1_weight=config.loss.r1,
        r1_steps=config.loss.r1_steps(t.steps),
        gp_weight=config.loss.gp_weight,
        mmd=mmd,
        mmd_start=config.loss.mmd_start(t.steps),
    )
    return step, partial(
        gan_eval, objective=objective, holdout=holdout, seed=config.seed, runtime=runtime
    )


def mmd_term(
    config: Config, x_train: np.ndarray, transform: Transform, device: torch.device
) -> ObservableMMD | None:
    """G's MMD term on jet observables (``loss.mass_mmd``, ``loss.tau21_mmd``,
    ``loss.pixel_mmd``; class by class with ``loss.mmd_per_class``) for training samples
    ``x_train`` (physics units: particle clouds or jet images) that ``transform`` normalises, for
    batches on ``device``; None when every weight is 0."""
    loss = config.loss
    if not (loss.mass_mmd or loss.tau21_mmd or loss.pixel_mmd):
        return None
    if loss.mmd_per_class and class_names(config.data.name, config.data.conditional) is None:
        raise ConfigError(
            "config: loss.mmd_per_class needs data conditioned on a one-hot class"
            " (data.name: jet-images with data.conditional: true)"
        )
    shape = ", ".join(map(str, x_train.shape[1:]))
    physical = InverseTransform(transform).to(device)
    terms = []
    if is_cloud(x_train.shape[1:]):
        for key in ("tau21_mmd", "pixel_mmd"):
            if getattr(loss, key):
                raise ConfigError(
                    f"config: loss.{key} needs jet images; the data have shape (n, {shape})"
                )
        spread = float(jet_features(x_train)[:, 3].std())
        terms.append((loss.mass_mmd, lambda x: observables.relative_jet_mass(physical(x)), spread))
    elif x_train.ndim == 4 and x_train.shape[1] == 1 and x_train.shape[2] == x_train.shape[3]:
        pixels = x_train[:SPREAD_IMAGES, 0]
        if loss.mass_mmd:
            spread = float(images.image_mass(pixels).std())
            terms.append((loss.mass_mmd, lambda x: observables.image_mass(physical(x)), spread))
        if loss.tau21_mmd:
            spread = float(np.nanstd(images.image_tau21(pixels)))
            terms.append((loss.tau21_mmd, lambda x: observables.image_tau21(physical(x)), spread))
        if loss.pixel_mmd:
            spread = float(images.pixel_log_pt(pixels).std())
            terms.append((loss.pixel_mmd, lambda x: observables.pixel_log_pt(physical(x)), spread))
    else:
        raise ConfigError(
            "config: loss.mass_mmd, loss.tau21_mmd and loss.pixel_mmd need jets (particle clouds"
            f" or one-channel images); the data have shape (n, {shape})"
        )
    return ObservableMMD(terms, per_class=loss.mmd_per_class)


def total_power(config: Config) -> float:
    """The power of the normalised pixels whose sum is the total pT over the transform's scale:
    2 for ``data.transform: sqrt``, else 1."""
    return 2.0 if config.data.transform == "sqrt" else 1.0


def load_data(config: Config, progress: bool = False) -> TrainingData:
    """The run's training and held-out data as ``data`` says, split by the run's seed."""
    d = config.data
    return load_training_data(
        name=d.name,
        path=d.path,
        n_train=d.n_train,
        holdout_fraction=d.holdout_fraction,
        conditional=d.conditional,
        seed=config.seed,
        progress=progress,
        columns=d.columns,
        stream_fit_rows=None if d.stream is None else d.stream.fit_rows,
        condition_on=d.condition_on,
    )


def fit_transform(config: Config, x_train: np.ndarray, cloud: bool) -> Transform:
    """The run's ``data.transform`` fitted on the training samples."""
    if config.data.transform == "standardize":
        return (ParticleStandardize if cloud else Standardize).fit(x_train)
    if config.data.transform in ("scale", "sqrt") and cloud:  # the mask channel must stay 0/1
        raise ConfigError(
            f"config: data.transform: {config.data.transform} is not for particle clouds"
        )
    if config.data.transform == "scale":
        return Standardize.fit_scale(x_train)
    if config.data.transform == "sqrt":
        try:
            return SqrtScale.fit(x_train)
        except ValueError as err:
            raise ConfigError(f"config: data.transform: {err}") from None
    return Identity()


def fit_cond_transform(config: Config, data: TrainingData) -> Standardize | Identity:
    """Networks see ``data.condition_on`` standardised (a jet pT of 1 TeV, multiplicities of
    tens); one-hot and file conditions as they are."""
    if config.data.condition_on and data.cond_train is not None:
        return Standardize.fit(data.cond_train)
    return Identity()


def to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """``a`` as float32 on ``device``."""
    return torch.as_tensor(a, dtype=torch.float32).to(device)


def real_batches(
    config: Config,
    data: TrainingData,
    transform: Transform,
    cond_transform: Standardize | Identity,
    runtime: Runtime,
) -> BatchSampler:
    """This rank's share of each global batch of real training data, in normalised units:
    drawn from memory, or from buffers of a streamed file."""
    stream = config.data.stream
    if data.stream is not None and stream is not None:
        return StreamingSampler(
            data.stream,
            buffer_rows=stream.buffer_rows,
            refresh_every=stream.refresh_every
            or max(1, stream.buffer_rows // config.train.batch_size),
            transform=transform.forward,
            rank=runtime.rank,
            world_size=runtime.world_size,
            device=runtime.device,
        )

    x_train = to_tensor(transform.forward(data.x_train), runtime.device)
    cond_train = data.cond_train
    if cond_train is not None:
        cond_train = to_tensor(cond_transform.forward(cond_train), runtime.device)

    def sample_real(n: int, gen: torch.Generator):
        idx = runtime.share(torch.randint(x_train.shape[0], (n,), generator=gen, device=gen.device))
        return x_train[idx], None if cond_train is None else cond_train[idx]

    return sample_real
