"""How strongly each observable MMD term would pull on G, against the adversarial loss.

The ``loss.*_mmd`` weights multiply terms whose gradients have their own scales. This script
loads a GAN run's last checkpoint (its G and D) and data and, over ``--batches`` training
batches, prints the norm of the gradient on G's parameters of the non-saturating G loss and of
each MMD term at weight 1 (mass for jets; mass, tau_21 and the pixel spectrum for jet images),
and the weight at which each term's gradient norm equals the adversarial one. Adam rescales the
summed gradient, so what a weight decides is the terms' share of it: above that balance weight
G follows the MMD and no longer D. Run:

    .venv/bin/python scripts/mmd_gradients.py RUN [--batches 8] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from physgan.config import load_config, parse_config
from physgan.data.jets import is_cloud
from physgan.errors import PhysganError
from physgan.losses import OBJECTIVES, ObservableMMD
from physgan.training.builder import (
    fit_cond_transform,
    fit_transform,
    load_data,
    mmd_term,
    real_batches,
    state_from_data,
)
from physgan.training.checkpoint import load_checkpoint
from physgan.training.rundir import RunDir
from physgan.training.runtime import Runtime


def gradient_norms(run_dir: Path, batches: int, seed: int) -> dict[str, dict[str, float]]:
    """Per loss (``adversarial`` and each MMD term at weight 1): its mean value and the mean,
    min and max over the batches of its gradient's L2 norm on G's parameters."""
    run = RunDir(run_dir)
    config = parse_config(run.read_config())
    if config.model.family != "gan":
        raise SystemExit(f"{run_dir}: a {config.model.family} run has no adversarial loss")
    data = load_data(config)
    cloud = is_cloud(data.sample_shape)
    names = ["mass"] if cloud else ["mass", "tau21", "pixel"]
    config = load_config(run.config, [f"loss.{n}_mmd=1" for n in names])
    transform = fit_transform(config, data.x_train, cloud)
    cond_transform = fit_cond_transform(config, data)
    runtime = Runtime()
    state = state_from_data(config, data, transform, cond_transform, runtime)
    load_checkpoint(run.checkpoint, state)
    G, D = state.generator, state.discriminator
    full = mmd_term(config, data.x_train, transform, runtime.device)
    assert full is not None  # every weight is 1
    last = ObservableMMD.FRACTIONS[-1]  # a term's bandwidths are its spread times FRACTIONS
    terms = [ObservableMMD([(1.0, f, widths[-1] / last)]) for _, f, widths in full.terms]
    objective = OBJECTIVES.get(config.loss.name)
    sample = real_batches(config, data, transform, cond_transform, runtime)
    params = [p for p in G.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batches):
        real, cond = sample(config.train.batch_size, gen)
        fake = G(G.sample_latent(config.train.batch_size, generator=gen), cond)
        losses = [objective.g_loss(D(fake, cond))] + [term(fake, real) for term in terms]
        row = []
        for loss in losses:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            norm = torch.sqrt(sum((g**2).sum() for g in grads if g is not None))
            row.append((float(loss.detach()), float(norm)))
        rows.append(row)
    values = np.array(rows)  # (batches, losses, value and norm)
    out = {}
    for j, name in enumerate(["adversarial", *names]):
        norms = values[:, j, 1]
        out[name] = {
            "value": float(values[:, j, 0].mean()),
            "grad_norm": float(norms.mean()),
            "grad_norm_min": float(norms.min()),
            "grad_norm_max": float(norms.max()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        norms = gradient_norms(args.run, args.batches, args.seed)
    except PhysganError as err:
        raise SystemExit(f"mmd_gradients: {err}") from None
    adversarial = norms["adversarial"]["grad_norm"]
    print(f"{args.run}: gradient on G over {args.batches} batches (mean, min-max)")
    print("| loss (weight 1) | value | gradient norm | balance weight |")
    print("|---|---|---|---|")
    for name, row in norms.items():
        balance = "-" if name == "adversarial" else f"{adversarial / row['grad_norm']:.2f}"
        print(
            f"| {name} | {row['value']:.4f} | {row['grad_norm']:.1f} "
            f"({row['grad_norm_min']:.1f}-{row['grad_norm_max']:.1f}) | {balance} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(norms, indent=2) + "\n")


if __name__ == "__main__":
    main()
