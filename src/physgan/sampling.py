"""Discriminator rejection sampling (Azadi et al. 2019, arXiv:1810.06758).

At the optimal discriminator of the probabilistic objectives, D* = p_data / (p_data + p_g), so its
logit is log(p_data / p_g). Accepting a generated x with probability exp(logit(x) - M), M the
largest logit, is exact rejection sampling of p_data from the proposal p_g wherever p_g > 0:
it removes samples between the modes and rebalances the mass over the modes G does reach.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from physgan.errors import DataError

__all__ = ["rejection_sample"]


@torch.no_grad()
def rejection_sample(
    propose: Callable[[int], Tensor],
    log_ratio: Callable[[Tensor], Tensor],
    n: int,
    *,
    generator: torch.Generator,
    cap_quantile: float = 1.0,
    chunk: int = 65_536,
    max_candidates: int = 10_000_000,
) -> tuple[Tensor, float]:
    """Draw ``n`` samples from p_g(x) exp(log_ratio(x)) / Z, with p_g the proposal.

    ``propose(k)`` draws k candidates x ~ p_g; ``log_ratio(x)`` estimates log(p_data / p_g) per
    candidate (a discriminator's logit). A candidate is accepted with probability
    ``min(1, exp(log_ratio(x) - M))``, where M is the ``cap_quantile`` quantile of the log-ratios
    of the first ``chunk`` candidates (Azadi et al.'s burn-in): 1 takes their maximum (exact up to
    ratios above it), a lower quantile caps the ratio there and accepts more. The uniform draws
    come from ``generator``. Returns the (n, ...) accepted samples and the acceptance rate.

    Raises:
        DataError: fewer than ``n`` of ``max_candidates`` candidates were accepted.

    >>> gen = torch.Generator().manual_seed(0)
    >>> x, rate = rejection_sample(lambda k: torch.randn(k, 1, generator=gen),
    ...                            lambda x: torch.zeros(len(x)), 10, generator=gen)
    >>> x.shape, rate
    (torch.Size([10, 1]), 1.0)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < cap_quantile <= 1.0:
        raise ValueError(f"cap_quantile must be in (0, 1], got {cap_quantile}")
    x = propose(chunk)
    r = log_ratio(x).double().reshape(-1)
    cap = torch.quantile(r, cap_quantile) if cap_quantile < 1.0 else r.max()
    accepted: list[Tensor] = []
    n_accepted = n_total = 0
    while True:
        keep = torch.rand(r.shape[0], generator=generator, dtype=torch.float64) < torch.exp(
            (r - cap).clamp(max=0.0)
        )
        accepted.append(x[keep])
        n_accepted += int(keep.sum())
        n_total += r.shape[0]
        if n_accepted >= n:
            return torch.cat(accepted)[:n], n_accepted / n_total
        if n_total >= max_candidates:
            raise DataError(
                f"rejection sampling accepted {n_accepted} of {n_total} candidates, fewer than "
                f"n = {n}; lower the cap quantile"
            )
        x = propose(chunk)
        r = log_ratio(x).double().reshape(-1)
