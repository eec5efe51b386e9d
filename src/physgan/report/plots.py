"""Plots of generated against real data, the way physicists read them: mplhep over hist.

Every function is pure: it takes arrays and returns a new :class:`matplotlib.figure.Figure`
(object API, no pyplot), styled inside ``matplotlib.rc_context`` so no global style leaks out.
Histograms are :mod:`hist` histograms with weighted storage, normalised to unit area over the
bins: the variance of a bin with n entries is n scaled the same way (Poisson), and mplhep draws
it as error bars and propagates it into the ratio panel. Layouts are those of
:mod:`physgan.data.jets` and :mod:`physgan.data.images`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import hist
import matplotlib as mpl
import mplhep as mh
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from physgan.data.toy import GaussianMixture
from physgan.errors import DataError

__all__ = [
    "PARTICLE_LABELS",
    "ComparisonPanel",
    "comparison_figure",
    "feature_histograms",
    "mean_images",
    "multiplicity_histogram",
    "particle_histograms",
    "ratio_histogram",
    "toy_scatter",
    "training_curves",
]

# mplhep's ROOT look (its fonts ship with mplhep-data: nothing is downloaded), text sized for
# figures of about 6 inches rather than the style's 10. Settings matplotlib reads only when a
# figure is drawn (mathtext, the minus sign, savefig) are left out: callers draw the figure
# after this style's context has closed, so they would apply to half the figure.
_DRAWN_LATER = ("mathtext.", "axes.unicode_minus", "savefig.")
_STYLE = {k: v for k, v in mh.style.ROOT.items() if not k.startswith(_DRAWN_LATER)} | {
    "font.size": 15,
    "axes.titlesize": "medium",
}
_REAL_COLOUR, _GEN_COLOUR = "tab:blue", "black"

PARTICLE_LABELS = (
    (r"particle $\eta^\mathrm{rel}$", None, False),
    (r"particle $\phi^\mathrm{rel}$", "rad", False),
    (r"particle $p_\mathrm{T}^\mathrm{rel}$", None, True),
)
"""(label, unit, log y) of the particle features eta_rel, phi_rel, pt_rel, in that order."""

# training_curves' panels: title, y label, (metrics.jsonl key, legend label), reference line.
_CURVE_PANELS = (
    ("losses", "loss", (("d_loss", "D loss"), ("g_loss", "G loss")), None),
    (
        "mean discriminator output",
        "mean D",
        (
            ("d_real", "D(x), train batch"),
            ("d_fake", "D(G(z)), train batch"),
            ("holdout_d_real", "D(x), held out"),
            ("holdout_d_fake", "D(G(z)), held out"),
        ),
        None,
    ),
    (
        "JSD lower bound",
        "JSD bound [nats]",
        (("jsd_bound", "(V(D, G) + ln 4) / 2"),),
        (float(np.log(2.0)), "ln 2 (maximum)"),
    ),
)


def _finite(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    """``x`` as a float array of ``ndim`` dimensions, non-empty and finite, or a DataError."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != ndim:
        raise DataError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} has NaN or infinite entries")
    return arr


def _density(x: np.ndarray, edges: np.ndarray, label: str) -> hist.Hist:
    """Entries of ``x`` per bin over ``edges``, scaled to unit area: values in 1/unit of x.

    As in ``np.histogram`` the last bin holds its upper edge (the sample maximum, with bins
    from a count), so that edge moves up by one ulp for hist, whose bins are half-open.
    """
    edges = np.append(edges[:-1], np.nextafter(edges[-1], np.inf))
    counts = hist.Hist(hist.axis.Variable(edges, label=label), storage=hist.storage.Weight())
    counts.fill(x)
    return counts / (max(counts.sum().value, 1.0) * np.diff(edges))


def _axis_label(label: str, unit: str | None) -> str:
    return f"{label} [{unit}]" if unit else label


def ratio_histogram(
    real: ArrayLike,
    generated: ArrayLike,
    *,
    bins: int | ArrayLike = 40,
    label: str,
    unit: str | None = None,
    log: bool = False,
) -> Figure:
    """Real (filled step) against generated (points, Poisson errors), with a ratio panel.

    Both histograms are normalised to unit area over the bins. The lower panel shows
    generated / real per bin where real has entries, with the two relative statistical errors
    added in quadrature, and a line at 1.

    Args:
        real, generated: 1-D samples of one feature, in ``unit``.
        bins: number of equal bins spanning both samples, or the bin edges.
        label: the feature's name on the x axis, e.g. "jet mass"; ``unit`` e.g. "GeV".
        log: logarithmic y axis in the upper panel.

    Returns:
        A figure with two axes: ``axes[0]`` the histograms, ``axes[1]`` the ratio.

    >>> rng = np.random.default_rng(0)
    >>> fig = ratio_histogram(rng.normal(80, 10, 500), rng.normal(82, 10, 500),
    ...                       label="jet mass", unit="GeV")
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['', 'jet mass [GeV]']
    """
    real_x = _finite(real, "real", 1)
    gen_x = _finite(generated, "generated", 1)
    if np.ndim(bins) == 0:
        edges = np.histogram_bin_edges(np.concatenate([real_x, gen_x]), bins=int(bins))
    else:
        edges = _finite(bins, "bins", 1)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise DataError("bins must be at least 2 strictly increasing edges")
    xlabel = _axis_label(label, unit)
    real_h, gen_h = _density(real_x, edges, xlabel), _density(gen_x, edges, xlabel)

    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 5.5), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        mh.histplot(real_h, ax=top, histtype="fill", color=_REAL_COLOUR, alpha=0.3)
        mh.histplot(real_h, ax=top, yerr=False, color=_REAL_COLOUR, label=f"real (N={real_x.size})")
        # Empty generated bins get no point (NaN), as in the ratio where real is empty.
        mh.histplot(
            np.where(gen_h.values() > 0, gen_h.values(), np.nan),
            gen_h.axes[0].edges,
            w2=gen_h.variances(),
            w2method="sqrt",
            ax=top,
            histtype="errorbar",
            color=_GEN_COLOUR,
            label=f"generated (N={gen_x.size})",
        )
        top.set_xlabel("")  # the ratio panel below carries it
        top.set_ylabel(f"density [1/{unit}]" if unit else "density")
        if log:
            top.set_yscale("log")
        top.set_title(f"{label}: generated vs real")
        top.legend()
        mh.comp.comparison(
            gen_h,
            real_h,
            bottom,
            xlabel=xlabel,
            comparison="ratio",
            comparison_ylabel="gen. / real",
            color=_GEN_COLOUR,
        )
    return fig


def feature_histograms(
    real: ArrayLike,
    generated: ArrayLike,
    names: Sequence[str],
    units: Sequence[str | None],
    *,
    bins: int = 40,
) -> list[Figure]:
    """One :func:`ratio_histogram` per column of (n, d) real and (m, d) generated features.

    ``names`` and ``units`` (None for a dimensionless feature) give each column's axis label,
    e.g. ``("jet pT", "jet eta", "jet mass")`` and ``("GeV", None, "GeV")``.

    >>> rng = np.random.default_rng(0)
    >>> figs = feature_histograms(rng.normal(size=(50, 2)), rng.normal(size=(60, 2)),
    ...                           ["a", "b"], [None, "GeV"])
    >>> [fig.axes[1].get_xlabel() for fig in figs]
    ['a', 'b [GeV]']
    """
    real_x = _finite(real, "real", 2)
    gen_x = _finite(generated, "generated", 2)
    d = real_x.shape[1]
    if gen_x.shape[1] != d or len(names) != d or len(units) != d:
        raise DataError(
            f"feature counts differ: real has {d}, generated {gen_x.shape[1]}, "
            f"{len(names)} names, {len(units)} units"
        )
    return [
        ratio_histogram(real_x[:, j], gen_x[:, j], bins=bins, label=names[j], unit=units[j])
        for j in range(d)
    ]


def _cloud(x: ArrayLike, name: str) -> np.ndarray:
    """A particle cloud (n, N, 4) [eta_rel, phi_rel, pt_rel, mask], or a DataError."""
    arr = _finite(x, name, 3)
    if arr.shape[-1] != 4:
        raise DataError(f"{name} must have 4 features per particle, got shape {arr.shape}")
    return arr


def particle_histograms(real: ArrayLike, generated: ArrayLike, *, bins: int = 40) -> list[Figure]:
    """:func:`ratio_histogram` of eta_rel, phi_rel and pt_rel over real particles (mask > 0.5).

    Args:
        real, generated: particle clouds (n, N, 4) [eta_rel, phi_rel, pt_rel, mask].

    Returns:
        Three figures, in the order of :data:`PARTICLE_LABELS`.

    >>> cloud = np.zeros((2, 3, 4)); cloud[:, :2] = [0.1, -0.2, 0.5, 1.0]
    >>> len(particle_histograms(cloud, cloud))
    3
    """
    clouds = {"real": _cloud(real, "real"), "generated": _cloud(generated, "generated")}
    particles = {}
    for name, cloud in clouds.items():
        particles[name] = cloud[cloud[..., 3] > 0.5][:, :3]
        if len(particles[name]) == 0:
            raise DataError(f"{name} has no particles with mask > 0.5")
    return [
        ratio_histogram(
            particles["real"][:, j],
            particles["generated"][:, j],
            bins=bins,
            label=label,
            unit=unit,
            log=log,
        )
        for j, (label, unit, log) in enumerate(PARTICLE_LABELS)
    ]


def multiplicity_histogram(real: ArrayLike, generated: ArrayLike) -> Figure:
    """:func:`ratio_histogram` of the number of particles with mask > 0.5 per jet.

    Args:
        real, generated: particle clouds (n, N, 4) [eta_rel, phi_rel, pt_rel, mask].

    Returns:
        The figure, one bin per integer multiplicity.

    >>> cloud = np.zeros((2, 3, 4)); cloud[0, :2, 3] = cloud[1, :1, 3] = 1.0
    >>> multiplicity_histogram(cloud, cloud).axes[1].get_xlabel()
    'particle multiplicity'
    """
    real_n = (_cloud(real, "real")[..., 3] > 0.5).sum(axis=1)
    gen_n = (_cloud(generated, "generated")[..., 3] > 0.5).sum(axis=1)
    lo, hi = min(real_n.min(), gen_n.min()), max(real_n.max(), gen_n.max())
    edges = np.arange(lo, hi + 2) - 0.5
    return ratio_histogram(real_n, gen_n, bins=edges, label="particle multiplicity")


def mean_images(real: ArrayLike, generated: ArrayLike, extent: float = 1.25) -> Figure:
    """Mean real and mean generated jet image (log colour scale) and their difference.

    Args:
        real, generated: images (n, P, P) of pT in GeV, indexed [jet, phi_bin, eta_bin].
        extent: half-width of the grid in eta' and phi'.

    Returns:
        A figure with five axes: real, generated, generated - real, then the colour bars of
        the means (shared, GeV) and of the difference (GeV, centred at 0).

    >>> images = np.ones((3, 5, 5))
    >>> [ax.get_title() for ax in mean_images(images, 2 * images).axes[:3]]
    ['real (mean of 3)', 'generated (mean of 3)', 'generated - real']
    """
    real_x = _finite(real, "real", 3)
    gen_x = _finite(generated, "generated", 3)
    if real_x.shape[1:] != gen_x.shape[1:] or real_x.shape[1] != real_x.shape[2]:
        raise DataError(
            f"images must be square and of one size, got real {real_x.shape[1:]} "
            f"and generated {gen_x.shape[1:]}"
        )
    means = {"real": real_x.mean(axis=0), "generated": gen_x.mean(axis=0)}
    positive = np.concatenate([m[m > 0] for m in means.values()])
    if positive.size == 0:
        raise DataError("mean images have no positive pixel to show on a log scale")
    norm = LogNorm(vmin=positive.min(), vmax=positive.max())
    diff = means["generated"] - means["real"]
    vmax_diff = float(np.abs(diff).max()) or 1.0
    image_kw = {"origin": "lower", "extent": (-extent, extent, -extent, extent)}

    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(13.0, 4.0), layout="constrained")
        axes = fig.subplots(1, 3)
        for ax, (name, mean), n in zip(
            axes[:2], means.items(), (len(real_x), len(gen_x)), strict=True
        ):
            shown = ax.imshow(mean, norm=norm, cmap="viridis", **image_kw)
            ax.set_title(f"{name} (mean of {n})")
        fig.colorbar(shown, ax=axes[:2], label=r"mean pixel $p_\mathrm{T}$ [GeV]")
        shown = axes[2].imshow(diff, cmap="RdBu_r", vmin=-vmax_diff, vmax=vmax_diff, **image_kw)
        axes[2].set_title("generated - real")
        fig.colorbar(shown, ax=axes[2], label=r"$\Delta$ mean pixel $p_\mathrm{T}$ [GeV]")
        for ax in axes:
            ax.set_xlabel(r"$\eta'$")
            ax.set_ylabel(r"$\phi'$ [rad]")
    return fig


def training_curves(rows: Sequence[Mapping[str, float]]) -> Figure:
    """Losses, mean discriminator outputs and the JSD lower bound against training step.

    Args:
        rows: the lines of a run's ``metrics.jsonl`` (see ``MetricsLogger``), each with
            ``step`` and any of ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``,
            ``holdout_d_real``, ``holdout_d_fake``, ``jsd_bound``; a missing key is skipped.

    Returns:
        A figure with three axes sharing the step axis; a panel with nothing logged says so.

    >>> fig = training_curves([{"step": 10, "d_loss": 1.3, "g_loss": 0.7}])
    >>> [ax.get_title() for ax in fig.axes]
    ['losses', 'mean discriminator output', 'JSD lower bound']
    """
    if len(rows) == 0:
        raise DataError("no metrics rows to plot")
    if any("step" not in row for row in rows):
        raise DataError("every metrics row needs a 'step'")
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(6.5, 8.0), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
        for ax, (title, ylabel, series, reference) in zip(axes, _CURVE_PANELS, strict=True):
            for key, label in series:
                logged = [row for row in rows if key in row]
                if logged:
                    ax.plot([r["step"] for r in logged], [r[key] for r in logged], label=label)
            if reference is not None and ax.lines:
                ax.axhline(reference[0], color="0.5", ls="--", lw=1.0, label=reference[1])
            if ax.lines:
                ax.legend(fontsize="small")
            else:
                ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center")
            ax.set_title(title)
            ax.set_ylabel(ylabel)
        axes[-1].set_xlabel("step")
    return fig


def _draw_toy(ax: Any, x: np.ndarray, mixture: GaussianMixture, grid: int) -> None:
    """Samples x (n, 2) over the 1/2/3-sigma contours of the mixture's log-density, on ax."""
    reach = 3 * mixture.stds
    lo = np.minimum(x.min(axis=0), (mixture.means - reach).min(axis=0))
    hi = np.maximum(x.max(axis=0), (mixture.means + reach).max(axis=0))
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    log_p = mixture.log_prob(np.stack([g1.ravel(), g2.ravel()], axis=-1)).reshape(g1.shape)
    levels = log_p.max() - np.array([4.5, 2.0, 0.5])
    ax.contour(g1, g2, log_p, levels=levels[levels > log_p.min()], colors="tab:red")
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color=_GEN_COLOUR, label=f"generated (N={len(x)})")
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def toy_scatter(samples: ArrayLike, mixture: GaussianMixture, *, grid: int = 300) -> Figure:
    """2-D samples over contours of the true log-density of a toy mixture.

    Contours are at 1, 2 and 3 sigma below the density's peak (log p = max - k^2 / 2),
    evaluated on a ``grid`` x ``grid`` mesh covering the samples and every mode.

    >>> from physgan.data.toy import ring8
    >>> ring = ring8()
    >>> toy_scatter(ring.sample(100, seed=0), ring).axes[0].get_xlabel()
    '$x_1$'
    """
    x = _check_toy(samples, mixture)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(6.0, 6.0), layout="constrained")
        ax = fig.subplots()
        _draw_toy(ax, x, mixture, grid)
        handles, _ = ax.get_legend_handles_labels()
        contour = Line2D([], [], color="tab:red", label=r"true density, 1/2/3$\sigma$")
        ax.legend(handles=[*handles, contour], loc="upper right")
        ax.set_title("generated samples over the true density")
    return fig


def _check_toy(samples: ArrayLike, mixture: GaussianMixture) -> np.ndarray:
    x = _finite(samples, "samples", 2)
    if x.shape[1] != 2 or mixture.dim != 2:
        raise DataError(
            f"toy_scatter needs 2-D samples and mixture, got {x.shape[1]} and {mixture.dim}"
        )
    return x


def comparison_figure(panels: Sequence[ComparisonPanel]) -> Figure:
    """One panel per run, side by side: 2-D toys as samples over the true density, jets as
    the relative jet mass, images as the mean generated image, other data as their first
    feature (real vs generated histograms).

    >>> from physgan.data.toy import ring8
    >>> x = ring8().sample(200, seed=0)
    >>> fig = comparison_figure([ComparisonPanel("gan", x, x, ring8())] * 2)
    >>> len(fig.axes)
    2
    """
    with mpl.rc_context(_STYLE):
        columns = min(len(panels), 3)
        rows = math.ceil(len(panels) / columns)
        fig = Figure(figsize=(4.2 * columns, 4.0 * rows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            _draw_panel(ax, panel)
            ax.set_title(panel.title)
        for ax in axes[len(panels) :]:
            fig.delaxes(ax)
    return fig


class ComparisonPanel(NamedTuple):
    """One run in :func:`comparison_figure`: its title, real and generated samples, truth."""

    title: str
    real: np.ndarray
    generated: np.ndarray
    truth: GaussianMixture | None = None


def _draw_panel(ax: Any, panel: ComparisonPanel) -> None:
    real, gen = np.asarray(panel.real), np.asarray(panel.generated)
    if panel.truth is not None and real.ndim == 2 and real.shape[1] == 2:
        _draw_toy(ax, _check_toy(gen, panel.truth), panel.truth, 200)
        return
    if real.ndim == 3 and real.shape[-1] == 4:  # particle clouds
        from physgan.metrics.jetfeatures import jet_features

        real, gen, label = jet_features(real)[:, 3], jet_features(gen)[:, 3], "jet mass / jet pT"
    elif real.ndim == 4:  # images
        ax.imshow(gen[:, 0].mean(axis=0), norm=LogNorm(), cmap="viridis", origin="lower")
        ax.set_xlabel("generated mean image")
        return
    else:
        real, gen, label = real.reshape(len(real), -1)[:, 0], gen.reshape(len(gen), -1)[:, 0], "x1"
    edges = np.histogram_bin_edges(np.concatenate([real, gen]), bins=40)
    real_h, gen_h = _density(real, edges, label), _density(gen, edges, label)
    mh.histplot(real_h, ax=ax, histtype="fill", color=_REAL_COLOUR, alpha=0.3, label="real")
    mh.histplot(gen_h, ax=ax, yerr=False, color=_GEN_COLOUR, label="generated")
    ax.legend()
