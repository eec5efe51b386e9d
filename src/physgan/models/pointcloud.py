"""Permutation-equivariant point-cloud generator and discriminator for jets (EPiC-GAN).

Architecture of EPiC-GAN (Buhmann, Kasieczka and Thaler 2023, arXiv:2301.08128): every layer
first updates a small global vector from masked mean and sum pooling of the particles, then
updates each particle with an MLP that also sees the global vector. Particles are a set: the
generator is permutation equivariant and the discriminator permutation invariant.

Clouds use the layout of :mod:`physgan.data.jets`: (B, N, features + 1), the last channel the
mask (a particle where mask > 0.5, padding otherwise; padded rows are all zero). Unlike the
original code, which batches jets of equal multiplicity, variable multiplicity is handled with
the mask: padded particles take no part in any pooling, so they never influence a real one.
The condition (B, cond_dim), e.g. a normalised jet pT and multiplicity, is concatenated to the
input of every global update (and, in the discriminator, of the output head).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from physgan.models.layers import (
    activation,
    add_spectral_norm,
    check_cond,
    check_features,
    check_non_negative,
    check_positive,
    minibatch_std,
    mlp_blocks,
    pack_batch,
)
from physgan.models.registry import DISCRIMINATORS, GENERATORS

__all__ = [
    "EPiCDiscriminator",
    "EPiCGenerator",
    "EPiCLayer",
    "masked_pool",
    "multiplicity_counts",
]

# Leaky ReLU (slope 0.2, the project's default) throughout, as EPiC-GAN uses leaky ReLUs.
_ACTIVATION = "leaky_relu"


def _cat(*parts: Tensor | None) -> Tensor:
    """Concatenate along the last axis, skipping None (an absent condition)."""
    return torch.cat([p for p in parts if p is not None], dim=-1)


def masked_pool(h: Tensor, mask: Tensor) -> Tensor:
    """Masked mean and sum pooling of particle features over the set axis.

    The sum is divided by the padded size N (a constant), so it stays O(1) for any N and still
    carries the multiplicity k (sum / N = mean * k / N), which the mean alone does not.

    Args:
        h: (B, N, C) per-particle features.
        mask: (B, N, 1) float, 1 for real particles and 0 for padding.

    Returns:
        (B, 2C): [mean over real particles (0 for an empty set), sum over real particles / N].

    >>> h = torch.tensor([[[2.0], [4.0], [100.0]]])
    >>> masked_pool(h, torch.tensor([[[1.0], [1.0], [0.0]]]))
    tensor([[3., 2.]])
    """
    total = (h * mask).sum(dim=1)
    count = mask.sum(dim=1).clamp(min=1.0)
    return torch.cat([total / count, total / h.shape[1]], dim=-1)


def multiplicity_counts(particles: np.ndarray) -> np.ndarray:
    """Counts of each multiplicity k = 0..N in clouds (n, N, F + 1), for ``set_multiplicity``.

    >>> cloud = np.zeros((3, 2, 4))
    >>> cloud[0, :, 3] = 1.0
    >>> cloud[1, 0, 3] = 1.0
    >>> multiplicity_counts(cloud).tolist()
    [1, 1, 1]
    """
    k = (np.asarray(particles)[..., -1] > 0.5).sum(axis=1)
    return np.bincount(k, minlength=np.shape(particles)[1] + 1)


class EPiCLayer(nn.Module):
    """One equivariant point-cloud (EPiC) layer (arXiv:2301.08128, fig. 1).

    Global update: g' = act(W2 act(W1 [mean(h), sum(h) / N, g, cond]) + g), pooling over the
    real particles only. Local update of each particle: h' = act(W4 act(W3 [h, g']) + h).

    Shapes:
        ``forward(g, h, mask, cond=None)``: g (B, global_dim), h (B, N, hidden), mask
        (B, N, 1) float, cond (B, cond_dim) or None -> (g' (B, global_dim), h' (B, N, hidden)).
        Padded rows of h' are not zeroed (they are finite and ignored downstream).

    >>> layer = EPiCLayer(hidden=8, global_dim=2)
    >>> g, h = layer(torch.zeros(3, 2), torch.zeros(3, 5, 8), torch.ones(3, 5, 1))
    >>> tuple(g.shape), tuple(h.shape)
    ((3, 2), (3, 5, 8))
    """

    def __init__(self, *, hidden: int, global_dim: int, cond_dim: int = 0) -> None:
        super().__init__()
        check_positive(hidden=hidden, global_dim=global_dim)
        check_non_negative(cond_dim=cond_dim)
        blocks = {"hidden": hidden, "depth": 1, "activation": _ACTIVATION, "norm": "none"}
        self.global_hidden = mlp_blocks(2 * hidden + global_dim + cond_dim, **blocks)
        self.global_out = nn.Linear(hidden, global_dim)
        self.local_hidden = mlp_blocks(hidden + global_dim, **blocks)
        self.local_out = nn.Linear(hidden, hidden)
        self.act = activation(_ACTIVATION)

    def forward(
        self, g: Tensor, h: Tensor, mask: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Updated (global, particles); see the class docstring for shapes."""
        pooled = masked_pool(h, mask)
        g = self.act(self.global_out(self.global_hidden(_cat(pooled, g, cond))) + g)
        g_each = g.unsqueeze(1).expand(-1, h.shape[1], -1)
        h = self.act(self.local_out(self.local_hidden(torch.cat([h, g_each], dim=-1))) + h)
        return g, h


@GENERATORS.register("epic")
class EPiCGenerator(nn.Module):
    """EPiC-GAN generator: per-particle noise -> particle clouds of a sampled multiplicity.

    Architecture (arXiv:2301.08128): per-particle noise -> Linear(hidden); a global seed ->
    MLP -> global vector (global_dim); ``layers`` x :class:`EPiCLayer`, each with a skip
    connection to its inputs; per-particle Linear(features). All randomness is in z: the
    global seed is the masked sum of the real particles' noise divided by sqrt(k), which is
    exactly N(0, I) for k >= 1 and permutation invariant. The condition joins every global
    update.

    The multiplicity k of each jet is drawn in :meth:`sample_latent` from the categorical
    distribution in the buffer ``multiplicity`` (probabilities of k = 0..N, saved in the
    state dict; default: always N); set it from the training data with
    :meth:`set_multiplicity`. Real particles come first in z (mask 1 for rows < k), but the
    generated particles are not pT-ordered: sort them if a consumer needs that order. With
    ``multiplicity_cond`` set, k is instead column ``multiplicity_cond`` of the condition (in
    units set by :meth:`set_multiplicity_condition`): a jet is generated with exactly the
    number of particles it is conditioned on, whatever z's mask says.

    Args:
        n_particles: N, the padded number of particles per jet.
        features: per-particle features generated (3: eta_rel, phi_rel, pt_rel).
        latent_dim: per-particle noise width.
        global_dim: width of the global vector.
        hidden: per-particle hidden width.
        layers: number of EPiC layers.
        cond_dim: width of the condition vector; 0 for an unconditional generator.
        multiplicity_cond: the column of the condition that holds the multiplicity, or None.

    Shapes:
        ``sample_latent(n)`` -> z (n, N, latent_dim + 1): noise, then the mask channel.
        ``forward(z, cond=None)``: z as above, cond (B, cond_dim) or None -> (B, N, features + 1):
        features for real particles, exact zeros for padded ones, then the mask (1 where
        z's mask > 0.5, else 0).

    >>> g = EPiCGenerator(n_particles=5, hidden=8, layers=1)
    >>> g(g.sample_latent(2, generator=torch.Generator().manual_seed(0))).shape
    torch.Size([2, 5, 4])
    """

    multiplicity: Tensor

    def __init__(
        self,
        *,
        n_particles: int,
        features: int = 3,
        latent_dim: int = 10,
        global_dim: int = 10,
        hidden: int = 128,
        layers: int = 6,
        cond_dim: int = 0,
        multiplicity_cond: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(
            n_particles=n_particles,
            features=features,
            latent_dim=latent_dim,
            global_dim=global_dim,
            hidden=hidden,
        )
        check_non_negative(layers=layers, cond_dim=cond_dim)
        if multiplicity_cond is not None and not 0 <= multiplicity_cond < cond_dim:
            raise ValueError(
                f"multiplicity_cond must be a column of the condition (0 to {cond_dim - 1}), "
                f"got {multiplicity_cond}"
            )
        self.multiplicity_cond = multiplicity_cond
        self.n_particles = n_particles
        self.features = features
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        blocks = {"depth": 1, "activation": _ACTIVATION, "norm": "none"}
        self.local_in = mlp_blocks(latent_dim, hidden=hidden, **blocks)
        self.global_in = nn.Sequential(
            mlp_blocks(latent_dim + cond_dim, hidden=hidden, **blocks),
            mlp_blocks(hidden, hidden=global_dim, **blocks),
        )
        self.layers = nn.ModuleList(
            EPiCLayer(hidden=hidden, global_dim=global_dim, cond_dim=cond_dim)
            for _ in range(layers)
        )
        self.head = nn.Linear(hidden, features)
        default = torch.zeros(n_particles + 1)
        default[n_particles] = 1.0
        self.register_buffer("multiplicity", default)
        if multiplicity_cond is not None:
            # (shift, scale): multiplicity = cond[:, multiplicity_cond] * scale + shift
            self.register_buffer("multiplicity_units", torch.tensor([0.0, 1.0]))

    @torch.no_grad()
    def set_multiplicity_condition(self, shift: float, scale: float) -> None:
        """Units of the multiplicity column of the condition: k = cond * scale + shift (e.g.
        the mean and std it was standardised with), rounded to the nearest integer in [0, N]."""
        if self.multiplicity_cond is None:
            raise ValueError("this generator takes no multiplicity from its condition")
        if not (np.isfinite(shift) and np.isfinite(scale) and scale > 0):
            raise ValueError(f"need a finite shift and scale > 0, got {shift}, {scale}")
        self.multiplicity_units.copy_(torch.tensor([shift, scale]))

    @torch.no_grad()
    def set_multiplicity(self, counts: np.ndarray | Tensor) -> None:
        """Set the multiplicity distribution from counts of k = 0, 1, ... (normalised here).

        Args:
            counts: (m,) non-negative counts with m <= N + 1 (missing high k count 0), e.g.
                :func:`multiplicity_counts` of the training clouds.

        Raises:
            ValueError: counts not 1-D, longer than N + 1, negative, non-finite or all zero.
        """
        counts_t = torch.as_tensor(np.asarray(counts, dtype=np.float64))
        if counts_t.ndim != 1 or not 1 <= counts_t.numel() <= self.n_particles + 1:
            raise ValueError(
                f"counts must have shape (m,) with 1 <= m <= n_particles + 1 = "
                f"{self.n_particles + 1}, got {tuple(counts_t.shape)}"
            )
        if not torch.isfinite(counts_t).all() or (counts_t < 0).any() or counts_t.sum() <= 0:
            raise ValueError("counts must be finite, non-negative and not all zero")
        probs = torch.zeros(self.n_particles + 1, dtype=torch.float64)
        probs[: counts_t.numel()] = counts_t / counts_t.sum()
        self.multiplicity.copy_(probs)

    def sample_latent(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        n_real: Tensor | None = None,
    ) -> Tensor:
        """n draws of z (n, N, latent_dim + 1): N(0, I) noise for the first k particles (zero
        rows after them) and the mask channel.

        The multiplicity k of each jet is drawn from ``multiplicity``, or taken from ``n_real``
        (n,) integers in [0, N] when given (e.g. the multiplicities of a real batch, or the ones
        a user asks for). A generator with ``multiplicity_cond`` draws noise for all N
        particles: its forward keeps the first k of them, k from the condition.
        """
        device = generator.device if generator is not None else torch.device("cpu")
        if n_real is None and self.multiplicity_cond is not None:
            n_real = torch.full((n,), self.n_particles, device=device)  # forward masks by cond
        if n_real is None:
            probs = self.multiplicity.detach().to(device, torch.float64)
            k = torch.multinomial(probs, n, replacement=True, generator=generator)
        else:
            k = torch.as_tensor(n_real, device=device)
            if (
                k.shape != (n,)
                or k.is_floating_point()
                or not 0 <= k.min() <= k.max() <= self.n_particles
            ):
                raise ValueError(
                    f"n_real must hold ({n},) integers in [0, {self.n_particles}], "
                    f"got {tuple(k.shape)} {k.dtype}"
                )
        eps = torch.randn(n, self.n_particles, self.latent_dim, generator=generator, device=device)
        mask = (torch.arange(self.n_particles, device=device) < k[:, None]).unsqueeze(-1)
        z = torch.cat([eps, torch.ones_like(eps[..., :1])], dim=-1) * mask
        return z.to(self.multiplicity.device)

    def condition_k(self, cond: Tensor) -> Tensor:
        """The multiplicities (B,) a condition (B, cond_dim) asks for, as integers in [0, N]."""
        shift, scale = self.multiplicity_units
        k = torch.round(cond[:, self.multiplicity_cond].float() * scale + shift)
        return k.clamp(0, self.n_particles).long()

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Clouds (B, N, features + 1) from z (B, N, latent_dim + 1) and cond (B, cond_dim)."""
        check_features(z, (self.n_particles, self.latent_dim + 1), "z")
        cond = check_cond(cond, self.cond_dim, z.shape[0])
        if self.multiplicity_cond is None:
            real = z[..., -1:] > 0.5
        else:
            positions = torch.arange(self.n_particles, device=z.device)
            real = (positions < self.condition_k(cond)[:, None]).unsqueeze(-1)
        mask = real.to(z.dtype)
        eps = torch.where(real, z[..., :-1], 0.0)
        seed = eps.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0).sqrt()
        g = self.global_in(_cat(seed, cond))
        h = self.local_in(eps)
        g_in, h_in = g, h
        for layer in self.layers:
            g, h = layer(g, h, mask, cond)
            g, h = g + g_in, h + h_in
        x = torch.where(real, self.head(h), 0.0)
        return torch.cat([x, mask], dim=-1)


@DISCRIMINATORS.register("epic")
class EPiCDiscriminator(nn.Module):
    """EPiC-GAN discriminator: a permutation-invariant score of particle clouds.

    Architecture (arXiv:2301.08128): per-particle MLP (2 layers, residual) -> global vector
    from masked mean and sum pooling -> ``layers`` x :class:`EPiCLayer` -> head MLP on
    [mean, sum / N of the particles, global vector, cond] -> logit. Padded particles
    (mask <= 0.5) are ignored entirely: whatever their values, the score is the same. Returns
    raw logits (no sigmoid): the loss decides how to read them.

    Args:
        n_particles: N, the padded number of particles per jet.
        features: per-particle features before the mask channel.
        global_dim: width of the global vector.
        hidden: per-particle hidden width (and the head's width).
        layers: number of EPiC layers.
        cond_dim: width of the condition vector; 0 for an unconditional discriminator.
        spectral_norm: wrap every Linear in spectral normalisation (Miyato et al. 2018,
            arXiv:1802.05957).
        pack: PacGAN packing degree m (Lin et al. 2018, arXiv:1712.04086): the pooled
            summaries of m consecutive jets are concatenated before the head.
        minibatch_std: append the minibatch std of the head's hidden features (Karras et al.
            2018, arXiv:1710.10196) before the output layer.

    Shapes:
        ``forward(x, cond=None)``: x (B, N, features + 1) with the mask last, cond
        (B, cond_dim) or None -> (B // pack,).

    >>> d = EPiCDiscriminator(n_particles=5, hidden=8, layers=1)
    >>> d(torch.zeros(2, 5, 4)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        *,
        n_particles: int,
        features: int = 3,
        global_dim: int = 10,
        hidden: int = 128,
        layers: int = 3,
        cond_dim: int = 0,
        spectral_norm: bool = False,
        pack: int = 1,
        minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        check_positive(
            n_particles=n_particles,
            features=features,
            global_dim=global_dim,
            hidden=hidden,
            pack=pack,
        )
        check_non_negative(layers=layers, cond_dim=cond_dim)
        self.n_particles = n_particles
        self.features = features
        self.cond_dim = cond_dim
        self.pack = pack
        self.minibatch_std = minibatch_std
        blocks = {"depth": 1, "activation": _ACTIVATION, "norm": "none"}
        self.local_in = mlp_blocks(features, hidden=hidden, **blocks)
        self.local_res = nn.Linear(hidden, hidden)
        self.global_in = nn.Sequential(
            mlp_blocks(2 * hidden + cond_dim, hidden=hidden, **blocks),
            mlp_blocks(hidden, hidden=global_dim, **blocks),
        )
        self.layers = nn.ModuleList(
            EPiCLayer(hidden=hidden, global_dim=global_dim, cond_dim=cond_dim)
            for _ in range(layers)
        )
        self.head_in = mlp_blocks(
            pack * (2 * hidden + global_dim + cond_dim), hidden=hidden, **blocks
        )
        self.head_res = nn.Linear(hidden, hidden)
        self.head_out = nn.Linear(hidden + int(minibatch_std), 1)
        self.act = activation(_ACTIVATION)
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logits (B // pack,) for clouds x (B, N, features + 1) with condition cond."""
        check_features(x, (self.n_particles, self.features + 1), "x")
        cond = check_cond(cond, self.cond_dim, x.shape[0])
        real = x[..., -1:] > 0.5
        mask = real.to(x.dtype)
        # torch.where, not a product, so that even non-finite padding cannot leak in.
        h = self.local_in(torch.where(real, x[..., :-1], 0.0))
        h = self.act(self.local_res(h) + h)
        g = self.global_in(_cat(masked_pool(h, mask), cond))
        for layer in self.layers:
            g, h = layer(g, h, mask, cond)
        summary = pack_batch(_cat(masked_pool(h, mask), g, cond), self.pack)
        out = self.head_in(summary)
        out = self.act(self.head_res(out) + out)
        if self.minibatch_std:
            out = minibatch_std(out)
        return self.head_out(out).squeeze(1)
