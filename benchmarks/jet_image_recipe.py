"""Ablation of the CPU jet-image recipe: what each switch buys at the same budget of steps.

Trains class-conditional W / QCD jet-image GANs (the cached LAGAN images of ``jet-images``,
``--n-train`` of them, 35% held out) for the same number of steps from the same seed, one switch
changed at a time from ``jet-images`` (a DCGAN with spectral norm and a minibatch-std feature in D,
ReLU output, the pixels divided by one number): the LAGAN generator (locally connected layers,
slimmed to fit a CPU and a 2 MB file), the LAGAN discriminator (minibatch discrimination, batch
norm, dropout), the least-squares loss, no minibatch-std feature, the square root of the pixels
(``transform: sqrt``, which compresses their dynamic range), each image's total pT drawn from the
training images' and imposed by construction (``draw_total``), and the last two together. Each run
scores its EMA generator on held-out images every ``--every`` steps (``train.select_every``): the
score is the mean of W1 of jet mass and of tau_21 over their real-vs-real floors (1 is as close as a
second real sample). Rows 9 to 12 build on the drawn total: the generator upsampling by
resizing and a 3x3 convolution instead of a strided transposed convolution (whose overlaps leave
a checkerboard in the pixel occupancy), the discriminator seeing log(1 + x / 0.01) of the
normalised pixels beside them (the soft pixels), both, and the ReLU output passing a gradient of
0.1 below 0 (``relu_leak``: a switched-off pixel can come back on). The table shows the last and
the best score, the step and the outliers at the best, and the seconds per step, because a LAGAN
step costs more than a DCGAN one. One run per row.
Run (``--variants`` picks rows by number, to split the rows over processes):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jet_image_recipe.py --steps 6000 --out out/bench
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import merged, run_variant, write_json

BASE: dict[str, Any] = {
    "seed": 0,
    "data": {
        "name": "jet-images",
        "n_train": 120_000,
        "holdout_fraction": 0.35,
        "conditional": True,
        "transform": "scale",
    },
    "loss": {"name": "nonsaturating"},
    "train": {
        "batch_size": 64,
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "ema": 0.999,
        "eval_samples": 1000,
        "select_samples": 5000,
    },
}

# Each row names its generator and discriminator whole (a config section is merged key by key).
DCGAN_G = {"kind": "dcgan", "latent_dim": 64, "base_channels": 32, "output": "relu"}
DCGAN_D = {"kind": "dcgan", "base_channels": 32, "spectral_norm": True, "minibatch_std": True}
LAGAN_G = {"kind": "lagan", "latent_dim": 64, "base_channels": 8, "output": "relu"}
LAGAN_D = {"kind": "lagan", "base_channels": 16, "spectral_norm": True}


def models(generator: dict[str, Any], discriminator: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"generator": generator, "discriminator": discriminator}}


VARIANTS: dict[str, list[dict[str, Any]]] = {
    "DCGAN (jet-images)": [models(DCGAN_G, DCGAN_D)],
    "LAGAN generator": [models(LAGAN_G, DCGAN_D)],
    "LAGAN generator and discriminator": [models(LAGAN_G, LAGAN_D)],
    "least-squares loss": [models(DCGAN_G, DCGAN_D), {"loss": {"name": "lsgan"}}],
    "no minibatch std in D": [models(DCGAN_G, DCGAN_D | {"minibatch_std": False})],
    "square-root pixels (transform sqrt)": [
        models(DCGAN_G, DCGAN_D),
        {"data": {"transform": "sqrt"}},
    ],
    "drawn total pT (draw_total)": [models(DCGAN_G | {"draw_total": True}, DCGAN_D)],
    "drawn total and sqrt pixels": [
        models(DCGAN_G | {"draw_total": True}, DCGAN_D),
        {"data": {"transform": "sqrt"}},
    ],
    "drawn total, resize upsampling": [
        models(DCGAN_G | {"draw_total": True, "upsample": "resize"}, DCGAN_D)
    ],
    "drawn total, log pixels in D": [
        models(DCGAN_G | {"draw_total": True}, DCGAN_D | {"log_pixels": 0.01})
    ],
    "drawn total, resize, log pixels": [
        models(DCGAN_G | {"draw_total": True, "upsample": "resize"}, DCGAN_D | {"log_pixels": 0.01})
    ],
    "drawn total, leaky ReLU gradient": [
        models(DCGAN_G | {"draw_total": True, "relu_leak": 0.1}, DCGAN_D)
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--n-train", type=int, default=BASE["data"]["n_train"])
    parser.add_argument(
        "--variants", type=int, nargs="+", help="row numbers (from 1) to run; default: all"
    )
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    out = Path(args.out) / "jet_image_recipe"
    base = merged(BASE, {"data": {"n_train": args.n_train}})
    rows = list(VARIANTS.items())
    picked = [rows[i - 1] for i in args.variants] if args.variants else rows
    results = []
    print(f"{'variant':<36}{'last':>7}{'best':>7}{'at step':>9}{'outliers':>10}{'s/step':>8}")
    for name, changes in picked:
        r = run_variant(name, merged(base, *changes), args.steps, args.every, out)
        results.append(r)
        print(
            f"{name:<36}{r['last_score']:>7.2f}{r['best_score']:>7.2f}{r['best_step']:>9}"
            f"{100 * r['outliers_at_best']:>9.2f}%{r['seconds'] / args.steps:>8.3f}"
        )
    suffix = "-".join(map(str, args.variants)) if args.variants else "all"
    path = write_json(
        out, f"jet_image_recipe-{suffix}.json", {"steps": args.steps, "results": results}
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
