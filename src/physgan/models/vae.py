"""Gaussian variational autoencoder (VAE) for normalised tabular data, particle clouds or images.

A likelihood-based baseline next to the GANs: it gives a lower bound on log p(x) (the ELBO) and
samples through the same ``sample_latent`` / ``forward`` interface as the generators, so code
that samples a GAN samples a VAE unchanged. Training (optimiser, loop, the beta weighting of the
KL term) is the caller's business.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from physgan.divergences import kl_standard_normal
from physgan.errors import ConfigError
from physgan.models.dcgan import DCGANGenerator
from physgan.models.layers import (
    check_cond,
    check_features,
    check_non_negative,
    check_positive,
    mlp_blocks,
    sample_latent,
)
from physgan.models.mlp import MLPGenerator

__all__ = ["VAE"]

_LOG_2PI = math.log(2.0 * math.pi)


class VAE(nn.Module):
    """Gaussian VAE (Kingma & Welling 2014, arXiv:1312.6114) with a learned per-feature noise.

    Model: z ~ N(0, I), x | z ~ N(mu_theta(z, cond), diag sigma^2), where ``sigma`` has the shape
    of one sample and does not depend on z; sigma = min_sigma + softplus(raw), 1 at
    initialisation. Encoder: q(z | x, cond) = N(mu, diag exp(log_var)).

    Architecture: the encoder is concat(flatten(x), cond) -> ``depth`` x [Linear(hidden) ->
    activation] -> Linear(2 * latent_dim) -> (mu, log_var). The decoder mean mu_theta is an
    :class:`~physgan.models.mlp.MLPGenerator` (``decoder="mlp"``, any sample shape) or a
    :class:`~physgan.models.dcgan.DCGANGenerator` with linear output (``decoder="conv"``, square
    images (C, P, P) only). The conv decoder has batch norm: in training mode its output
    depends on the whole batch, so call ``eval()`` before sampling or evaluating.

    Units: x is in the caller's normalised (standardised) units, and so are ``sigma`` and
    ``min_sigma``; log-likelihoods are in nats per sample, densities with respect to those units.

    Args:
        sample_shape: shape of one sample, e.g. (2,) for vectors, (30, 4) for particle clouds,
            (1, 25, 25) for images.
        cond_dim: width of the condition vector; 0 for an unconditional model.
        latent_dim: width of z.
        hidden: width of every hidden layer of the encoder and the MLP decoder.
        depth: number of hidden layers of the encoder and the MLP decoder (0: linear maps).
        activation: hidden activation name (see :func:`physgan.models.layers.activation`).
        decoder: ``mlp`` or ``conv``.
        base_channels: channels of the last upsampling block of the conv decoder.
        min_sigma: floor of sigma, in (0, 1). It keeps the likelihood bounded on features that
            are constant in the data (zero padding of particle clouds, empty pixels), where the
            maximum-likelihood sigma would be 0.

    Shapes:
        ``encode(x, cond)``: x (B, *sample_shape) -> mu, log_var, each (B, latent_dim).
        ``decode(z, cond)``: z (B, latent_dim) -> decoder mean (B, *sample_shape).
        ``elbo_terms(x, cond)`` -> reconstruction, kl, each (B,).
        ``sample_latent(n)`` -> (n, latent_dim + D), D = prod(sample_shape).
        ``forward(latent, cond)``: latent (B, latent_dim + D) -> x (B, *sample_shape).

    beta-VAE (Higgins et al. 2017, ICLR, "beta-VAE: learning basic visual concepts with a
    constrained variational framework") is the loss ``-(reconstruction - beta * kl)``, built
    by the caller from :meth:`elbo_terms`.

    >>> vae = VAE(sample_shape=(30, 4), latent_dim=3, hidden=8, depth=1)
    >>> gen = torch.Generator().manual_seed(0)
    >>> reconstruction, kl = vae.elbo_terms(torch.zeros(5, 30, 4), generator=gen)
    >>> reconstruction.shape, kl.shape
    (torch.Size([5]), torch.Size([5]))
    >>> vae(vae.sample_latent(2, generator=gen)).shape
    torch.Size([2, 30, 4])
    """

    def __init__(
        self,
        *,
        sample_shape: tuple[int, ...],
        cond_dim: int = 0,
        latent_dim: int = 8,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "relu",
        decoder: str = "mlp",
        base_channels: int = 32,
        min_sigma: float = 1e-2,
    ) -> None:
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        if not self.sample_shape:
            raise ConfigError("sample_shape must have at least one dimension, got ()")
        check_positive(
            sample_shape=min(self.sample_shape),
            latent_dim=latent_dim,
            hidden=hidden,
            base_channels=base_channels,
        )
        check_non_negative(cond_dim=cond_dim, depth=depth)
        # sigma = 1 at initialisation needs min_sigma < 1; a larger floor would exceed the unit
        # spread of standardised data anyway.
        if not 0.0 < min_sigma < 1.0:
            raise ConfigError(f"min_sigma must be in (0, 1), got {min_sigma!r}")
        self.sample_dim = math.prod(self.sample_shape)
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        self.min_sigma = min_sigma

        in_features = self.sample_dim + cond_dim
        self.encoder = nn.Sequential(
            *mlp_blocks(
                in_features, hidden=hidden, depth=depth, activation=activation, norm="none"
            ),
            nn.Linear(hidden if depth else in_features, 2 * latent_dim),
        )
        self.decoder: nn.Module
        if decoder == "mlp":
            self.decoder = MLPGenerator(
                out_dim=self.sample_shape[0] if len(self.sample_shape) == 1 else self.sample_shape,
                latent_dim=latent_dim,
                cond_dim=cond_dim,
                hidden=hidden,
                depth=depth,
                activation=activation,
            )
        elif decoder == "conv":
            if len(self.sample_shape) != 3 or self.sample_shape[1] != self.sample_shape[2]:
                raise ConfigError(
                    "decoder 'conv' needs a square image shape (C, P, P), got sample_shape "
                    f"{self.sample_shape}"
                )
            self.decoder = DCGANGenerator(
                image_size=self.sample_shape[1],
                channels=self.sample_shape[0],
                latent_dim=latent_dim,
                cond_dim=cond_dim,
                base_channels=base_channels,
                output="linear",
            )
        else:
            raise ConfigError(f"unknown decoder {decoder!r}; choose from: mlp, conv")
        # Inverse softplus of 1 - min_sigma, so that sigma starts at 1.
        raw_init = math.log(math.expm1(1.0 - min_sigma))
        self.raw_sigma = nn.Parameter(torch.full(self.sample_shape, raw_init))

    @property
    def sigma(self) -> Tensor:
        """Decoder standard deviation, shape ``sample_shape``, >= ``min_sigma``."""
        return self.min_sigma + nn.functional.softplus(self.raw_sigma)

    def encode(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, cond), each (B, latent_dim)."""
        check_features(x, self.sample_shape, "x")
        cond = check_cond(cond, self.cond_dim, x.shape[0])
        h = x.flatten(1) if cond is None else torch.cat([x.flatten(1), cond], dim=1)
        mu, log_var = self.encoder(h).chunk(2, dim=1)
        return mu, log_var

    def decode(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Decoder mean mu_theta(z, cond), (B, *sample_shape), for z (B, latent_dim)."""
        return self.decoder(z, cond)

    def elbo_terms(
        self,
        x: Tensor,
        cond: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        eps: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Per-sample ELBO terms (reconstruction, kl), each (B,), in nats.

        reconstruction = log N(x; decode(z), diag sigma^2) summed over a sample's elements, for
        one reparameterised draw z = mu + exp(log_var / 2) * eps, eps ~ N(0, I) (B, latent_dim)
        given, or drawn from ``generator``: an unbiased estimate of E_q[log p(x | z)].
        kl = KL(q(z | x) || N(0, I)) in closed form. ELBO = reconstruction - kl <=
        log p(x | cond); both terms are differentiable in the parameters.
        """
        mu, log_var = self.encode(x, cond)
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        x_mean = self.decode(mu + torch.exp(0.5 * log_var) * eps, cond)
        sigma = self.sigma
        log_lik = -0.5 * ((x - x_mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * _LOG_2PI
        return log_lik.flatten(1).sum(1), kl_standard_normal(mu, log_var).sum(1)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of [z, eps] ~ N(0, I), shape (n, latent_dim + D): the prior draw z, then
        the decoder noise eps, so that :meth:`forward` is a deterministic map."""
        return sample_latent(n, self.latent_dim + self.sample_dim, generator=generator)

    def forward(self, latent: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact draws x = decode(z, cond) + sigma * eps from p(x | cond), (B, *sample_shape),
        for latent = [z, eps] (B, latent_dim + D) from :meth:`sample_latent`."""
        check_features(latent, (self.latent_dim + self.sample_dim,), "latent")
        z, eps = latent.split([self.latent_dim, self.sample_dim], dim=1)
        return self.decode(z, cond) + self.sigma * eps.reshape(-1, *self.sample_shape)
