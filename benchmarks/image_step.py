"""Time of one training step of ``jet-images-cpu``'s DCGAN by thread count and memory layout.

One step is what the trainer does per step at batch 64: a D update on a real and a generated
batch, then a G update through D (non-saturating loss, Adam). Variants: 1 and 2 threads, and
the convolutions' activations in the NCHW layout or channels-last (NHWC, which oneDNN's CPU
convolutions prefer, and which the DCGAN models use: ``physgan.models.dcgan._nhwc``). The
variants are interleaved ``--repeats`` times in one process and each one's median is reported
with its ratio to 1 thread, NCHW, because a shared machine is noisy. Run:
``.venv/bin/python benchmarks/image_step.py [--steps 5] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import write_json
from physgan.config import load_config
from physgan.models import dcgan
from physgan.training.builder import build_state

BATCH = 64
nhwc = dcgan._nhwc


def models() -> tuple[nn.Module, nn.Module]:
    """jet-images-cpu's G and D at their initial weights (seed 0)."""
    torch.manual_seed(0)
    state = build_state(load_config("jet-images-cpu"), (1, 25, 25), 2)
    return state.generator, state.discriminator


def step_time(G: nn.Module, D: nn.Module, steps: int, channels_last: bool) -> float:
    """Seconds per training step, over ``steps`` steps after one warm-up step, with the
    convolutions' activations channels-last or not."""
    dcgan._nhwc = nhwc if channels_last else (lambda x: x)
    gen = torch.Generator().manual_seed(1)
    real = F.relu(torch.randn(BATCH, 1, 25, 25, generator=gen) - 1.5) * 20.0  # sparse, GeV-like
    cond = torch.eye(2)[torch.arange(BATCH) % 2]
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def one() -> None:
        z = torch.randn(BATCH, 64, generator=gen)
        with torch.no_grad():
            fake = G(z, cond)
        d_loss = F.softplus(-D(real, cond)).mean() + F.softplus(D(fake, cond)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(G(z, cond), cond)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    elapsed = (time.perf_counter() - start) / steps
    dcgan._nhwc = nhwc
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    variants = [(threads, layout) for threads in (1, 2) for layout in (False, True)]
    G, D = models()
    times: dict[tuple[int, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for threads, layout in variants:
            torch.set_num_threads(threads)
            times[threads, layout].append(step_time(G, D, args.steps, layout))

    base = statistics.median(times[1, False])
    rows = []
    print(f"{'threads':>7}  {'layout':<13}  {'s/step':>7}  {'time vs 1 thread NCHW':>21}")
    for threads, layout in variants:
        median = statistics.median(times[threads, layout])
        name = "channels_last" if layout else "NCHW"
        rows.append(
            {"threads": threads, "layout": name, "seconds_per_step": median, "ratio": median / base}
        )
        print(f"{threads:>7}  {name:<13}  {median:>7.3f}  {median / base:>21.2f}")
    path = write_json(
        args.out,
        "image_step.json",
        {"batch": BATCH, "steps": args.steps, "repeats": args.repeats, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
