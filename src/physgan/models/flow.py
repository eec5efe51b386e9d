"""Normalizing flow (neural spline or masked autoregressive), a thin adapter over zuko.

The likelihood baseline next to the GANs: it gives the exact log density of a sample and draws
samples through the same ``sample_latent`` / ``forward`` interface as the generators, so code
that samples a GAN samples a flow unchanged. The flow sees the flattened sample, already
normalised by the caller's transform; densities are in those normalised units. Training
(optimiser, loop) is the caller's business. Needs the ``flow`` extra (``zuko``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from physgan.errors import ConfigError, MissingExtraError
from physgan.models.layers import check_cond, check_features, check_non_negative, check_positive

__all__ = ["Flow"]

_KINDS = ("nsf", "maf")


class Flow(nn.Module):
    """Conditional normalizing flow p(x | cond) on D = prod(sample_shape) features.

    Model: z = T(x; cond) with z ~ N(0, I_D), so that
    log p(x | cond) = log N(T(x; cond); 0, I) + log |det dT/dx|. T composes ``transforms``
    autoregressive layers, each an element-wise monotonic map of x_i whose parameters a masked
    MLP (MADE) computes from the preceding features and the condition; the feature ordering is
    reversed from one layer to the next (zuko's default, no random permutation).

    - ``nsf``: neural spline flow (Durkan et al. 2019, arXiv:1906.04032), monotonic
      rational-quadratic splines with ``bins`` bins on [-5, 5] and identity outside, so the
      data should be standardised to lie mostly inside.
    - ``maf``: masked autoregressive flow (Papamakarios et al. 2017, arXiv:1705.07057),
      affine layers x_i * exp(a_i) + b_i.

    Density evaluation is one network pass per layer. Sampling inverts each layer with
    ``passes`` sequential passes: D for a fully autoregressive flow (``passes=None``, slow for
    large D such as images), 2 for coupling layers (``passes=2``, fast both ways). With D = 1,
    zuko replaces each layer by an element-wise map whose parameters are free (``cond_dim=0``,
    ``hidden`` and ``depth`` unused) or an MLP of the condition; an unconditional 1-D ``maf`` is
    therefore a Gaussian.

    Args:
        sample_shape: shape of one sample: (D,) vectors, (30, 4) particle clouds, (1, 25, 25)
            images; flattened to D features.
        cond_dim: width of the condition vector; 0 for an unconditional flow.
        kind: ``nsf`` or ``maf``.
        transforms: number of autoregressive layers.
        hidden: width of every hidden layer of the masked MLPs.
        depth: number of hidden layers of the masked MLPs.
        bins: number of spline bins K (``nsf`` only; 1 gives the identity map).
        passes: None for fully autoregressive layers, or an integer >= 2 (2: coupling layers).

    Attributes:
        flow: the zuko lazy distribution (``zuko.flows.NSF`` or ``MAF``): ``flow(cond)`` is
            p(x | cond) over flattened x, with ``.transform`` mapping x to z.

    Weights are drawn from torch's global generator (seed it with ``torch.manual_seed``).

    Shapes:
        ``log_prob(x, cond=None)``: x (B, *sample_shape), cond (B, cond_dim) or None -> (B,).
        ``forward(z, cond=None)``: z (B, D), cond (B, cond_dim) or None -> (B, *sample_shape).

    >>> flow = Flow(sample_shape=(30, 4), transforms=1, hidden=8, depth=1, passes=2)
    >>> x = flow(flow.sample_latent(5))
    >>> x.shape, flow.log_prob(x).shape
    (torch.Size([5, 30, 4]), torch.Size([5]))
    """

    def __init__(
        self,
        *,
        sample_shape: tuple[int, ...],
        cond_dim: int = 0,
        kind: str = "nsf",
        transforms: int = 4,
        hidden: int = 128,
        depth: int = 2,
        bins: int = 8,
        passes: int | None = None,
    ) -> None:
        super().__init__()
        shape = tuple(sample_shape) if isinstance(sample_shape, (tuple, list)) else ()
        if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
            raise ConfigError(
                f"sample_shape must be a non-empty tuple of integers >= 1, got {sample_shape!r}"
            )
        if kind not in _KINDS:
            raise ConfigError(f"unknown kind {kind!r}; choose from: {', '.join(_KINDS)}")
        check_positive(transforms=transforms, hidden=hidden, depth=depth, bins=bins)
        check_non_negative(cond_dim=cond_dim)
        if passes is not None and (
            isinstance(passes, bool) or not isinstance(passes, int) or passes < 2
        ):
            raise ConfigError(f"passes must be None or an integer >= 2, got {passes!r}")
        try:
            import zuko
        except ImportError as err:
            raise MissingExtraError(
                "model family flow needs zuko: pip install 'physgan[flow]'"
            ) from err

        self.sample_shape = shape
        self.features = math.prod(shape)
        self.cond_dim = cond_dim
        options = {
            "features": self.features,
            "context": cond_dim,
            "transforms": transforms,
            "passes": passes,
            "hidden_features": (hidden,) * depth,
        }
        if kind == "nsf":
            self.flow = zuko.flows.NSF(bins=bins, **options)
        else:
            self.flow = zuko.flows.MAF(**options)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Log density (B,) in nats of x (B, *sample_shape) given cond (B, cond_dim)."""
        check_features(x, self.sample_shape, "x")
        cond = check_cond(cond, self.cond_dim, x.shape[0])
        return self.flow(cond).log_prob(x.flatten(1))

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z from the base N(0, I), shape (n, features)."""
        device = None if generator is None else generator.device
        return torch.randn(n, self.features, generator=generator, device=device)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """The sample x = T^{-1}(z; cond), shape (B, *sample_shape), of base draws z (B, D)."""
        check_features(z, (self.features,), "z")
        cond = check_cond(cond, self.cond_dim, z.shape[0])
        return self.flow.transform(cond).inv(z).reshape(-1, *self.sample_shape)
