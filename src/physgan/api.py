"""What the CLI does, as Python functions: train, sample, evaluate, theory, generate_jets, ...

``generate_jets`` and ``generate_jet_images`` (``physgan data jets|jet-images``) live in
:mod:`physgan.data.jetgen` and are re-exported here.
"""

from __future__ import annotations

import copy
import logging
import math
import platform
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from physgan import __version__
from physgan.atomic import remove_stale, write_atomic
from physgan.config import (
    Config,
    FlowModelConfig,
    GANModelConfig,
    VAEModelConfig,
    load_config,
    parse_config,
)
from physgan.data.datasets import TrainingData, load_training_data
from physgan.data.io import write_array
from physgan.data.jetgen import generate_jet_images, generate_jets
from physgan.data.jets import canonical_cloud, sort_by_pt
from physgan.data.stream import StreamingSampler
from physgan.data.transforms import (
    Identity,
    ParticleStandardize,
    Standardize,
    transform_from_dict,
)
from physgan.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    PhysganError,
    TrainingDiverged,
)
from physgan.export import export_onnx
from physgan.losses import OBJECTIVES
from physgan.models import DISCRIMINATORS, GENERATORS, VAE, Flow
from physgan.models.pointcloud import multiplicity_counts
from physgan.sampling import calibrate_discriminator, rejection_sample
from physgan.training import (
    Callback,
    GANState,
    LikelihoodState,
    TrainingState,
    derive_seed,
    distributed,
    fit,
    load_checkpoint,
)
from physgan.training.callbacks import Checkpointer, FiniteGuard, MetricsLogger, ProgressBar
from physgan.training.checkpoint import checkpoint_step, save_checkpoint, saved_modules
from physgan.training.rundir import RunDir
from physgan.training.runtime import Runtime
from physgan.training.steps import (
    BatchSampler,
    gan_eval,
    gan_step,
    nll_eval,
    nll_step,
    vae_eval,
    vae_step,
)

if TYPE_CHECKING:
    from physgan.evaluation import Evaluation

__all__ = [
    "Comparison",
    "DemoResult",
    "TheoryReport",
    "TrainResult",
    "compare",
    "demo",
    "evaluate",
    "export_onnx",
    "fastsim_speed",
    "generate_jet_images",
    "generate_jets",
    "sample",
    "theory",
    "train",
]

log = logging.getLogger(__name__)

# Stream identifiers mixed into derive_seed(seed, ...): one per independent use of the seed.
_INIT, _SAMPLE, _EVAL_TRUTH, _REJECT, _CALIBRATE = 2, 3, 4, 5, 6
_CHUNK = 65_536  # latent draws per call of sample_latent in `sample`
_CACHE_FLOATS = 1 << 17  # latent floats per forward pass when sampling (see _generate)


@dataclass(frozen=True)
class TrainResult:
    """Where a run lives, how far it got, its last logged metrics, and the signal (SIGINT or
    SIGTERM) that stopped it early, after a checkpoint, if one did."""

    run_dir: Path
    step: int
    metrics: dict[str, float]
    stopped_by: str | None = None


def _as_config(config: Config | dict[str, Any] | str | Path, overrides: tuple[str, ...]) -> Config:
    if isinstance(config, str | Path):
        return load_config(config, overrides)
    if overrides:
        from physgan.config import apply_overrides

        raw = config.to_dict() if isinstance(config, Config) else config
        return parse_config(apply_overrides(raw, list(overrides)))
    return parse_config(config)


def _is_cloud(shape: tuple[int, ...]) -> bool:
    """Particle clouds (N, 4): eta_rel, phi_rel, pt_rel and a mask per particle."""
    return len(shape) == 2 and shape[1] == 4


def _shape_kwargs(kind: str, role: str, shape: tuple[int, ...]) -> dict[str, Any]:
    if kind == "mlp":  # vectors, or anything flattened (e.g. particle clouds (N, 4))
        return {
            "out_dim" if role == "generator" else "in_dim": shape[0] if len(shape) == 1 else shape
        }
    if kind == "dcgan" and len(shape) == 3 and shape[1] == shape[2]:
        return {"channels": shape[0], "image_size": shape[1]}
    if kind == "epic" and len(shape) == 2 and shape[1] >= 2:
        return {"n_particles": shape[0], "features": shape[1] - 1}
    want = {
        "dcgan": "square images (n, channels, size, size)",
        "epic": "particle clouds (n, particles, features + mask)",
    }[kind]
    raise ConfigError(
        f"config: model.{role}.kind: {kind} needs {want}; the data have shape (n, "
        f"{', '.join(map(str, shape))})"
    )


def _build_state(
    config: Config,
    sample_shape: tuple[int, ...],
    cond_dim: int,
    multiplicity: np.ndarray | None = None,
    runtime: Runtime | None = None,
    cond_transform: Standardize | Identity | None = None,
) -> TrainingState:
    """Models (on the runtime's device), optimisers, EMA and fp16 grad scalers;
    ``multiplicity`` (counts of real particles per jet in the training data) sets a point-cloud
    generator's distribution of particle numbers, ``cond_transform`` (the standardisation of
    ``data.condition_on``) the units of the multiplicity it is conditioned on, if it is."""
    t = config.train
    model_cfg = config.model
    runtime = runtime or Runtime()  # sampling and evaluation: one process on the CPU
    # Initialise the weights from the run's seed without touching the global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, _INIT))
        if isinstance(model_cfg, GANModelConfig):
            gcfg = model_cfg.generator.model_dump()
            dcfg = model_cfg.discriminator.model_dump()
            gkind, dkind = gcfg.pop("kind"), dcfg.pop("kind")
            conditions = config.data.condition_on or []
            if gkind == "epic" and "n_particles" in conditions:
                gcfg["multiplicity_cond"] = conditions.index("n_particles")
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


def _ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _step_functions(
    config: Config,
    sample_real: BatchSampler,
    holdout: tuple[torch.Tensor, torch.Tensor | None],
    runtime: Runtime,
) -> tuple[Any, Any]:
    """The family's training step and its held-out evaluation, for ``fit`` and the logger."""
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
        gp_weight=config.loss.gp_weight,
    )
    return step, partial(
        gan_eval, objective=objective, holdout=holdout, seed=config.seed, runtime=runtime
    )


def _load_data(config: Config, progress: bool = False) -> TrainingData:
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


_MAY_CHANGE = {"steps", "device", "compile"}  # train settings a resume may change


def _check_resumable(saved: dict[str, Any], config: Config) -> None:
    # Through the schema, so that settings added since the run was written take their defaults.
    saved, new = parse_config(saved).to_dict(), config.to_dict()
    for section in sorted(set(saved) | set(new)):
        old_value, new_value = saved.get(section), new.get(section)
        if section == "sample":  # how to sample, not how to train
            continue
        if section == "train" and isinstance(old_value, dict) and isinstance(new_value, dict):
            old_value = {k: v for k, v in old_value.items() if k not in _MAY_CHANGE}
            new_value = {k: v for k, v in new_value.items() if k not in _MAY_CHANGE}
        if old_value != new_value:
            raise ConfigError(
                f"config: {section}: differs from the run's config.yaml; --resume continues "
                "the same run (only train.steps, train.device and train.compile may change)"
            )


def train(
    config: Config | dict[str, Any] | str | Path,
    out: str | Path,
    *,
    overrides: tuple[str, ...] = (),
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    nproc: int = 1,
) -> TrainResult:
    """Train a GAN, VAE or flow as ``config`` says and write the run directory ``out``.

    ``config`` is a :class:`Config`, a dict or a YAML path; ``overrides`` are ``key=value``
    strings (``"train.steps=200"``). With ``resume`` a killed run continues from its last
    checkpoint and ends with the same weights as an uninterrupted run. ``progress`` shows a
    progress bar on stderr; ``callbacks`` are extra loop hooks (``on_step``, ``on_end``).
    ``nproc`` > 1 trains on that many local processes with DistributedDataParallel (through
    torch's elastic launcher, as ``torchrun`` does; ``train.batch_size`` is the global batch).
    Under ``torchrun`` each rank calls this function and only rank 0 writes ``out``.
    """
    config = _as_config(config, tuple(overrides))
    if nproc != 1:
        return _train_on_processes(config, Path(out), resume, progress, nproc)
    t = config.train
    with distributed.session(t.device, t.precision, t.compile) as runtime:
        return _train(config, RunDir(out), resume, progress, callbacks, runtime)


def _train_on_processes(
    config: Config, out: Path, resume: bool, progress: bool, nproc: int
) -> TrainResult:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="physgan-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        RunDir(tmp).write_config(config.to_dict())
        argv = ["train", str(config_file), "--out", str(out)]
        argv += ["--resume"] * resume + ["--no-progress"] * (not progress)
        code = distributed.launch(argv, nproc)  # 0, 130 or 143; raises for a failure
    stopped_by = {130: "SIGINT", 143: "SIGTERM"}.get(code)
    run = RunDir(out)
    rows = run.read_metrics()
    metrics = rows[-1] if rows else {}
    return TrainResult(run.root, checkpoint_step(run.checkpoint), metrics, stopped_by)


def _train(
    config: Config,
    run: RunDir,
    resume: bool,
    progress: bool,
    callbacks: Sequence[Callback],
    runtime: Runtime,
) -> TrainResult:
    t = config.train
    pack = config.model.discriminator.pack if isinstance(config.model, GANModelConfig) else 1
    if t.batch_size % (pack * runtime.world_size):
        raise ConfigError(
            f"config: train.batch_size: {t.batch_size} is not a multiple of "
            f"model.discriminator.pack = {pack} times the {runtime.world_size} processes"
        )
    lead = runtime.rank == 0  # only rank 0 writes the run directory
    created = not run.root.exists()
    resuming = run.prepare(resume=resume) if lead else resume and run.checkpoint.is_file()
    if resuming:
        _check_resumable(run.read_config(), config)

    try:
        data = _load_data(config, progress and lead)
        cloud = _is_cloud(data.sample_shape)
        transform = _fit_transform(config, data.x_train, cloud)
    except PhysganError:
        if created and lead:  # leave no empty run directory behind a refused request
            run.root.rmdir()
        raise
    counts = multiplicity_counts(data.x_train) if cloud and config.model.family == "gan" else None
    cond_transform = _fit_cond_transform(config, data)
    state = _build_state(config, data.sample_shape, data.cond_dim, counts, runtime, cond_transform)

    n_eval = min(t.eval_samples, data.x_holdout.shape[0]) // pack * pack
    if n_eval == 0:
        raise ConfigError(f"config: data: the holdout has fewer samples than pack = {pack}")
    holdout = (
        _tensor(transform.forward(data.x_holdout[:n_eval]), runtime.device),
        None
        if data.cond_holdout is None
        else _tensor(cond_transform.forward(data.cond_holdout[:n_eval]), runtime.device),
    )

    # Everything is validated; only now does the run directory get its files.
    _check_disk_space(run, state)
    if resume and run.root.is_dir() and lead:
        remove_stale(run.root)  # temporary files of writes a kill interrupted
    if resuming:
        load_checkpoint(run.checkpoint, state)
        if lead:
            run.truncate_metrics(state.step)
    elif lead:
        meta = {
            "physgan_version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "seed": config.seed,
            "sample_shape": list(data.sample_shape),
            "cond_dim": data.cond_dim,
            "cond_transform": cond_transform.to_dict(),
        }
        run.write_config(config.to_dict())
        run.write_json(run.meta, meta)
        run.write_json(run.transform, transform.to_dict())
        run.metrics.unlink(missing_ok=True)

    sample_real = _real_batches(config, data, transform, cond_transform, runtime)
    step_fn, evaluate_fn = _step_functions(config, sample_real, holdout, runtime)
    logger = MetricsLogger(
        run.metrics,
        every=t.log_every,
        evaluate=evaluate_fn,
        tensorboard_dir=run.tensorboard if lead else None,
    )
    checkpointer = Checkpointer(run.checkpoint, every=t.checkpoint_every)
    checkpointer.saved_at = state.step if resuming else -1
    # On a GPU, a look at a loss or a flag waits for the device: only at the logged steps.
    sync_every = 1 if runtime.device.type == "cpu" else t.log_every
    guard = FiniteGuard(every=sync_every)
    hooks: list[Callback] = [guard, logger, checkpointer] if lead else [guard]
    if progress and lead:
        hooks.append(ProgressBar(t.steps, state.step, logger))
    streaming = sample_real if isinstance(sample_real, StreamingSampler) else None
    if streaming is not None:
        hooks.insert(0, streaming)  # swaps its buffer of the file between steps

    def stop() -> bool:
        if runtime.distributed and state.step % sync_every:
            return False  # the ranks agree on stopping at the synchronised steps only
        return runtime.any(stopped())

    rollbacks = 0
    with _stop_on_signals() as stopped, ExitStack() as cleanup:
        if streaming is not None:
            cleanup.callback(streaming.close)  # its file and reading thread, however it ends
        while True:
            if streaming is not None:
                streaming.start(state.step)
            try:
                fit(
                    state,
                    step_fn,
                    max_steps=t.steps,
                    callbacks=[*hooks, *callbacks],
                    stop=stop,
                )
                break
            except TrainingDiverged as err:
                if t.on_divergence == "stop" or rollbacks == t.max_rollbacks:
                    raise _diverged(err, run, checkpointer.saved_at, rollbacks) from None
                rollbacks += 1
                _roll_back(state, run, str(err), lead)
        if lead and not stopped() and state.step == t.steps and not data.cond_dim:
            _store_calibrated(config, state, run, data.x_train, transform)
    return TrainResult(run.root, state.step, logger.latest, stopped.signal)


def _store_calibrated(
    config: Config,
    state: TrainingState,
    run: RunDir,
    x_train: np.ndarray,
    transform: Standardize | ParticleStandardize | Identity,
) -> None:
    """Calibrate D for rejection sampling once, when training has ended, and keep the copy in
    the final checkpoint (with the ``calibrate_steps`` it took), so sampling need not repeat it.
    The sampling settings are those of the run's config.yaml (a resume may not change them)."""
    config = config.model_copy(update={"sample": parse_config(run.read_config()).sample})
    steps = config.sample.calibrate_steps
    if not (isinstance(state, GANState) and config.sample.rejection and steps):
        return
    state.calibrated = _calibrated_discriminator(config, state, transform.forward(x_train))
    save_checkpoint(run.checkpoint, state, {"calibrate_steps": steps})


def _fit_transform(
    config: Config, x_train: np.ndarray, cloud: bool
) -> Standardize | ParticleStandardize | Identity:
    """The run's ``data.transform`` fitted on the training samples."""
    if config.data.transform == "standardize":
        return (ParticleStandardize if cloud else Standardize).fit(x_train)
    if config.data.transform == "scale":
        if cloud:  # the mask channel must stay 0/1
            raise ConfigError("config: data.transform: scale is not for particle clouds")
        return Standardize.fit_scale(x_train)
    return Identity()


def _fit_cond_transform(config: Config, data: TrainingData) -> Standardize | Identity:
    """Networks see ``data.condition_on`` standardised (a jet pT of 1 TeV, multiplicities of
    tens); one-hot and file conditions as they are."""
    if config.data.condition_on and data.cond_train is not None:
        return Standardize.fit(data.cond_train)
    return Identity()


def _cond_transform(meta: dict[str, Any]) -> Standardize | ParticleStandardize | Identity:
    """The run's transform of conditions (identity for runs saved before there was one)."""
    return transform_from_dict(meta.get("cond_transform", {"kind": "none"}))


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32).to(device)


def _real_batches(
    config: Config,
    data: TrainingData,
    transform: Standardize | ParticleStandardize | Identity,
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

    x_train = _tensor(transform.forward(data.x_train), runtime.device)
    cond_train = data.cond_train
    if cond_train is not None:
        cond_train = _tensor(cond_transform.forward(cond_train), runtime.device)

    def sample_real(n: int, gen: torch.Generator):
        idx = runtime.share(torch.randint(x_train.shape[0], (n,), generator=gen, device=gen.device))
        return x_train[idx], None if cond_train is None else cond_train[idx]

    return sample_real


def _diverged(err: TrainingDiverged, run: RunDir, saved_at: int, rollbacks: int) -> Exception:
    kept = f"the last good checkpoint (step {saved_at}) is kept in {run.root}"
    if saved_at < 0:
        kept = "no checkpoint had been written yet"
    advice = "lower the learning rates or set train.on_divergence: rollback"
    if rollbacks:
        advice = f"after {rollbacks} rollbacks with halved learning rates"
    return TrainingDiverged(f"{err}; {kept} ({advice})", err.step)


def _roll_back(state: TrainingState, run: RunDir, why: str, lead: bool) -> None:
    """Reload the last checkpoint and halve every learning rate (train.on_divergence)."""
    if not run.checkpoint.is_file():
        raise TrainingDiverged(f"{why}; no checkpoint to roll back to", state.step)
    load_checkpoint(run.checkpoint, state)
    if lead:
        run.truncate_metrics(state.step)
    for opt in state.optimizers().values():
        for group in opt.param_groups:
            group["lr"] /= 2
    log.warning("%s: rolled back to step %d with halved learning rates", why, state.step)


class _Stop:
    """Set by SIGINT or SIGTERM: training stops after the current step and checkpoints."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None


@contextmanager
def _stop_on_signals() -> Iterator[_Stop]:
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        stop.signal = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _check_disk_space(run: RunDir, state: TrainingState) -> None:
    """Refuse to start when the output's file system cannot hold two checkpoints."""
    weights = sum(
        t.numel() * t.element_size()
        for m in state.modules().values()
        for t in m.state_dict().values()
    )
    need = 3 * 2 * weights + (16 << 20)  # weights and two Adam moments, twice (atomic write)
    free = shutil.disk_usage(run.root).free
    if free < need:
        raise ConfigError(
            f"--out {run.root}: {free / 2**20:.0f} MiB free, a run needs about "
            f"{need / 2**20:.0f} MiB"
        )


def _load_run(run_dir: str | Path) -> tuple[RunDir, Config, dict[str, Any], TrainingState]:
    run = RunDir(run_dir)
    config = parse_config(run.read_config())
    meta = run.read_json(run.meta)  # checks the version and the data shape
    if not run.checkpoint.is_file():
        raise CheckpointError(f"{run.root}: no checkpoint yet (train it first)")
    state = _build_state(config, tuple(meta["sample_shape"]), int(meta["cond_dim"]))
    calibrates = isinstance(state, GANState) and config.sample.calibrate_steps > 0
    if calibrates and "calibrated" in saved_modules(run.checkpoint):
        state.calibrated = copy.deepcopy(state.discriminator)
    saved = load_checkpoint(run.checkpoint, state)
    if calibrates and saved.get("calibrate_steps") != config.sample.calibrate_steps:
        state.calibrated = None  # calibrated with other settings: again when sampling
    return run, config, meta, state


@torch.no_grad()
def _generate(model: nn.Module, n: int, cond: np.ndarray | None, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(derive_seed(seed, _SAMPLE))
    model.eval()
    chunks = []
    for start in range(0, n, _CHUNK):
        size = min(_CHUNK, n - start)
        z = model.sample_latent(size, generator=gen)
        c = None if cond is None else torch.as_tensor(cond[start : start + size])
        # Forward passes over a few hundred samples keep the activations in the CPU's cache:
        # 3.6x the rate of one pass over 10^4 jets (EPiC demo size, one thread).
        rows = max(256, _CACHE_FLOATS // z[0].numel())
        for i in range(0, size, rows):
            chunks.append(model(z[i : i + rows], None if c is None else c[i : i + rows]).numpy())
    return np.concatenate(chunks)  # n >= 1: the callers check it


def _calibrated_discriminator(
    config: Config, state: GANState, x_train: np.ndarray | None
) -> nn.Module:
    """A copy of D calibrated against the fixed sampler for ``sample.calibrate_steps``, on the
    CPU and seeded by the run's seed (so the same whenever it is made); D itself, without."""
    steps = config.sample.calibrate_steps
    if not steps or x_train is None:
        return state.discriminator.eval()
    t = config.train
    G = copy.deepcopy(state.sampler).cpu().eval()
    gen = torch.Generator().manual_seed(derive_seed(config.seed, _CALIBRATE))
    return calibrate_discriminator(
        state.discriminator,
        lambda k: G(G.sample_latent(k, generator=gen)),
        torch.as_tensor(x_train, dtype=torch.float32),
        OBJECTIVES.get(config.loss.name).d_loss,
        steps=steps,
        batch_size=t.batch_size,
        lr=t.lr_d,
        betas=t.betas_d,
        generator=gen,
    )


def _generate_rejected(
    config: Config, state: GANState, x_train: np.ndarray | None, n: int, seed: int
) -> np.ndarray:
    D = state.calibrated
    if D is None:  # stored by training; absent if it stopped early or predates storing it
        D = _calibrated_discriminator(config, state, x_train)
    G = state.sampler.eval()
    gen = torch.Generator().manual_seed(derive_seed(seed, _REJECT))
    with torch.no_grad():
        x, _ = rejection_sample(
            lambda k: G(G.sample_latent(k, generator=gen)),
            D,
            n,
            generator=gen,
            cap_quantile=config.sample.cap_quantile,
            chunk=_CHUNK,
        )
    return x.numpy()


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise ConfigError(f"--seed: must be a non-negative integer, got {seed}")


def _sample_run(
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
        if config.sample.calibrate_steps and getattr(state, "calibrated", None) is None:
            x_train = transform.forward((data if data is not None else _load_data(config)).x_train)
        x_norm = _generate_rejected(config, state, x_train, n, seed)
    else:
        cond = _conditions(config, meta, cond, n, seed, data)
        if cond is not None:
            cond = _cond_transform(meta).forward(cond).astype(np.float32)
        x_norm = _generate(state.sampler, n, cond, seed)
    x = transform.inverse(x_norm).astype(np.float32)
    if _is_cloud(x.shape[1:]):  # the file layout: 0/1 mask, zero padding, highest pT first
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
        cond_train = (data if data is not None else _load_data(config)).cond_train
        rng = np.random.default_rng([seed, _SAMPLE])
        cond = cond_train[rng.integers(cond_train.shape[0], size=n)]
    return cond


def sample(
    run_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    cond: np.ndarray | Mapping[str, float] | None = None,
    out: str | Path | None = None,
    rejection: bool | None = None,
) -> np.ndarray:
    """Draw ``n`` samples in the data's own units from a trained run (its EMA generator if on).

    Conditional runs use ``cond`` (n, cond_dim) when given, or for a run with
    ``data.condition_on`` one value per name for all n (``{"pt": 1200.0, "n_particles": 25}``,
    in physics units), else draw conditions from the training data's. With ``out`` (a
    ``.npy`` or ``.h5`` path) the samples are also written there, atomically. ``rejection``
    (None: the config's ``sample.rejection``) keeps each sample with probability
    exp(logit D(x) - M), the trained discriminator's estimate of p_data / p_g (see
    :func:`physgan.sampling.rejection_sample`).
    """
    if n < 1:
        raise ConfigError(f"-n: must be a positive number of samples, got {n}")
    _check_seed(seed)
    x = _sample_run(*_load_run(run_dir), n, seed, cond, rejection)
    if out is not None:
        write_array(out, x)
    return x


def _json_ready(value: Any) -> Any:
    """Infinite and NaN floats as null, recursively, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(
    run_dir: str | Path,
    *,
    n: int = 2_500,
    seed: int = 0,
    reference: str | Path | None = None,
    rejection: bool | None = None,
) -> dict[str, Any]:
    """Score ``n`` samples of a run; write ``RUN/metrics.json`` and ``RUN/report.html``.

    The real samples are ``reference`` (a data file) if given, else ``2 n`` draws of the true
    mixture for toys, else the run's held-out data. Each metric (see :mod:`physgan.evaluation`
    for which, by kind of data) is reported as {value, std, floor, floor_std, verdict}, the
    floor being the same metric between two disjoint halves of the real samples; toys also get
    ``modes``, ``high_quality``, ``reverse_kl_modes`` and ``mode_counts`` (see
    :func:`physgan.metrics.mode_stats`). Infinite values are written as null. The samples are
    drawn as :func:`sample` draws them (``rejection``: as there).
    """
    from datetime import datetime, timezone

    from physgan.data.io import read_arrays
    from physgan.evaluation import evaluate_samples
    from physgan.report.html import write_report

    if n < 2:
        raise ConfigError(f"-n: evaluation needs at least 2 samples, got {n}")
    _check_seed(seed)
    run, config, meta, state = _load_run(run_dir)
    if rejection is None:
        rejection = config.sample.rejection
    data = _load_data(config)
    if reference is not None:
        real, _ = read_arrays(reference)
        if tuple(real.shape[1:]) != data.sample_shape:
            raise DataError(
                f"{reference}: samples of shape {tuple(real.shape[1:])}, the run's data have "
                f"{data.sample_shape}"
            )
    elif data.truth is not None:
        real = data.truth.sample(2 * n, derive_seed(seed, _EVAL_TRUTH)).astype(np.float32)
    else:
        real = data.x_holdout
    generated = _sample_run(run, config, meta, state, n, seed, None, rejection, data)
    rows = run.read_metrics()
    scored = evaluate_samples(real, generated, seed=seed, truth=data.truth, training_rows=rows)
    n_compared = min(len(real) // 2, n)
    summary = {
        "n_samples": n,
        "n_compared": n_compared,
        "seed": seed,
        "step": state.step,
        "rejection": rejection,
    }
    if reference is None and data.classes is not None and data.cond_holdout is not None:
        summary["classes"] = {}
        for index, name in enumerate(data.classes):
            by_class = _evaluate_class(run, config, meta, state, data, index, n, seed)
            summary["classes"][name] = by_class.metrics
            scored.rows += [replace(r, metric=f"{name}: {r.metric}") for r in by_class.rows]
            scored.figures += [(f"{name} jets: {c}", fig) for c, fig in by_class.figures]
    result = _json_ready(summary | scored.metrics)
    run.write_json(run.evaluation, result)

    source = config.data.path or config.data.name
    provenance: dict[str, Any] = {
        "physgan version": __version__,
        "run": str(run.root),
        "training step": state.step,
        "run seed": config.seed,
        "evaluation seed": seed,
        "samples compared": f"{n_compared} generated vs {n_compared} real (floor: real vs real)",
        "data": source,
        "evaluated at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if config.data.path is not None and Path(config.data.path).is_file():
        provenance["data SHA-256"] = _sha256(Path(config.data.path))
    if reference is not None:
        provenance["reference"] = str(reference)
        provenance["reference SHA-256"] = _sha256(Path(reference))
    write_report(
        run.root / "report.html",
        title=f"physgan evaluation: {run.root.name}",
        summary_rows=scored.rows,
        figures=scored.figures,
        config_text=run.config.read_text(),
        provenance=provenance,
    )
    return result


def _evaluate_class(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    data: TrainingData,
    index: int,
    n: int,
    seed: int,
) -> Evaluation:
    """One class of a class-conditional run: samples generated with that class's one-hot
    condition against the held-out samples of the class."""
    from physgan.evaluation import evaluate_samples

    assert data.cond_holdout is not None  # the caller checks it
    real = data.x_holdout[data.cond_holdout.argmax(axis=1) == index]
    n_class = min(n, len(real) // 2)
    if n_class < 2:
        raise DataError(f"{run.root}: the holdout has too few samples of class {index}")
    cond = np.zeros((n_class, data.cond_dim), dtype=np.float32)
    cond[:, index] = 1.0
    generated = _sample_run(run, config, meta, state, n_class, seed, cond, False)
    return evaluate_samples(real, generated, seed=seed)


@dataclass(frozen=True)
class Comparison:
    """``physgan compare``'s outcome: one row of metrics per run, the table and its files."""

    rows: list[dict[str, Any]]
    table: str
    figure: Path
    json: Path
    markdown: Path


def _model_log_density(
    run: RunDir, state: TrainingState
) -> Callable[[np.ndarray], np.ndarray] | None:
    """log q(x) in the data's units for a run with a density (a flow), else None."""
    model = state.sampler
    if not hasattr(model, "log_prob"):
        return None
    transform = transform_from_dict(run.read_json(run.transform))
    if not hasattr(transform, "log_abs_det"):
        return None

    @torch.no_grad()
    def log_q(x: np.ndarray) -> np.ndarray:
        model.eval()
        x_norm = torch.as_tensor(transform.forward(x), dtype=torch.float32)
        log_q_norm = torch.cat([model.log_prob(c) for c in x_norm.split(_CHUNK)]).double()
        return log_q_norm.numpy() + transform.log_abs_det(x)

    return log_q


def _last_likelihood(run: RunDir) -> float | None:
    """The last held-out -log-likelihood (flow) or -ELBO (VAE) logged, nats per sample."""
    rows = run.read_metrics()
    last = rows[-1] if rows else {}
    if "holdout_nll" in last:
        return float(last["holdout_nll"])
    if "holdout_elbo" in last:
        return -float(last["holdout_elbo"])
    return None


def compare(
    run_dirs: Sequence[str | Path],
    *,
    out: str | Path = "compare",
    n: int = 5_000,
    seed: int = 0,
) -> Comparison:
    """Put trained runs (any family, any data) side by side; write the table and a figure.

    For each run: forward KL, reverse KL and JSD to the data in nats (kNN for every run, and
    exact Monte Carlo too where both densities are known, a toy's and a flow's: see
    :mod:`physgan.comparison`), modes, high-quality fraction and the width of the modes
    relative to the truth's (:func:`physgan.comparison.mode_width`) on toys, W1M, W1P, FPD, KPD
    on jets, the classifier AUC, the held-out negative log-likelihood for a flow (the -ELBO
    bound for a VAE; normalised units), and samples per second of :func:`sample`. ``n``
    samples per run are compared with ``2 n`` draws of a toy's truth or with the held-out
    data. Writes ``compare.md``, ``compare.json`` and ``compare.png`` into ``out``.
    """
    import time

    from physgan.comparison import divergences, format_table, mode_width
    from physgan.evaluation import data_kind, evaluate_samples
    from physgan.report.plots import ComparisonPanel, comparison_figure
    from physgan.report.theory_figure import save_figure

    if not run_dirs:
        raise ConfigError("compare: give at least one run directory")
    if n < 2:
        raise ConfigError(f"-n: comparison needs at least 2 samples per run, got {n}")
    _check_seed(seed)
    loaded = [_load_run(run_dir) for run_dir in run_dirs]  # every run checked before work
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create ({err.strerror})") from None
    rows, panels = [], []
    for run, config, meta, state in loaded:
        data = _load_data(config)
        kind = data_kind(data.sample_shape, data.truth)
        if data.truth is not None:
            real = data.truth.sample(2 * n, derive_seed(seed, _EVAL_TRUTH)).astype(np.float32)
        else:
            real = data.x_holdout
        times = []
        for _ in range(2):  # the second draw runs warm; both draw the same samples
            start = time.perf_counter()
            generated = _sample_run(run, config, meta, state, n, seed, data=data)
            times.append(time.perf_counter() - start)
        scored = evaluate_samples(real, generated, seed=seed, truth=data.truth, figures=False)
        log_p = None if data.truth is None else data.truth.log_prob
        log_q = _model_log_density(run, state) if log_p is not None else None
        row: dict[str, Any] = {
            "run": run.root.name,
            "path": str(run.root),
            "family": config.model.family,
            "data": str(config.data.path or config.data.name),
            "kind": kind,
            "step": state.step,
            **divergences(real, generated, kind=kind, log_p=log_p, log_q=log_q),
            "holdout_nll": _last_likelihood(run),
            "samples_per_s": n / min(times),
        }
        metrics = scored.metrics
        if data.truth is not None:
            row["modes"] = f"{metrics['modes']}/{metrics['n_modes']}"
            row["high_quality"] = metrics["high_quality"]
            flat_gen, flat_real = generated.reshape(n, -1), real.reshape(len(real), -1)
            truth_means, truth_stds = data.truth.means, data.truth.stds
            row["mode_width"] = mode_width(flat_gen, truth_means, truth_stds) / mode_width(
                flat_real, truth_means, truth_stds
            )
        for name in ("w1m", "w1p", "fpd", "kpd", "auc"):
            if name in metrics:
                row[name] = {"value": metrics[name]["value"], "std": metrics[name]["std"]}
        rows.append(_json_ready(row))
        panels.append(
            ComparisonPanel(f"{run.root.name} ({config.model.family})", real, generated, data.truth)
        )
    table = format_table(rows)
    markdown = out / "compare.md"
    write_atomic(markdown, table + "\n")
    json_path = out / "compare.json"
    RunDir(out).write_json(json_path, {"n": n, "seed": seed, "runs": rows})
    figure = save_figure(comparison_figure(panels), out / "compare.png")
    return Comparison(rows, table, figure, json_path, markdown)


# Paper units of the jet metrics: tables show W1M, W1P, FPD and KPD x 10^3 and W1EFP x 10^5.
_SCALES = {"w1m": 1e3, "w1p": 1e3, "w1efp": 1e5, "fpd": 1e3, "kpd": 1e3, "auc": 1.0}


@dataclass(frozen=True)
class DemoResult:
    """The main job's outcome: the run, its metrics, the speeds measured, the printed table."""

    run_dir: Path
    metrics: dict[str, Any]
    speed: dict[str, float]
    table: str


def fastsim_speed(
    run_dir: str | Path, *, n: int = 10_000, simulated: int = 300, seed: int = 0
) -> dict[str, float]:
    """Jets per second of a jet run's generator against Pythia 8 + FastJet, on this machine.

    The generator makes ``n`` jets as :func:`sample` does (best of 3, with the inverse
    transform and the file layout, on the threads torch uses); the simulator makes
    ``simulated`` jets of the run's process on one core, Pythia's initialisation included, and
    is credited with as many cores as the generator used threads (perfect scaling, which its
    worker processes approach). Returns both rates, the cores and their ratio.
    """
    import os
    import time

    from physgan.data.datasets import JETS_PREFIX
    from physgan.data.jetgen import chunk_seed
    from physgan.data.pythia import simulate_jets

    run, config, meta, state = _load_run(run_dir)
    name = config.data.name or ""
    if not name.startswith(JETS_PREFIX):
        raise ConfigError("fastsim speed: the run must train on built-in jets (data.name jets-*)")
    # The simulator first: torch's idle threads would otherwise still spin on the cores.
    start = time.perf_counter()
    simulate_jets(name.removeprefix(JETS_PREFIX), simulated, chunk_seed(seed, 10**6))
    per_core = simulated / (time.perf_counter() - start)
    times = []
    for repeat in range(3):
        start = time.perf_counter()
        _sample_run(run, config, meta, state, n, seed + repeat)
        times.append(time.perf_counter() - start)
    cores = min(torch.get_num_threads(), os.cpu_count() or 1)
    generated = n / min(times)
    return {
        "generated_jets_per_s": generated,
        "simulated_jets_per_s_per_core": per_core,
        "cores": cores,
        "speedup_same_cores": generated / (per_core * cores),
    }


def demo(
    config: str | Path = "configs/gluon-demo.yaml",
    out: str | Path = "out/demo",
    *,
    n: int = 2_500,
    seed: int = 0,
    progress: bool = False,
) -> DemoResult:
    """The main job: simulate (or reuse) jets, train, sample, evaluate, report, time.

    Trains ``config`` into ``out/run`` (a finished run there is reused, a killed one resumed),
    evaluates ``n`` generated jets against held-out ones (``out/run/report.html``), measures
    :func:`fastsim_speed` and returns a summary table in the papers' units.
    """
    run_dir = Path(out) / "run"
    train(config, run_dir, resume=True, progress=progress)
    metrics = evaluate(run_dir, n=n, seed=seed)
    speed = fastsim_speed(run_dir, seed=seed)
    lines = [
        f"{'metric':<8}{'scale':>7}{'generated vs real':>22}{'real vs real (floor)':>24}  verdict",
    ]
    for name, scale in _SCALES.items():
        m = metrics.get(name)
        if not m or m["value"] is None:
            continue
        gen = f"{m['value'] * scale:.3g} ± {m['std'] * scale:.2g}"
        floor = f"{m['floor'] * scale:.3g} ± {m['floor_std'] * scale:.2g}"
        lines.append(f"{name:<8}{f'x{scale:g}':>7}{gen:>22}{floor:>24}  {m['verdict']}")
    lines += [
        "",
        f"generated: {speed['generated_jets_per_s']:,.0f} jets/s (batch 10^4); Pythia 8 + "
        f"FastJet: {speed['simulated_jets_per_s_per_core']:.0f} jets/s per core x "
        f"{speed['cores']} cores",
        f"fast-simulation speed-up on the same cores: {speed['speedup_same_cores']:,.0f}x",
        f"report: {run_dir / 'report.html'}",
    ]
    return DemoResult(run_dir, metrics, speed, "\n".join(lines))


@dataclass(frozen=True)
class TheoryReport:
    """The theory demo's results: the fits, the C(G) check per fit, a text table, the files."""

    fits: dict[str, Any]
    identity: dict[str, Any]
    table: str
    figure: Path
    json: Path


def theory(*, out: str | Path = "theory", lo: float = -10.0, hi: float = 10.0) -> TheoryReport:
    """The lecture in numbers on its bimodal example ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``.

    Fits one Gaussian q three ways (forward KL = maximum likelihood, reverse KL, JSD), reports
    all three divergences of each fit in nats, checks C(G) = V(D*, G) = -ln 4 + 2 JSD with each
    fit as p_g, and writes ``theory.png`` and ``theory.json`` into ``out``. Deterministic.
    """
    from physgan.data.toy import GaussianMixture, bimodal_1d
    from physgan.report.theory_figure import save_figure, theory_figure
    from physgan.theory import c_of_g, fit_gaussians

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create ({err.strerror})") from None
    p_data = bimodal_1d()
    fits = fit_gaussians(p_data, lo, hi)
    identity = {
        name: c_of_g(p_data, GaussianMixture.isotropic([g.mu], g.sigma), lo, hi)
        for name, g in fits.items()
    }
    rows = [
        "p_data = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2); one Gaussian q fitted three ways (nats)",
        "",
        f"{'fit minimises':<14}{'mu':>8}{'sigma':>8}{'KL(p||q)':>10}{'KL(q||p)':>10}"
        f"{'JSD':>8}{'V(D*,q)':>10}{'-ln4+2JSD':>11}",
    ]
    for name, g in fits.items():
        c = identity[name]
        rows.append(
            f"{name:<14}{g.mu:>8.3f}{g.sigma:>8.3f}{g.kl_forward:>10.4f}"
            f"{g.kl_reverse:>10.4f}{g.jsd:>8.4f}{c.v_opt:>10.5f}{c.rhs:>11.5f}"
        )
    worst = max(abs(c.v_opt - c.rhs) for c in identity.values())
    rows += [
        "",
        f"C(G) identity V(D*, G) = -ln 4 + 2 JSD holds to {worst:.1e} for every fit.",
        "Forward KL (max likelihood) covers both modes with a wide sigma; reverse KL seeks one.",
    ]
    table = "\n".join(rows)
    run = RunDir(out)
    figure = save_figure(theory_figure(p_data, fits, lo, hi), out / "theory.png")
    json_path = out / "theory.json"
    run.write_json(
        json_path,
        {
            "fits": {k: v._asdict() for k, v in fits.items()},
            "c_of_g": {k: v._asdict() for k, v in identity.items()},
            "window": [lo, hi],
        },
    )
    return TheoryReport(
        fits={k: v._asdict() for k, v in fits.items()},
        identity={k: v._asdict() for k, v in identity.items()},
        table=table,
        figure=figure,
        json=json_path,
    )
