"""Which way the discriminator pushes each pixel of a jet image, lit and dark, generated and real.

G learns only through D's gradient with respect to the pixels, and a ReLU output passes it only
where a pixel is lit: a dark pixel that D would light gets nothing. This script loads a
class-conditional jet-image GAN run's last checkpoint (G's training copy and the D trained
against it) and prints, per class and per ring of distance from the image centre (pixels), the
share of pixels lit and the mean of d logit / d pixel (pixels in network units) over the lit and
over the dark pixels of ``--samples`` generated images and as many held-out real ones. Where D
pushes lit generated pixels down and dark ones up, G can only follow the first: it dims and
switches off what D would rather see brighter. Run:

    .venv/bin/python scripts/d_pixel_gradients.py RUN [--samples 1000] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mmd_gradients import Restored, restore

from physgan.errors import PhysganError

RINGS = (0.0, 0.5, 1.5, 3.5, 6.5, 9.5, np.inf)  # pixels from the image centre


def ring_index(size: int) -> np.ndarray:
    """Each pixel's ring (index into consecutive pairs of ``RINGS``) of a size x size image."""
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    return np.digitize(np.hypot(yy - centre, xx - centre), RINGS[1:-1])


def pixel_gradients(run: Restored, samples: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """Per class, per ring: ``lit_*`` share of lit pixels, ``grad_lit_*`` and ``grad_dark_*``
    mean d logit / d pixel over the lit and the dark pixels, for ``gen`` and ``real`` images
    (nan where a ring has none)."""
    data, transform, state = run.data, run.transform, run.state
    if data.classes is None or len(data.sample_shape) != 3:
        raise SystemExit("d_pixel_gradients: needs a class-conditional jet-image run")
    G, D = state.generator.eval(), state.discriminator.eval()
    gen = torch.Generator().manual_seed(seed)
    rings = ring_index(data.sample_shape[-1])
    held = data.cond_holdout.argmax(1)
    out = {}
    for k, name in enumerate(data.classes):
        real = transform.forward(data.x_holdout[held == k][:samples])
        cond = torch.zeros(len(real), len(data.classes))
        cond[:, k] = 1
        with torch.no_grad():
            fake = G(G.sample_latent(len(real), generator=gen), cond)
        real_x = torch.as_tensor(real, dtype=torch.float32)
        row: dict[str, list[float]] = {}
        for tag, x in (("gen", fake), ("real", real_x)):
            for key, values in ring_gradients(D, x, cond, rings).items():
                row[f"{key}_{tag}"] = values
        out[name] = row
    return out


def ring_gradients(
    D: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor, rings: np.ndarray
) -> dict[str, list[float]]:
    """For images x (n, 1, H, W) in network units under conditions cond, per ring (``rings``:
    each pixel's ring): ``lit`` the share of lit pixels, ``grad_lit`` and ``grad_dark`` the mean
    d logit / d pixel over the lit and the dark pixels (nan where a ring has none)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, cond).sum(), x)
    grad = grad.numpy()[:, 0]
    lit = x.detach().numpy()[:, 0] > 0
    out: dict[str, list[float]] = {"lit": [], "grad_lit": [], "grad_dark": []}
    for r in range(len(RINGS) - 1):
        ring = rings == r
        out["lit"].append(float(lit[:, ring].mean()))
        for key, chosen in (("grad_lit", lit & ring), ("grad_dark", ~lit & ring)):
            out[key].append(float(grad[chosen].mean()) if chosen.any() else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        run = restore(args.run)
    except PhysganError as err:
        raise SystemExit(f"d_pixel_gradients: {err}") from None
    table = pixel_gradients(run, args.samples, args.seed)
    print(f"{args.run}: mean d logit / d pixel, generated (real), {args.samples} images a class")
    print("| class | ring (px) | lit share | lit pixels | dark pixels |")
    print("|---|---|---|---|---|")
    for name, row in table.items():
        for r, (a, b) in enumerate(itertools.pairwise(RINGS)):
            print(
                f"| {name} | {a:g}-{b:g} | {row['lit_gen'][r]:.3f} ({row['lit_real'][r]:.3f}) "
                f"| {row['grad_lit_gen'][r]:+.4f} ({row['grad_lit_real'][r]:+.4f}) "
                f"| {row['grad_dark_gen'][r]:+.4f} ({row['grad_dark_real'][r]:+.4f}) |"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
