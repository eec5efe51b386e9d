"""Fast simulation: a trained jet generator's jets per second against Pythia 8 + FastJet.

Trains nothing: it needs a jet run (``make demo`` leaves one in ``out/demo/run``). Prints the
generator's rate for 10^4 jets (best of 3, with the inverse transform and the file layout), the
simulator's rate on one core, credited with as many cores as torch uses threads, their ratio,
the generator's FLOPs per jet (``torch.utils.flop_counter``) and the fraction of this machine's
float32 matrix-multiply rate (measured on the same threads) that generation reaches. Run:
``.venv/bin/python benchmarks/fastsim.py [--run out/demo/run]``; ``OMP_NUM_THREADS=1`` in front
compares one core with one core.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import write_json
from physgan import api
from physgan.generation import load_run


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate in FLOP/s (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def generator_flops(run: str, batch: int) -> float:
    """FLOPs per generated jet of the run's sampling generator (forward pass only)."""
    model = load_run(run)[3].sampler
    z = model.sample_latent(batch, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(z)
    return counter.get_total_flops() / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="out/demo/run")
    parser.add_argument("-n", type=int, default=10_000, help="generator batch")
    parser.add_argument("--simulated", type=int, default=300, help="jets for Pythia + FastJet")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    speed = api.fastsim_speed(args.run, n=args.n, simulated=args.simulated)
    flops = generator_flops(args.run, 1_000)
    peak = matmul_rate()
    achieved = flops * speed["generated_jets_per_s"]
    rows = [
        (
            f"generator (10^4 jets, {speed['cores']} thread(s))",
            f"{speed['generated_jets_per_s']:,.0f} jets/s",
        ),
        ("Pythia 8 + FastJet, one core", f"{speed['simulated_jets_per_s_per_core']:.1f} jets/s"),
        (f"speed-up on the same {speed['cores']} cores", f"{speed['speedup_same_cores']:,.0f}x"),
        ("generator FLOPs per jet", f"{flops:,.0f}"),
        ("float32 matmul rate (2048^2)", f"{peak / 1e9:.1f} GFLOP/s"),
        ("generation's share of it", f"{100 * achieved / peak:.1f}%"),
    ]
    for name, value in rows:
        print(f"{name:<40} {value:>18}")
    path = write_json(
        args.out,
        "fastsim.json",
        {**speed, "flops_per_jet": flops, "matmul_flops_per_s": peak, "run": args.run},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
