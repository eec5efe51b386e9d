"""What the CLI does, as Python functions with the same names: a façade over the modules that do
the work (:mod:`physgan.training.session`, :mod:`physgan.generation`, :mod:`physgan.evaluation`,
:mod:`physgan.comparison`, :mod:`physgan.export`, :mod:`physgan.fastsim`,
:mod:`physgan.theory_demo`, :mod:`physgan.data.jetgen`). Each function checks its arguments and
makes the calls; none holds logic of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physgan.comparison import Comparison, compare_runs
from physgan.config import (
    Config,
    apply_overrides,
    load_config,
    parse_config,
    shipped_config_text,
    shipped_configs,
)
from physgan.data.io import write_array
from physgan.data.jetgen import generate_jet_images, generate_jets
from physgan.errors import ConfigError
from physgan.evaluation import evaluate_run
from physgan.export import export_onnx
from physgan.fastsim import DemoResult, demo_table, fastsim_speed
from physgan.generation import load_run, sample_run
from physgan.theory_demo import TheoryReport, theory_demo
from physgan.training import distributed
from physgan.training.loop import Callback
from physgan.training.rundir import RunDir
from physgan.training.session import TrainResult, run_training, train_on_processes

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
    "shipped_config_text",
    "shipped_configs",
    "theory",
    "train",
]


def _as_config(config: Config | dict[str, Any] | str | Path, overrides: tuple[str, ...]) -> Config:
    if isinstance(config, str | Path):
        return load_config(config, overrides)
    if overrides:
        raw = config.to_dict() if isinstance(config, Config) else config
        return parse_config(apply_overrides(raw, list(overrides)))
    return parse_config(config)


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise ConfigError(f"--seed: must be a non-negative integer, got {seed}")


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

    ``config`` is a :class:`Config`, a dict, a YAML path or a shipped config's name
    (``"grid25"``); ``overrides`` are ``key=value`` strings (``"train.steps=200"``). With
    ``resume`` a killed run continues from its last checkpoint and ends with the same weights as
    an uninterrupted run. ``progress`` shows a progress bar on stderr; ``callbacks`` are extra
    loop hooks (``on_step``, ``on_end``). ``nproc`` > 1 trains on that many local processes
    with DistributedDataParallel (through torch's elastic launcher, as ``torchrun`` does;
    ``train.batch_size`` is the global batch). Under ``torchrun`` each rank calls this function
    and only rank 0 writes ``out``.
    """
    config = _as_config(config, tuple(overrides))
    if nproc != 1:
        return train_on_processes(config, Path(out), resume, progress, nproc)
    t = config.train
    with distributed.session(t.device, t.precision, t.compile) as runtime:
        return run_training(config, RunDir(out), resume, progress, callbacks, runtime)


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
    x = sample_run(*load_run(run_dir), n, seed, cond, rejection)
    if out is not None:
        write_array(out, x)
    return x


def evaluate(
    run_dir: str | Path,
    *,
    n: int = 2_500,
    seed: int = 0,
    reference: str | Path | None = None,
    rejection: bool | None = None,
) -> dict[str, Any]:
    """The metrics of ``n`` generated samples against real ones (a ``reference`` file, a toy's
    truth or the held-out data), each beside its real-vs-real floor, also written to
    ``RUN/metrics.json`` with ``RUN/report.html`` (:func:`physgan.evaluation.evaluate_run`).
    The samples are drawn as :func:`sample` draws them (``rejection``: as there)."""
    if n < 2:
        raise ConfigError(f"-n: evaluation needs at least 2 samples, got {n}")
    _check_seed(seed)
    return evaluate_run(run_dir, n=n, seed=seed, reference=reference, rejection=rejection)


def compare(
    run_dirs: Sequence[str | Path],
    *,
    out: str | Path = "compare",
    n: int = 5_000,
    seed: int = 0,
) -> Comparison:
    """Put trained runs (any family, any data) side by side: KL both ways and JSD to the data,
    the data's metrics and samples per second; writes ``compare.{md,json,png}`` into ``out``
    (see :func:`physgan.comparison.compare_runs`)."""
    if not run_dirs:
        raise ConfigError("compare: give at least one run directory")
    if n < 2:
        raise ConfigError(f"-n: comparison needs at least 2 samples per run, got {n}")
    _check_seed(seed)
    return compare_runs(run_dirs, out=out, n=n, seed=seed)


def demo(
    config: str | Path = "gluon-demo",
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
    table = demo_table(metrics, speed, run_dir / "report.html")
    return DemoResult(run_dir, metrics, speed, table)


def theory(*, out: str | Path = "theory", lo: float = -10.0, hi: float = 10.0) -> TheoryReport:
    """The lecture in numbers on its bimodal example ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``:
    one Gaussian fitted by forward KL, reverse KL and JSD, and C(G) = -ln 4 + 2 JSD checked
    for each; writes ``theory.png`` and ``theory.json`` into ``out`` (see
    :func:`physgan.theory_demo.theory_demo`; the formulas are in :mod:`physgan.theory`)."""
    return theory_demo(out=out, lo=lo, hi=hi)
