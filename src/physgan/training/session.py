"""One training run from a config into a run directory: checks, resume, signals, divergence
rollback and the calibration at the end, on one process or on many (DDP).
"""

from __future__ import annotations

import logging
import platform
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physgan.atomic import remove_stale
from physgan.config import Config, GANModelConfig, parse_config
from physgan.data.datasets import TrainingData
from physgan.data.jets import is_cloud
from physgan.data.stream import StreamingSampler
from physgan.data.transforms import Identity, Standardize, Transform
from physgan.errors import ConfigError, PhysganError, TrainingDiverged
from physgan.training import distributed
from physgan.training.builder import (
    fit_cond_transform,
    fit_transform,
    load_data,
    mmd_term,
    real_batches,
    state_from_data,
    step_functions,
    to_tensor,
)
from physgan.training.calibration import store_calibrated
from physgan.training.callbacks import Checkpointer, FiniteGuard, MetricsLogger, ProgressBar
from physgan.training.checkpoint import checkpoint_step, load_checkpoint
from physgan.training.loop import Callback, fit
from physgan.training.rundir import RunDir
from physgan.training.runtime import Runtime
from physgan.training.schedule import decay_start, with_lr_decay
from physgan.training.selection import (
    Scorer,
    Selector,
    image_scorer,
    jet_scorer,
    mode_scorer,
)
from physgan.training.signals import stop_on_signals
from physgan.training.state import TrainingState
from physgan.version import __version__

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "run_training", "train_on_processes"]


@dataclass(frozen=True)
class TrainResult:
    """Where a run lives, how far it got, its last logged metrics, and the signal (SIGINT or
    SIGTERM) that stopped it early, after a checkpoint, if one did."""

    run_dir: Path
    step: int
    metrics: dict[str, float]
    stopped_by: str | None = None


# Settings a resume may change: how long, the schedule ahead, how often the best weights are
# sought (selection draws from its own seed stream, not the training's), where the loop runs,
# and the weights of G's MMD terms (a fine-tune of a trained run).
_MAY_CHANGE = {
    "train": ("steps", "lr_decay", "select_every", "device", "compile"),
    "loss": ("mass_mmd", "tau21_mmd", "pixel_mmd", "mmd_from", "mmd_per_class"),
}
_MAY_CHANGE_NAMES = ", ".join(f"{s}.{k}" for s, keys in _MAY_CHANGE.items() for k in keys)


def _resumed_config(saved: dict[str, Any], config: Config) -> dict[str, Any]:
    """The run's config.yaml with the settings this resume may change, as now set."""
    saved, now = parse_config(saved).to_dict(), config.to_dict()
    for section, keys in _MAY_CHANGE.items():
        saved[section] |= {k: now[section][k] for k in keys}
    return saved


def _check_resumable(saved: dict[str, Any], config: Config) -> None:
    # Through the schema, so that settings added since the run was written take their defaults.
    saved, new = parse_config(saved).to_dict(), config.to_dict()
    for section in sorted(set(saved) | set(new)):
        old_value, new_value = saved.get(section), new.get(section)
        if section == "sample":  # how to sample, not how to train
            continue
        if isinstance(old_value, dict) and isinstance(new_value, dict):
            free = _MAY_CHANGE.get(section, ())
            old_value = {k: v for k, v in old_value.items() if k not in free}
            new_value = {k: v for k, v in new_value.items() if k not in free}
        if old_value != new_value:
            raise ConfigError(
                f"config: {section}: differs from the run's config.yaml; --resume continues "
                f"the same run (only {_MAY_CHANGE_NAMES} may change)"
            )


def train_on_processes(
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


def run_training(
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
    saved_config = run.read_config() if resuming else {}
    if resuming:
        _check_resumable(saved_config, config)

    try:
        data = load_data(config, progress and lead)
        cloud = is_cloud(data.sample_shape)
        toy = data.truth is not None and data.cond_train is None
        images = len(data.sample_shape) == 3  # (channels, P, P)
        if t.select_every is not None and not (cloud or images or toy):
            raise ConfigError(
                "config: train.select_every: model selection scores jets (particle clouds), "
                "jet images or the unconditional built-in toys, whose density is known"
            )
        transform = fit_transform(config, data.x_train, cloud)
        cond_transform = fit_cond_transform(config, data)
        selector = None
        if t.select_every is not None and lead:
            scorer = _scorer(config, data, transform, cond_transform)
            selector = Selector(run.best, every=t.select_every, scorer=scorer)
    except PhysganError:
        if created and lead:  # leave no empty run directory behind a refused request
            run.root.rmdir()
        raise
    state = state_from_data(config, data, transform, cond_transform, runtime)

    n_eval = min(t.eval_samples, data.x_holdout.shape[0]) // pack * pack
    if n_eval == 0:
        raise ConfigError(f"config: data: the holdout has fewer samples than pack = {pack}")
    holdout = (
        to_tensor(transform.forward(data.x_holdout[:n_eval]), runtime.device),
        None
        if data.cond_holdout is None
        else to_tensor(cond_transform.forward(data.cond_holdout[:n_eval]), runtime.device),
    )

    # Everything is validated; only now does the run directory get its files.
    _check_disk_space(run, state)
    if resume and run.root.is_dir() and lead:
        remove_stale(run.root)  # temporary files of writes a kill interrupted
    if resuming:
        load_checkpoint(run.checkpoint, state)
        if lead:
            run.truncate_metrics(state.step)
            run.write_config(_resumed_config(saved_config, config))
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
    # Also for a run begun before conditions were saved, when it resumes.
    conditional = config.data.condition_on and data.cond_train is not None
    if lead and conditional and not run.conditions.is_file():
        run.write_conditions(data.cond_train)
    if lead and cloud and not run.support.is_file():
        run.write_support(data.x_train)

    sample_real = real_batches(config, data, transform, cond_transform, runtime)
    mmd = mmd_term(config, data.x_train, transform, runtime.device)
    step_fn, evaluate_fn = step_functions(config, sample_real, holdout, runtime, mmd)
    step_fn = with_lr_decay(step_fn, decay_start(t.steps, t.lr_decay), t.steps)
    if selector is not None:
        evaluate_fn = _with_selection(evaluate_fn, selector)
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
    with stop_on_signals() as stopped, ExitStack() as cleanup:
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
        if lead and not stopped() and state.step == t.steps and not config.data.condition_on:
            cond = data.cond_train
            cond_train = None if cond is None else cond_transform.forward(cond).astype("float32")
            store_calibrated(config, state, run, transform.forward(data.x_train), cond_train)
    return TrainResult(run.root, state.step, logger.latest, stopped.signal)


def _scorer(
    config: Config,
    data: TrainingData,
    transform: Transform,
    cond_transform: Standardize | Identity,
) -> Scorer:
    """The model-selection scorer for the run's kind of data (see :mod:`~.selection`)."""
    t = config.train
    if data.truth is not None and data.cond_train is None:
        return mode_scorer(data.truth, transform.inverse, t.select_samples, config.seed)
    cond = None
    if data.cond_holdout is not None:
        cond = cond_transform.forward(data.cond_holdout).astype("float32")
    scorer = jet_scorer if is_cloud(data.sample_shape) else image_scorer
    return scorer(data.x_holdout, cond, transform.inverse, t.select_samples, config.seed)


def _with_selection(evaluate: Any, selector: Selector) -> Any:
    return lambda state: evaluate(state) | selector(state)


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
            if "base_lr" in group:  # the rate the decay schedule starts from
                group["base_lr"] /= 2
    log.warning("%s: rolled back to step %d with halved learning rates", why, state.step)


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
