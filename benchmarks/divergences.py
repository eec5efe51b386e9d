"""Benchmark of physgan.divergences.kl_knn: run time and accuracy against the closed form.

For d in (2, 10) and n in (10^3, 10^4, 10^5, 10^6), up to --max-n, draws n points each of
x ~ N(0, I_d) and y ~ N(mu, diag(s^2)), times ``kl_knn(x, y)`` (best of 3 for n <= 10^4, one
run above) and compares it with the exact KL(P||Q) from ``kl_mvn``. Prints a Markdown table and
writes the same rows, with the machine's description, to DIR/divergences.json.

Times are machine-dependent: the k-d tree queries use every core, and in 10-D they grow about
as n^1.5-1.7 (the tree prunes poorly there): 10-D at n = 10^6 took 27 min on a 2-core machine,
so the default --max-n stops at 10^5 (about 1-2 min in all). Run from the repository root:

    .venv/bin/python benchmarks/divergences.py
    .venv/bin/python benchmarks/divergences.py --max-n 1000000 --dims 2 --out out/bench2d
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy

from _common import write_json
from physgan.divergences import kl_knn, kl_mvn

DIMENSIONS = (2, 10)
SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCALE_Q = 1.2  # Q is a little wider than P and shifted by |mu| = 1: KL ~ 0.4-0.6 nats
BEST_OF_UP_TO = 10_000  # best of 3 runs up to this n; one run above (the time is long enough)


def run_case(d: int, n: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng([seed, d, n])  # each row's data independent of --max-n
    mean_q = np.full(d, 1.0 / np.sqrt(d))
    x = rng.normal(size=(n, d))
    y = mean_q + SCALE_Q * rng.normal(size=(n, d))
    truth = kl_mvn(np.zeros(d), np.eye(d), mean_q, SCALE_Q**2 * np.eye(d))
    repeats = 3 if n <= BEST_OF_UP_TO else 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimate = kl_knn(x, y)
        times.append(time.perf_counter() - start)
    return {
        "d": d,
        "n": n,
        "time_s": min(times),
        "repeats": repeats,
        "estimate": estimate,
        "truth": truth,
        "relative_error": estimate / truth - 1.0,
    }


def markdown_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| d | n | time (s) | estimate | truth | relative error |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['d']} | {row['n']:,} | {row['time_s']:.3g} | {row['estimate']:.4f} "
            f"| {row['truth']:.4f} | {row['relative_error']:+.2%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder")
    parser.add_argument(
        "--max-n", type=int, default=100_000, help="largest sample size (of 10^3 ... 10^6)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument(
        "--dims", type=int, nargs="+", default=list(DIMENSIONS), help="dimensions to run"
    )
    args = parser.parse_args(argv)
    sizes = [n for n in SIZES if n <= args.max_n]
    if not sizes:
        parser.error(f"--max-n must be >= {SIZES[0]}")

    rows = []
    for d in args.dims:
        for n in sizes:
            rows.append(run_case(d, n, args.seed))
            print(f"d={d} n={n}: {rows[-1]['time_s']:.3g} s", file=sys.stderr, flush=True)

    print(markdown_table(rows))
    result = {
        "benchmark": "physgan.divergences.kl_knn (k=1) vs kl_mvn",
        "setup": f"x ~ N(0, I_d), y ~ N(mu, {SCALE_Q}^2 I_d), mu_j = 1/sqrt(d), n = m",
        "seed": args.seed,
        "scipy": scipy.__version__,
        "rows": rows,
    }
    path = write_json(args.out, "divergences.json", result)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
