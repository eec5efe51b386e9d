"""The short demo run over training seeds: how much a few CPU minutes of training vary.

Trains ``gluon-demo`` (the second part of ``physgan demo``) once per seed and evaluates each
run as the demo does (``-n`` generated against as many held-out jets, the floor at the same
size, evaluation seed = training seed). Prints each metric over its floor per seed with the
median and range, and the classifier AUC, and writes ``demo_spread.json``. Runs are kept under
``OUT/demo_spread/runs`` and resumed. Run (about 15 minutes on 2 cores):

    .venv/bin/python benchmarks/demo_spread.py --seeds 0 1 2 --out out/bench
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import write_json
from physgan import api

RATIOS = ("w1m", "w1p", "w1efp", "fpd")  # KPD's floor is about 0, its verdict says more


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="gluon-demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("-n", type=int, default=2_500)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    out = Path(args.out) / "demo_spread"
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        run_dir = out / "runs" / f"seed-{seed}"
        result = api.train(args.config, run_dir, resume=True, overrides=(f"seed={seed}",))
        metrics = api.evaluate(run_dir, n=args.n, seed=seed)
        row = {
            "seed": seed,
            "steps": result.step,
            "seconds": time.perf_counter() - start,
            "n_compared": metrics["n_compared"],
            "auc": metrics["auc"]["value"],
            "auc_floor": metrics["auc"]["floor"],
            "outliers": metrics["outliers"]["value"],
            "kpd_verdict": metrics["kpd"]["verdict"],
        }
        row |= {f"{k}_over_floor": metrics[k]["value"] / metrics[k]["floor"] for k in RATIOS}
        runs.append(row)
        print(
            f"seed {seed}: "
            + ", ".join(f"{k} {row[f'{k}_over_floor']:.1f}x" for k in RATIOS)
            + f", KPD {row['kpd_verdict']}, AUC {row['auc']:.3f}, {row['seconds']:.0f} s",
            flush=True,
        )
    print(f"\n{args.config}, {runs[0]['n_compared']:,} vs {runs[0]['n_compared']:,} jets")
    print("| metric | " + " | ".join(f"seed {r['seed']}" for r in runs) + " | median [min, max] |")
    print("|---|" + "---|" * (len(runs) + 1))
    for key, fmt in [*((f"{k}_over_floor", "{:.1f}x") for k in RATIOS), ("auc", "{:.3f}")]:
        values = [r[key] for r in runs]
        cells = " | ".join(fmt.format(v) for v in values)
        spread = f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}, "
        print(
            f"| {key.removesuffix('_over_floor')} | {cells} | {spread}{fmt.format(max(values))}] |"
        )
    print("| kpd | " + " | ".join(r["kpd_verdict"] for r in runs) + " | |")
    path = write_json(out, "demo_spread.json", {"args": vars(args), "runs": runs})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
