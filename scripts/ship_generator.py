"""Ship a trained jet or jet-image run as ``pretrained:NAME``: its best generator and model card.

Copies RUN's config, meta.json, transform.json and best.safetensors (the selected EMA generator,
at most 2 MB) into ``src/physgan/generators/NAME/`` with, where the config samples by
rejection, what scores it for that generator (``ratio.safetensors`` or the calibrated D,
``calibrated.safetensors``), for jets its training jets' support (``support.json``), and up to
20,000 of its training conditions (``conditions.npy``, for sampling without the data), then
evaluates the shipped generator as a user would (``physgan evaluate pretrained:NAME
--reference FILE -n N``) for each evaluation seed against samples it never saw, and writes
CARD.md: the recipe, the data, the training steps and CPU hours, the metric table (mean and
spread over the seeds) and the commands that measured it. Run:

    .venv/bin/python scripts/ship_generator.py RUN NAME --reference fresh.h5 --cpu-hours H

``fresh.h5``: at least 2 N jets of the run's process from a seed the run did not train on,
e.g. ``physgan data jets --process gluon -n 20000 --seed 1 -o fresh.h5``. A class-conditional
jet-image run takes one file per class, ``--reference w.h5 qcd.h5``, from ``physgan data
jet-images --process W|QCD -n 20000 --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from physgan import api
from physgan.fastsim import PAPER_SCALES, fastsim_speed
from physgan.training.builder import load_data
from physgan.training.checkpoint import read_weights
from physgan.training.rundir import RunDir
from physgan.version import __version__

ROOT = Path(__file__).resolve().parents[1] / "src" / "physgan" / "generators"
MAX_BYTES = 2 << 20
MAX_CONDITIONS = 20_000
LABELS = {
    "w1m": "W1M x 10^3",
    "w1p": "W1P x 10^3",
    "w1efp": "W1EFP x 10^5",
    "fpd": "FPD x 10^3",
    "kpd": "KPD x 10^3",
    "outliers": "outside the real support (%)",
    "auc": "classifier AUC",
}
IMAGE_LABELS = {
    "w1_mass": "W1 of jet mass (GeV)",
    "mass_peak": "shift of the mass peak (GeV)",
    "w1_tau21": "W1 of tau_21",
    "w1_pt": "W1 of total pT (GeV)",
    "w1_pixels": "W1 of log10 pixel pT",
    "outliers": "outside the real support (%)",
    "auc": "classifier AUC",
}
IMAGE_SCALES = {key: 100.0 if key == "outliers" else 1.0 for key in IMAGE_LABELS}


def copy_run(run_dir: Path, name: str) -> Path:
    """The shipped directory of ``run_dir``'s best generator, written afresh."""
    run = RunDir(run_dir)
    if not run.best.is_file():
        raise SystemExit(f"{run_dir}: no best.safetensors (train with train.select_every)")
    if run.best.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{run.best}: {run.best.stat().st_size} bytes, more than 2 MB")
    sample = api.load_config(run.config).sample
    files = [run.config, run.transform, run.best]
    kept = run.ratio if sample.ratio == "observables" else run.calibrated
    if sample.rejection and (sample.ratio == "observables" or sample.calibrate_steps):
        # What rejection scores with, for the best generator: sampling once makes and keeps it.
        api.sample(run_dir, 16, seed=0)
        if read_weights(kept)[1]["step"] != read_weights(run.best)[1]["step"]:
            raise SystemExit(f"{kept}: not made for the best generator")
        files.append(kept)
    out = ROOT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for path in files:
        shutil.copy(path, out / path.name)
    meta = run.read_json(run.meta) | {"physgan_version": __version__}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    shipped = RunDir(out)
    data = None
    if run.support.is_file():
        shutil.copy(run.support, shipped.support)
    elif not is_images(run):  # a jet run begun before runs kept their support
        data = load_data(api.load_config(run.config))
        shipped.write_support(data.x_train)
    cond = run.read_conditions(int(meta["cond_dim"])) if meta["cond_dim"] else None
    if meta["cond_dim"] and cond is None:
        cond = (data or load_data(api.load_config(run.config))).cond_train
    if cond is not None:
        rng = np.random.default_rng(0)
        keep = rng.permutation(len(cond))[:MAX_CONDITIONS]
        np.save(out / "conditions.npy", cond[np.sort(keep)].astype(np.float32))
    return out


def is_images(run: RunDir) -> bool:
    return api.load_config(run.config).data.name == "jet-images"


def evaluate(
    name: str, references: list[Path], n: int, seeds: list[int], labels: dict[str, str]
) -> dict[str, dict[str, list[dict]]]:
    """Per reference's class ("" for jets), each metric's result for each evaluation seed, as
    ``physgan evaluate`` gives it."""
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reference in references:
            for seed in seeds:
                metrics = api.evaluate(
                    f"pretrained:{name}", n=n, seed=seed, reference=reference, out=tmp
                )
                group = results.setdefault(metrics.get("class", ""), {})
                for key in labels:
                    group.setdefault(key, []).append(metrics[key])
    return results


def table(results: dict[str, list[dict]], labels: dict[str, str], scales: dict[str, float]) -> str:
    """Markdown: each metric's mean ± spread over seeds, its floor, the ratio of the means, and
    the range of one seed's ratio over the seeds whose floor is clear of 0 by its spread (FPD's
    and KPD's often are not)."""
    lines = [
        "| metric | generated vs real | real vs real (floor) | ratio | one seed's ratio |",
        "|---|---|---|---|---|",
    ]
    for key, label in labels.items():
        values = np.array([r["value"] for r in results[key]], dtype=float)
        floors = np.array([r["floor"] for r in results[key]], dtype=float)
        scale = scales[key]
        ratio = per_seed = "-"
        # AUC's floor is about 0.5, not about 0, and the outliers are a few jets: their values
        # speak for themselves.
        if key != "auc" and np.mean(floors) > 0:
            ratio = f"{np.mean(values) / np.mean(floors):.1f}x"
        if key in ("auc", "outliers"):
            per_seed = f"value {values.min() * scale:.3g} to {values.max() * scale:.3g}"
        else:
            floor_stds = np.array([r["floor_std"] for r in results[key]], dtype=float)
            clear = floors > floor_stds  # a ratio to a floor within its spread of 0 is noise
            if clear.any():
                ratios = values[clear] / floors[clear]
                per_seed = f"{ratios.min():.1f}x to {ratios.max():.1f}x"
            if not clear.all():
                per_seed += f" (floor within its spread of 0 on {(~clear).sum()} of {len(clear)})"
        lines.append(
            f"| {label} | {np.mean(values) * scale:.3g} ± {np.std(values) * scale:.2g} "
            f"| {np.mean(floors) * scale:.3g} ± {np.std(floors) * scale:.2g} | {ratio} "
            f"| {per_seed} |"
        )
    return "\n".join(lines)


SCORE_TERMS = {
    "val_w1m": "jet mass",
    "val_w1p": "particle features",
    "val_w1efp": "EFPs",
    "val_w1_mass": "jet mass",
    "val_w1_tau21": "tau_21",
    "val_w1_pixels": "pixel spectrum",
}


def score_terms(rows: list[dict]) -> str:
    """What the run's validation score averaged, from the W1 it logged beside it."""
    scored = [r for r in rows if "val_score" in r]
    names = [text for key, text in SCORE_TERMS.items() if scored and key in scored[-1]]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def card(
    name: str,
    run_dir: Path,
    results: dict[str, dict[str, list[dict]]],
    speed: dict[str, float],
    args: argparse.Namespace,
) -> str:
    run = RunDir(run_dir)
    config = run.config.read_text()
    best = read_weights(run.best)[1]
    rows = run.read_metrics()
    trained = rows[-1]["step"] if rows else best["step"]
    seeds = " ".join(map(str, args.seeds))
    recipe = " (the config below)."
    if args.history:
        recipe = f"; the config below is as the run's last resume left it.\n- {args.history}"
    terms = score_terms(rows)
    if is_images(run):
        return image_card(name, run, results, speed, args, trained, best, recipe, terms)
    process = api.load_config(run.config).data.name.removeprefix("jets-")
    return f"""# {process} jets: EPiC-GAN trained on a CPU, conditioned on jet pT and multiplicity

`pretrained:{name}`, physgan {__version__}. Sample it as a run directory:

    physgan sample pretrained:{name} -n 100000 -o jets.h5 [--cond pt=1000 --cond n_particles=30]

## Training

- Data: {api.load_config(run.config).data.n_train:,} Pythia 8 + FastJet {process} jets
  (JetNet-like, 30 particles, simulated with data seed 0), 20% held out.
- Recipe: `physgan configs show {args.config}`{recipe}
- Trained {trained:,} steps in {args.cpu_hours:g} CPU hours ({args.hardware}); the weights are
  the EMA generator at step {best["step"]:,}, where the validation score was best:
  {best["score"]:.2f} (W1 of {terms} over their floors, on held-out jets).
- Weights: `best.safetensors`, {run.best.stat().st_size / 1024:.0f} KiB.

## Quality

{args.n:,} generated jets against {args.n:,} Pythia jets of a seed it never saw (data seed
{args.reference_seed}); the floor is the same metric between two halves of those Pythia jets
({args.n:,} each). Mean ± spread over evaluation seeds {seeds}; the ratio is of the means, and
the last column the range of the ratio that one seed alone gives (its floor's noise moves it).

{table(results[""], LABELS, PAPER_SCALES)}

Generation on one core: {speed["generated_jets_per_s"]:,.0f} jets/s; Pythia 8 + FastJet:
{speed["simulated_jets_per_s_per_core"]:.0f} jets/s; speed-up per core
{speed["speedup_same_cores"]:,.0f}x.

Measured with:

    physgan data jets --process {process} -n {2 * args.n} --seed {args.reference_seed} -o fresh.h5
    for s in {seeds}; do
      physgan evaluate pretrained:{name} --reference fresh.h5 -n {args.n} --seed $s --out ev$s
    done

## Config

```yaml
{config.rstrip()}
```
"""


def image_card(
    name: str,
    run: RunDir,
    results: dict[str, dict[str, list[dict]]],
    speed: dict[str, float],
    args: argparse.Namespace,
    trained: int,
    best: dict,
    recipe: str,
    terms: str,
) -> str:
    data = api.load_config(run.config).data
    seeds = " ".join(map(str, args.seeds))
    tables = "\n\n".join(
        f"**{group}**\n\n{table(by_metric, IMAGE_LABELS, IMAGE_SCALES)}"
        for group, by_metric in results.items()
    )
    return f"""# W and QCD jet images: a class-conditional GAN trained on a CPU

`pretrained:{name}`, physgan {__version__}. Sample it as a run directory:

    physgan sample pretrained:{name} -n 10000 -o w-images.h5 --cond class=W

## Training

- Data: {data.n_train:,} Pythia 8 + FastJet jet images of the LAGAN benchmark (25x25 pixels of
  pT in GeV, 250-300 GeV trimmed R = 1.0 jets; half W from a W', half QCD; data seed 0),
  {data.holdout_fraction:.0%} held out.
- Recipe: `physgan configs show {args.config}`{recipe}
- Trained {trained:,} steps in {args.cpu_hours:g} CPU hours ({args.hardware}); the weights are
  the EMA generator at step {best["step"]:,}, where the validation score was best:
  {best["score"]:.2f} (W1 of {terms} over their floors, on held-out images of each class).
- Weights: `best.safetensors`, {run.best.stat().st_size / 1024:.0f} KiB.{rejection_line(run)}

## Quality

Per class, {args.n:,} generated images against {args.n:,} simulated images of a seed it never
saw (data seed {args.reference_seed}); the floor is the same metric between two halves of the
simulated images ({args.n:,} each). Mean ± spread over evaluation seeds {seeds}; the ratio is of
the means, and the last column the range of the ratio that one seed alone gives.

{tables}

Generation on one core: {speed["generated_jets_per_s"]:,.0f} images/s; Pythia 8 + FastJet:
{speed["simulated_jets_per_s_per_core"]:.0f} images/s (half W, half QCD); speed-up per core
{speed["speedup_same_cores"]:,.0f}x.

Measured with:

    physgan data jet-images --process W -n {2 * args.n} --seed {args.reference_seed} -o w.h5
    physgan data jet-images --process QCD -n {2 * args.n} --seed {args.reference_seed} -o qcd.h5
    for f in w.h5 qcd.h5; do for s in {seeds}; do
      physgan evaluate pretrained:{name} --reference $f -n {args.n} --seed $s --out ev-$f-$s
    done; done

## Config

```yaml
{run.config.read_text().rstrip()}
```
"""


def rejection_line(run: RunDir) -> str:
    """The card's line on rejection sampling, if the config samples that way."""
    sample = api.load_config(run.config).sample
    if not sample.rejection:
        return ""
    if sample.ratio == "observables":
        kib = run.ratio.stat().st_size / 1024
        how = f"""boosted trees (scikit-learn's
  HistGradientBoostingClassifier, one per class) of each image's jet mass, tau_21, total pT
  and lit pixels in 24 bins of log10 pT, trained on the training images against this
  generator's (`physgan.image_ratio`, `ratio.safetensors`, {kib:.0f} KiB)"""
    else:
        kib = run.calibrated.stat().st_size / 1024
        how = f"""the training run's D
  calibrated {sample.calibrate_steps:,} steps against this generator (`calibrated.safetensors`,
  {kib:.0f} KiB)"""
    q = f"{sample.cap_quantile:g}"
    return f"""
- Sampling: rejection sampling (Azadi et al. 2019, arXiv:1810.06758), class by class: each
  generated image is kept with probability min(1, exp(logit - M)), M the {q} quantile of
  the logits on the first candidates, the logit that of {how}.
  Every number below and the speed are of the images kept; `--no-rejection` samples G alone."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--config", required=True, help="the shipped config it was trained from")
    parser.add_argument(
        "--reference",
        type=Path,
        nargs="+",
        required=True,
        help="jets: one file; images: one per class",
    )
    parser.add_argument("--reference-seed", type=int, default=1)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpu-hours", type=float, required=True)
    parser.add_argument("--hardware", default="2-core x86 CPU")
    parser.add_argument(
        "--history", help="how the run was trained, where resumes changed its schedule (one line)"
    )
    parser.add_argument(
        "--card-only", action="store_true", help="write CARD.md again from evaluation.json"
    )
    args = parser.parse_args()
    out = ROOT / args.name
    images = is_images(RunDir(args.run))
    if args.card_only:
        saved = json.loads((out / "evaluation.json").read_text())
        speed = saved["speed"]
        results = saved["metrics"] if images else {"": saved["metrics"]}
    else:
        out = copy_run(args.run, args.name)
        (out / "CARD.md").write_text(f"# {args.name}: being evaluated\n")
        labels = IMAGE_LABELS if images else LABELS
        results = evaluate(args.name, args.reference, args.n, args.seeds, labels)
        speed = fastsim_speed(f"pretrained:{args.name}", threads=1)
    (out / "CARD.md").write_text(card(args.name, args.run, results, speed, args))
    (out / "evaluation.json").write_text(
        json.dumps(
            {
                "n": args.n,
                "seeds": args.seeds,
                "metrics": results if images else results[""],  # images: by class
                "speed": speed,
            },
            indent=2,
        )
        + "\n"
    )
    print((out / "CARD.md").read_text())


if __name__ == "__main__":
    main()
