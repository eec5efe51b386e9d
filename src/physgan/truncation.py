"""Jacobian-based truncation of the latent space (Tanielian et al. 2020, arXiv:2006.04596).

A generator is a continuous map from a connected latent space, so it cannot produce disjoint
modes without also producing samples between them. Where it does, it stretches a small
volume of latent space over the gap: the Frobenius norm of its Jacobian dG/dz is largest
there. Dropping the latent draws with the largest norms removes most of the samples between
the modes, at the price of a little of each mode's tails.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

__all__ = ["TruncatedSampler", "jacobian_norms"]


def jacobian_norms(generator: nn.Module, z: Tensor) -> Tensor:
    """Frobenius norms ||dG/dz||_F, shape (B,), of an unconditional generator at latents z (B, k),
    in the generator's output units per latent unit."""

    def single(v: Tensor) -> Tensor:
        return generator(v[None])[0]

    return vmap(jacrev(single))(z).flatten(1).norm(dim=1).detach()


class TruncatedSampler:
    """Draws of an unconditional generator (a module with ``sample_latent``) with the fraction
    ``drop`` of its latents removed: those whose Jacobian norm exceeds the (1 - drop) quantile
    of the norms of a first ``burn_in`` latents. The threshold is fixed then, so every later draw
    follows the same truncated law.

    Calling it with k returns k samples (k, *sample_shape) without gradients; the latents come
    from ``generator``, so a seed gives the same samples.
    """

    def __init__(
        self,
        model: nn.Module,
        drop: float,
        generator: torch.Generator,
        *,
        burn_in: int = 65_536,
        chunk: int = 4_096,
    ) -> None:
        if not 0.0 < drop < 1.0:
            raise ValueError(f"drop must be in (0, 1), got {drop}")
        self._model = model
        self._generator = generator
        self._chunk = chunk
        norms = torch.cat([jacobian_norms(model, z) for z in self._latents(burn_in).split(chunk)])
        self.threshold = float(torch.quantile(norms.double(), 1.0 - drop))

    def _latents(self, k: int) -> Tensor:
        return self._model.sample_latent(k, generator=self._generator)

    def __call__(self, k: int) -> Tensor:
        out: list[Tensor] = []
        have = 0
        while have < k:
            z = self._latents(self._chunk)
            z = z[jacobian_norms(self._model, z) <= self.threshold]
            with torch.no_grad():
                out.append(self._model(z))
            have += len(z)
        return torch.cat(out)[:k]
