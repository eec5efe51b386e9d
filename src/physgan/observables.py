"""Jet observables in torch, differentiable in what a generator outputs: the relative mass of
particle clouds, and the mass, tau_21 and pixel-intensity spectrum of jet images. Each is what
the metrics compute in NumPy (:func:`physgan.metrics.jetfeatures.jet_features`,
:func:`physgan.data.images.image_mass`, :func:`physgan.data.images.image_tau21`,
:func:`physgan.data.images.pixel_log_pt`), for loss terms that compare their distributions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from physgan.data.images import pixel_centres

__all__ = ["image_mass", "image_tau21", "pixel_log_pt", "relative_jet_mass"]


def _root(x2: Tensor, eps: float = 1e-12) -> Tensor:
    # eps inside the root keeps the gradient finite at 0: a mass of 0 reads 1e-6 GeV (or of the
    # jet pT), and a pixel on an axis of tau_N is 1e-8 away from it.
    return (x2.clamp_min(0.0) + eps).sqrt()


def _mass(pt: Tensor, eta: Tensor, phi: Tensor) -> Tensor:
    """Mass of massless particles summed over the last axis."""
    px = (pt * torch.cos(phi)).sum(-1)
    py = (pt * torch.sin(phi)).sum(-1)
    pz = (pt * torch.sinh(eta)).sum(-1)
    energy = (pt * torch.cosh(eta)).sum(-1)
    return _root(energy**2 - px**2 - py**2 - pz**2)


def relative_jet_mass(particles: Tensor) -> Tensor:
    """Mass (n,) of clouds (n, N, 4) [eta_rel, phi_rel, pt_rel, mask], in units of the jet pT:
    the particles massless, rows with mask < 0.5 and negative pt_rel left out."""
    pt = torch.where(particles[..., 3] >= 0.5, particles[..., 2].clamp_min(0.0), 0.0)
    return _mass(pt, particles[..., 0], particles[..., 1])


def _grid(images: Tensor, extent: float) -> tuple[Tensor, Tensor, Tensor]:
    """Pixel pT (n, P*P) of images (n, [1,] P, P) and the pixels' eta', phi' (P*P,)."""
    size = images.shape[-1]
    centres = torch.as_tensor(pixel_centres(size, extent), dtype=images.dtype)
    phi, eta = torch.meshgrid(centres, centres, indexing="ij")
    pt = images.reshape(images.shape[0], size * size)
    return pt, eta.reshape(-1).to(images.device), phi.reshape(-1).to(images.device)


def image_mass(images: Tensor, extent: float = 1.25) -> Tensor:
    """Invariant mass (GeV) of images (n, [1,] P, P) of pixel pT (GeV), each pixel a massless
    particle at its centre."""
    pt, eta, phi = _grid(images, extent)
    return _mass(pt, eta, phi)


def pixel_log_pt(images: Tensor, points: int = 512) -> Tensor:
    """log10 of the pT (GeV) of the non-zero pixels of ``images``, sorted: all of them, or, where
    there are more than ``points``, that many evenly spaced order statistics (the smallest and
    the largest among them), so that kernel sums over a batch stay small. The gradient reaches
    the lit pixels only; an unlit one stays unlit.
    """
    values = torch.sort(torch.log10(images[images > 0])).values
    if values.numel() <= points:
        return values
    index = torch.linspace(0, values.numel() - 1, points, device=values.device).round().long()
    return values[index]


def _weighted_mean(pt: Tensor, mask: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """pT-weighted mean (n, 2) of the masked pixels' points, and their pT (n, 1); the mean is
    the weighted sum where that pT is 0."""
    w = pt * mask
    total = w.sum(1, keepdim=True)
    return (w @ points) / torch.where(total > 0, total, 1.0), total


def _kmeans_axes(pt: Tensor, points: Tensor, iterations: int) -> list[tuple[Tensor, Tensor]]:
    """The two tau_2 axes' pixels (n, P*P) at the last k-means step that gave each axis any
    pT, and their seeds (n, 2): the brightest pixel and the one farthest from it in pT dR^2.
    No gradient: which pixel joins which axis is a choice."""
    eta, phi = points[:, 0], points[:, 1]

    def squared(axis: Tensor) -> Tensor:
        # The metrics' distance exactly (two squares added, then the root), so that ties go
        # the same way; written out, as a reduction over an axis of 2 is slow on the CPU.
        return (eta - axis[:, :1]) ** 2 + (phi - axis[:, 1:]) ** 2

    first = points[pt.argmax(1)]
    seeds = [first, points[(pt * squared(first)).argmax(1)]]  # (n, 2) each
    axes = list(seeds)
    masks = [torch.zeros_like(pt, dtype=torch.bool) for _ in axes]
    for _ in range(iterations):
        second = squared(axes[1]).sqrt() < squared(axes[0]).sqrt()  # a tie: the first (argmin)
        for j, joined in enumerate((~second, second)):
            mean, total = _weighted_mean(pt, joined, points)
            axes[j] = torch.where(total > 0, mean, axes[j])
            masks[j] = torch.where(total > 0, joined, masks[j])
    return list(zip(masks, seeds, strict=True))


def image_tau21(images: Tensor, extent: float = 1.25, iterations: int = 10) -> Tensor:
    """tau_2 / tau_1 (beta = 1) of images (n, [1,] P, P) of pixel pT; 0 for an empty image.

    The axes are found as :func:`physgan.data.images.image_tau21` finds them: one at the pT
    centroid; two by pT-weighted k-means from the brightest pixel and the one farthest from it
    in pT dR^2. The axes move with the pixels' pT (weighted means); which pixel seeds or joins
    which axis does not, so the gradient is the derivative wherever those choices stay put.
    """
    pt, eta, phi = _grid(images, extent)
    points = torch.stack([eta, phi], dim=-1)  # (P*P, 2)
    centroid = (pt @ points) / pt.sum(1, keepdim=True).clamp_min(1e-12)
    tau1 = (pt * _root(((points[None] - centroid[:, None]) ** 2).sum(-1), 1e-16)).sum(1)
    axes = []
    # With the assignment fixed, each axis is the pT-weighted mean of its pixels (with the
    # gradient), or its seed pixel where it never had one: the k-means' last step exactly.
    for mask, seed in _kmeans_axes(pt.detach(), points, iterations):
        mean, _ = _weighted_mean(pt, mask, points)
        axes.append(torch.where(mask.any(1, keepdim=True), mean, seed))
    dist = torch.stack([_root(((points[None] - a[:, None]) ** 2).sum(-1), 1e-16) for a in axes], -1)
    return (pt * dist.amin(-1)).sum(1) / tau1.clamp_min(1e-12)
