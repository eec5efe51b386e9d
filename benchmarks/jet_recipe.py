"""Ablation of the CPU jet recipe: what each switch buys at the same budget of steps.

Trains gluon-jet EPiC GANs (20,000 cached jets, a quarter held out) for the same number of
steps from the same seed, one switch changed at a time from the short demo's recipe
(``gluon-demo``) towards the shipped one (``jets-gluon-cpu``): conditioning on pT and
multiplicity, the least-squares loss, the width, the learning rate, the EMA. Each run scores
its sampling generator on held-out jets every ``--every`` steps (``train.select_every``); the
table shows the last and the best validation score (mean of W1M and W1P over their floors, 1
is as close as a second real sample) and the outlier fraction at the best step. One run per
row: the differences below about 20% are within a run's swings. Run:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jet_recipe.py --steps 3000 --out out/bench
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import merged, run_variant, write_json

BASE: dict[str, Any] = {
    "seed": 0,
    "data": {"name": "jets-gluon", "n_train": 20_000, "holdout_fraction": 0.25},
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
    "loss": {"name": "nonsaturating"},
    "train": {
        "batch_size": 128,
        "lr_g": 3e-4,
        "lr_d": 3e-4,
        "ema": 0.999,
        "eval_samples": 1000,
        "select_samples": 2500,
    },
}

CONDITIONED = {"data": {"condition_on": ["pt", "n_particles"]}}
LSGAN = {"loss": {"name": "lsgan"}}
WIDER = {
    "model": {
        "generator": {"hidden": 64, "layers": 4},
        "discriminator": {"hidden": 64, "layers": 3},
    }
}
SLOWER = {"train": {"lr_g": 2e-4, "lr_d": 2e-4}}
NO_EMA = {"train": {"ema": None}}

VARIANTS: dict[str, list[dict[str, Any]]] = {
    "demo recipe (unconditional, non-saturating)": [],
    "+ conditioned on pT, multiplicity": [CONDITIONED],
    "+ least-squares loss": [CONDITIONED, LSGAN],
    "+ width 64, G 4 / D 3 layers (shipped)": [CONDITIONED, LSGAN, WIDER, SLOWER],
    "shipped without EMA": [CONDITIONED, LSGAN, WIDER, SLOWER, NO_EMA],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    out = Path(args.out) / "jet_recipe"
    results = []
    header = f"{'variant':<46}{'last':>8}{'best':>8}{'at step':>9}{'outliers':>10}{'s':>7}"
    print(header)
    for name, changes in VARIANTS.items():
        r = run_variant(name, merged(BASE, *changes), args.steps, args.every, out)
        results.append(r)
        print(
            f"{name:<46}{r['last_score']:>8.2f}{r['best_score']:>8.2f}{r['best_step']:>9}"
            f"{100 * r['outliers_at_best']:>9.2f}%{r['seconds']:>7.0f}"
        )
    path = write_json(out, "jet_recipe.json", {"steps": args.steps, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
