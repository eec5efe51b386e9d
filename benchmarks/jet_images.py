"""Jet images (LAGAN benchmark): a class-conditional run's W and QCD images against real ones.

Trains nothing: it needs a run of ``jet-images`` (``physgan train
jet-images --out out/images``). For each class it generates ``n`` images with that
class's condition and compares them with the class's held-out images, as in the LAGAN paper
(de Oliveira et al. 2017, arXiv:1701.05927): jet mass and tau_21 (means, W1 beside the
real-vs-real floor), the classifier AUC, and a figure of the mean images and both
distributions, and W1 of the total pT and of the pixel-intensity spectrum (log10 of non-zero
pixels' pT, in decades) and the percentage of images outside the real support, each beside its
floor. Prints a table, writes ``jet_images.json`` and the figure. Run:
``.venv/bin/python benchmarks/jet_images.py --run out/images --figure docs/jet-images.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from _common import write_json
from physgan import api
from physgan.data.images import image_mass, image_tau21
from physgan.generation import load_run
from physgan.training.builder import load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="out/images")
    parser.add_argument("-n", type=int, default=1_000, help="generated images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="out/bench/jet-images.png")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    run, config, _, state = load_run(args.run)
    data = load_data(config)
    if data.classes is None or data.cond_holdout is None:
        raise SystemExit(f"{args.run}: not a class-conditional run (data.conditional on images)")
    scores = api.evaluate(args.run, n=args.n, seed=args.seed)["classes"]

    fig = Figure(figsize=(16, 4 * len(data.classes)), layout="tight")
    axes = fig.subplots(len(data.classes), 4, squeeze=False)
    rows, result = [], {}
    for index, name in enumerate(data.classes):
        real = data.x_holdout[data.cond_holdout.argmax(1) == index][:, 0]
        cond = np.zeros((args.n, len(data.classes)), np.float32)
        cond[:, index] = 1.0
        generated = api.sample(args.run, args.n, seed=args.seed, cond=cond)[:, 0]
        features = {}
        for label, fn in (("mass (GeV)", image_mass), ("tau_21", image_tau21)):
            r, g = fn(real), fn(generated)
            features[label] = (r[np.isfinite(r)], g[np.isfinite(g)])
        (m_real, m_gen), (t_real, t_gen) = features.values()
        s = scores[name]
        result[name] = {
            "mass_mean_real": float(m_real.mean()),
            "mass_mean_generated": float(m_gen.mean()),
            "tau21_mean_real": float(t_real.mean()),
            "tau21_mean_generated": float(t_gen.mean()),
            **{k: s[k] for k in ("w1_pt", "w1_mass", "w1_tau21", "w1_pixels", "outliers", "auc")},
        }
        rows.append(
            f"{name:<4}{m_real.mean():>10.1f}{m_gen.mean():>10.1f}"
            f"{s['w1_mass']['value']:>9.2f}{s['w1_mass']['floor']:>8.2f}"
            f"{t_real.mean():>9.3f}{t_gen.mean():>9.3f}"
            f"{s['w1_tau21']['value']:>9.3f}{s['w1_tau21']['floor']:>8.3f}"
            f"{s['w1_pt']['value']:>8.2f}{s['w1_pt']['floor']:>8.2f}"
            f"{s['w1_pixels']['value']:>8.3f}{s['w1_pixels']['floor']:>8.3f}"
            f"{100 * s['outliers']['value']:>7.2f}{100 * s['outliers']['floor']:>7.2f}"
            f"{s['auc']['value']:>7.3f}{s['auc']['floor']:>7.3f}"
        )
        norm = LogNorm(vmin=1e-3, vmax=max(real.mean(0).max(), generated.mean(0).max()))
        for ax, images, kind in (
            (axes[index, 0], real, "real"),
            (axes[index, 1], generated, "generated"),
        ):
            shown = ax.imshow(
                images.mean(0), norm=norm, cmap="viridis", extent=(-1.25, 1.25) * 2, origin="lower"
            )
            ax.set_title(f"{name}: mean {kind} image")
            ax.set_xlabel("eta'")
            ax.set_ylabel("phi'")
        fig.colorbar(shown, ax=axes[index, 1], label="pT (GeV)")
        for ax, (label, (r, g)) in zip(axes[index, 2:], features.items(), strict=True):
            bins = np.histogram_bin_edges(np.concatenate([r, g]), bins=40)
            ax.hist(r, bins=bins, density=True, histtype="stepfilled", alpha=0.4, label="real")
            ax.hist(g, bins=bins, density=True, histtype="step", lw=2, label="generated")
            ax.set_xlabel(label)
            ax.set_title(f"{name} jets")
            ax.legend()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=80)

    print(f"{run.root}: step {state.step}, {args.n} generated images per class")
    print(
        f"{'':<4}{'m real':>10}{'m gen':>10}{'W1 m':>9}{'floor':>8}"
        f"{'t21 real':>9}{'t21 gen':>9}{'W1 t21':>9}{'floor':>8}"
        f"{'W1 pT':>8}{'floor':>8}{'W1 pix':>8}{'floor':>8}{'out %':>7}{'floor':>7}"
        f"{'AUC':>7}{'floor':>7}"
    )
    print("\n".join(rows))
    path = write_json(args.out, "jet_images.json", {"run": str(run.root), "classes": result})
    print(f"wrote {path} and {args.figure}")


if __name__ == "__main__":
    main()
