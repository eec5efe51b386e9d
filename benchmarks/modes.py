"""Mode-collapse benchmark: train the toy configs over several seeds, score 2,500 samples each.

Prints one row per config (the median and range over seeds of modes captured, high-quality
fraction, reverse KL of the mode histogram and seconds of training and of sampling per run,
and how many seeds meet the goal: every mode, at least 97% high quality, reverse KL at most
0.01) beside the published rows, and writes ``modes.json``. A config with ``sample.rejection``
is also scored without it. Run: ``.venv/bin/python benchmarks/modes.py`` (seeds 0-4 x 3
configs); ``--seeds 0-19`` or ``--seeds 5 9 12`` picks the seeds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from _common import write_json
from physgan import api

# Published rows as (method, modes, high-quality %, reverse KL), 2,500 samples, means of 10
# trials: Lin et al. 2018, PacGAN (arXiv:1712.04086), Table 1, as the authors' repository shows
# it (fjxmlzn/PacGAN, synthetic_data_experiments/results/Table1.png).
PUBLISHED = {
    "grid25": [
        ("GAN (PacGAN paper)", 17.3, 94.8, 0.70),
        ("ALI", 24.1, 95.7, 0.14),
        ("PacGAN4", 24.8, 93.6, 0.04),
    ],
    "ring8": [
        ("GAN (PacGAN paper)", 6.3, 98.2, 0.45),
        ("ALI", 6.6, 97.6, 0.36),
        ("PacGAN4", 7.8, 95.9, 0.07),
    ],
}


GOAL = {"high_quality": 0.97, "reverse_kl_modes": 0.01}  # and every mode


def seed_list(tokens: list[str]) -> list[int]:
    """Seeds from tokens that are a seed (``7``) or an inclusive range (``0-19``)."""
    seeds: list[int] = []
    for token in tokens:
        first, _, last = token.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--seeds: {token!r} is not N or A-B") from None
        seeds += range(lo, hi + 1)
    return list(dict.fromkeys(seeds))


def meets_goal(result: dict) -> bool:
    """Every mode, at least 97% high quality and a reverse KL of the modes of at most 0.01."""
    kl = result["reverse_kl_modes"]
    return (
        result["modes"] == result["n_modes"]
        and result["high_quality"] >= GOAL["high_quality"]
        and kl is not None
        and kl <= GOAL["reverse_kl_modes"]
    )


def _summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["grid25", "ring8", "grid25-minimax"])
    parser.add_argument(
        "--seeds", nargs="+", default=["0-4"], help="seeds and inclusive ranges, e.g. 0-19"
    )
    parser.add_argument("-n", type=int, default=2_500)
    parser.add_argument("--set", action="append", default=[], help="extra config overrides")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    try:
        seeds = seed_list(args.seeds)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            for seed in seeds:
                start = time.perf_counter()
                api.train(
                    name,
                    Path(tmp) / f"{name}-{seed}",
                    overrides=(f"seed={seed}", *args.set),
                )
                seconds = time.perf_counter() - start
                run_dir = Path(tmp) / f"{name}-{seed}"
                plain = api.evaluate(run_dir, n=args.n, seed=seed, rejection=False)
                start = time.perf_counter()
                result = api.evaluate(run_dir, n=args.n, seed=seed)  # as the config samples
                eval_seconds = time.perf_counter() - start
                rows = [(name, result)]
                if result["rejection"]:
                    rows.append((f"{name} (no rejection)", plain))
                for label, r in rows:
                    runs.append(
                        {"config": label, "seed": seed, "seconds": seconds, **r}
                        | ({"eval_seconds": eval_seconds} if r is result else {})
                    )
                    print(
                        f"{label} seed {seed}: {r['modes']}/{r['n_modes']} modes, "
                        f"high quality {100 * r['high_quality']:.1f}%, reverse KL "
                        f"{r['reverse_kl_modes']}, {seconds:.0f} s training"
                        + (f" + {eval_seconds:.0f} s sampling and scoring" if r is result else ""),
                        flush=True,
                    )

    print(
        "\n| config | modes | high quality (%) | reverse KL (nats) | s training "
        "| s sampling | seeds meeting the goal |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["config"] for r in runs):
        rows = [r for r in runs if r["config"] == name]
        kl = _summary([math.inf if v is None else v for v in (r["reverse_kl_modes"] for r in rows)])
        print(
            f"| {name} | {_summary([r['modes'] for r in rows])} / {rows[0]['n_modes']} "
            f"| {_summary([100 * r['high_quality'] for r in rows])} | {kl} "
            f"| {_summary([r['seconds'] for r in rows])} "
            f"| {_summary([r['eval_seconds'] for r in rows]) if 'eval_seconds' in rows[0] else ''} "
            f"| {sum(map(meets_goal, rows))} of {len(rows)} |"
        )
        for method, modes, hq, rkl in PUBLISHED.get(name, []):
            print(f"| {method}, published (mean of 10) | {modes} | {hq} | {rkl} | | | |")
    for r in runs:
        r["meets_goal"] = meets_goal(r)
    path = write_json(args.out, "modes.json", {"args": vars(args), "seeds": seeds, "runs": runs})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
