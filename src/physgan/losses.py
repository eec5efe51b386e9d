"""GAN objectives and regularisers, chosen by name in the config (``loss: hinge``).

Each objective is a pair of functions of the discriminator's raw outputs (logits for the
probabilistic objectives, critic scores for ``wgan-gp``): ``d_loss(real, fake)`` for the
discriminator and ``g_loss(fake)`` for the generator, both means over the batch, in nats where
they are log-likelihoods. ``OBJECTIVES`` maps the YAML name to its :class:`Objective`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from physgan.registry import Registry

__all__ = [
    "OBJECTIVES",
    "Objective",
    "ObservableMMD",
    "gradient_penalty",
    "jsd_lower_bound",
    "mmd_squared",
    "r1_penalty",
]


class Objective(NamedTuple):
    """One adversarial objective: its two losses and whether D's output is a logit of P(real)."""

    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    probabilistic: bool


OBJECTIVES: Registry[Objective] = Registry("loss")


def _register(name: str, d_loss, g_loss, *, probabilistic: bool) -> None:
    OBJECTIVES.register(name)(Objective(d_loss, g_loss, probabilistic))


def _d_logistic(real: Tensor, fake: Tensor) -> Tensor:
    # -V(D, G): -E[log D(x)] - E[log(1 - D(G(z)))], with D = sigmoid(logit).
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_minimax(fake: Tensor) -> Tensor:
    # The lecture's generator: minimise E[log(1 - D(G(z)))] = -E[softplus(logit)].
    return -F.softplus(fake).mean()


def _g_nonsaturating(fake: Tensor) -> Tensor:
    # Maximise E[log D(G(z))]: strong gradients where D confidently rejects the fakes.
    return F.softplus(-fake).mean()


def _d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def _g_wasserstein(fake: Tensor) -> Tensor:
    return -fake.mean()


def _d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _d_lsgan(real: Tensor, fake: Tensor) -> Tensor:
    # Mao et al. 2017 (arXiv:1611.04076), a-b-c = 0-1-1 coding, factor 1/2.
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def _g_lsgan(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


# Goodfellow et al. 2014, arXiv:1406.2661 (both generator losses are from section 3).
_register("minimax", _d_logistic, _g_minimax, probabilistic=True)
_register("nonsaturating", _d_logistic, _g_nonsaturating, probabilistic=True)
# Gulrajani et al. 2017, arXiv:1704.00028; the penalty itself is `gradient_penalty`.
_register("wgan-gp", _d_wasserstein, _g_wasserstein, probabilistic=False)
# Lim and Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957.
_register("hinge", _d_hinge, _g_wasserstein, probabilistic=False)
_register("lsgan", _d_lsgan, _g_lsgan, probabilistic=False)


def _grad_norm_sq(outputs: Tensor, inputs: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


def r1_penalty(real_outputs: Tensor, real: Tensor) -> Tensor:
    """R1 = E_data[||grad_x D(x)||^2] / 2 (Mescheder et al. 2018, arXiv:1801.04406).

    ``real`` must have had ``requires_grad`` set before ``real_outputs = D(real)`` was computed,
    so the discriminator's forward pass on real data is shared with its loss. Multiply by the
    weight gamma yourself. With PacGAN packing the gradient is still taken per sample.
    """
    return 0.5 * _grad_norm_sq(real_outputs, real).mean()


def gradient_penalty(
    discriminator: Callable[..., Tensor],
    real: Tensor,
    fake: Tensor,
    cond: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    eps: Tensor | None = None,
) -> Tensor:
    """WGAN-GP penalty E[(||grad D(x_hat)|| - 1)^2] on random interpolates (arXiv:1704.00028).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per sample: the
    given ``eps`` (n,), else drawn from ``generator`` so the step stays seeded.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if eps is None:
        eps = torch.rand(shape, generator=generator, dtype=real.dtype, device=real.device)
    eps = eps.reshape(shape)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    # A small epsilon inside the root keeps the gradient finite where the norm is 0.
    norm = (_grad_norm_sq(discriminator(x_hat, cond), x_hat) + 1e-12).sqrt()
    return ((norm - 1.0) ** 2).mean()


def jsd_lower_bound(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """(V(D, G) + ln 4) / 2 in nats: a lower bound on JSD(p_data || p_g), equal at D = D*.

    ``V = E[log D(x)] + E[log(1 - D(G(z)))]`` with ``D = sigmoid(logit)``, from logits on
    held-out real samples and on generated ones (Goodfellow et al. 2014, arXiv:1406.2661).

    >>> z = torch.zeros(4)
    >>> round(float(jsd_lower_bound(z, z)), 6)  # D = 1/2 everywhere: V = -ln 4
    0.0
    """
    value = F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()
    return 0.5 * (value + math.log(4.0))


def mmd_squared(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    """MMD^2 between the 1-D samples ``x`` (n,) and ``y`` (m,): the biased (V-statistic)
    estimate under the sum of the Gaussian kernels exp(-(a - b)^2 / (2 sigma^2)), one per
    bandwidth sigma (Gretton et al. 2012). 0 for identical samples, at most 2 per kernel.

    >>> a = torch.tensor([0.0]); b = torch.tensor([1.0])
    >>> round(float(mmd_squared(a, b, [1.0])), 6)  # 2 - 2 exp(-1/2)
    0.786939
    """

    def mean_kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = (a[:, None] - b[None, :]) ** 2
        return sum(torch.exp(-d2 / (2.0 * s**2)).mean() for s in bandwidths)

    return mean_kernel(x, x) + mean_kernel(y, y) - 2.0 * mean_kernel(x, y)


class ObservableMMD:
    """A term of G's loss: the sum over observables of weight x MMD^2 between the observable's
    values on a generated and on a real batch. Butter, Plehn and Winterhalder
    (arXiv:1907.03764) add such an MMD on the masses of resonances, whose sharp peaks a GAN's
    discriminator alone learns slowly. ``terms``: (weight, observable, spread) each, the
    observable mapping a batch to values (n,), the spread that of its values on the training
    data; its kernels' bandwidths are the spread times 1/8, 1/4, 1/2 and 1: the narrow ones
    resolve a peak, the wide ones pull a shifted one back. ``per_class``: the batches' one-hot
    conditions name classes, and each class's generated samples are compared with the real ones
    of that class under the same kernels, the MMD^2s weighted by the class's share of the batch
    (the pooled batch can match while each class sits off, one one way, one the other).
    """

    FRACTIONS = (0.125, 0.25, 0.5, 1.0)

    def __init__(
        self,
        terms: Sequence[tuple[float, Callable[[Tensor], Tensor], float]],
        per_class: bool = False,
    ) -> None:
        self.terms = [(w, f, [spread * k for k in self.FRACTIONS]) for w, f, spread in terms]
        self.per_class = per_class

    def __call__(self, fake: Tensor, real: Tensor, cond: Tensor | None = None) -> Tensor:
        """The term for a generated and a real batch with the same conditions ``cond`` (one-hot
        classes (n, classes), needed when ``per_class``)."""
        if not self.per_class:
            return self._pooled(fake, real)
        if cond is None:
            raise ValueError("a per-class MMD needs the batches' one-hot conditions")
        labels = cond.argmax(dim=1)
        total = fake.new_zeros(())
        # Indexing by class waits for a GPU once a step (the classes are few; a CPU loses nothing).
        for c in labels.unique():
            chosen = labels == c
            share = chosen.float().mean()
            total = total + share * self._pooled(fake[chosen], real[chosen])
        return total

    def _pooled(self, fake: Tensor, real: Tensor) -> Tensor:
        total = fake.new_zeros(())
        for w, f, widths in self.terms:
            a, b = f(fake), f(real)
            if a.numel() and b.numel():  # an observable may have no values (no lit pixel)
                total = total + w * mmd_squared(a, b, widths)
        return total
