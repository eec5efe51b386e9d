"""The fast-simulation headline: a jet run's generation rate against Pythia 8 + FastJet, and
the summary table that ``physgan demo`` prints."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physgan.data.datasets import JETS_PREFIX
from physgan.data.jetgen import chunk_seed
from physgan.data.pythia import simulate_jets
from physgan.errors import ConfigError
from physgan.generation import load_run, sample_run

__all__ = ["DemoResult", "demo_table", "fastsim_speed"]

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
    run, config, meta, state = load_run(run_dir)
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
        sample_run(run, config, meta, state, n, seed + repeat)
        times.append(time.perf_counter() - start)
    cores = min(torch.get_num_threads(), os.cpu_count() or 1)
    generated = n / min(times)
    return {
        "generated_jets_per_s": generated,
        "simulated_jets_per_s_per_core": per_core,
        "cores": cores,
        "speedup_same_cores": generated / (per_core * cores),
    }


def demo_table(metrics: dict[str, Any], speed: dict[str, float], report: Path) -> str:
    """The main job's printout: each jet metric in the papers' units beside its floor, then
    the generation and simulation rates (:func:`fastsim_speed`) and the report's path."""
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
        f"report: {report}",
    ]
    return "\n".join(lines)
