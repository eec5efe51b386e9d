"""Model selection during training: score the sampling generator on held-out jets every
``train.select_every`` steps and keep the best weights (``RUN/best.safetensors``).

A GAN's last step is rarely its best: its quality swings from one checkpoint to the next. The
score is cheap enough to take often: W1 of the relative jet mass and of the particle features
(:func:`~physgan.metrics.w1m`, :func:`~physgan.metrics.w1p`) of ``train.select_samples``
generated jets against as many held-out ones, each divided by its real-vs-real floor and the
two averaged (1 is as close as a second real sample). The generated jets take the conditions
of a second, disjoint held-out half, which also gives the floor; the latent draws are the same
at every evaluation, so two scores differ by the weights only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgan.data.jets import canonical_cloud
from physgan.errors import ConfigError
from physgan.metrics import outlier_fraction, w1m, w1p
from physgan.training.checkpoint import read_weights, save_weights
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import TrainingState

__all__ = ["Selector"]

log = logging.getLogger(__name__)


class Selector:
    """Score ``state.sampler`` on held-out jets every ``every`` steps; keep the best weights.

    Called with the state, it returns the row to log (empty between evaluations):
    ``val_w1m`` and ``val_w1p`` (in units of the jet pT), ``val_outliers`` (fraction of
    generated jets outside the held-out support), ``val_score`` (mean W1 ratio to the floor)
    and ``best_step``. A resumed run continues from the best score in ``path``.

    Args:
        path: where the best weights are written (safetensors, the sampler's state dict).
        every: steps between evaluations.
        holdout: (n, N, 4) held-out jets in the data's units, at least ``2 n_samples``.
        cond: (n, cond_dim) their conditions in the network's units, or None.
        inverse: the data transform's inverse (network units -> the data's units).
        n_samples: generated and real jets per score.
        seed: the run's seed (fixes the latent draws and the split of ``holdout``).
    """

    def __init__(
        self,
        path: Path,
        *,
        every: int,
        holdout: np.ndarray,
        cond: np.ndarray | None,
        inverse: Callable[[np.ndarray], np.ndarray],
        n_samples: int,
        seed: int,
    ) -> None:
        n = min(n_samples, len(holdout) // 2)
        if n < 10:
            raise ConfigError(
                f"config: train.select_every: model selection needs at least 20 held-out "
                f"jets, the holdout has {len(holdout)}"
            )
        order = np.random.default_rng(derive_seed(seed, Stream.SELECT)).permutation(len(holdout))
        self.real, other = holdout[order[:n]], holdout[order[n : 2 * n]]
        self.cond = None if cond is None else torch.as_tensor(cond[order[n : 2 * n]])
        self.path, self.every, self.inverse, self.seed = path, every, inverse, seed
        self.floor_m = max(w1m(self.real, other, num_eval_samples=n, num_batches=1).value, 1e-12)
        self.floor_p = max(w1p(self.real, other, num_eval_samples=n, num_batches=1).value, 1e-12)
        self.best_score, self.best_step = float("inf"), -1
        if path.is_file():
            saved = read_weights(path)[1]
            self.best_score, self.best_step = float(saved["score"]), int(saved["step"])

    @torch.no_grad()
    def _generate(self, G: torch.nn.Module) -> np.ndarray:
        gen = torch.Generator().manual_seed(derive_seed(self.seed, Stream.SELECT))
        was_training = G.training
        G.eval()
        try:
            z = G.sample_latent(len(self.real), generator=gen)
            cond = None if self.cond is None else self.cond.to(z.device)
            x = torch.cat(
                [
                    G(z[i : i + 1024], None if cond is None else cond[i : i + 1024])
                    for i in range(0, len(z), 1024)
                ]
            )
        finally:
            G.train(was_training)
        return canonical_cloud(self.inverse(x.float().cpu().numpy()))

    def __call__(self, state: TrainingState) -> dict[str, Any]:
        if state.step % self.every:
            return {}
        generated = self._generate(state.sampler)
        n = len(self.real)
        row = {
            "val_w1m": w1m(self.real, generated, num_eval_samples=n, num_batches=1).value,
            "val_w1p": w1p(self.real, generated, num_eval_samples=n, num_batches=1).value,
            "val_outliers": outlier_fraction(self.real, generated).value,
        }
        score = (row["val_w1m"] / self.floor_m + row["val_w1p"] / self.floor_p) / 2
        if np.isfinite(score) and score < self.best_score:
            self.best_score, self.best_step = score, state.step
            save_weights(self.path, state.sampler, {"step": state.step, "score": score})
            log.info("step %d: best validation score so far, %.3f", state.step, score)
        return row | {"val_score": score, "best_step": self.best_step}
