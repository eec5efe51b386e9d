"""Model selection during training: score the sampling generator every ``train.select_every``
steps and keep the best weights (``RUN/best.safetensors``).

A GAN's last step is rarely its best: its quality swings from one checkpoint to the next. The
latent draws (and held-out data) are the same at every evaluation, so two scores differ by the
weights only. Lower scores are better. Two scorers:

- jets (:func:`jet_scorer`): W1 of the relative jet mass and of the particle features
  (:func:`~physgan.metrics.w1m`, :func:`~physgan.metrics.w1p`) of ``train.select_samples``
  generated jets against as many held-out ones, each divided by its real-vs-real floor and the
  two averaged (1 is as close as a second real sample). The generated jets take the conditions
  of a second, disjoint held-out half, which also gives the floor.
- jet images (:func:`image_scorer`): as for jets, with W1 of the image mass and of tau_21
  (:mod:`physgan.data.images`); the fraction of images outside the real support is logged.
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

from physgan.data.images import image_mass, image_tau21
from physgan.data.jets import canonical_cloud
from physgan.data.toy import GaussianMixture
from physgan.errors import ConfigError
from physgan.metrics import mode_stats, outlier_fraction, w1m, w1p
from physgan.metrics.support import image_outlier_fraction
from physgan.models.draw import draw
from physgan.training.checkpoint import read_weights, save_weights
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import TrainingState

__all__ = ["Scorer", "Selector", "image_scorer", "jet_scorer", "mode_scorer"]

log = logging.getLogger(__name__)

Scorer = Callable[[nn.Module], tuple[dict[str, float], float]]
"""The sampling generator -> (the row to log, the score; lower is better)."""


def _generate(G: nn.Module, n: int, cond: torch.Tensor | None, seed: int) -> np.ndarray:
    """``n`` samples of ``G`` in network units from the same latent draws for a given seed."""
    return draw(G, n, cond, torch.Generator().manual_seed(derive_seed(seed, Stream.SELECT)))


def _halves(
    holdout: np.ndarray, cond: np.ndarray | None, n_samples: int, seed: int, what: str
) -> tuple[int, np.ndarray, np.ndarray, torch.Tensor | None]:
    """n, a real half and a disjoint second half of ``holdout``, and the second half's
    conditions (network units) for the generated samples."""
    n = min(n_samples, len(holdout) // 2)
    if n < 10:
        raise ConfigError(
            f"config: train.select_every: model selection compares at least 10 generated {what} "
            f"with 10 held-out ones; train.select_samples is {n_samples} and the holdout has "
            f"{len(holdout)} (at least 20 needed)"
        )
    order = np.random.default_rng(derive_seed(seed, Stream.SELECT)).permutation(len(holdout))
    other_cond = None if cond is None else torch.as_tensor(cond[order[n : 2 * n]])
    return n, holdout[order[:n]], holdout[order[n : 2 * n]], other_cond


def jet_scorer(
    holdout: np.ndarray,
    cond: np.ndarray | None,
    inverse: Callable[[np.ndarray], np.ndarray],
    n_samples: int,
    seed: int,
) -> Scorer:
    """Score generated jets against ``holdout`` (n, N, 4) jets in the data's units (see the
    module); ``cond``: their conditions in network units, ``inverse`` the data transform's."""
    n, real, other, other_cond = _halves(holdout, cond, n_samples, seed, "jets")
    floor_m = max(w1m(real, other, num_eval_samples=n, num_batches=1).value, 1e-12)
    floor_p = max(w1p(real, other, num_eval_samples=n, num_batches=1).value, 1e-12)

    def score(G: nn.Module) -> tuple[dict[str, float], float]:
        generated = canonical_cloud(inverse(_generate(G, n, other_cond, seed)))
        row = {
            "val_w1m": w1m(real, generated, num_eval_samples=n, num_batches=1).value,
            "val_w1p": w1p(real, generated, num_eval_samples=n, num_batches=1).value,
            "val_outliers": outlier_fraction(real, generated).value,
        }
        return row, (row["val_w1m"] / floor_m + row["val_w1p"] / floor_p) / 2

    return score


def image_scorer(
    holdout: np.ndarray,
    cond: np.ndarray | None,
    inverse: Callable[[np.ndarray], np.ndarray],
    n_samples: int,
    seed: int,
) -> Scorer:
    """Score generated jet images against ``holdout`` (n, 1, P, P) images of pixel pT in GeV
    (see the module); ``cond``: their conditions in network units (e.g. the one-hot class),
    ``inverse`` the data transform's."""
    n, real, other, other_cond = _halves(holdout, cond, n_samples, seed, "images")
    real = real[:, 0]

    def features(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mass, tau21 = image_mass(images), image_tau21(images)
        return mass, tau21[np.isfinite(tau21)]

    reference = features(real)
    pairs = zip(reference, features(other[:, 0]), strict=True)
    floors = [max(wasserstein_distance(a, b), 1e-12) for a, b in pairs]

    def score(G: nn.Module) -> tuple[dict[str, float], float]:
        generated = inverse(_generate(G, n, other_cond, seed))[:, 0]
        mass, tau21 = features(generated)
        w1_mass = wasserstein_distance(reference[0], mass)
        w1_tau21 = wasserstein_distance(reference[1], tau21) if tau21.size else float("inf")
        row = {
            "val_w1_mass": w1_mass,
            "val_w1_tau21": w1_tau21,
            "val_outliers": image_outlier_fraction(real, generated).value,
        }
        return row, (w1_mass / floors[0] + w1_tau21 / floors[1]) / 2

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
