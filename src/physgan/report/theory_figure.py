"""The theory demo's figure: a 1-D data density, Gaussian fits, and D* against each fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from physgan.atomic import atomic_path
from physgan.data.toy import GaussianMixture
from physgan.theory import GaussianFit, optimal_discriminator

__all__ = ["save_figure", "theory_figure"]

_STYLES = {"forward_kl": ("-", 3.0), "reverse_kl": ("-", 1.5), "jsd": ("--", 1.5)}
_LABELS = {
    "forward_kl": "min KL(p_data || q) = max likelihood",
    "reverse_kl": "min KL(q || p_data)",
    "jsd": "min JSD(p_data, q)",
}


def theory_figure(
    p_data: GaussianMixture, fits: Mapping[str, GaussianFit], lo: float, hi: float
) -> Figure:
    """Top: p_data and the fitted Gaussians q. Bottom: D*(x) = p_data / (p_data + q) per fit."""
    x = np.linspace(lo, hi, 2_001)
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    top.fill_between(x, p_data.prob(x), color="0.85", label="p_data")
    for name, fit in fits.items():
        q = GaussianMixture.isotropic([fit.mu], fit.sigma)
        label = f"{_LABELS.get(name, name)}: mu={fit.mu:.2f}, sigma={fit.sigma:.2f}"
        ls, lw = _STYLES.get(name, ("-", 1.5))
        (line,) = top.plot(x, q.prob(x), ls=ls, lw=lw, label=label)
        bottom.plot(x, optimal_discriminator(p_data, q)(x), ls=ls, lw=lw, color=line.get_color())
    top.set_ylabel("density")
    top.legend(fontsize="small", loc="upper left")
    top.set_title("One Gaussian fitted to a bimodal density, three ways")
    bottom.axhline(0.5, color="0.5", lw=0.8, ls="--")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("x")
    bottom.set_ylabel("D*(x) = p_data / (p_data + q)")
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG via a temporary file and a rename (no half-written image)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return Path(path)
