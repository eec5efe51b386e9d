"""The fast-simulation headline: a jet (or jet-image) run's generation rate against Pythia 8 +
FastJet, and the summary table that ``physgan demo`` prints."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physgan.data.datasets import IMAGE_CLASSES, JET_IMAGES, JETS_PREFIX
from physgan.data.jetgen import chunk_seed, simulate_jet_images
from physgan.data.pythia import simulate_jets
from physgan.errors import ConfigError
from physgan.generation import Weights, load_run, sample_run

__all__ = ["PAPER_SCALES", "DemoPart", "DemoResult", "demo_table", "fastsim_speed"]

# Paper units of the jet metrics: tables show W1M, W1P, FPD and KPD x 10^3 and W1EFP x 10^5;
# the fraction of jets outside the real support in percent.
PAPER_SCALES = {
    "w1m": 1e3,
    "w1p": 1e3,
    "w1efp": 1e5,
    "fpd": 1e3,
    "kpd": 1e3,
    "outliers": 1e2,
    "auc": 1.0,
}


@dataclass(frozen=True)
class DemoPart:
    """One generator of the main job: what it is, its metrics and speeds, where its report is."""

    label: str
    run_dir: Path | str
    metrics: dict[str, Any]
    speed: dict[str, float]
    report: Path


@dataclass(frozen=True)
class DemoResult:
    """The main job's outcome: the shipped generator's part (None when skipped), the short
    training run's part, and the printed table."""

    shipped: DemoPart | None
    trained: DemoPart
    table: str

    @property
    def run_dir(self) -> Path:
        """The short training run's directory."""
        return Path(self.trained.run_dir)

    @property
    def metrics(self) -> dict[str, Any]:
        """The short training run's metrics."""
        return self.trained.metrics

    @property
    def speed(self) -> dict[str, float]:
        """The short training run's speeds."""
        return self.trained.speed


def fastsim_speed(
    run_dir: str | Path,
    *,
    n: int = 10_000,
    simulated: int = 300,
    seed: int = 0,
    weights: Weights = "best",
    threads: int | None = None,
) -> dict[str, float]:
    """Jets (or jet images) per second of a run's generator against Pythia 8 + FastJet, on this
    machine.

    The generator makes ``n`` jets as :func:`sample` does (best of 3, with the inverse
    transform and the file layout) on ``threads`` threads (None: the threads torch uses); the
    simulator makes ``simulated`` jets of the run's process on one core, Pythia's
    initialisation included, and is credited with as many cores as the generator used threads
    (perfect scaling, which its worker processes approach). For a jet-image run, half the
    simulated and generated images are W and half QCD (the generator draws the classes as its
    training data has them). Returns both rates, the cores and their ratio.
    """
    run, config, meta, state = load_run(run_dir, weights)
    name = config.data.name or ""
    if not (name.startswith(JETS_PREFIX) or name == JET_IMAGES):
        raise ConfigError(
            "fastsim speed: the run must train on built-in jets or jet images (data.name "
            "jets-* or jet-images)"
        )
    # The simulator first: torch's idle threads would otherwise still spin on the cores.
    start = time.perf_counter()
    if name == JET_IMAGES:
        for index, process in enumerate(IMAGE_CLASSES):
            size = simulated // 2 + index * (simulated % 2)
            simulate_jet_images(process, size, chunk_seed(seed, 10**6 + index))
    else:
        simulate_jets(name.removeprefix(JETS_PREFIX), simulated, chunk_seed(seed, 10**6))
    per_core = simulated / (time.perf_counter() - start)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        times = []
        for repeat in range(3):
            start = time.perf_counter()
            sample_run(run, config, meta, state, n, seed + repeat)
            times.append(time.perf_counter() - start)
        cores = min(torch.get_num_threads(), os.cpu_count() or 1)
    finally:
        torch.set_num_threads(previous)
    generated = n / min(times)
    return {
        "generated_jets_per_s": generated,
        "simulated_jets_per_s_per_core": per_core,
        "cores": cores,
        "speedup_same_cores": generated / (per_core * cores),
    }


def demo_table(part: DemoPart) -> str:
    """One part of the main job's printout: its label, each jet metric in the papers' units
    beside its floor (and how many jets were compared), the generation and simulation rates
    (:func:`fastsim_speed`) and the report's path."""
    m = part.metrics
    n = m.get("n_compared", 0)
    lines = [
        part.label,
        f"  {n:,} generated vs {n:,} real jets; the floor: {n:,} real vs {n:,} real"
        + (" (fewer than the field's 10,000: a quick look)" if n < 10_000 else ""),
        f"  {'metric':<9}{'scale':>6}{'generated vs real':>22}{'real vs real (floor)':>24}"
        "  verdict",
    ]
    for name, scale in PAPER_SCALES.items():
        r = m.get(name)
        if not r or r["value"] is None:
            continue
        gen = f"{r['value'] * scale:.3g} ± {r['std'] * scale:.2g}"
        floor = f"{r['floor'] * scale:.3g} ± {r['floor_std'] * scale:.2g}"
        lines.append(f"  {name:<9}{f'x{scale:g}':>6}{gen:>22}{floor:>24}  {r['verdict']}")
    speed = part.speed
    lines += [
        f"  generated: {speed['generated_jets_per_s']:,.0f} jets/s on {speed['cores']} "
        f"core(s) (batch 10^4); Pythia 8 + FastJet: "
        f"{speed['simulated_jets_per_s_per_core']:.0f} jets/s per core",
        f"  fast-simulation speed-up on the same cores: {speed['speedup_same_cores']:,.0f}x",
        f"  report: {part.report}",
    ]
    return "\n".join(lines)
