"""Time of the differentiable jet-image observables (``physgan.observables``) at batch 64, beside
a forward and backward pass of ``jet-images-cpu``'s discriminator: what the MMD terms and
``model.discriminator.observables`` add to a training step; and the NumPy tau_21 that the
metrics and the validation selection compute.

Each is timed on the same sparse, GeV-like batch, forward alone (no gradient: D's step on real
images) and forward with backward (G's step), interleaved ``--repeats`` times in one process;
the table gives each one's median and its ratio to D's pass, because a shared machine is noisy.
Run: ``.venv/bin/python benchmarks/image_observables.py [--calls 20] [--repeats 7] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from _common import write_json
from physgan import observables
from physgan.config import load_config
from physgan.data import images
from physgan.training.builder import build_state

BATCH = 64


def timed(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, calls: int, grad: bool
) -> float:
    """Seconds per call of fn on x, summed output backpropagated when ``grad``."""
    fn(x)  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        if grad:
            x.grad = None
            fn(x).sum().backward()
        else:
            with torch.no_grad():
                fn(x)
    return (time.perf_counter() - start) / calls


def numpy_tau21(x: torch.Tensor) -> torch.Tensor:
    """The metric's tau_21 (:func:`physgan.data.images.image_tau21`) of the same batch."""
    return torch.from_numpy(images.image_tau21(x.detach().numpy()[:, 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    D = build_state(load_config("jet-images-cpu"), (1, 25, 25), 2).discriminator
    cond = torch.eye(2)[torch.arange(BATCH) % 2]
    gen = torch.Generator().manual_seed(1)
    x = F.relu(torch.randn(BATCH, 1, 25, 25, generator=gen) - 1.5) * 20.0
    x.requires_grad_(True)
    variants: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
        "D forward+backward": (lambda t: D(t, cond), True),
        "mass forward": (observables.image_mass, False),
        "mass forward+backward": (observables.image_mass, True),
        "tau_21 forward": (observables.image_tau21, False),
        "tau_21 forward+backward": (observables.image_tau21, True),
        "pixel spectrum forward+backward": (observables.pixel_log_pt, True),
        "tau_21 metric (NumPy, float64)": (numpy_tau21, False),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (fn, grad) in variants.items():
            times[name].append(timed(fn, x, args.calls, grad))

    base = statistics.median(times["D forward+backward"])
    rows = []
    print(f"{'call (batch 64)':<32}  {'ms':>7}  {'time vs D':>9}")
    for name in variants:
        median = statistics.median(times[name])
        rows.append({"call": name, "ms": 1e3 * median, "ratio": median / base})
        print(f"{name:<32}  {1e3 * median:>7.2f}  {median / base:>9.2f}")
    path = write_json(
        args.out,
        "image_observables.json",
        {"batch": BATCH, "threads": args.threads, "calls": args.calls, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
