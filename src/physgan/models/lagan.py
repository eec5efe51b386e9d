"""Location-Aware GAN (LAGAN) generator and discriminator for 25x25 jet images.

The architecture of de Oliveira, Paganini and Nachman 2017 (arXiv:1701.05927), after the
authors' Keras code (lukedeo/adversarial-jets, ``models/networks/lagan.py`` and ``ops.py``), in
PyTorch and for any condition width. Its locally connected layers
(:class:`~physgan.models.layers.LocallyConnected2d`) learn a separate kernel per pixel, because a
jet image is not translation invariant: a pixel's position is its (eta, phi) relative to the jet
axis, and the leading subjet always sits at the centre.

Keras 1 defaults that the original relies on are kept: LeakyReLU slope 0.3 (torch's default is
0.01) and BatchNormalization with momentum 0.99 and epsilon 1e-3. Keras's momentum weights the
old running average, torch's the new batch, so Keras's 0.99 is torch's 0.01.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from physgan.errors import ConfigError
from physgan.models.layers import (
    OUTPUT_ACTIVATIONS,
    LocallyConnected2d,
    MinibatchDiscrimination,
    add_spectral_norm,
    check_cond,
    check_features,
    check_non_negative,
    check_positive,
    sample_latent,
    with_cond_channels,
)
from physgan.models.registry import DISCRIMINATORS, GENERATORS

__all__ = ["LAGANDiscriminator", "LAGANGenerator"]

# The layer sizes below are worked out for this image side only (as in the paper).
_IMAGE_SIZE = 25
_LEAKY_SLOPE = 0.3  # Keras 1 LeakyReLU() default
_BN_MOMENTUM = 0.01  # Keras 1 BatchNormalization(momentum=0.99), in torch's convention
_BN_EPS = 1e-3  # Keras 1 BatchNormalization(epsilon=1e-3); torch's default is 1e-5
_MINIBATCH_DIM = 10  # width of each minibatch-discrimination kernel (LAGAN's vspace_dim)


def _check_image_size(image_size: int) -> None:
    check_positive(image_size=image_size)
    if image_size != _IMAGE_SIZE:
        raise ConfigError(
            f"image_size must be {_IMAGE_SIZE} (LAGAN's layers are sized for 25x25 jet images), "
            f"got {image_size}"
        )


def _leaky_relu() -> nn.LeakyReLU:
    return nn.LeakyReLU(_LEAKY_SLOPE)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def _init_keras(layer: nn.Linear | nn.Conv2d, init: str = "glorot_uniform") -> None:
    """Keras 1 initialisation of a Linear or Conv2d (same fans as torch's), biases 0."""
    if init == "he_uniform":  # U(+-sqrt(6 / fan_in)), He et al. 2015, arXiv:1502.01852
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    else:  # U(+-sqrt(6 / (fan_in + fan_out))), Keras's default
        nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _local_block(
    in_channels: int, kernel: int, stride: int, size: int, batch_norm: bool, dropout: float
) -> list[nn.Module]:
    """D's block: Keras's ZeroPadding2D(kernel // 2) + valid LocallyConnected2D(8) ->
    LeakyReLU -> [BatchNorm] -> Dropout, on (in_channels, size, size) inputs."""
    local = LocallyConnected2d(
        in_channels, 8, kernel, input_size=size, stride=stride, padding=kernel // 2
    )
    norm = _batch_norm(8) if batch_norm else nn.Identity()
    return [local, _leaky_relu(), norm, nn.Dropout(dropout)]


@GENERATORS.register("lagan")
class LAGANGenerator(nn.Module):
    """Maps latent noise (and a condition) to 25x25 images with locally connected layers.

    Architecture (LAGAN, de Oliveira et al. 2017, arXiv:1701.05927): h = z * (cond @ E), the
    Hadamard product with a bias-free Linear(cond_dim -> latent_dim) of the condition (for a
    one-hot class this is LAGAN's Embedding; skipped when cond_dim is 0) -> Linear ->
    (2 * base_channels, 7, 7) -> Conv2d(base_channels, 5x5, same) -> LeakyReLU -> BatchNorm ->
    Upsample x2 (14x14) -> LocallyConnected2d(6, 5x5, zero padding 2) (14x14) -> LeakyReLU ->
    BatchNorm -> Upsample x2 (28x28) -> LocallyConnected2d(6, 3x3) (26x26) -> LeakyReLU ->
    LocallyConnected2d(channels, 2x2, no bias) (25x25) -> output activation. No activation after
    the first Linear, as in the original. Upsampling is nearest-neighbour (Keras's
    UpSampling2D); LeakyReLU slope 0.3 and BatchNorm momentum 0.99 / epsilon 1e-3 in Keras's
    convention (see the module docstring).

    Initialisation as in the Keras code: the Linear Glorot uniform, the Conv2d and the first two
    locally connected layers He uniform, the last locally connected layer and the condition
    map Glorot normal (fans as for a convolution of the same kernel; see
    :meth:`~physgan.models.layers.LocallyConnected2d.reset_parameters`), biases 0.

    Args:
        image_size: side of the output image in pixels; only 25 is supported.
        channels: number of output channels (1 for calorimeter energy deposits).
        latent_dim: width of the noise vector z (LAGAN: 200).
        cond_dim: width of the condition vector; 0 for an unconditional generator.
        base_channels: channels of the 5x5 convolution; the projection has twice as many
            (LAGAN: 64 and 128).
        output: ``relu`` (LAGAN), ``linear``, ``softplus`` or ``tanh``; ``relu`` keeps pixel
            intensities (energies) non-negative and empty pixels exactly 0.

    Shapes:
        ``forward(z, cond=None)``: z (B, latent_dim), cond (B, cond_dim) or None ->
        (B, channels, 25, 25).

    >>> g = LAGANGenerator(latent_dim=4, cond_dim=2, base_channels=4)
    >>> g(torch.zeros(3, 4), torch.eye(2)[[0, 1, 1]]).shape
    torch.Size([3, 1, 25, 25])
    """

    def __init__(
        self,
        *,
        image_size: int = _IMAGE_SIZE,
        channels: int = 1,
        latent_dim: int = 200,
        cond_dim: int = 0,
        base_channels: int = 64,
        output: str = "relu",
    ) -> None:
        super().__init__()
        _check_image_size(image_size)
        check_positive(channels=channels, latent_dim=latent_dim, base_channels=base_channels)
        check_non_negative(cond_dim=cond_dim)
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.cond_dim = cond_dim
        make_output = OUTPUT_ACTIVATIONS.get(output)

        self.embed = nn.Linear(cond_dim, latent_dim, bias=False) if cond_dim else None
        width = 2 * base_channels
        self.project = nn.Sequential(
            nn.Linear(latent_dim, width * 7 * 7), nn.Unflatten(1, (width, 7, 7))
        )
        conv = nn.Conv2d(width, base_channels, 5, padding=2)
        local1 = LocallyConnected2d(base_channels, 6, 5, input_size=14, padding=2)
        local2 = LocallyConnected2d(6, 6, 3, input_size=28)
        local3 = LocallyConnected2d(6, channels, 2, input_size=26, bias=False)
        self.blocks = nn.Sequential(
            conv,  # (width, 7, 7) -> (base_channels, 7, 7)
            _leaky_relu(),
            _batch_norm(base_channels),
            nn.Upsample(scale_factor=2),  # 14x14
            local1,  # -> (6, 14, 14)
            _leaky_relu(),
            _batch_norm(6),
            nn.Upsample(scale_factor=2),  # 28x28
            local2,  # -> (6, 26, 26)
            _leaky_relu(),
            local3,  # -> (channels, 25, 25)
        )
        self.output = make_output()

        _init_keras(self.project[0])
        _init_keras(conv, "he_uniform")
        local1.reset_parameters("he_uniform")
        local2.reset_parameters("he_uniform")
        local3.reset_parameters("glorot_normal")
        if self.embed is not None:  # Keras Embedding(init="glorot_normal")
            nn.init.xavier_normal_(self.embed.weight)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z ~ N(0, I), shape (n, latent_dim)."""
        return sample_latent(n, self.latent_dim, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Generate (B, channels, 25, 25) images from z (B, latent_dim)."""
        check_features(z, (self.latent_dim,), "z")
        cond = check_cond(cond, self.cond_dim, z.shape[0])
        h = z if self.embed is None else z * self.embed(cond)
        return self.output(self.blocks(self.project(h)))


@DISCRIMINATORS.register("lagan")
class LAGANDiscriminator(nn.Module):
    """Scores 25x25 images (and their condition) with locally connected layers and minibatch
    discrimination.

    Architecture (LAGAN, de Oliveira et al. 2017, arXiv:1701.05927): concat(image, cond
    broadcast to cond_dim constant channels) -> Conv2d(base_channels, 5x5, same) -> LeakyReLU
    -> Dropout -> LocallyConnected2d(8, 5x5, stride 2, zero padding 2) (13x13) -> LeakyReLU ->
    [BatchNorm] -> Dropout -> LocallyConnected2d(8, 5x5, zero padding 2) (13x13) -> LeakyReLU
    -> [BatchNorm] -> Dropout -> LocallyConnected2d(8, 3x3, stride 2, zero padding 1) (7x7) ->
    LeakyReLU -> [BatchNorm] -> Dropout -> AvgPool(2) (3x3) -> flatten (72 features) ->
    [MinibatchDiscrimination(kernels, 10)] -> Linear(1). Returns raw logits (no sigmoid): the
    loss reads them. LeakyReLU slope 0.3 and BatchNorm momentum 0.99 / epsilon 1e-3 in Keras's
    convention (see the module docstring); every weight Glorot uniform (Keras's default, fans
    as for a convolution), biases 0.

    Differences from the original: LAGAN's auxiliary (ACGAN) head, which predicts the class,
    is left out; D is conditioned on the class through input channels instead, as
    :class:`~physgan.models.dcgan.DCGANDiscriminator` is. Batch norm and minibatch
    discrimination couple the samples of a batch: a gradient penalty (WGAN-GP, R1) is then not
    per sample, and the score of an image depends on the batch it comes in (physgan's loop
    scores real and generated batches separately; LAGAN's Keras loop concatenated them).

    Args:
        image_size: side of the input image in pixels; only 25 is supported.
        channels: number of image channels.
        cond_dim: width of the condition vector; 0 for an unconditional discriminator.
        base_channels: channels of the 5x5 convolution (LAGAN: 32).
        batch_norm: batch norm after the three locally connected blocks (LAGAN: on).
        dropout: dropout probability after each block (LAGAN: 0.2).
        minibatch_kernels: minibatch-discrimination features (Salimans et al. 2016,
            arXiv:1606.03498; LAGAN: 20, each from a 10-wide projection); 0 turns it off.
        spectral_norm: wrap the Conv2d, the locally connected layers (normalised by their
            largest per-position spectral norm; see
            :func:`~physgan.models.layers.add_spectral_norm`), the minibatch projection and the
            output Linear in spectral normalisation (Miyato et al. 2018, arXiv:1802.05957).

    Shapes:
        ``forward(x, cond=None)``: x (B, channels, 25, 25), cond (B, cond_dim) or None -> (B,).

    >>> d = LAGANDiscriminator(cond_dim=2, base_channels=4)
    >>> d(torch.zeros(3, 1, 25, 25), torch.eye(2)[[0, 1, 1]]).shape
    torch.Size([3])
    """

    def __init__(
        self,
        *,
        image_size: int = _IMAGE_SIZE,
        channels: int = 1,
        cond_dim: int = 0,
        base_channels: int = 32,
        batch_norm: bool = True,
        dropout: float = 0.2,
        minibatch_kernels: int = 20,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        _check_image_size(image_size)
        check_positive(channels=channels, base_channels=base_channels)
        check_non_negative(cond_dim=cond_dim, minibatch_kernels=minibatch_kernels)
        if isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        self.image_size = image_size
        self.channels = channels
        self.cond_dim = cond_dim

        conv = nn.Conv2d(channels + cond_dim, base_channels, 5, padding=2)
        self.features = nn.Sequential(
            conv,  # (base_channels, 25, 25)
            _leaky_relu(),
            nn.Dropout(dropout),
            *_local_block(base_channels, 5, 2, 25, batch_norm, dropout),  # (8, 13, 13)
            *_local_block(8, 5, 1, 13, batch_norm, dropout),  # (8, 13, 13)
            *_local_block(8, 3, 2, 13, batch_norm, dropout),  # (8, 7, 7)
            nn.AvgPool2d(2),  # (8, 3, 3)
            nn.Flatten(),
        )
        n_features = 8 * 3 * 3
        self.minibatch = (
            MinibatchDiscrimination(
                n_features, kernels=minibatch_kernels, kernel_dim=_MINIBATCH_DIM
            )
            if minibatch_kernels
            else nn.Identity()
        )
        self.head = nn.Linear(n_features + minibatch_kernels, 1)
        _init_keras(conv)
        _init_keras(self.head)
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Logits (B,) for images x (B, channels, 25, 25) with condition cond (B, cond_dim)."""
        check_features(x, (self.channels, self.image_size, self.image_size), "x")
        x = with_cond_channels(x, check_cond(cond, self.cond_dim, x.shape[0]))
        return self.head(self.minibatch(self.features(x))).squeeze(1)
