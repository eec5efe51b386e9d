"""Building blocks shared by the models, each defined once.

Look-ups by name (``activation``, ``normalization``, ``output_activation``) raise
:class:`~physgan.errors.ConfigError` (a ``ValueError``) that lists the known names. The tensor
helpers (``check_cond``, ``pack_batch``, ``minibatch_std``) are pure functions. Only
``init_dcgan_weights`` and ``add_spectral_norm`` (its power-iteration start vectors) draw random
numbers, from torch's global generator like every ``nn.Module`` constructor; nothing is random at
import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from physgan.errors import ConfigError
from physgan.registry import Registry

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "OUTPUT_ACTIVATIONS",
    "activation",
    "add_spectral_norm",
    "check_cond",
    "check_features",
    "check_non_negative",
    "check_positive",
    "init_dcgan_weights",
    "minibatch_std",
    "mlp_blocks",
    "normalization",
    "output_activation",
    "pack_batch",
    "sample_latent",
]

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.register("relu")(nn.ReLU)
# Slope 0.2 as in DCGAN (arXiv:1511.06434), not torch's default 0.01.
ACTIVATIONS.register("leaky_relu")(partial(nn.LeakyReLU, 0.2))
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)
ACTIVATIONS.register("silu")(nn.SiLU)
ACTIVATIONS.register("tanh")(nn.Tanh)

NORMS: Registry[Callable[[int], nn.Module]] = Registry("norm")
NORMS.register("none")(lambda num_features: nn.Identity())
NORMS.register("batch")(nn.BatchNorm1d)
NORMS.register("layer")(nn.LayerNorm)

OUTPUT_ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("output activation")
OUTPUT_ACTIVATIONS.register("linear")(nn.Identity)
OUTPUT_ACTIVATIONS.register("relu")(nn.ReLU)
OUTPUT_ACTIVATIONS.register("softplus")(nn.Softplus)
OUTPUT_ACTIVATIONS.register("tanh")(nn.Tanh)


def activation(name: str) -> nn.Module:
    """A fresh hidden-layer activation module by name.

    Args:
        name: one of ``elu, gelu, leaky_relu`` (slope 0.2), ``relu, silu, tanh``.

    >>> activation("leaky_relu")
    LeakyReLU(negative_slope=0.2)
    """
    return ACTIVATIONS.get(name)()


def normalization(name: str, num_features: int) -> nn.Module:
    """A fresh normalisation layer for (B, num_features) inputs by name.

    Args:
        name: ``none`` (identity), ``batch`` (BatchNorm1d) or ``layer`` (LayerNorm).
        num_features: width F of the (B, F) features it normalises.

    >>> normalization("layer", 3).normalized_shape
    (3,)
    """
    return NORMS.get(name)(num_features)


def output_activation(name: str) -> nn.Module:
    """A fresh output squashing module by name: ``linear`` (identity), ``relu``, ``softplus``
    or ``tanh``.

    >>> output_activation("softplus")(torch.zeros(1))
    tensor([0.6931])
    """
    return OUTPUT_ACTIVATIONS.get(name)()


def check_positive(**values: int) -> None:
    """Raise ConfigError unless every keyword value is an int >= 1."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")


def check_non_negative(**values: int) -> None:
    """Raise ConfigError unless every keyword value is an int >= 0."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")


def mlp_blocks(
    in_features: int,
    *,
    hidden: int,
    depth: int,
    activation: str,
    norm: str,
) -> nn.Sequential:
    """``depth`` blocks of Linear -> norm -> activation, each ``hidden`` wide.

    Args:
        in_features: width of the (B, in_features) input.
        hidden: width of every hidden layer.
        depth: number of hidden layers; 0 gives an identity (output width ``in_features``).
        activation: name of the activation (see :func:`activation`).
        norm: name of the normalisation (see :func:`normalization`).

    Returns:
        A module mapping (B, in_features) to (B, hidden), or to (B, in_features) if depth is 0.

    >>> mlp_blocks(2, hidden=4, depth=1, activation="relu", norm="none")
    Sequential(
      (0): Linear(in_features=2, out_features=4, bias=True)
      (1): Identity()
      (2): ReLU()
    )
    """
    # Look the names up before the loop so that a typo fails even when depth is 0.
    make_norm, make_activation = NORMS.get(norm), ACTIVATIONS.get(activation)
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), make_norm(hidden), make_activation()]
        width = hidden
    return nn.Sequential(*layers)


_SPECTRAL_NORM_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap, in place, the weight of every Linear and Conv layer inside ``module`` in spectral
    normalisation, so that its largest singular value is 1 (Miyato et al. 2018,
    arXiv:1802.05957).

    Uses ``torch.nn.utils.parametrizations.spectral_norm``: one power iteration per forward in
    train mode; convolution kernels are normalised as (out_channels, -1) matrices. Call it after
    any custom weight initialisation, since the parametrisation keeps the weight as
    ``parametrizations.weight.original``.

    Returns:
        ``module`` itself.

    >>> add_spectral_norm(nn.Sequential(nn.Linear(2, 3)))[0].parametrizations.weight.original.shape
    torch.Size([3, 2])
    """
    for layer in list(module.modules()):
        if isinstance(layer, _SPECTRAL_NORM_TYPES):
            spectral_norm(layer)
    return module


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016, arXiv:1511.06434), for ``model.apply``.

    Linear and (transposed) convolution weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02),
    all biases 0. Draws from torch's global generator (seed it with ``torch.manual_seed``).
    """
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_features(x: Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise ValueError unless ``x`` has shape (B, *shape) with B >= 1."""
    if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
        expected = ", ".join(["B", *map(str, shape)])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(x.shape)}")


def check_cond(cond: Tensor | None, cond_dim: int, batch_size: int) -> Tensor | None:
    """Check the condition against a model's ``cond_dim``; return it unchanged.

    Args:
        cond: (B, cond_dim) condition (one-hot class or normalised physics parameters), or None.
        cond_dim: the model's condition width; 0 means unconditional.
        batch_size: B of the tensor the condition goes with.

    Raises:
        ValueError: cond given to an unconditional model, missing for a conditional one, or of
            the wrong shape.

    >>> check_cond(None, 0, 5) is None
    True
    """
    if cond_dim == 0:
        if cond is not None:
            raise ValueError("cond given, but the model is unconditional (cond_dim=0)")
        return None
    if cond is None:
        raise ValueError(
            f"cond of shape (B, {cond_dim}) is required: the model has cond_dim={cond_dim}"
        )
    if tuple(cond.shape) != (batch_size, cond_dim):
        raise ValueError(
            f"cond must have shape ({batch_size}, {cond_dim}), got {tuple(cond.shape)}"
        )
    return cond


def pack_batch(x: Tensor, pack: int) -> Tensor:
    """PacGAN packing (Lin et al. 2018, arXiv:1712.04086): concatenate ``pack`` consecutive
    samples along axis 1.

    Args:
        x: (B, C, ...) features or images; B must be divisible by ``pack``.
        pack: number of samples per packed input.

    Returns:
        (B // pack, pack * C, ...): row i holds samples i*pack, ..., i*pack + pack - 1 in order.

    >>> pack_batch(torch.arange(4.0).reshape(4, 1), 2)
    tensor([[0., 1.],
            [2., 3.]])
    """
    batch_size = x.shape[0]
    if batch_size % pack:
        raise ValueError(f"batch size {batch_size} is not divisible by pack={pack}")
    return x.reshape(batch_size // pack, pack * x.shape[1], *x.shape[2:])


def minibatch_std(features: Tensor, eps: float = 1e-8) -> Tensor:
    """Append the minibatch standard deviation as one extra feature (Karras et al. 2018,
    arXiv:1710.10196, sec. 3).

    The per-feature standard deviation across the batch (population std, ``eps`` under the
    root so the gradient is finite at zero), averaged over all features and positions, is
    appended as a constant channel.

    Args:
        features: (B, C) or (B, C, H, W).
        eps: added to the variance before the square root.

    Returns:
        (B, C + 1) or (B, C + 1, H, W).

    >>> minibatch_std(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    tensor([[0., 1., 1.],
            [2., 3., 1.]])
    """
    std = torch.sqrt(features.var(dim=0, correction=0) + eps)
    extra = std.mean().expand(features.shape[0], 1, *features.shape[2:])
    return torch.cat([features, extra], dim=1)


def sample_latent(
    n: int, latent_dim: int, categories: int = 0, *, generator: torch.Generator | None = None
) -> Tensor:
    """z = [eps, one_hot(c)]: eps ~ N(0, I) (n, latent_dim), c ~ Uniform{0..categories-1}.

    A categorical code lets a generator place separate modes without continuous bridges of
    probability between them (InfoGAN's categorical code, Chen et al. 2016, arXiv:1606.03657,
    without the mutual-information term). ``categories = 0`` gives the plain Gaussian latent.

    >>> sample_latent(3, 2, 4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 6])
    """
    device = None if generator is None else generator.device  # draws on the generator's device
    eps = torch.randn(n, latent_dim, generator=generator, device=device)
    if not categories:
        return eps
    code = torch.randint(categories, (n,), generator=generator, device=device)
    return torch.cat([eps, torch.nn.functional.one_hot(code, categories).to(eps.dtype)], dim=1)
