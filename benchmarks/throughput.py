"""Training and generation throughput of the one loop under each speed switch.

For every precision (fp32, bf16, fp16), with and without ``torch.compile``, and for each batch
size, trains the grid25 MLP GAN (width ``--hidden``) for ``--steps`` steps through
``physgan.train`` and reports steps per second after the first step (compilation excluded
from the rate, reported apart), the FLOPs of one training step (``torch.utils.flop_counter``)
and the fraction of the device's measured matrix-multiply rate in the same precision that
training reaches; then generated samples per second at batch 10^4. Runs on the CPU, and on
the GPU too when torch sees one. Run:
``.venv/bin/python benchmarks/throughput.py [--steps 200] [--batch 256 4096]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import StepTimer, grid25_config, write_json
from physgan import api
from physgan.training.runtime import Runtime


def matmul_rate(device: str, precision: str, repeats: int = 10) -> float:
    """The device's matrix-multiply rate in FLOP/s in this precision, through autocast as
    training multiplies (best of ``repeats``); square matrices of 4096 on a GPU, 512 on a
    CPU."""
    size = 4096 if device == "cuda" else 512
    runtime = Runtime(torch.device(device), precision)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    with runtime.autocast():
        warm_until = time.perf_counter() + 1.0  # thread pools, kernel selection, clocks
        while time.perf_counter() < warm_until:
            torch.nn.functional.linear(a, b)
            _sync(device)
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            torch.nn.functional.linear(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _StepFlops:
    """Counts the FLOPs (forward and backward) of the loop's second step, then stops counting."""

    def __init__(self) -> None:
        self.flops = 0.0
        self._counter: FlopCounterMode | None = None

    def on_step(self, state, logs) -> None:
        if state.step == 1:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        elif self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops = float(self._counter.get_total_flops())
            self._counter = None

    def on_end(self, state) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)


def training_row(args, device: str, precision: str, compiled: bool, batch: int) -> dict:
    train = {"device": device, "precision": precision, "compile": compiled}
    # Each run compiles new modules; without a reset, dynamo's per-function recompile limit
    # (8) is reached after a few runs in one process and the rest silently run eagerly.
    torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as tmp:
        timer = StepTimer()
        start = time.perf_counter()
        api.train(
            grid25_config(
                args.hidden, batch, args.steps, log_every=max(args.steps // 2, 1), **train
            ),
            Path(tmp) / "run",
            callbacks=[timer],
        )
        first_step = timer.start - start
        flops = _StepFlops()  # eager, a few steps: FLOPs do not depend on compilation
        api.train(
            grid25_config(args.hidden, batch, 3, device=device, precision=precision, log_every=3),
            Path(tmp) / "flops",
            callbacks=[flops],
        )
    return {
        "device": device,
        "precision": precision,
        "compile": compiled,
        "batch": batch,
        "steps_per_s": timer.rate,
        "samples_per_s": timer.rate * batch,
        "first_step_s": first_step,
        "flops_per_step": flops.flops,
    }


def generation_rate(args, device: str, precision: str, compiled: bool, n: int = 10_000) -> float:
    """Generated samples per second of a fresh generator at batch ``n`` (best of 5)."""
    runtime = Runtime(torch.device(device), precision, compiled)
    from physgan.models import MLPGenerator

    G = MLPGenerator(out_dim=2, latent_dim=8, hidden=args.hidden, depth=3).to(device).eval()
    forward = runtime.frozen(G)
    z = G.sample_latent(n, generator=runtime.generator(0))
    best = float("inf")
    with torch.no_grad(), runtime.autocast():
        for _ in range(6):  # the first warms up (and compiles)
            _sync(device)
            start = time.perf_counter()
            forward(z)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        peaks = {p: matmul_rate(device, p) for p in args.precision}
        for precision in args.precision:
            for compiled in [False] + [True] * (not args.no_compile):
                gen = generation_rate(args, device, precision, compiled)
                for batch in args.batch:
                    row = training_row(args, device, precision, compiled, batch)
                    row["matmul_flops_per_s"] = peaks[precision]
                    row["share_of_matmul"] = (
                        row["flops_per_step"] * row["steps_per_s"] / peaks[precision]
                    )
                    row["generated_per_s_batch_1e4"] = gen
                    rows.append(row)
                    print(
                        f"{device:<5}{precision:<6}{'compiled' if compiled else 'eager':<10}"
                        f"batch {batch:>6}  {row['steps_per_s']:>8.1f} steps/s  "
                        f"{row['samples_per_s']:>10,.0f} samples/s  "
                        f"{100 * row['share_of_matmul']:>5.1f}% of matmul  "
                        f"generation {gen:>12,.0f}/s  first step {row['first_step_s']:.1f} s",
                        flush=True,
                    )
    path = write_json(args.out, "throughput.json", {"args": vars(args), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
