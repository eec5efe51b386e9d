"""Jet images: constituents' pT on an eta-phi grid, with the standard preprocessing.

As in the jet-image and LAGAN papers (de Oliveira et al., arXiv:1511.05190; Paganini, de
Oliveira, Nachman, arXiv:1701.05927): each constituent is moved so that the leading subjet sits
at (0, 0), the plane is rotated so that the second subjet lies straight below it (at angle
-pi/2), and mirrored in eta so that the right half holds more pT than the left. Pixel values are
pT in GeV. Images are indexed ``[jet, phi_bin, eta_bin]`` (rows = phi' upwards, columns = eta'
to the right: ``plt.imshow(image, origin="lower")`` shows them the usual way), covering
``[-extent, extent]`` in both directions.
"""

from __future__ import annotations

import numpy as np

from physgan.data.jets import wrap_phi

__all__ = ["image_mass", "image_tau21", "jet_images", "pixel_centres", "pixel_log_pt"]


def pixel_centres(pixels: int = 25, extent: float = 1.25) -> np.ndarray:
    """Pixel-centre coordinates along one axis of the grid, shape (pixels,).

    >>> pixel_centres(5, 1.25).round(3).tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    edges = np.linspace(-extent, extent, pixels + 1)
    return (edges[:-1] + edges[1:]) / 2


def _eta_phi_pt(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p[..., 0], p[..., 1])
    safe = np.where(pt > 0, pt, 1.0)
    return np.arcsinh(p[..., 2] / safe), np.arctan2(p[..., 1], p[..., 0]), pt


def jet_images(
    constituents: np.ndarray,
    n_constituents: np.ndarray,
    subjets: np.ndarray,
    pixels: int = 25,
    extent: float = 1.25,
) -> np.ndarray:
    """Preprocessed jet images (n, pixels, pixels) float32 of pT (GeV) per pixel.

    Args:
        constituents: (n, m, 4) four-momenta (px, py, pz, E) in GeV, zero-padded.
        n_constituents: (n,) real rows of ``constituents``.
        subjets: (n, 2, 4) leading and second subjet four-momenta (second all zero if absent:
            then the image is not rotated).
        pixels: pixels per side; ``extent``: half-width of the grid in eta and phi.
    """
    n, m = constituents.shape[:2]
    eta, phi, pt = _eta_phi_pt(constituents)
    s_eta, s_phi, s_pt = _eta_phi_pt(subjets)
    x = eta - s_eta[:, :1]
    y = wrap_phi(phi - s_phi[:, :1])
    # Rotate the second subjet's direction onto -pi/2.
    dx, dy = s_eta[:, 1] - s_eta[:, 0], wrap_phi(s_phi[:, 1] - s_phi[:, 0])
    angle = np.where(s_pt[:, 1] > 0, -np.pi / 2 - np.arctan2(dy, dx), 0.0)[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = cos * x - sin * y, sin * x + cos * y
    real = np.arange(m) < n_constituents[:, None]
    weight = np.where(real, pt, 0.0)
    right = (weight * (x > 0)).sum(axis=1) >= (weight * (x < 0)).sum(axis=1)
    x = np.where(right[:, None], x, -x)

    col = np.floor((x + extent) / (2 * extent) * pixels).astype(np.int64)
    row = np.floor((y + extent) / (2 * extent) * pixels).astype(np.int64)
    inside = real & (col >= 0) & (col < pixels) & (row >= 0) & (row < pixels)
    flat = (np.arange(n)[:, None] * pixels + row) * pixels + col
    images = np.zeros(n * pixels * pixels)
    np.add.at(images, flat[inside], pt[inside])
    return images.reshape(n, pixels, pixels).astype(np.float32)


def _pixels(images: np.ndarray, extent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel eta', phi' (P*P,) and pT (n, P*P) of images (n, P, P)."""
    centres = pixel_centres(images.shape[-1], extent)
    phi, eta = np.meshgrid(centres, centres, indexing="ij")
    return eta.ravel(), phi.ravel(), images.reshape(len(images), -1).astype(np.float64)


def pixel_log_pt(images: np.ndarray) -> np.ndarray:
    """log10 of the pT (GeV) of every non-zero pixel of ``images``, flattened: the
    pixel-intensity spectrum, in which a faint glow over empty pixels stands out as much as a
    missing bright core.

    >>> pixel_log_pt(np.array([[[0.0, 10.0], [0.1, 0.0]]])).tolist()
    [1.0, -1.0]
    """
    return np.log10(images[images > 0])


def image_mass(images: np.ndarray, extent: float = 1.25) -> np.ndarray:
    """Invariant mass (GeV) of each image, each pixel a massless particle at its centre.

    >>> image = np.zeros((1, 5, 5)); image[0, 2, 1] = image[0, 2, 3] = 100.0
    >>> float(image_mass(image)[0].round(2))  # two 100 GeV particles 1.0 apart in eta
    104.22
    """
    eta, phi, pt = _pixels(images, extent)
    e = (pt * np.cosh(eta)).sum(axis=1)
    px, py = (pt * np.cos(phi)).sum(axis=1), (pt * np.sin(phi)).sum(axis=1)
    pz = (pt * np.sinh(eta)).sum(axis=1)
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


def image_tau21(images: np.ndarray, extent: float = 1.25, iterations: int = 10) -> np.ndarray:
    """N-subjettiness ratio tau_2 / tau_1 (beta = 1) of each image; NaN for an empty image.

    tau_N = sum_k pT_k min_j dR(k, axis_j) / (R sum_k pT_k) (Thaler and Van Tilburg,
    arXiv:1011.2268). Axes are found by pT-weighted k-means on the pixels: one axis at the pT
    centroid; two starting at the brightest pixel and the pixel that maximises pT dR^2 from it,
    refined by ``iterations`` Lloyd steps. Two-prong (W) jets give small values, QCD jets large.

    >>> image = np.zeros((1, 5, 5)); image[0, 2, 1] = image[0, 2, 3] = 100.0
    >>> float(image_tau21(image)[0])  # two prongs: tau_2 = 0
    0.0
    """
    eta, phi, pt = _pixels(images, extent)
    points = np.stack([eta, phi], axis=-1)  # (P*P, 2)

    def squared(axis: np.ndarray) -> np.ndarray:
        # dR^2 (n, P*P) of every pixel from axis (n, 2): written out, as np.linalg.norm over
        # an axis of 2 is slow; the same two squares added, so the same floats.
        return (eta - axis[:, :1]) ** 2 + (phi - axis[:, 1:]) ** 2

    total = pt.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = (pt @ points) / total[:, None]
    tau1 = (pt * np.sqrt(squared(centroid))).sum(axis=1)

    first = points[pt.argmax(axis=1)]
    axes = [first, points[(pt * squared(first)).argmax(axis=1)]]  # (n, 2) each
    for _ in range(iterations):
        second = np.sqrt(squared(axes[1])) < np.sqrt(squared(axes[0]))  # a tie: the first
        for j, joined in enumerate((~second, second)):
            w = pt * joined
            mass = w.sum(axis=1)
            moved = (w @ points) / np.where(mass > 0, mass, 1.0)[:, None]
            axes[j] = np.where(mass[:, None] > 0, moved, axes[j])
    tau2 = (pt * np.sqrt(np.minimum(squared(axes[0]), squared(axes[1])))).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tau2 / tau1  # the normalisation R sum pT cancels in the ratio
