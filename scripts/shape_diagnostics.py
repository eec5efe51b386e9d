"""Where a generator's jets or jet images differ from simulated ones, beyond the W1 tables.

    .venv/bin/python scripts/shape_diagnostics.py jets pretrained:top top1.h5
    .venv/bin/python scripts/shape_diagnostics.py images pretrained:jet-images w1.h5 --cls W

jets: the mean of each EFP of W1EFP and of the relative jet mass, generated over simulated, per
quartile of the reference's jet pT; the jets are generated with the reference's own pT and
multiplicity as conditions. images: quantiles of mass and tau_21, the pixel pT spectrum, the
share of the pT in rings around the jet axis (in pixels), and the evaluation's classifier AUC
(generated against simulated) on views of the images: all pixels, which pixels are lit, how
many are lit, and the 40 brightest pixels' pT in decreasing order (where the pixels are).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from physgan import api
from physgan.data.images import image_mass, image_tau21, pixel_log_pt
from physgan.data.io import load, read_arrays
from physgan.metrics import classifier_auc
from physgan.metrics.efp import efps
from physgan.metrics.jetfeatures import jet_features

QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]


def jets(run: str, reference: str, n: int, seed: int) -> None:
    arrays = load(reference, ["particles", "jets"], rows=slice(0, n))
    real, kinematics = arrays["particles"], arrays["jets"]
    pt = kinematics[:, 0]
    cond = np.stack([pt, kinematics[:, 3]], axis=1).astype(np.float32)  # pT, multiplicity
    generated = api.sample(run, len(real), seed=seed, cond=cond)
    e_real, e_gen = efps(real), efps(generated)
    m_real, m_gen = jet_features(real)[:, 3], jet_features(generated)[:, 3]
    print("pT quartile (GeV) | generated / simulated mean: EFP 1..5 | relative mass")
    edges = np.quantile(pt, [0, 0.25, 0.5, 0.75, 1])
    for lo, hi in itertools.pairwise(edges):
        inside = (pt >= lo) & (pt <= hi)
        ratios = e_gen[inside].mean(0) / e_real[inside].mean(0)
        mass = m_gen[inside].mean() / m_real[inside].mean()
        print(f"{lo:.0f}-{hi:.0f} | {np.round(ratios, 3).tolist()} | {mass:.3f}")


def images(run: str, reference: str, cls: str, n: int, seed: int) -> None:
    real = read_arrays(reference)[0][:n, 0]
    generated = api.sample(run, len(real), seed=seed, cond={"class": cls})[:, 0]
    print(f"quantiles {QUANTILES}: simulated | generated")
    for name, feature in [("mass", image_mass), ("tau_21", image_tau21)]:
        a, b = feature(real), feature(generated)
        print(
            f"{name}: {np.round(np.nanquantile(a, QUANTILES), 3).tolist()} | "
            f"{np.round(np.nanquantile(b, QUANTILES), 3).tolist()}"
        )
    a, b = 10 ** pixel_log_pt(real), 10 ** pixel_log_pt(generated)
    print(
        f"lit pixel pT (GeV): {np.round(np.quantile(a, QUANTILES), 3).tolist()} | "
        f"{np.round(np.quantile(b, QUANTILES), 3).tolist()}"
    )
    size = real.shape[-1]
    radius = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2))
    for lo, hi in [(0, 1), (1, 3), (3, 6), (6, size)]:
        ring = (radius >= lo) & (radius < hi)
        shares = [x[:, ring].sum() / x.sum() for x in (real, generated)]
        print(f"pT share {lo}-{hi} pixels from the axis: {shares[0]:.3f} | {shares[1]:.3f}")
    views = {
        "all pixels": lambda x: x.reshape(len(x), -1),
        "lit pixels (x > 0)": lambda x: (x.reshape(len(x), -1) > 0).astype(np.float32),
        "number lit": lambda x: (x > 0).sum(axis=(1, 2))[:, None].astype(np.float32),
        "40 brightest, sorted": lambda x: -np.sort(-x.reshape(len(x), -1), axis=1)[:, :40],
    }
    for name, view in views.items():
        auc = classifier_auc(view(real), view(generated), seed=seed).value
        print(f"classifier AUC on {name}: {auc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["jets", "images"])
    parser.add_argument("run", help="a run directory or pretrained:NAME")
    parser.add_argument("reference", help="simulated jets, or images of one class")
    parser.add_argument("--cls", default="W", help="images: the reference's class")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.kind == "jets":
        jets(args.run, args.reference, args.n, args.seed)
    else:
        images(args.run, args.reference, args.cls, args.n, args.seed)


if __name__ == "__main__":
    main()
