"""The density ratio p_data / p_g of jet images on their observables, for rejection sampling.

A classifier trained to tell a class's training images (label 1) from as many of its
generator's (label 0) on a few observables estimates, through its logit, log(p_data / p_g) of
those observables: the lecture's D* = p_data / (p_data + p_g), here of a small network that can
be trained to convergence in a minute, where the GAN's own D sees every pixel and never gets
there. Rejection sampling with this logit (``sample.ratio: observables``) keeps each generated
image with probability exp(logit - M), so the observables' joint distribution becomes the
data's wherever G covers it. DCTR (Andreassen and Nachman, arXiv:1907.08209) reweights
simulations by such a classifier, DCTRGAN (Diefenbacher et al., arXiv:2009.03796) a GAN's
samples; rejection turns the weights into unweighted images.

The observables (``OBSERVABLES``), of images in GeV: jet mass, tau_21, total pT and the number
of lit pixels in each of seven bins of log10 pT.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from physgan.data.images import image_mass, image_tau21
from physgan.settle import settle

__all__ = ["OBSERVABLES", "ObservableRatio", "fit_observable_ratio", "image_observables"]

# log10 pT (GeV) edges of the bins in which each image's lit pixels are counted
LOG_PT_EDGES = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
OBSERVABLES = (
    "mass",
    "tau21",
    "pt",
    *(f"lit_log_pt_{i}" for i in range(len(LOG_PT_EDGES) + 1)),
)


def image_observables(images: np.ndarray) -> np.ndarray:
    """(n, 10) float32 observables (``OBSERVABLES``) of (n, 1, P, P) images in GeV: jet mass,
    tau_21 (NaN for an empty image), total pT, and the number of lit pixels in each bin of
    log10 pT between ``LOG_PT_EDGES`` (open at both ends): summed over images, the counts are
    the pixel-intensity spectrum.

    >>> image = np.zeros((1, 1, 5, 5)); image[0, 0, 2, 1] = image[0, 0, 2, 3] = 100.0
    >>> image_observables(image).astype(float).round(2).tolist()
    [[104.22, 0.0, 200.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]]
    """
    x = np.asarray(images, dtype=np.float64)[:, 0]
    lit = x > 0
    with np.errstate(divide="ignore"):
        bins = np.digitize(np.log10(np.where(lit, x, 1.0)), LOG_PT_EDGES)
    counts = [(lit & (bins == i)).sum(axis=(1, 2)) for i in range(len(LOG_PT_EDGES) + 1)]
    columns = [image_mass(x), image_tau21(x), x.sum(axis=(1, 2)), *counts]
    return np.column_stack(columns).astype(np.float32)


class ObservableRatio(nn.Module):
    """Logit of real against generated from standardised observables (NaN read as the mean)
    and a one-hot class: two SiLU layers of ``hidden`` units.

    ``forward(features, cond=None)``: features (B, 10) from :func:`image_observables`, cond
    (B, cond_dim) or None -> (B,) logits, an estimate of log(p_data / p_g).
    """

    def __init__(self, cond_dim: int = 0, hidden: int = 64) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.register_buffer("mean", torch.zeros(len(OBSERVABLES)))
        self.register_buffer("std", torch.ones(len(OBSERVABLES)))
        self.net = nn.Sequential(
            nn.Linear(len(OBSERVABLES) + cond_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: Tensor, cond: Tensor | None = None) -> Tensor:
        z = torch.nan_to_num((features - self.mean) / self.std, nan=0.0)
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"ObservableRatio needs a condition of width {self.cond_dim}")
            z = torch.cat([z, cond], dim=1)
        return self.net(z).squeeze(1)


def fit_observable_ratio(
    real: np.ndarray,
    generated: np.ndarray,
    cond: np.ndarray | None = None,
    *,
    steps: int = 3000,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> ObservableRatio:
    """An :class:`ObservableRatio` trained ``steps`` Adam steps (the learning rate decaying
    linearly to 0, so that it settles) on the binary cross-entropy of ``real`` (label 1)
    against ``generated`` (label 0), (n, 10) observables each; ``cond``: the (n, cond_dim)
    one-hot classes that both share row by row (generated with the real images' classes), or
    None. Batches hold as many real as generated rows; in eval mode, on the CPU."""
    if real.shape != generated.shape or real.ndim != 2 or real.shape[1] != len(OBSERVABLES):
        raise ValueError(
            f"real and generated need the same shape (n, {len(OBSERVABLES)}), got "
            f"{real.shape} and {generated.shape}"
        )
    gen = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # the initial weights
    model = ObservableRatio(0 if cond is None else cond.shape[1])
    torch.random.set_rng_state(torch_state)
    r, g = torch.as_tensor(real), torch.as_tensor(generated)
    model.mean.copy_(torch.nanmean(r, dim=0))
    model.std.copy_(torch.sqrt(torch.nanmean((r - model.mean) ** 2, dim=0)).clamp(min=1e-6))
    c = None if cond is None else torch.as_tensor(cond, dtype=torch.float32)
    labels = torch.cat([torch.ones(batch_size // 2), torch.zeros(batch_size // 2)])
    loss_fn = nn.BCEWithLogitsLoss()

    def batch_loss() -> Tensor:
        a = torch.randint(len(r), (batch_size // 2,), generator=gen)
        b = torch.randint(len(g), (batch_size // 2,), generator=gen)
        both = None if c is None else torch.cat([c[a], c[b]])
        return loss_fn(model(torch.cat([r[a], g[b]]), both), labels)

    settle(model, batch_loss, steps=steps, lr=lr)
    return model.eval()
