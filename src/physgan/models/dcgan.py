"""Convolutional generator and discriminator for square images such as jet images.

DCGAN architecture (Radford et al. 2016, arXiv:1511.06434), extended to any image size: the
generator upsamples from 4x4 to the smallest power-of-two multiple of 4 that covers the image
and centre-crops, so the 25x25 LAGAN jet images (de Oliveira et al. 2017, arXiv:1701.05927)
need no padding of the data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from physgan import observables as jet_observables
from physgan.errors import ConfigError
from physgan.models.layers import (
    OUTPUT_ACTIVATIONS,
    DrawnTotal,
    LeakyGradientReLU,
    add_spectral_norm,
    check_cond,
    check_features,
    check_non_negative,
    check_positive,
    init_dcgan_weights,
    minibatch_std,
    pack_batch,
    sample_latent,
    with_cond_channels,
)
from physgan.models.registry import DISCRIMINATORS, GENERATORS

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]

# Side of the generator's first feature map and the size the discriminator reduces to.
_BASE_SIZE = 4


def _n_upsamplings(image_size: int) -> int:
    """Smallest n >= 0 with 4 * 2**n >= image_size."""
    n = 0
    while _BASE_SIZE * 2**n < image_size:
        n += 1
    return n


def _upsampling(kind: str, width: int, out_width: int) -> list[nn.Module]:
    """Layers that double a (width, h, h) map's side to (out_width, 2h, 2h); no bias (a
    BatchNorm follows)."""
    if kind == "transpose":
        return [nn.ConvTranspose2d(width, out_width, 4, stride=2, padding=1, bias=False)]
    return [
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(width, out_width, 3, padding=1, bias=False),
    ]


def _nhwc(x: Tensor) -> Tensor:
    """``x`` (B, C, H, W) laid out channels-last: oneDNN's CPU convolutions run on it in about
    0.8x the time of a training step (benchmarks/image_step.py); the values are the same up to
    rounding."""
    return x.contiguous(memory_format=torch.channels_last)


@GENERATORS.register("dcgan")
class DCGANGenerator(nn.Module):
    """Maps latent noise (and a condition) to images with transposed (or resize) convolutions.

    Architecture, with n the smallest integer such that 4 * 2**n >= image_size:
    concat(z, cond) -> Linear -> (base_channels * 2**(n-1), 4, 4) -> BatchNorm + ReLU ->
    n x [2x upsampling (``upsample``) -> BatchNorm -> ReLU], halving the
    channels down to ``base_channels`` -> Conv2d(3x3) to ``channels`` -> centre crop to
    ``image_size`` -> output activation. Weights use the DCGAN N(0, 0.02) initialisation.

    Args:
        image_size: side of the square output image in pixels (need not be a power of two).
        channels: number of output channels (1 for calorimeter energy deposits).
        latent_dim: width of the noise vector z.
        cond_dim: width of the condition vector; 0 for an unconditional generator.
        base_channels: channels of the last upsampling block; earlier blocks have 2x, 4x, ...
        output: ``linear``, ``relu``, ``softplus`` or ``tanh``; ``relu`` or ``softplus`` keep
            pixel intensities (energies) non-negative.
        draw_total: a ReLU output scaled to a total drawn from the training images' totals
            (per class of a one-hot condition; :class:`~physgan.models.layers.DrawnTotal`, set
            by :meth:`set_totals`), a function of z's first coordinate; needs output ``relu``.
        total_power: the total is the sum of the pixels to this power (2 for square roots).
        upsample: ``transpose`` (ConvTranspose2d, kernel 4, stride 2: the DCGAN's) or
            ``resize`` (nearest-neighbour 2x upsampling, then a 3x3 Conv2d: no checkerboard
            pattern from overlapping strides; Odena et al. 2016, doi:10.23915/distill.00003).
        relu_leak: with output ``relu``, the gradient below 0 (the image stays a ReLU's): a
            switched-off pixel can still learn to come on
            (:func:`~physgan.models.layers.relu_leaky_gradient`). On jet images, 0.1 lit every
            pixel (``benchmarks/jet_image_recipe.py``, row 12).

    Shapes:
        ``forward(z, cond=None)``: z (B, latent_dim), cond (B, cond_dim) or None ->
        (B, channels, image_size, image_size).

    >>> g = DCGANGenerator(image_size=25, latent_dim=4, base_channels=4)
    >>> g(torch.zeros(2, 4)).shape
    torch.Size([2, 1, 25, 25])
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        channels: int = 1,
        latent_dim: int = 100,
        cond_dim: int = 0,
        base_channels: int = 64,
        output: str = "linear",
        draw_total: bool = False,
        total_power: float = 1.0,
        upsample: str = "transpose",
        relu_leak: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive(
            image_size=image_size,
            channels=channels,
            latent_dim=latent_dim,
            base_channels=base_channels,
        )
        check_non_negative(cond_dim=cond_dim)
        if upsample not in ("transpose", "resize"):
            raise ValueError(f"upsample is transpose or resize, not {upsample!r}")
        if (relu_leak and output != "relu") or not relu_leak >= 0:
            raise ValueError(f"relu_leak >= 0 needs output relu, got {relu_leak} with {output}")
        if draw_total and output != "relu":
            raise ValueError(f"draw_total needs output relu, not {output}")
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        make_output = OUTPUT_ACTIVATIONS.get(output)

        n_up = _n_upsamplings(image_size)
        width = base_channels * 2 ** max(n_up - 1, 0)
        self.project = nn.Sequential(
            # No bias: the BatchNorm that follows would cancel it.
            nn.Linear(latent_dim + cond_dim, width * _BASE_SIZE**2, bias=False),
            nn.Unflatten(1, (width, _BASE_SIZE, _BASE_SIZE)),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        for _ in range(n_up):
            out_width = max(width // 2, base_channels)
            blocks += [
                *_upsampling(upsample, width, out_width),
                nn.BatchNorm2d(out_width),
                nn.ReLU(),
            ]
            width = out_width
        self.upsample = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(width, channels, 3, padding=1)
        self.output = LeakyGradientReLU(relu_leak) if relu_leak else make_output()
        self.apply(init_dcgan_weights)
        self.total = (
            DrawnTotal(max(cond_dim, 1), power=total_power, leak=relu_leak) if draw_total else None
        )
        # Pixels cropped from each side of the generated (4 * 2**n)^2 map.
        self._crop = (_BASE_SIZE * 2**n_up - image_size) // 2

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z ~ N(0, I), shape (n, latent_dim)."""
        return sample_latent(n, self.latent_dim, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Generate (B, channels, image_size, image_size) images from z (B, latent_dim)."""
        check_features(z, (self.latent_dim,), "z")
        cond = check_cond(cond, self.cond_dim, z.shape[0])
        h = z if cond is None else torch.cat([z, cond], dim=1)
        image = self.to_image(self.upsample(_nhwc(self.project(h))))
        start, stop = self._crop, self._crop + self.image_size
        image = image[:, :, start:stop, start:stop]
        return self.output(image) if self.total is None else self.total(image, z[:, 0], cond)

    def set_totals(self, totals: Tensor | np.ndarray, cond: Tensor | np.ndarray | None) -> None:
        """Fit the drawn totals (``draw_total``) to the training images' totals (n,) in the
        generator's units and their one-hot conditions (n, cond_dim), or None."""
        if self.total is None:
            raise ValueError("this generator does not draw its images' totals")
        self.total.fit(torch.as_tensor(totals), None if cond is None else torch.as_tensor(cond))


@DISCRIMINATORS.register("dcgan")
class DCGANDiscriminator(nn.Module):
    """Scores images (and their condition) with strided convolutions.

    Architecture: concat(image, [log(1 + image / log_pixels)], cond broadcast to cond_dim
    constant channels) -> PacGAN packing of ``pack`` consecutive samples along the channel axis
    -> Conv2d(kernel 4, stride 2, padding 1) + LeakyReLU(0.2) blocks, doubling the channels from
    ``base_channels``, until the map is at most 4x4 -> optional minibatch-std channel ->
    flatten -> [concat the image's standardised mass and tau_21] -> Linear(1). No batch norm,
    so gradient penalties stay per sample. Returns raw logits (no sigmoid). Weights use the
    DCGAN N(0, 0.02) initialisation.

    Args:
        image_size: side of the square input image in pixels.
        channels: number of image channels.
        cond_dim: width of the condition vector; 0 for an unconditional discriminator.
        base_channels: channels of the first convolution; each later one doubles them.
        spectral_norm: wrap every Conv2d and the Linear in spectral normalisation (Miyato et
            al. 2018, arXiv:1802.05957).
        pack: PacGAN packing degree m (Lin et al. 2018, arXiv:1712.04086): m consecutive
            images (each with its condition channels) are stacked along the channel axis into
            one input of m * (channels + cond_dim) channels. The batch size must be divisible
            by m.
        minibatch_std: append the minibatch standard deviation of the last feature map,
            averaged over channels and pixels, as one extra constant channel before the
            output layer (Karras et al. 2018, arXiv:1710.10196, sec. 3).
        log_pixels: if > 0, each image channel x also enters as log(1 + x / log_pixels), x in
            the data's normalised units: the soft pixels of a high-dynamic-range image, which
            barely move the linear channel, spread over a range D can resolve. Needs x >= 0.
        observables: the last layer also sees each jet image's mass and tau_21
            (:mod:`physgan.observables`, differentiable) of the pixels relu(x)^pixel_power, in
            the units of the data's scale, standardised by :meth:`set_observables`: D compares
            the physics a convolution sees only through many pixels, and G gets their gradient
            (as CaloGAN's D gets its images' energies, Paganini et al. 2018,
            arXiv:1705.02355). One channel, ``pack`` 1.
        observables_hidden: if > 0, the standardised mass and tau_21 and the condition pass
            through two LeakyReLU layers of this width, whose features the last layer sees in
            place of the two values: a linear last layer can only weigh an observable's mean,
            this lets D find where, per class, the generated distribution differs. Needs
            ``observables``.
        pixel_power: the power of the normalised pixels proportional to pT (2 for
            ``data.transform: sqrt``).

    Shapes:
        ``forward(x, cond=None)``: x (B, channels, image_size, image_size), cond (B, cond_dim)
        or None -> (B // pack,).

    >>> d = DCGANDiscriminator(image_size=25, base_channels=4, pack=2)
    >>> d(torch.zeros(4, 1, 25, 25)).shape
    torch.Size([2])
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        channels: int = 1,
        cond_dim: int = 0,
        base_channels: int = 64,
        spectral_norm: bool = False,
        pack: int = 1,
        minibatch_std: bool = False,
        log_pixels: float = 0.0,
        observables: bool = False,
        observables_hidden: int = 0,
        pixel_power: float = 1.0,
    ) -> None:
        super().__init__()
        check_positive(
            image_size=image_size, channels=channels, base_channels=base_channels, pack=pack
        )
        check_non_negative(cond_dim=cond_dim, observables_hidden=observables_hidden)
        if observables_hidden and not observables:
            raise ConfigError("discriminator observables_hidden needs observables: true")
        if not log_pixels >= 0:
            raise ConfigError(f"log_pixels must be >= 0, got {log_pixels!r}")
        if not pixel_power > 0:
            raise ConfigError(f"pixel_power must be > 0, got {pixel_power!r}")
        if observables and (channels != 1 or pack != 1):
            raise ConfigError(
                f"discriminator observables need one-channel images and pack 1, got {channels}"
                f" channels and pack {pack}"
            )
        self.image_size = image_size
        self.channels = channels
        self.cond_dim = cond_dim
        self.pack = pack
        self.minibatch_std = minibatch_std
        self.log_pixels = log_pixels
        self.observables = observables
        self.pixel_power = pixel_power
        if observables:  # mass and tau_21: subtracted, then divided by (set_observables)
            self.register_buffer("observable_shift", torch.zeros(2))
            self.register_buffer("observable_scale", torch.ones(2))
        self.observable_net = (
            nn.Sequential(
                nn.Linear(2 + cond_dim, observables_hidden),
                nn.LeakyReLU(0.2),
                nn.Linear(observables_hidden, observables_hidden),
                nn.LeakyReLU(0.2),
            )
            if observables_hidden
            else None
        )
        observable_width = (observables_hidden or 2) if observables else 0

        inputs = channels * (2 if log_pixels > 0 else 1) + cond_dim
        width, out_width, size = pack * inputs, base_channels, image_size
        blocks: list[nn.Module] = []
        while size > _BASE_SIZE:
            blocks += [
                nn.Conv2d(width, out_width, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
            ]
            width, out_width, size = out_width, 2 * out_width, size // 2
        self.downsample = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear((width + int(minibatch_std)) * size**2 + observable_width, 1)
        )
        self.apply(init_dcgan_weights)
        if spectral_norm:
            add_spectral_norm(self)

    observable_shift: Tensor
    observable_scale: Tensor

    def jet_observables(self, x: Tensor) -> Tensor:
        """Mass and tau_21 (B, 2) of images x (B, 1, H, W) in network units, unstandardised."""
        pt = x.clamp(min=0) ** self.pixel_power
        return torch.stack([jet_observables.image_mass(pt), jet_observables.image_tau21(pt)], 1)

    @torch.no_grad()
    def set_observables(self, x: Tensor) -> None:
        """Standardise the ``observables`` by their mean and spread over training images x
        (n, 1, H, W) in network units."""
        values = self.jet_observables(x.to(self.observable_shift.device))
        self.observable_shift.copy_(values.mean(0))
        self.observable_scale.copy_(values.std(0).clamp_min(1e-12))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logits (B // pack,) for images x (B, channels, image_size, image_size)."""
        check_features(x, (self.channels, self.image_size, self.image_size), "x")
        images = x
        if self.log_pixels > 0:
            # clamp: a linear-output G may emit small negative pixels early in training
            x = torch.cat([x, torch.log1p(x.clamp(min=0) / self.log_pixels)], dim=1)
        cond = check_cond(cond, self.cond_dim, x.shape[0])
        x = with_cond_channels(x, cond)
        h = self.downsample(_nhwc(pack_batch(x, self.pack)))
        if self.minibatch_std:
            h = minibatch_std(h)
        if self.observables:
            values = (self.jet_observables(images) - self.observable_shift) / self.observable_scale
            if self.observable_net is not None:
                if cond is not None:
                    values = torch.cat([values, cond], 1)
                values = self.observable_net(values)
            h = torch.cat([h.flatten(1), values], 1)
        return self.head(h).squeeze(1)
