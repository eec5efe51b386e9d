"""How strongly, and which way, each observable MMD term pulls on G, against the adversarial loss.

The ``loss.*_mmd`` weights multiply terms whose gradients have their own scales. This script
loads a GAN run's last checkpoint (its G and D) and data and, over ``--batches`` training
batches, prints the norm of the gradient on G's parameters of the non-saturating G loss and of
each MMD term at weight 1 (mass for jets; mass, tau_21 and the pixel spectrum for jet images),
and the weight at which each term's gradient norm equals the adversarial one. Adam rescales the
summed gradient, so what a weight decides is the terms' share of it: above that balance weight
G follows the MMD and no longer D.

``--follow STEPS`` then lets G follow each loss alone (D frozen as the checkpoint left it)
for STEPS Adam steps from the checkpoint and prints, per class of a class-conditional run, the
mean of each observable of 1,000 generated samples (the same latents) before and after, beside
the held-out data's: where the adversarial loss alone drives an observable away from the data
while its term pulls it back, D and the term fight. ``--per-class`` builds the terms as
``loss.mmd_per_class`` does. Run:

    .venv/bin/python scripts/mmd_gradients.py RUN [--batches 8] [--seed 0] [--json out.json]
        [--follow 300 [--lr 2e-5] [--per-class]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from physgan.config import Config, load_config, parse_config
from physgan.data.datasets import TrainingData
from physgan.data.images import image_mass, image_tau21
from physgan.data.jets import is_cloud
from physgan.data.transforms import Transform
from physgan.errors import PhysganError
from physgan.losses import OBJECTIVES, ObservableMMD
from physgan.metrics.jetfeatures import jet_features
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
from physgan.training.state import GANState
from physgan.training.steps import BatchSampler


class Restored(NamedTuple):
    """A GAN run's last checkpoint loaded into its models (``state``), with its data."""

    checkpoint: Path
    config: Config
    data: TrainingData
    transform: Transform
    cond_transform: Transform
    runtime: Runtime
    state: GANState


def restore(run_dir: Path) -> Restored:
    """A GAN run's models at its last checkpoint, and its training data."""
    run = RunDir(run_dir)
    config = parse_config(run.read_config())
    if config.model.family != "gan":
        raise SystemExit(f"{run_dir}: a {config.model.family} run has no adversarial loss")
    data = load_data(config)
    transform = fit_transform(config, data.x_train, is_cloud(data.sample_shape))
    cond_transform = fit_cond_transform(config, data)
    runtime = Runtime()
    state = state_from_data(config, data, transform, cond_transform, runtime)
    load_checkpoint(run.checkpoint, state)
    return Restored(run.checkpoint, config, data, transform, cond_transform, runtime, state)


class Loaded(NamedTuple):
    """A GAN run's last checkpoint (``state``), data and MMD terms, loaded once for every
    measurement."""

    checkpoint: Path
    config: Config
    data: TrainingData
    transform: Transform
    state: GANState
    names: list[str]
    terms: list[ObservableMMD]
    sample: BatchSampler


def load(run_dir: Path, per_class: bool = False) -> Loaded:
    """A GAN run's last checkpoint and training data, with each MMD term at weight 1 alone."""
    checkpoint, config, data, transform, cond_transform, runtime, state = restore(run_dir)
    names = ["mass"] if is_cloud(data.sample_shape) else ["mass", "tau21", "pixel"]
    overrides = [f"loss.{n}_mmd=1" for n in names] + [f"loss.mmd_per_class={per_class}"]
    config = load_config(RunDir(run_dir).config, overrides)
    full = mmd_term(config, data.x_train, transform, runtime.device)
    assert full is not None  # every weight is 1
    last = ObservableMMD.FRACTIONS[-1]  # a term's bandwidths are its spread times FRACTIONS
    terms = [
        ObservableMMD([(1.0, f, widths[-1] / last)], per_class=per_class)
        for _, f, widths in full.terms
    ]
    sample = real_batches(config, data, transform, cond_transform, runtime)
    return Loaded(checkpoint, config, data, transform, state, names, terms, sample)


def gradient_norms(run: Loaded, batches: int, seed: int) -> dict[str, dict[str, float]]:
    """Per loss (``adversarial`` and each MMD term at weight 1): its mean value and the mean,
    min and max over the batches of its gradient's L2 norm on G's parameters."""
    _, config, _, _, state, names, terms, sample = run
    G, D = state.generator, state.discriminator
    objective = OBJECTIVES.get(config.loss.name)
    params = [p for p in G.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batches):
        real, cond = sample(config.train.batch_size, gen)
        fake = G(G.sample_latent(config.train.batch_size, generator=gen), cond)
        losses = [objective.g_loss(D(fake, cond))] + [term(fake, real, cond) for term in terms]
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


def _observables(x: np.ndarray) -> dict[str, np.ndarray]:
    """The observables of samples in physics units: relative mass (clouds), or image mass (GeV)
    and tau_21 (images), each finite value."""
    if is_cloud(x.shape[1:]):
        values = {"mass": jet_features(x)[:, 3]}
    else:
        values = {"mass": image_mass(x[:, 0]), "tau21": image_tau21(x[:, 0])}
    return {k: v[np.isfinite(v)] for k, v in values.items()}


def follow(
    run: Loaded, loss: str, steps: int, lr: float, seed: int
) -> dict[str, dict[str, dict[str, float]]]:
    """G's training copy, read again from the checkpoint, after ``steps`` Adam steps (betas of
    the run) on one loss alone (``adversarial``, D frozen, or a term's name at weight 1): per
    class (``all`` for a run without classes), per observable, the mean over 1,000 generated
    samples of the same latents ``before`` and ``after``, and that of the ``real`` held-out
    samples of the class."""
    checkpoint, config, data, transform, state, names, terms, sample = run
    if loss not in ("adversarial", *names):
        raise SystemExit(f"--loss {loss}: one of adversarial, {', '.join(names)}")
    load_checkpoint(checkpoint, state)  # undo an earlier follow's steps
    G, D = state.generator, state.discriminator
    D.requires_grad_(False)
    objective = OBJECTIVES.get(config.loss.name)
    term = None if loss == "adversarial" else terms[names.index(loss)]
    gen = torch.Generator().manual_seed(seed)
    z = G.sample_latent(1000, generator=gen)
    groups = {"all": (sample(1000, gen)[1], data.x_holdout[:1000])}  # training conditions
    if data.classes is not None:
        held = data.cond_holdout.argmax(1)
        groups = {}
        for k, name in enumerate(data.classes):
            onehot = np.zeros((1000, len(data.classes)), dtype=np.float32)
            onehot[:, k] = 1
            groups[name] = (torch.as_tensor(onehot), data.x_holdout[held == k][:1000])

    def means(x: np.ndarray) -> dict[str, float]:
        return {k: float(v.mean()) for k, v in _observables(x).items()}

    def generated() -> dict[str, dict[str, float]]:
        with torch.no_grad():
            return {
                name: means(transform.inverse(G(z, cond).numpy()))
                for name, (cond, _) in groups.items()
            }

    before = generated()
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=config.train.betas_g)
    batch = config.train.batch_size
    for _ in range(steps):
        real, cond = sample(batch, gen)
        fake = G(G.sample_latent(batch, generator=gen), cond)
        value = objective.g_loss(D(fake, cond)) if term is None else term(fake, real, cond)
        opt.zero_grad()
        value.backward()
        opt.step()
    after = generated()
    return {
        name: {
            k: {"before": before[name][k], "after": after[name][k], "real": real_mean}
            for k, real_mean in means(held_x).items()
        }
        for name, (_, held_x) in groups.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--follow", type=int, default=0, metavar="STEPS")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--per-class", action="store_true")
    args = parser.parse_args()
    try:
        run = load(args.run, args.per_class)
    except PhysganError as err:
        raise SystemExit(f"mmd_gradients: {err}") from None
    norms = gradient_norms(run, args.batches, args.seed)
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
    if args.follow:
        print(f"\nG after {args.follow} Adam steps (lr {args.lr}) on each loss alone")
        print("| loss | class | observable | real | before | after |")
        print("|---|---|---|---|---|---|")
        moved = {}
        for name in norms:
            moved[name] = follow(run, name, args.follow, args.lr, args.seed)
            for group, rows in moved[name].items():
                for k, row in rows.items():
                    print(
                        f"| {name} | {group} | {k} | {row['real']:.4f} | {row['before']:.4f} "
                        f"| {row['after']:.4f} |"
                    )
        norms = {"gradients": norms, "follow": moved}
    if args.json is not None:
        args.json.write_text(json.dumps(norms, indent=2) + "\n")


if __name__ == "__main__":
    main()
