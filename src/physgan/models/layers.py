"""Building blocks shared by the models, each defined once.

Look-ups by name (``activation``, ``normalization``, ``output_activation``) raise
:class:`~physgan.errors.ConfigError` (a ``ValueError``) that lists the known names. The tensor
helpers (``check_cond``, ``pack_batch``, ``minibatch_std``, ``minibatch_similarity``) are pure
functions. Only module constructors, ``init_dcgan_weights``, ``LocallyConnected2d.reset_parameters``
and ``add_spectral_norm`` (its power-iteration start vectors) draw random numbers, from torch's
global generator like every ``nn.Module`` constructor; nothing is random at import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from physgan.errors import ConfigError
from physgan.registry import Registry

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "OUTPUT_ACTIVATIONS",
    "DrawnTotal",
    "LeakyGradientReLU",
    "LocallyConnected2d",
    "MinibatchDiscrimination",
    "activation",
    "add_spectral_norm",
    "check_cond",
    "check_features",
    "check_non_negative",
    "check_positive",
    "init_dcgan_weights",
    "minibatch_similarity",
    "minibatch_std",
    "mlp_blocks",
    "normalization",
    "output_activation",
    "pack_batch",
    "relu_leaky_gradient",
    "sample_latent",
    "with_cond_channels",
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
    train mode; convolution kernels are normalised as (out_channels, -1) matrices. A
    :class:`LocallyConnected2d` weight is divided by the largest spectral norm over its
    positions' (out_channels, in_channels * kh * kw) matrices, also by one power iteration per
    position and forward: that is the layer's spectral norm when the patches do not overlap, and
    otherwise the same approximation as torch's for a convolution. Call it after any custom
    weight initialisation, since the parametrisation keeps the weight as
    ``parametrizations.weight.original``.

    Returns:
        ``module`` itself.

    >>> add_spectral_norm(nn.Sequential(nn.Linear(2, 3)))[0].parametrizations.weight.original.shape
    torch.Size([3, 2])
    """
    for layer in list(module.modules()):
        if isinstance(layer, _SPECTRAL_NORM_TYPES):
            spectral_norm(layer)
        elif isinstance(layer, LocallyConnected2d):
            parametrize.register_parametrization(
                layer, "weight", _PositionwiseSpectralNorm(layer.weight)
            )
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


def with_cond_channels(x: Tensor, cond: Tensor | None) -> Tensor:
    """Images x (B, C, H, W) with each condition column as one more constant channel:
    (B, C + cond_dim, H, W); x itself when ``cond`` is None."""
    if cond is None:
        return x
    maps = cond[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, maps], dim=1)


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


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """(value, value) for an int, the two ints of a pair; ConfigError for anything else."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


LocalInit = Literal["glorot_uniform", "glorot_normal", "he_uniform"]


class LocallyConnected2d(nn.Module):
    """A 2-D convolution without weight sharing: every output pixel has its own kernel and bias.

    Keras's ``LocallyConnected2D``, which LAGAN (de Oliveira et al. 2017, arXiv:1701.05927)
    uses because a jet image is not translation invariant: a pixel's position is its (eta, phi)
    relative to the jet axis. With ``patch_p(x)`` the (in_channels, kh, kw) window of zero-padded
    ``x`` that a Conv2d of the same kernel size, stride and padding sees at output position
    p = i * out_w + j, flattened in ``F.unfold``'s (channel, row, column) order,

        y[b, o, i, j] = bias[o, i, j] + sum_k weight[p, o, k] * patch_p(x)[b, k].

    A Conv2d is the special case of one kernel (and bias) repeated at every position. Keras's
    ``ZeroPadding2D`` followed by a ``valid`` ``LocallyConnected2D`` is ``padding`` here.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: (kh, kw), or one int for a square kernel.
        input_size: (H, W) of the input, or one int for a square; sets the number of kernels.
        stride: step between windows, as in Conv2d.
        padding: zeros added on each side of the input, as in Conv2d.
        bias: learn a bias per output channel and position.

    Attributes:
        weight: (out_h * out_w, out_channels, in_channels * kh * kw), dimensionless.
        bias: (out_channels, out_h, out_w), in the input's units, or None.
        output_size: (out_h, out_w) = ((H + 2 * padding - kh) // stride + 1, likewise for W).

    Shapes:
        ``forward(x)``: (B, in_channels, H, W) -> (B, out_channels, out_h, out_w).

    >>> layer = LocallyConnected2d(2, 3, 5, input_size=14, padding=2)
    >>> layer(torch.zeros(4, 2, 14, 14)).shape, tuple(layer.weight.shape)
    (torch.Size([4, 3, 14, 14]), (196, 3, 50))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        input_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.input_size = _pair(input_size, "input_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        check_positive(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=min(self.kernel_size),
            input_size=min(self.input_size),
            stride=min(self.stride),
        )
        check_non_negative(padding=min(self.padding))
        self.in_channels = in_channels
        self.out_channels = out_channels
        out_h, out_w = (
            (size + 2 * pad - k) // step + 1
            for size, pad, k, step in zip(
                self.input_size, self.padding, self.kernel_size, self.stride, strict=True
            )
        )
        if out_h < 1 or out_w < 1:
            raise ConfigError(
                f"kernel {self.kernel_size} does not fit the padded input: input_size "
                f"{self.input_size}, padding {self.padding}"
            )
        self.output_size = (out_h, out_w)
        fan_in = in_channels * math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(out_h * out_w, out_channels, fan_in))
        self.bias = nn.Parameter(torch.empty(out_channels, out_h, out_w)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, init: LocalInit = "glorot_uniform") -> None:
        """Draw the weights as Keras does for a convolution, biases 0.

        Each position's kernel gets the fans of the convolution it replaces, fan_in =
        in_channels * kh * kw and fan_out = out_channels * kh * kw (Keras 1, which LAGAN used,
        took sqrt(numel) of its 3-D weight as both fans instead): ``glorot_uniform`` (Keras's
        default) U(+-sqrt(6 / (fan_in + fan_out))), ``glorot_normal`` N(0, 2 / (fan_in +
        fan_out)) untruncated as in Keras 1, ``he_uniform`` U(+-sqrt(6 / fan_in)) (Glorot &
        Bengio 2010; He et al. 2015, arXiv:1502.01852).
        """
        kernel = math.prod(self.kernel_size)
        fan_in, fan_out = self.in_channels * kernel, self.out_channels * kernel
        with torch.no_grad():
            if init == "glorot_uniform":
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                self.weight.uniform_(-bound, bound)
            elif init == "glorot_normal":
                self.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            elif init == "he_uniform":
                bound = math.sqrt(6.0 / fan_in)
                self.weight.uniform_(-bound, bound)
            else:
                raise ConfigError(
                    f"unknown init {init!r}; choose from: glorot_normal, glorot_uniform, he_uniform"
                )
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """(B, out_channels, out_h, out_w) from x (B, in_channels, H, W)."""
        check_features(x, (self.in_channels, *self.input_size), "x")
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        out = torch.einsum("bkp,pok->bop", patches, self.weight)
        out = out.reshape(x.shape[0], self.out_channels, *self.output_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"input_size={self.input_size}, stride={self.stride}, padding={self.padding}, "
            f"bias={self.bias is not None}"
        )


class _PositionwiseSpectralNorm(nn.Module):
    """Parametrisation W -> W / max_p sigma(W_p) of a (P, rows, cols) weight, sigma(W_p) the
    largest singular value of position p's matrix, estimated like torch's ``spectral_norm``:
    one power iteration per position and forward in train mode (15 at the start), stored
    vectors in eval mode."""

    def __init__(self, weight: Tensor, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps
        positions, rows, cols = weight.shape
        u = F.normalize(weight.new_empty(positions, rows).normal_(), dim=-1, eps=eps)
        v = F.normalize(weight.new_empty(positions, cols).normal_(), dim=-1, eps=eps)
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)
        self._power_method(weight, 15)

    @torch.no_grad()
    def _power_method(self, weight: Tensor, n_iterations: int) -> None:
        # In place, as torch's spectral_norm does, so that replicas share the vectors.
        for _ in range(n_iterations):
            u = torch.einsum("prc,pc->pr", weight, self._v)
            self._u.copy_(F.normalize(u, dim=-1, eps=self.eps))
            v = torch.einsum("prc,pr->pc", weight, self._u)
            self._v.copy_(F.normalize(v, dim=-1, eps=self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            self._power_method(weight, 1)
        # Clones: the in-place updates of the next forward must not touch saved tensors.
        u, v = self._u.clone(), self._v.clone()
        sigma = torch.einsum("pr,prc,pc->p", u, weight, v)
        return weight / sigma.max()


def minibatch_similarity(m: Tensor, max_elements: int = 1 << 22) -> Tensor:
    """Minibatch-discrimination features (Salimans et al. 2016, arXiv:1606.03498, sec. 3.2).

    o[i, b] = sum_j exp(-||m[i, b] - m[j, b]||_1), the sum over every j in the batch including
    j = i, as in LAGAN's ``ops.py`` (de Oliveira et al. 2017, arXiv:1701.05927): each o >= 1,
    and a batch of one gives exactly 1.

    Args:
        m: (B, kernels, kernel_dim) projections M of the samples' features.
        max_elements: the rows i are taken in chunks of at most this many (kernels, i, j)
            distances at a time, which bounds the memory of a large evaluation batch.

    Returns:
        (B, kernels).

    >>> minibatch_similarity(torch.tensor([[[0.0]], [[1.0]], [[1.0]]]))
    tensor([[1.7358],
            [2.3679],
            [2.3679]])
    """
    if m.ndim != 3:
        raise ValueError(f"m must have shape (B, kernels, kernel_dim), got {tuple(m.shape)}")
    per_kernel = m.transpose(0, 1).contiguous()  # (kernels, B, kernel_dim)
    kernels, batch_size = per_kernel.shape[:2]
    rows = max(1, max_elements // (kernels * batch_size))
    similarity = [
        torch.cdist(part, per_kernel, p=1).neg().exp().sum(dim=-1)
        for part in per_kernel.split(rows, dim=1)
    ]
    return torch.cat(similarity, dim=1).transpose(0, 1)


class MinibatchDiscrimination(nn.Module):
    """Appends minibatch-discrimination features to each sample's features (Salimans et al.
    2016, arXiv:1606.03498, sec. 3.2), as LAGAN's ``ops.py`` does (arXiv:1701.05927).

    M = x @ T reshaped to (B, kernels, kernel_dim), o = :func:`minibatch_similarity` (M), output
    concat(x, o). T is a bias-free ``nn.Linear`` (so :func:`add_spectral_norm` covers it): a
    bias, which LAGAN's ``Dense3D`` has, cancels in every difference M_i - M_j. T starts Glorot
    uniform with fans (in_features, kernels * kernel_dim). LAGAN concatenates (o, x); the order
    only permutes the inputs of the next layer.

    Args:
        in_features: width F of the (B, F) input.
        kernels: number of similarity features appended.
        kernel_dim: width of each kernel's projection.

    Shapes:
        ``forward(x)``: (B, in_features) -> (B, in_features + kernels). Each row depends on
        the whole batch: permuting the batch permutes the rows.

    >>> MinibatchDiscrimination(4, kernels=3, kernel_dim=2)(torch.zeros(5, 4))[0]
    tensor([0., 0., 0., 0., 5., 5., 5.], grad_fn=<SelectBackward0>)
    """

    def __init__(self, in_features: int, *, kernels: int, kernel_dim: int) -> None:
        super().__init__()
        check_positive(in_features=in_features, kernels=kernels, kernel_dim=kernel_dim)
        self.in_features = in_features
        self.kernels = kernels
        self.kernel_dim = kernel_dim
        self.projection = nn.Linear(in_features, kernels * kernel_dim, bias=False)
        nn.init.xavier_uniform_(self.projection.weight)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_features + kernels) from x (B, in_features)."""
        check_features(x, (self.in_features,), "x")
        m = self.projection(x).view(-1, self.kernels, self.kernel_dim)
        return torch.cat([x, minibatch_similarity(m)], dim=1)


def relu_leaky_gradient(x: Tensor, leak: float) -> Tensor:
    """relu(x) in the forward pass, with gradient ``leak`` (not 0) where x < 0.

    A ReLU output pixel below 0 gets no gradient, so a pixel that G has switched off never
    learns to come back on: sparse images collapse onto their few lit pixels. With a leak the
    discriminator's gradient still reaches it (a straight-through estimator; the image is
    unchanged).

    >>> x = torch.tensor([-2.0, 3.0], requires_grad=True)
    >>> y = relu_leaky_gradient(x, 0.1)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([0.0, 3.0], [0.10000000149011612, 1.0])
    """
    if leak == 0:
        return F.relu(x)
    below = x.clamp(max=0)
    return F.relu(x) + leak * (below - below.detach())


class LeakyGradientReLU(nn.Module):
    """:func:`relu_leaky_gradient` as a module (an image generator's output)."""

    def __init__(self, leak: float) -> None:
        super().__init__()
        self.leak = leak

    def forward(self, x: Tensor) -> Tensor:
        return relu_leaky_gradient(x, self.leak)


class DrawnTotal(nn.Module):
    """A ReLU output whose images total a value drawn from the training images' totals.

    An image's total is the sum of its pixels to the power ``power``: 1 for pixels in linear
    units, 2 for the square roots of pT that ``data.transform: sqrt`` trains on (the sum of
    their squares is the total pT over the scale).

    The total is a function of the first latent coordinate z_0 ~ N(0, 1): the quantile
    Q_c(Phi(z_0)) of the training totals of the image's class c (linear between ``n_quantiles``
    stored quantiles, so a total never leaves the training range), where c is read off a one-hot
    condition (one distribution for an unconditional generator). A generator whose total is
    drawn this way matches the training distribution of the total by construction, as the jets'
    generators get their pT and multiplicity from the data. The quantiles live in the buffer
    ``quantiles`` (rows: classes), saved with the weights; :meth:`fit` sets them.

    The pixels are relu(a + relu(delta - max a)) of the pre-activations a, multiplied by
    (total / sum(pixels^power))^(1 / power): the brightest pixel stays lit (at least
    ``delta``), because a ReLU image that has gone all dark gets no gradient and, rescaled,
    would stay dark for good. ``leak`` > 0 gives the other pixels a gradient too
    (:func:`relu_leaky_gradient`).

    Shapes:
        ``forward(a, z0, cond=None)``: pre-activations a (B, C, H, W), z0 (B,), cond
        (B, classes) one-hot or None -> (B, C, H, W) non-negative, each of its drawn total.

    >>> total = DrawnTotal(classes=1)
    >>> total.fit(torch.tensor([2.0, 4.0]))
    >>> total(torch.ones(1, 1, 2, 2), torch.zeros(1)).sum().item()
    3.0
    """

    quantiles: Tensor

    def __init__(
        self,
        classes: int,
        n_quantiles: int = 128,
        delta: float = 1e-3,
        power: float = 1.0,
        leak: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive(classes=classes)
        if n_quantiles < 2 or not delta > 0 or not power > 0 or not leak >= 0:
            raise ValueError(
                f"need n_quantiles >= 2, delta > 0, power > 0 and leak >= 0, got {n_quantiles}, "
                f"{delta}, {power}, {leak}"
            )
        self.delta = delta
        self.power = power
        self.leak = leak
        self.register_buffer("quantiles", torch.ones(classes, n_quantiles))

    @torch.no_grad()
    def fit(self, totals: Tensor, cond: Tensor | None = None) -> None:
        """Set each class's quantiles from the training images' totals (n,) and their one-hot
        classes (n, classes), or one distribution from all totals if ``cond`` is None.

        Raises:
            ValueError: totals negative or non-finite, cond not one-hot rows, a class empty.
        """
        totals = torch.as_tensor(totals, dtype=torch.float64).flatten()
        if not (torch.isfinite(totals).all() and (totals >= 0).all()):
            raise ValueError("image totals must be finite and non-negative")
        classes, n_quantiles = self.quantiles.shape
        if cond is None:
            labels = torch.zeros(totals.numel(), dtype=torch.long)
        else:
            cond = torch.as_tensor(cond, dtype=torch.float64)
            one_hot = cond.shape == (totals.numel(), classes) and (
                ((cond == 0) | (cond == 1)).all() and (cond.sum(1) == 1).all()
            )
            if not one_hot:
                raise ValueError(f"totals are drawn per class: cond must be one-hot (n, {classes})")
            labels = cond.argmax(1)
        levels = torch.linspace(0, 1, n_quantiles, dtype=torch.float64)
        for c in range(classes):
            mine = totals[labels == c]
            if not mine.numel():
                raise ValueError(f"no training image of class {c} to draw its total from")
            self.quantiles[c] = torch.quantile(mine, levels).to(self.quantiles)

    def forward(self, a: Tensor, z0: Tensor, cond: Tensor | None = None) -> Tensor:
        """Images from pre-activations ``a``, each scaled to its drawn total."""
        n_quantiles = self.quantiles.shape[1]
        if cond is None:  # one class; ones_like keeps the batch axis dynamic in an export
            cond = torch.ones_like(z0).unsqueeze(1)
        table = cond @ self.quantiles
        position = 0.5 * (1 + torch.erf(z0 / math.sqrt(2))) * (n_quantiles - 1)
        index = position.floor().clamp(0, n_quantiles - 2)
        weight = (position - index).unsqueeze(1)
        index = index.long().unsqueeze(1)
        lo, hi = table.gather(1, index), table.gather(1, index + 1)
        total = (lo + weight * (hi - lo)).reshape(-1, 1, 1, 1)
        brightest = a.flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
        images = relu_leaky_gradient(a + F.relu(self.delta - brightest), self.leak)
        current = images.pow(self.power).sum(dim=(1, 2, 3), keepdim=True)
        return images * (total / current).pow(1 / self.power)
