"""Samples per second of an exported ONNX model in ONNX Runtime against PyTorch, on the CPU.

Trains two small runs in a temporary directory for a few steps (speed does not depend on how
well they are trained): the ring8 MLP GAN (ring8's networks) and the EPiC jet GAN
of gluon-demo on synthetic 30-particle clouds (no Pythia needed). Each is
exported with a dynamic batch axis; then, at each batch size, the same graph (sampler,
inverse transform and, for jets, the cloud layout) runs on the same z in PyTorch (eager,
``torch.no_grad``) and in ONNX Runtime (CPU provider, as many threads as torch uses, ``--threads``),
interleaved, best of ``--repeats``. Latent sampling is outside both timings. Run:
``.venv/bin/python benchmarks/export.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import write_json
from physgan import api
from physgan.export import physics_sampler

_TRAIN = {"steps": 20, "batch_size": 64, "log_every": 20, "checkpoint_every": 20}


def _configs(data_dir: Path) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    n, n_particles = 2_000, 30
    k = rng.integers(5, n_particles + 1, size=(n, 1))
    mask = (np.arange(n_particles) < k)[..., None]
    pt = -np.sort(-rng.exponential(0.05, size=(n, n_particles, 1)), axis=1)
    eta_phi = rng.normal(0.0, 0.1, size=(n, n_particles, 2))
    clouds = np.concatenate([eta_phi, pt, np.ones_like(pt)], axis=-1) * mask
    np.save(data_dir / "clouds.npy", clouds.astype(np.float32))
    return {
        "ring8 MLP GAN": {
            "data": {"name": "ring8", "n_train": 10_000},
            "model": {
                "generator": {"kind": "mlp", "latent_dim": 4, "hidden": 128, "depth": 3},
                "discriminator": {"kind": "mlp", "hidden": 128, "depth": 3},
            },
            "train": _TRAIN | {"ema": 0.999},
        },
        "EPiC jet GAN (30 particles)": {
            "data": {"path": str(data_dir / "clouds.npy")},
            "model": {
                "generator": {
                    "kind": "epic",
                    "latent_dim": 10,
                    "global_dim": 10,
                    "hidden": 48,
                    "layers": 3,
                },
                "discriminator": {"kind": "epic", "global_dim": 10, "hidden": 48, "layers": 2},
            },
            "train": _TRAIN | {"ema": 0.999},
        },
    }


def _best_time(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call of ``fn``: calls repeated until ``min_time`` has passed."""
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def measure(run_dir: Path, onnx_path: Path, batch: int, repeats: int, min_time: float):
    import onnxruntime

    model, _ = physics_sampler(run_dir)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )
    z = model.sample_latent(batch, generator=torch.Generator().manual_seed(0))
    z_np = z.numpy()

    def run_torch() -> None:
        with torch.no_grad():
            model(z)

    def run_onnx() -> None:
        session.run(None, {"z": z_np})

    torch_times, onnx_times = [], []
    for _ in range(repeats):  # interleaved: a shared machine's load hits both alike
        torch_times.append(_best_time(run_torch, min_time))
        onnx_times.append(_best_time(run_onnx, min_time))
    with torch.no_grad():
        diff = float(np.abs(session.run(None, {"z": z_np})[0] - model(z).numpy()).max())
    return batch / min(torch_times), batch / min(onnx_times), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100, 10_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--threads", type=int, help="threads of each (default: torch's)")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, config in _configs(root).items():
            run_dir = api.train(config, root / name.split()[0]).run_dir
            exported = api.export_onnx(run_dir, root / f"{run_dir.name}.onnx")
            for batch in args.batches:
                torch_rate, onnx_rate, diff = measure(
                    run_dir, exported.path, batch, args.repeats, args.min_time
                )
                rows.append(
                    {
                        "model": name,
                        "batch": batch,
                        "torch_samples_per_s": torch_rate,
                        "onnxruntime_samples_per_s": onnx_rate,
                        "ratio": onnx_rate / torch_rate,
                        "max_abs_diff": diff,
                    }
                )
    print("| model | batch | PyTorch (samples/s) | ONNX Runtime (samples/s) | ORT / PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['batch']:,} | {r['torch_samples_per_s']:,.0f} "
            f"| {r['onnxruntime_samples_per_s']:,.0f} | {r['ratio']:.2f} |"
        )
    import onnxruntime

    print(
        f"\n{torch.get_num_threads()} threads each; torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; best of {args.repeats}; max |ORT - PyTorch| "
        f"{max(r['max_abs_diff'] for r in rows):.1e}"
    )
    path = write_json(
        args.out,
        "export.json",
        {"args": vars(args), "onnxruntime": onnxruntime.__version__, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
