"""Pool many ``physgan evaluate`` results of one generator: each metric's mean value over its mean
floor, with a 95% bootstrap interval, and the ratio per reference sample.

A W1 floor of 10,000 jets varies by 10 to 30% from one real sample to the next, so one
evaluation's ratio crosses a bar by chance; pooling evaluations against several independently
simulated references measures the ratio itself. Run:

    for d in 1 2 3; do
      physgan data jets --process top -n 20000 --seed $d -o top$d.h5
      for s in 0 1 2 3 4 5 6 7 8 9; do
        physgan evaluate pretrained:top --reference top$d.h5 -n 10000 --seed $s --out ev-top$d-$s
      done
    done
    .venv/bin/python scripts/pool_evaluations.py ev-top[123]-[0-9] --json pooled.json

Each directory holds a ``metrics.json``; its ``reference`` (the part of the name before the last
``-``) groups the per-reference column.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RATIO = ("w1m", "w1p", "w1efp", "fpd", "w1_mass", "w1_tau21", "w1_pt", "w1_pixels")
# A ratio to a floor near 0 (KPD's often is) is noise: these are pooled as values.
VALUE = ("kpd", "auc", "outliers", "mass_peak")
BOOTSTRAPS = 4_000


def _two_level_draws(sizes: list[int], seed: int) -> np.ndarray:
    """(BOOTSTRAPS, sum(sizes)) indices into the evaluations, concatenated by reference: the
    references drawn with replacement, then each drawn reference's evaluations. The seeds of
    one reference share its real sample, so they are not independent draws."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum([0, *sizes])
    out = np.empty((BOOTSTRAPS, starts[-1]), dtype=int)
    for b in range(BOOTSTRAPS):
        picked = rng.integers(0, len(sizes), len(sizes))
        # slot i takes sizes[i] draws among the evaluations of reference picked[i]
        slots = zip(picked, sizes, strict=True)
        out[b] = np.concatenate([starts[g] + rng.integers(0, sizes[g], n) for g, n in slots])
    return out


def _arrays(rows: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The values and floors of ``metric`` in ``rows``."""
    return tuple(np.array([r[metric][key] for r in rows]) for key in ("value", "floor"))


def _estimate(value: np.ndarray, floor: np.ndarray, ratio: bool) -> np.ndarray:
    """Over the last axis: the mean value over the mean floor, or the mean value."""
    return value.mean(-1) / floor.mean(-1) if ratio else value.mean(-1)


def pool(results: dict[str, list[dict]], seed: int = 0) -> dict[str, dict]:
    """Per metric: ``ratio`` (mean value / mean floor) or ``value`` (the mean, for KPD, AUC,
    outliers and the mass peak), its 95% interval (a two-level bootstrap: references, then
    evaluations), the mean floor, and the estimate per reference."""
    rows = [r for group in results.values() for r in group]
    draws = _two_level_draws([len(group) for group in results.values()], seed)
    pooled = {}
    for metric in (*RATIO, *VALUE):
        if not all(metric in r for r in rows):
            continue
        ratio = metric in RATIO
        value, floor = _arrays(rows, metric)
        boots = _estimate(value[draws], floor[draws], ratio)
        pooled[metric] = {
            "kind": "ratio" if ratio else "value",
            "estimate": float(_estimate(value, floor, ratio)),
            "interval_95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "floor_mean": float(floor.mean()),
            "by_reference": {
                name: float(_estimate(*_arrays(group, metric), ratio))
                for name, group in results.items()
            },
            "n_evaluations": len(rows),
        }
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="evaluation directories")
    parser.add_argument("--json", type=Path, help="also write the pooled table here")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for path in args.dirs:
        if not (path / "metrics.json").is_file():
            parser.error(f"{path}: no metrics.json (give physgan evaluate's --out directories)")
        reference = path.name.rsplit("-", 1)[0]
        results.setdefault(reference, []).append(json.loads((path / "metrics.json").read_text()))
    pooled = pool(results)
    print(f"{sum(map(len, results.values()))} evaluations, {len(results)} references")
    print("| metric | pooled | 95% interval | mean floor | per reference |")
    print("|---|---|---|---|---|")
    for metric, row in pooled.items():
        unit = "x" if row["kind"] == "ratio" else ""
        lo, hi = row["interval_95"]
        each = ", ".join(f"{v:.3g}{unit}" for v in row["by_reference"].values())
        floor = f"{row['floor_mean']:.3g}"
        print(f"| {metric} | {row['estimate']:.3g}{unit} | {lo:.3g}-{hi:.3g} | {floor} | {each} |")
    if args.json:
        args.json.write_text(json.dumps({"pooled": pooled, "references": list(results)}, indent=1))


if __name__ == "__main__":
    main()
