"""Fully connected generator and discriminator for tabular data (toy mixtures, jet observables).

Both take an optional condition ``cond`` of shape (B, cond_dim), e.g. a one-hot class or a
normalised physics parameter such as the jet pT; ``cond_dim=0`` means unconditional.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from physgan.models.layers import (
    add_spectral_norm,
    check_cond,
    check_features,
    check_non_negative,
    check_positive,
    minibatch_std,
    mlp_blocks,
    pack_batch,
    sample_latent,
)
from physgan.models.registry import DISCRIMINATORS, GENERATORS

__all__ = ["MLPDiscriminator", "MLPGenerator"]


@GENERATORS.register("mlp")
class MLPGenerator(nn.Module):
    """Maps latent noise (and a condition) to a feature vector with a multilayer perceptron.

    Architecture: concat(z, cond) -> ``depth`` x [Linear(hidden) -> norm -> activation]
    -> Linear(out_dim). The output is linear (no squashing): the data are expected to be
    normalised by a transform.

    Args:
        out_dim: number of generated features D, or a sample shape such as (30, 4) (a particle
            cloud flattened: the fully-connected baseline of the MPGAN paper).
        latent_dim: width of the noise vector z.
        cond_dim: width of the condition vector; 0 for an unconditional generator.
        hidden: width of every hidden layer.
        depth: number of hidden layers (0 gives a linear map).
        activation: ``relu``, ``leaky_relu`` (slope 0.2), ``elu``, ``gelu``, ``silu`` or ``tanh``.
        norm: ``none``, ``batch`` or ``layer`` normalisation after each hidden Linear.
        categories: size of an extra one-hot categorical code in z (0: none); see
            :func:`physgan.models.layers.sample_latent`.

    Shapes:
        ``forward(z, cond=None)``: z (B, latent_dim + categories), cond (B, cond_dim) or None
        -> (B, out_dim), or (B, *out_dim) for a shape.

    >>> g = MLPGenerator(out_dim=2, latent_dim=4, hidden=8, depth=1)
    >>> g(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        *,
        out_dim: int | tuple[int, ...],
        latent_dim: int = 8,
        cond_dim: int = 0,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "relu",
        norm: str = "none",
        categories: int = 0,
    ) -> None:
        super().__init__()
        self.out_shape = (out_dim,) if isinstance(out_dim, int) else tuple(out_dim)
        self.out_dim = math.prod(self.out_shape)
        check_positive(out_dim=min(self.out_shape), latent_dim=latent_dim, hidden=hidden)
        check_non_negative(cond_dim=cond_dim, depth=depth, categories=categories)
        self.latent_dim = latent_dim
        self.categories = categories
        self.cond_dim = cond_dim
        in_features = latent_dim + categories + cond_dim
        self.trunk = mlp_blocks(
            in_features, hidden=hidden, depth=depth, activation=activation, norm=norm
        )
        self.head = nn.Linear(hidden if depth else in_features, self.out_dim)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z from the prior, shape (n, latent_dim + categories)."""
        return sample_latent(n, self.latent_dim, self.categories, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Generate (B, *out_shape) samples from z (B, latent_dim + categories), cond."""
        check_features(z, (self.latent_dim + self.categories,), "z")
        cond = check_cond(cond, self.cond_dim, z.shape[0])
        h = z if cond is None else torch.cat([z, cond], dim=1)
        return self.head(self.trunk(h)).view(-1, *self.out_shape)


@DISCRIMINATORS.register("mlp")
class MLPDiscriminator(nn.Module):
    """Scores feature vectors (and their condition) with a multilayer perceptron.

    Architecture: concat(x, cond) -> PacGAN packing of ``pack`` consecutive samples ->
    ``depth`` x [Linear(hidden) -> norm -> activation] -> optional minibatch-std feature
    -> Linear(1). Returns raw logits (no sigmoid): the loss decides how to read them.

    Args:
        in_dim: number of input features D, or a sample shape such as (30, 4), flattened.
        cond_dim: width of the condition vector; 0 for an unconditional discriminator.
        hidden: width of every hidden layer.
        depth: number of hidden layers (0 gives a linear critic).
        activation: ``leaky_relu`` (slope 0.2), ``relu``, ``elu``, ``gelu``, ``silu`` or ``tanh``.
        norm: ``none`` or ``layer`` normalisation after each hidden Linear. ``batch`` is
            accepted but discouraged: it couples the samples of a batch, which breaks the
            per-sample gradient norm of WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028) and
            lets D tell real and fake batches apart by their statistics.
        spectral_norm: wrap every Linear in spectral normalisation (Miyato et al. 2018,
            arXiv:1802.05957), which bounds D's Lipschitz constant.
        pack: PacGAN packing degree m (Lin et al. 2018, arXiv:1712.04086): m consecutive
            samples (each with its condition) are concatenated into one input of width
            m * (in_dim + cond_dim), so D sees sets of samples and penalises mode collapse.
            The batch size must be divisible by m.
        minibatch_std: append the minibatch standard deviation of the last hidden features,
            averaged over features, as one extra feature before the output layer (Karras et al.
            2018, arXiv:1710.10196, sec. 3): a cheap minibatch-discrimination signal.

    Shapes:
        ``forward(x, cond=None)``: x (B, in_dim) or (B, *in_dim), cond (B, cond_dim) or None
        -> (B // pack,).

    >>> d = MLPDiscriminator(in_dim=2, hidden=8, depth=1, pack=2)
    >>> d(torch.zeros(6, 2)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        *,
        in_dim: int | tuple[int, ...],
        cond_dim: int = 0,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "leaky_relu",
        norm: str = "none",
        spectral_norm: bool = False,
        pack: int = 1,
        minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = (in_dim,) if isinstance(in_dim, int) else tuple(in_dim)
        self.in_dim = math.prod(self.in_shape)
        check_positive(in_dim=min(self.in_shape), hidden=hidden, pack=pack)
        check_non_negative(cond_dim=cond_dim, depth=depth)
        self.cond_dim = cond_dim
        self.pack = pack
        self.minibatch_std = minibatch_std
        in_features = pack * (self.in_dim + cond_dim)
        self.trunk = mlp_blocks(
            in_features, hidden=hidden, depth=depth, activation=activation, norm=norm
        )
        width = hidden if depth else in_features
        self.head = nn.Linear(width + int(minibatch_std), 1)
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logits (B // pack,) for samples x (B, *in_shape) with condition cond (B, cond_dim)."""
        check_features(x, self.in_shape, "x")
        cond = check_cond(cond, self.cond_dim, x.shape[0])
        h = x.flatten(1) if cond is None else torch.cat([x.flatten(1), cond], dim=1)
        h = self.trunk(pack_batch(h, self.pack))
        if self.minibatch_std:
            h = minibatch_std(h)
        return self.head(h).squeeze(1)
