"""Model selection during training: score the sampling generator every ``train.select_every``
steps and keep the best weights (``RUN/best.safetensors``).

A GAN's last step is rarely its best: its quality swings from one checkpoint to the next. The
latent draws (and held-out data) are the same at every evaluation, so two scores differ by the
weights only. Lower scores are better. Two scorers:

- jets (:func:`jet_scorer`): W1 of the relative jet mass, of the particle features and of
  the energy flow polynomials (:func:`~physgan.metrics.w1m`, :func:`~physgan.metrics.w1p`,
  :func:`~physgan.metrics.w1efp`) of ``train.select_samples`` generated jets against as many
  held-out ones, each divided by its real-vs-real floor and the three averaged (1 is as close
  as a second real sample). The generated jets take the conditions of a second, disjoint
  held-out half, which also gives the floor.
- jet images (:func:`image_scorer`): as for jets, with W1 of the image mass, of tau_21 and
  of the pixel spectrum (:mod:`physgan.data.images`), per class for class-conditional images;
  the fraction of images outside the real support is logged.
- toys with a known density (:func:`mode_scorer`): the mode statistics of
  :func:`~physgan.metrics.mode_stats` against the true mixture: modes missed, plus the reverse
  KL of the mode histogram (nats; log(1 / smallest weight), its largest value, when no sample
  is high quality), plus the fraction of samples that are not high quality.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from physgan.data.images import image_mass, image_tau21, pixel_log_pt
from physgan.data.jets import canonical_cloud
from physgan.data.toy import GaussianMixture
from physgan.errors import ConfigError
from physgan.metrics import mode_stats, outlier_fraction, w1efp, w1m, w1p
from physgan.metrics.support import image_outlier_fraction
from physgan.models.draw import draw
from physgan.training.checkpoint import read_weights, save_weights
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import TrainingState

__all__ = ["Scorer", "Selector", "image_scorer", "jet_scorer", "mode_scorer"]

log = logging.getLogger(__name__)

Scorer = Callable[[nn.Module], tuple[dict[str, float], float]]
"""The sampling generator -> (the row to log, the score; lower is better)."""


def _generate(G: nn.Module, n: int, cond: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` samples of ``G`` in network units from the same latent draws for a given seed."""
    return draw(G, n, cond, torch.Generator().manual_seed(derive_seed(seed, Stream.SELECT)))


def _halves(
    holdout: np.ndarray, cond: np.ndarray | None, n_samples: int, seed: int, what: str
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """n, a real half and a disjoint second half of ``holdout``, and the two halves'
    conditions (network units; the second half's are those of the generated samples)."""
    n = min(n_samples, len(holdout) // 2)
    if n < 10:
        raise ConfigError(
            f"config: train.select_every: model selection compares at least 10 generated {what} "
            f"with 10 held-out ones; train.select_samples is {n_samples} and the holdout has "
            f"{len(holdout)} (at least 20 needed)"
        )
    order = np.random.default_rng(derive_seed(seed, Stream.SELECT)).permutation(len(holdout))
    first, second = order[:n], order[n : 2 * n]
    if cond is None:
        return n, holdout[first], holdout[second], None, None
    return n, holdout[first], holdout[second], cond[first], cond[second]


def jet_scorer(
    holdout: np.ndarray,
    cond: np.ndarray | None,
    inverse: Callable[[np.ndarray], np.ndarray],
    n_samples: int,
    seed: int,
) -> Scorer:
    """Score generated jets against ``holdout`` (n, N, 4) jets in the data's units (see the
    module); ``cond``: their conditions in network units, ``inverse`` the data transform's."""
    n, real, other, _, other_cond = _halves(holdout, cond, n_samples, seed, "jets")
    metrics = {"val_w1m": w1m, "val_w1p": w1p, "val_w1efp": w1efp}
    floors = {
        name: max(metric(real, other, num_eval_samples=n, num_batches=1).value, 1e-12)
        for name, metric in metrics.items()
    }

    def score(G: nn.Module) -> tuple[dict[str, float], float]:
        generated = canonical_cloud(inverse(_generate(G, n, other_cond, seed)))
        row = {
            name: metric(real, generated, num_eval_samples=n, num_batches=1).value
            for name, metric in metrics.items()
        }
        ratio = float(np.mean([row[name] / floors[name] for name in metrics]))
        return row | {"val_outliers": outlier_fraction(real, generated).value}, ratio

    return score


def image_scorer(
    holdout: np.ndarray,
    cond: np.ndarray | None,
    inverse: Callable[[np.ndarray], np.ndarray],
    n_samples: int,
    seed: int,
) -> Scorer:
    """Score generated jet images against ``holdout`` (n, 1, P, P) images of pixel pT in GeV
    (see the module); ``cond``: their conditions in network units, for class-conditional images
    the one-hot class, ``inverse`` the data transform's. The W1 of mass, tau_21 and the pixel
    spectrum (log10 pixel pT) are taken per class and their ratios to the floor averaged over
    features and classes: a class's own mass peak is as sharp as the evaluation sees it."""
    n, real, other, real_cond, other_cond = _halves(holdout, cond, n_samples, seed, "images")
    real, other = real[:, 0], other[:, 0]
    classes = (np.zeros(n, int), np.zeros(n, int))
    if real_cond is not None and other_cond is not None and real_cond.shape[1] > 1:
        classes = (real_cond.argmax(axis=1), other_cond.argmax(axis=1))
    labels = np.intersect1d(*classes)  # a class in one half only has no floor

    def features(images: np.ndarray) -> dict[str, np.ndarray]:
        tau21 = image_tau21(images)
        return {
            "val_w1_mass": image_mass(images),
            "val_w1_tau21": tau21[np.isfinite(tau21)],
            "val_w1_pixels": pixel_log_pt(images),
        }

    reference = [features(real[classes[0] == c]) for c in labels]
    floors = []
    for c, ref in zip(labels, reference, strict=True):
        second = features(other[classes[1] == c])
        floors.append({k: max(wasserstein_distance(ref[k], second[k]), 1e-12) for k in ref})

    def score(G: nn.Module) -> tuple[dict[str, float], float]:
        generated = inverse(_generate(G, n, other_cond, seed))[:, 0]
        w1s = []
        for c, ref in zip(labels, reference, strict=True):
            made = features(generated[classes[1] == c])
            w1s.append(
                {k: wasserstein_distance(ref[k], v) if v.size else np.inf for k, v in made.items()}
            )
        row = {k: float(np.mean([w[k] for w in w1s])) for k in w1s[0]}
        ratios = [w[k] / floor[k] for w, floor in zip(w1s, floors, strict=True) for k in w]
        row["val_outliers"] = image_outlier_fraction(real, generated).value
        return row, float(np.mean(ratios))

    return score


def mode_scorer(
    truth: GaussianMixture,
    inverse: Callable[[np.ndarray], np.ndarray],
    n_samples: int,
    seed: int,
) -> Scorer:
    """Score samples of a toy against its true mixture (see the module)."""
    weights = np.asarray(truth.weights, dtype=float)
    worst_kl = float(np.log(weights.sum() / weights.min()))

    def score(G: nn.Module) -> tuple[dict[str, float], float]:
        x = inverse(_generate(G, n_samples, None, seed)).reshape(n_samples, -1)
        stats = mode_stats(x, truth.means, truth.stds, weights=truth.weights)
        # No high-quality sample at all: the largest KL any histogram can have, log(1 / min p).
        kl = stats.reverse_kl_modes if np.isfinite(stats.reverse_kl_modes) else worst_kl
        row = {
            "val_modes": float(stats.modes),
            "val_high_quality": stats.high_quality,
            "val_reverse_kl_modes": kl,
        }
        return row, (stats.n_modes - stats.modes) + kl + (1 - stats.high_quality)

    return score


class Selector:
    """Score ``state.sampler`` every ``every`` steps with ``scorer``; keep the best weights.

    Called with the state, it returns the row to log (empty between evaluations): the scorer's
    row, ``val_score`` and ``best_step``. A resumed run continues from the best score saved in
    ``path`` (safetensors, the sampler's state dict).
    """

    def __init__(self, path: Path, *, every: int, scorer: Scorer) -> None:
        self.path, self.every, self.scorer = path, every, scorer
        self.best_score, self.best_step = float("inf"), -1
        if path.is_file():
            saved = read_weights(path)[1]
            self.best_score, self.best_step = float(saved["score"]), int(saved["step"])

    def __call__(self, state: TrainingState) -> dict[str, Any]:
        if state.step % self.every:
            return {}
        row, score = self.scorer(state.sampler)
        if np.isfinite(score) and score < self.best_score:
            self.best_score, self.best_step = score, state.step
            save_weights(self.path, state.sampler, {"step": state.step, "score": score})
            log.info("step %d: best validation score so far, %.3f", state.step, score)
        return row | {"val_score": score, "best_step": self.best_step}
