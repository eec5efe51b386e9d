"""Steps per second of a GAN trained from an HDF5 file streamed from disk vs held in memory.

The claim tested: a file larger than RAM trains at the same speed per step as one in memory.
The script writes a file of ``--gb`` GB (``--features`` float32 per row, e.g. 30 particles x 4,
in 1 MiB chunks), then trains the same small MLP GAN with (a) the rows of a training subsample
held in RAM, drawn as ``api.train`` draws them, and (b) ``StreamingSampler`` with a buffer much
smaller than the file. Before every streaming run the file is evicted from the page cache
(``posix_fadvise(DONTNEED)``), so its blocks come from the disk as they would for a file
larger than RAM; ``/proc/self/io`` read_bytes shows whether that worked. The two are
interleaved ``--repeats`` times and the median ratio is reported. It also measures how long a
sleeping thread waits for the GIL while h5py reads (the reason the prefetch is a thread).
The file is deleted at the end. Run: ``.venv/bin/python benchmarks/streaming.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from _common import write_json
from physgan.data.stream import StreamingSampler, open_stream
from physgan.data.transforms import Standardize
from physgan.losses import OBJECTIVES
from physgan.models import MLPDiscriminator, MLPGenerator
from physgan.training import GANState
from physgan.training.loop import fit
from physgan.training.steps import gan_step


class _Timer:
    """Times the loop from the end of the first step (warm-up excluded) to the last, and the
    time the sampler's own ``on_step`` took (waiting for a buffer that is not read yet)."""

    def __init__(self, sampler: StreamingSampler | None = None) -> None:
        self.sampler = sampler
        self.start = self.end = self.waiting = 0.0
        self.steps = 0

    def on_step(self, state, logs) -> None:
        if self.sampler is not None:
            t = time.perf_counter()
            self.sampler.on_step(state, logs)
            self.waiting += time.perf_counter() - t
        if self.steps == 0:
            self.start = time.perf_counter()
        self.steps += 1
        self.end = time.perf_counter()

    def on_end(self, state) -> None:
        if self.sampler is not None:
            self.sampler.on_end(state)

    def rate(self) -> float:
        return (self.steps - 1) / (self.end - self.start)


def _disk_bytes() -> int:
    """Bytes this process made the kernel fetch from storage (page-cache hits excluded)."""
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("read_bytes")).split()[1])


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_file(path: Path, gb: float, features: int) -> int:
    chunk_rows = (1 << 20) // (4 * features)
    n_rows = int(gb * 1e9) // (4 * features) // chunk_rows * chunk_rows
    slab = 64 * chunk_rows
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("x", (n_rows, features), "f4", chunks=(chunk_rows, features))
        for start in range(0, n_rows, slab):
            rows = min(slab, n_rows - start)
            rng = np.random.default_rng([0, start])
            ds[start : start + rows] = rng.standard_normal((rows, features), dtype=np.float32)
    return n_rows


def gil_probe(path: Path, rows: int) -> dict[str, float]:
    """Read ``rows`` rows cold with h5py in a thread while another thread sleeps 1 ms at a time:
    if h5py held the GIL, the sleeper would wait for the whole read."""
    waits: list[float] = []
    done = threading.Event()

    def sleeper() -> None:
        while not done.is_set():
            t = time.perf_counter()
            time.sleep(0.001)
            waits.append(time.perf_counter() - t - 0.001)

    _evict(path)
    with h5py.File(path, "r") as fh:
        probe = threading.Thread(target=sleeper)
        probe.start()
        t = time.perf_counter()
        nbytes = fh["x"][:rows].nbytes
        read_s = time.perf_counter() - t
        done.set()
        probe.join()
    return {"read_mb": nbytes / 1e6, "read_s": read_s, "max_gil_wait_ms": 1e3 * max(waits)}


def train_rate(sample_real, args: argparse.Namespace, timer: _Timer) -> float:
    torch.manual_seed(0)
    G = MLPGenerator(out_dim=args.features, latent_dim=8, hidden=args.hidden, depth=3)
    D = MLPDiscriminator(in_dim=args.features, hidden=args.hidden, depth=3)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    state = GANState(
        G, D, torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam)
    )
    step = gan_step(
        objective=OBJECTIVES.get("nonsaturating"),
        sample_real=sample_real,
        batch_size=args.batch,
        seed=0,
    )
    fit(state, step, max_steps=args.steps, callbacks=[timer])
    return timer.rate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=3.0, help="size of the file written")
    parser.add_argument("--features", type=int, default=120, help="float32 per row")
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="rows held in RAM")
    parser.add_argument("--buffer-rows", type=int, default=1 << 16)
    parser.add_argument("--refresh-every", type=int, help="default: buffer rows / batch")
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    refresh = args.refresh_every or args.buffer_rows // args.batch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(out).free / 1e9
    if free_gb < 2 * args.gb:
        parser.error(f"{out} has {free_gb:.1f} GB free; --gb {args.gb} needs twice that")
    path = out / "streaming.h5"
    try:
        t = time.perf_counter()
        n_rows = write_file(path, args.gb, args.features)
        print(f"wrote {path}: {n_rows} rows, {path.stat().st_size / 1e9:.2f} GB", end=" ")
        print(f"in {time.perf_counter() - t:.0f} s")
        gil = gil_probe(path, min(n_rows, 1_000_000))
        plan = open_stream(path, holdout_fraction=0.01, seed=0, fit_rows=args.memory_rows)
        transform = Standardize.fit(plan.x_fit)
        x_memory = torch.as_tensor(transform.forward(plan.x_fit), dtype=torch.float32)

        def in_memory(n: int, gen: torch.Generator):
            return x_memory[torch.randint(x_memory.shape[0], (n,), generator=gen)], None

        rows = []
        for rep in range(args.repeats):
            memory = train_rate(in_memory, args, _Timer())
            _evict(path)
            sampler = StreamingSampler(
                plan,
                buffer_rows=args.buffer_rows,
                refresh_every=refresh,
                transform=transform.forward,
            )
            disk_before, t = _disk_bytes(), time.perf_counter()
            sampler.start(0)
            first_buffer_s = time.perf_counter() - t
            timer = _Timer(sampler)
            stream = train_rate(sampler, args, timer)
            wall = time.perf_counter() - t
            disk = _disk_bytes() - disk_before
            rows.append(
                {
                    "repeat": rep,
                    "memory_steps_per_s": memory,
                    "stream_steps_per_s": stream,
                    "ratio": stream / memory,
                    "first_buffer_s": first_buffer_s,
                    "waiting_for_buffers_s": timer.waiting,
                    "disk_read_mb": disk / 1e6,
                    "disk_read_mb_per_s": disk / 1e6 / wall,
                }
            )
    finally:
        path.unlink(missing_ok=True)

    ratio = statistics.median(r["ratio"] for r in rows)
    buffer_mb = sampler.blocks_per_buffer * plan.block_rows * args.features * 4 / 1e6
    print(
        f"\nh5py read {gil['read_mb']:.0f} MB from disk in {gil['read_s']:.2f} s "
        f"({gil['read_mb'] / gil['read_s']:.0f} MB/s); a sleeping thread waited at most "
        f"{gil['max_gil_wait_ms']:.1f} ms for the GIL meanwhile"
    )
    print(
        "\n| repeat | in memory (steps/s) | streaming (steps/s) | ratio | first buffer (s) "
        "| waiting for buffers (s) | read from disk (MB) | disk MB/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['repeat']} | {r['memory_steps_per_s']:.1f} | {r['stream_steps_per_s']:.1f} "
            f"| {r['ratio']:.3f} | {r['first_buffer_s']:.2f} | {r['waiting_for_buffers_s']:.2f} "
            f"| {r['disk_read_mb']:.0f} | {r['disk_read_mb_per_s']:.0f} |"
        )
    demand = buffer_mb / (refresh / statistics.median(r["stream_steps_per_s"] for r in rows))
    print(
        f"\nmedian ratio streaming / in memory: {ratio:.3f} ({args.gb} GB file, "
        f"{args.features} features, buffer {buffer_mb:.0f} MB swapped every {refresh} steps, "
        f"i.e. {demand:.0f} MB/s needed; {args.memory_rows} rows in memory; hidden "
        f"{args.hidden}, batch {args.batch}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads)"
    )
    payload = {
        "args": vars(args),
        "refresh_every": refresh,
        "buffer_mb": buffer_mb,
        "gil_probe": gil,
        "rows": rows,
        "median_ratio": ratio,
    }
    print(f"wrote {write_json(args.out, 'streaming.json', payload)}")


if __name__ == "__main__":
    main()
