"""What the CLI does, as Python functions with the same names: a façade over the modules that do
the work (:mod:`physgan.training.session`, :mod:`physgan.generation`, :mod:`physgan.evaluation`,
:mod:`physgan.comparison`, :mod:`physgan.export`, :mod:`physgan.fastsim`,
:mod:`physgan.theory_demo`, :mod:`physgan.data.jetgen`). Each function checks its arguments and
makes the calls; none holds logic of its own.
"""

from __future__ import annotations

import os
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
from physgan.data.datasets import class_names
from physgan.data.jetgen import cached_jets, generate_jet_images, generate_jets
from physgan.data.writers import Provenance, check_output, write_samples
from physgan.errors import ConfigError
from physgan.evaluation import evaluate_run
from physgan.export import export_onnx
from physgan.fastsim import DemoPart, DemoResult, demo_table, fastsim_speed
from physgan.generation import Weights, load_run, sample_with_conditions
from physgan.pretrained import PREFIX, pretrained_dir, pretrained_models
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
    "pretrained_models",
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
    cond: np.ndarray | Mapping[str, float | str] | None = None,
    out: str | Path | None = None,
    rejection: bool | None = None,
    truncation: float | None = None,
    weights: Weights = "best",
) -> np.ndarray:
    """Draw ``n`` samples in the data's own units from a trained run (its EMA generator if on)
    or a shipped generator (``"pretrained:gluon"``, see :func:`pretrained_models`).

    Conditional runs use ``cond`` (n, cond_dim) when given, or for a run with
    ``data.condition_on`` one value per name for all n (``{"pt": 1200.0, "n_particles": 25}``,
    in physics units), or for class-conditional jet images the class (``{"class": "W"}``), else
    draw conditions from the training data's. With ``out`` (``.h5``,
    ``.npy``, ``.root`` or ``.parquet``) the samples are also written there, atomically, jets
    in the simulator's layout (see :mod:`physgan.data.writers`). ``rejection``
    (None: the config's ``sample.rejection``) keeps each sample with probability
    exp(logit D(x) - M), the trained discriminator's estimate of p_data / p_g (see
    :func:`physgan.sampling.rejection_sample`). ``truncation`` (None: the config's
    ``sample.truncation``, 0: off) drops that fraction of latent draws, those with the largest
    ||dG/dz|| (see :mod:`physgan.truncation`). ``weights``: ``best``, the generator that
    scored best during training (``train.select_every``) where there is one, or ``last``.
    """
    if n < 1:
        raise ConfigError(f"-n: must be a positive number of samples, got {n}")
    _check_seed(seed)
    if out is not None:
        check_output(out)  # before the samples are drawn
    loaded = load_run(run_dir, weights, truncation)
    x, used = sample_with_conditions(*loaded, n, seed, cond, rejection)
    if out is not None:
        data = loaded.config.data
        made_by = Provenance(
            run=str(run_dir) if loaded.run.shipped else str(loaded.run.root.resolve()),
            step=loaded.state.step,
            seed=seed,
            data=data.name if data.path is None else str(data.path),
        )
        names = data.condition_on or ()
        classes = class_names(data.name, data.conditional) or ()
        write_samples(out, x, cond=used, cond_names=names, made_by=made_by, classes=classes)
    return x


def evaluate(
    run_dir: str | Path,
    *,
    n: int = 2_500,
    seed: int = 0,
    reference: str | Path | None = None,
    rejection: bool | None = None,
    truncation: float | None = None,
    weights: Weights = "best",
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The metrics of ``n`` generated samples against real ones (a ``reference`` file, a toy's
    truth or the held-out data), each beside its real-vs-real floor, also written to
    ``metrics.json`` with ``report.html`` in ``out`` (default: the run directory; see
    :func:`physgan.evaluation.evaluate_run`). The samples are drawn as :func:`sample` draws
    them (``rejection``, ``truncation``, ``weights``: as there)."""
    if n < 2:
        raise ConfigError(f"-n: evaluation needs at least 2 samples, got {n}")
    _check_seed(seed)
    return evaluate_run(
        run_dir,
        n=n,
        seed=seed,
        reference=reference,
        rejection=rejection,
        truncation=truncation,
        weights=weights,
        out=out,
    )


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
    pretrained: str | None = "gluon",
    n_fresh: int = 10_000,
) -> DemoResult:
    """The main job, in two parts.

    1. The shipped generator ``pretrained:NAME`` (skipped for None) against ``n_fresh``
       Pythia jets it never saw (simulated, or taken from the cache, with data seed
       ``seed + 1``; the shipped ones trained on seed 0), every metric beside its floor on as
       many more such jets, and its speed-up on one core against the simulator on one core
       (``out/pretrained-NAME/report.html``).
    2. The chain on a few CPU minutes: simulate (or reuse) jets, train ``config`` into
       ``out/run`` (a finished run there is reused, a killed one resumed), evaluate ``n``
       generated jets against held-out ones (``out/run/report.html``) and time it.
    """
    out = Path(out)
    shipped = None
    if pretrained is not None:
        name = f"{PREFIX}{pretrained}"
        process = load_config(pretrained_dir(name) / "config.yaml").data.name or ""
        reference = cached_jets(
            process.removeprefix("jets-"),
            2 * n_fresh,
            seed=seed + 1,
            workers=os.cpu_count() or 1,
            progress=progress,
        )
        folder = out / f"pretrained-{pretrained}"
        metrics = evaluate(name, n=n_fresh, seed=seed, reference=reference, out=folder)
        speed = fastsim_speed(name, seed=seed, threads=1)
        label = f"{name}: the shipped generator, trained once on a CPU, on jets it never saw"
        shipped = DemoPart(label, name, metrics, speed, folder / "report.html")
    run_dir = out / "run"
    result = train(config, run_dir, resume=True, progress=progress)
    metrics = evaluate(run_dir, n=n, seed=seed)
    speed = fastsim_speed(run_dir, seed=seed)
    label = (
        f"{run_dir}: trained here for {result.step:,} steps (a few CPU minutes), to show the "
        "chain; not a quality result"
    )
    trained = DemoPart(label, run_dir, metrics, speed, run_dir / "report.html")
    table = "\n\n".join(demo_table(part) for part in (shipped, trained) if part is not None)
    return DemoResult(shipped, trained, table)


def theory(*, out: str | Path = "theory", lo: float = -10.0, hi: float = 10.0) -> TheoryReport:
    """The lecture in numbers on its bimodal example ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``:
    one Gaussian fitted by forward KL, reverse KL and JSD, and C(G) = -ln 4 + 2 JSD checked
    for each; writes ``theory.png`` and ``theory.json`` into ``out`` (see
    :func:`physgan.theory_demo.theory_demo`; the formulas are in :mod:`physgan.theory`)."""
    return theory_demo(out=out, lo=lo, hi=hi)
