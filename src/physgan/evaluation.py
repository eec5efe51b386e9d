"""Which metrics and figures a run's samples get, by the kind of data they are.

``jets`` (particle clouds (n, N, 4)): W1M, W1P, W1EFP, FPD, KPD, the fraction of jets outside
the real support (:func:`~physgan.metrics.outlier_fraction`) and the classifier AUC, each
beside its real-vs-real noise floor, with particle-feature, multiplicity and jet-mass plots.
``images`` (n, 1, P, P) of pixel pT in GeV: W1 of the total pT, the mass, tau_21 and the
spectrum of pixel intensities (log10 of the non-zero pixels' pT), the fraction of images outside
the real support (:func:`~physgan.metrics.support.image_outlier_fraction`) and the classifier
AUC, with the mean images and each distribution.
``toy`` (a mixture with a known density): modes captured, high-quality fraction, kNN KL both
ways, classifier AUC, a scatter over the density. ``vectors``: kNN KL both ways, classifier
AUC and one histogram per feature. Every kind also shows the training curves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from physgan.config import Config
from physgan.data.datasets import TrainingData, class_names
from physgan.data.io import read_arrays
from physgan.data.toy import GaussianMixture
from physgan.errors import ConfigError, DataError
from physgan.generation import Weights, load_run, sample_run
from physgan.metrics.estimate import Estimate
from physgan.metrics.floor import with_floor
from physgan.report.html import SummaryRow, write_report
from physgan.training.builder import load_data
from physgan.training.rundir import RunDir, json_ready
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import TrainingState
from physgan.version import __version__

__all__ = ["Evaluation", "data_kind", "evaluate_run", "evaluate_samples"]


@dataclass
class Evaluation:
    """Metrics (JSON-ready) and the report's summary rows and captioned figures."""

    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[SummaryRow] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)


def data_kind(sample_shape: tuple[int, ...], truth: GaussianMixture | None) -> str:
    """``toy``, ``jets``, ``images`` or ``vectors`` for samples of this shape."""
    if truth is not None:
        return "toy"
    if len(sample_shape) == 2 and sample_shape[1] == 4:
        return "jets"
    if len(sample_shape) == 3:
        return "images"
    return "vectors"


def _knn(direction: str) -> Any:
    from physgan.divergences import kl_knn

    def metric(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
        a, b = real.reshape(len(real), -1), generated.reshape(len(generated), -1)
        return Estimate(kl_knn(a, b) if direction == "forward" else kl_knn(b, a), 0.0)

    return metric


def _w1_of(feature: Any) -> Any:
    from scipy.stats import wasserstein_distance

    def metric(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
        a, b = feature(real), feature(generated)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if not (a.size and b.size):  # e.g. every image empty: tau_21 is undefined for all
            return Estimate(float("inf"), 0.0)
        return Estimate(wasserstein_distance(a, b), 0.0)

    return metric


def _auc(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
    from physgan.metrics import classifier_auc

    if real.ndim > 2 and real.shape[-1] != 4:  # images: flattened pixels
        real, generated = real.reshape(len(real), -1), generated.reshape(len(generated), -1)
    return classifier_auc(real, generated, seed=seed)


def _metrics(kind: str) -> dict[str, Any]:
    """Name -> metric(real, generated, seed=) for a kind; AUC last (the slowest)."""
    if kind == "jets":
        from physgan.metrics import fpd, kpd, outlier_fraction, w1efp, w1m, w1p

        return {
            "w1m": w1m,
            "w1p": w1p,
            "w1efp": w1efp,
            "fpd": fpd,
            "kpd": kpd,
            "outliers": outlier_fraction,
            "auc": _auc,
        }
    if kind == "images":
        from physgan.data.images import image_mass, image_tau21, pixel_log_pt
        from physgan.metrics.peak import peak_shift
        from physgan.metrics.support import image_outlier_fraction

        return {
            "w1_pt": _w1_of(lambda x: x.sum(axis=(1, 2, 3))),
            "w1_mass": _w1_of(lambda x: image_mass(x[:, 0])),
            "mass_peak": lambda real, generated, *, seed=0: peak_shift(
                image_mass(real[:, 0]), image_mass(generated[:, 0])
            ),
            "w1_tau21": _w1_of(lambda x: image_tau21(x[:, 0])),
            "w1_pixels": _w1_of(pixel_log_pt),
            "outliers": lambda real, generated, *, seed=0: image_outlier_fraction(
                real[:, 0], generated[:, 0]
            ),
            "auc": _auc,
        }
    return {"kl_data_model": _knn("forward"), "kl_model_data": _knn("reverse"), "auc": _auc}


def _figures(kind: str, real: np.ndarray, generated: np.ndarray, truth: Any) -> list:
    from physgan.report import plots

    if kind == "jets":
        from physgan.metrics.jetfeatures import jet_features

        mass = plots.ratio_histogram(
            jet_features(real)[:, 3], jet_features(generated)[:, 3], label="jet mass / jet pT"
        )
        figures = [("Relative jet mass", mass)]
        features = plots.particle_histograms(real, generated)
        names = ("eta_rel", "phi_rel", "pt_rel")
        figures += [(f"Particle {n}", fig) for n, fig in zip(names, features, strict=True)]
        return [*figures, ("Particles per jet", plots.multiplicity_histogram(real, generated))]
    if kind == "images":
        from physgan.data.images import image_mass, image_tau21, pixel_log_pt

        figures = [
            (
                "Mean jet images and their difference",
                plots.mean_images(real[:, 0], generated[:, 0]),
            ),
            (
                "Jet mass from the image",
                plots.ratio_histogram(
                    image_mass(real[:, 0]),
                    image_mass(generated[:, 0]),
                    label="jet mass",
                    unit="GeV",
                ),
            ),
            (
                "N-subjettiness ratio",
                plots.ratio_histogram(
                    np.nan_to_num(image_tau21(real[:, 0])),
                    np.nan_to_num(image_tau21(generated[:, 0])),
                    label="tau_21",
                ),
            ),
            (
                "Jet pT from the image",
                plots.ratio_histogram(
                    real.sum(axis=(1, 2, 3)),
                    generated.sum(axis=(1, 2, 3)),
                    label="jet pT",
                    unit="GeV",
                ),
            ),
        ]
        spectra = pixel_log_pt(real), pixel_log_pt(generated)
        if all(x.size for x in spectra):  # not for a generator of empty images
            spectrum = plots.ratio_histogram(*spectra, label="log10(pixel pT / GeV)")
            figures.append(("Pixel intensities (non-zero pixels)", spectrum))
        return figures
    flat_real, flat_gen = real.reshape(len(real), -1), generated.reshape(len(generated), -1)
    if kind == "toy" and flat_real.shape[1] == 2:
        return [("Generated samples over the true density", plots.toy_scatter(flat_gen, truth))]
    names = [f"x{i}" for i in range(flat_real.shape[1])][:8]
    figs = plots.feature_histograms(
        flat_real[:, : len(names)], flat_gen[:, : len(names)], names, [None] * len(names)
    )
    return [(f"Feature {name}", fig) for name, fig in zip(names, figs, strict=True)]


def evaluate_samples(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    seed: int,
    truth: GaussianMixture | None = None,
    training_rows: list[dict[str, float]] | None = None,
    figures: bool = True,
) -> Evaluation:
    """Score ``generated`` against ``real`` (same shape per sample, in physics units).

    ``real`` holds at least twice as many samples as are compared: the floor of each metric
    uses two disjoint halves of it. Returns the metrics (each {value, std, floor, floor_std,
    verdict}) and the report's rows and, with ``figures``, its figures.
    """
    from physgan.report.plots import training_curves

    kind = data_kind(tuple(real.shape[1:]), truth)
    if kind == "jets":
        from physgan.data.jets import canonical_cloud

        generated = canonical_cloud(generated)
    result = Evaluation(metrics={"kind": kind})
    if truth is not None:
        from physgan.metrics import mode_stats

        flat = generated.reshape(len(generated), -1)
        stats = mode_stats(flat, truth.means, truth.stds, weights=truth.weights)
        ideal = mode_stats(
            real.reshape(len(real), -1), truth.means, truth.stds, weights=truth.weights
        )
        result.metrics.update(
            modes=stats.modes,
            n_modes=stats.n_modes,
            high_quality=stats.high_quality,
            reverse_kl_modes=stats.reverse_kl_modes,
            mode_counts=list(stats.counts),
        )
        result.rows.append(
            SummaryRow("modes captured", stats.modes, 0.0, ideal.modes, 0.0, "truth's count")
        )
        result.rows.append(
            SummaryRow(
                "high-quality fraction",
                stats.high_quality,
                0.0,
                ideal.high_quality,
                0.0,
                "truth's fraction",
            )
        )
    for name, metric in _metrics(kind).items():
        scored = with_floor(metric, real, generated, seed=seed, ideal=0.5 if name == "auc" else 0)
        result.metrics[name] = scored._asdict()
        result.rows.append(SummaryRow(name, *scored))
    if not figures:
        return result
    result.figures = _figures(kind, real, generated, truth)
    if training_rows:
        result.figures.append(("Training curves", training_curves(training_rows)))
    return result


def evaluate_run(
    run_dir: str | Path,
    *,
    n: int = 2_500,
    seed: int = 0,
    reference: str | Path | None = None,
    rejection: bool | None = None,
    truncation: float | None = None,
    weights: Weights = "best",
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``n`` samples of a run; write ``metrics.json`` and ``report.html`` into ``out``
    (default: the run directory, or ``./pretrained-NAME`` for a shipped generator).

    The real samples are ``reference`` (a data file) if given, else ``2 n`` draws of the true
    mixture for toys, else the run's held-out data (a shipped generator needs ``reference``:
    its training data are not shipped; a class-conditional run then generates the class of the
    reference, which the file's ``process`` attribute names). Each metric (see
    :mod:`physgan.evaluation` for which, by kind of data) is reported as {value, std, floor,
    floor_std, verdict}, the floor being the same metric between two disjoint halves of the
    real samples; toys also get ``modes``, ``high_quality``, ``reverse_kl_modes`` and
    ``mode_counts`` (see :func:`physgan.metrics.mode_stats`). Infinite values are written as
    null. The samples are drawn as :func:`physgan.api.sample` draws them (``rejection``,
    ``truncation``, ``weights``: as there).
    """
    run, config, meta, state = load_run(run_dir, weights, truncation)
    out_dir = run.root if out is None and not run.shipped else Path(out or _shipped_out(run))
    if rejection is None:
        rejection = config.sample.rejection
    data: TrainingData | None = None
    cond = None
    if reference is not None:
        real, _ = read_arrays(reference)
        if tuple(real.shape[1:]) != tuple(meta["sample_shape"]):
            raise DataError(
                f"{reference}: samples of shape {tuple(real.shape[1:])}, the run's data have "
                f"{tuple(meta['sample_shape'])}"
            )
        classes = class_names(config.data.name, config.data.conditional)
        if classes:  # generate the reference's class only
            cond = {"class": _reference_class(reference, classes)}
    elif run.shipped:
        raise ConfigError(
            f"{run_dir}: give --reference, real jets to compare with (its training data are "
            "not shipped), e.g. from `physgan data jets --process gluon -n 20000 --seed 1 "
            "-o ref.h5`"
        )
    else:
        data = load_data(config)
        if data.truth is not None:
            truth_seed = derive_seed(seed, Stream.EVAL_TRUTH)
            real = data.truth.sample(2 * n, truth_seed).astype(np.float32)
        else:
            real = data.x_holdout
    truth = None if data is None else data.truth
    generated = sample_run(run, config, meta, state, n, seed, cond, rejection, data)
    rows = run.read_metrics()
    scored = evaluate_samples(real, generated, seed=seed, truth=truth, training_rows=rows)
    n_compared = min(len(real) // 2, n)
    summary = {
        "n_samples": n,
        "n_compared": n_compared,
        "seed": seed,
        "step": state.step,
        "rejection": rejection,
        "truncation": config.sample.truncation,
    }
    if cond is not None:
        summary["class"] = cond["class"]
    if data is not None and data.classes is not None and data.cond_holdout is not None:
        summary["classes"] = {}
        for index, name in enumerate(data.classes):
            by_class = _evaluate_class(run, config, meta, state, data, index, n, seed, rejection)
            summary["classes"][name] = by_class.metrics
            scored.rows += [replace(r, metric=f"{name}: {r.metric}") for r in by_class.rows]
            scored.figures += [(f"{name} jets: {c}", fig) for c, fig in by_class.figures]
    result = json_ready(summary | scored.metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    run.write_json(out_dir / run.evaluation.name, result)

    source = config.data.path or config.data.name
    provenance: dict[str, Any] = {
        "physgan version": __version__,
        "run": str(run.root),
        "training step": state.step,
        "run seed": config.seed,
        "evaluation seed": seed,
        "samples compared": f"{n_compared} generated vs {n_compared} real (floor: real vs real)",
        "data": source,
        "evaluated at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if config.data.path is not None and Path(config.data.path).is_file():
        provenance["data SHA-256"] = _sha256(Path(config.data.path))
    if reference is not None:
        provenance["reference"] = str(reference)
        provenance["reference SHA-256"] = _sha256(Path(reference))
    write_report(
        out_dir / "report.html",
        title=f"physgan evaluation: {run.root.name}",
        summary_rows=scored.rows,
        figures=scored.figures,
        config_text=run.config.read_text(),
        provenance=provenance,
    )
    return result


def _reference_class(reference: str | Path, classes: tuple[str, ...]) -> str:
    """The class of a reference file of jet images, from the process its simulation recorded
    (``physgan data jet-images --process W`` writes one class per file)."""
    import h5py

    from physgan.data.jetgen import IMAGE_PROCESSES

    try:
        with h5py.File(reference, "r") as fh:
            process = fh.attrs.get("process")
    except OSError:
        process = None
    by_process = {IMAGE_PROCESSES[name]: name for name in classes if name in IMAGE_PROCESSES}
    if process not in by_process:
        raise DataError(
            f"{reference}: a class-conditional run is compared with images of one class, from "
            "`physgan data jet-images --process W|QCD` (its process attribute names the class); "
            f"this file's process is {process!r}"
        )
    return by_process[process]


def _shipped_out(run: RunDir) -> str:
    """Where a shipped generator's evaluation goes by default: ``pretrained-NAME``."""
    return f"pretrained-{run.root.name}"


def _evaluate_class(
    run: RunDir,
    config: Config,
    meta: dict[str, Any],
    state: TrainingState,
    data: TrainingData,
    index: int,
    n: int,
    seed: int,
    rejection: bool,
) -> Evaluation:
    """One class of a class-conditional run: samples generated with that class's one-hot
    condition (by rejection if ``rejection``) against the held-out samples of the class."""
    assert data.cond_holdout is not None  # the caller checks it
    real = data.x_holdout[data.cond_holdout.argmax(axis=1) == index]
    n_class = min(n, len(real) // 2)
    if n_class < 2:
        raise DataError(f"{run.root}: the holdout has too few samples of class {index}")
    cond = np.zeros((n_class, data.cond_dim), dtype=np.float32)
    cond[:, index] = 1.0
    generated = sample_run(run, config, meta, state, n_class, seed, cond, rejection, data)
    return evaluate_samples(real, generated, seed=seed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
