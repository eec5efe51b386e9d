"""Invertible, serialisable feature transforms: models see normalised data, users physics units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "Identity",
    "InverseTransform",
    "ParticleStandardize",
    "SqrtScale",
    "Standardize",
    "Transform",
    "transform_from_dict",
]


@dataclass(frozen=True)
class Standardize:
    """x_norm = (x - mean) / std per feature (last axis); ``std = 1`` for constant features.

    >>> t = Standardize.fit(np.array([[0.0, 10.0], [2.0, 10.0]]))
    >>> t.forward(np.array([[2.0, 10.0]])).tolist(), t.inverse(np.zeros((1, 2))).tolist()
    ([[1.0, 0.0]], [[1.0, 10.0]])
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardize:
        flat = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        std = flat.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(flat.mean(axis=0).tolist()), tuple(std.tolist()))

    @classmethod
    def fit_scale(cls, x: np.ndarray) -> Standardize:
        """x_norm = x / s for every feature, s the root mean square of all of x (1 if x is all
        zeros): zeros stay zeros and signs are kept (``transform: scale``, for images).

        >>> Standardize.fit_scale(np.array([[0.0, 3.0], [0.0, -3.0]])).std
        (2.1213203435596424, 2.1213203435596424)
        """
        x = np.asarray(x, dtype=np.float64)
        rms = float(np.sqrt(np.mean(np.square(x)))) or 1.0
        return cls((0.0,) * x.shape[-1], (rms,) * x.shape[-1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        return np.asarray(x_norm) * np.asarray(self.std) + np.asarray(self.mean)

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        """log |det d forward / dx| per sample (n,): -sum log std, so that a density q_norm
        of the normalised data is the density q_norm(forward(x)) exp(log_abs_det) of x."""
        x = np.asarray(x)
        per_sample = np.prod(x.shape[1:-1], dtype=int) * np.log(np.asarray(self.std)).sum()
        return np.full(x.shape[0], -per_sample)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "standardize", "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class Identity:
    """The identity transform (``transform: none``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        return np.asarray(x_norm)

    def log_abs_det(self, x: np.ndarray) -> np.ndarray:
        """Zeros (n,): the identity changes no volume."""
        return np.zeros(np.shape(x)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "none"}


@dataclass(frozen=True)
class SqrtScale:
    """x_norm = sqrt(x / scale) for non-negative data (``transform: sqrt``, for images of pT).

    Zeros stay zeros, and the range of a sparse, high-dynamic-range image is compressed: a
    0.1 GeV pixel beside a 100 GeV one is 1/32 of it, not 1/1000. ``scale`` is the mean of the
    training values, so that the normalised values have a root mean square of 1. The inverse
    is scale * max(x_norm, 0)^2, so a generator's negative outputs become empty pixels.
    No ``log_abs_det``: the map is not differentiable at 0, where most pixels are, so a
    likelihood in these units says nothing about one in GeV.

    >>> t = SqrtScale.fit(np.array([[0.0, 4.0], [0.0, 4.0]]))
    >>> t.scale, t.forward(np.array([[0.0, 8.0]])).tolist()
    (2.0, [[0.0, 2.0]])
    >>> t.inverse(np.array([[-1.0, 1.0]])).tolist()
    [[0.0, 2.0]]
    """

    scale: float

    @classmethod
    def fit(cls, x: np.ndarray) -> SqrtScale:
        """Fitted on non-negative ``x``; ValueError names the smallest value otherwise."""
        x = np.asarray(x, dtype=np.float64)
        if x.size and x.min() < 0:
            raise ValueError(
                f"transform sqrt needs non-negative data; the smallest value is {x.min():g}"
            )
        return cls(float(x.mean()) if x.size and x.mean() > 0 else 1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(np.asarray(x), 0.0, None) / self.scale)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        return self.scale * np.square(np.clip(np.asarray(x_norm), 0.0, None))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "sqrt", "scale": self.scale}


def transform_from_dict(spec: dict[str, Any]) -> Transform:
    """Rebuild a transform saved with ``to_dict``."""
    if spec.get("kind") == "sqrt":
        return SqrtScale(float(spec["scale"]))
    if spec.get("kind") == "standardize":
        return Standardize(tuple(spec["mean"]), tuple(spec["std"]))
    if spec.get("kind") == "particle_standardize":
        return ParticleStandardize(tuple(spec["mean"]), tuple(spec["std"]))
    if spec.get("kind") == "none":
        return Identity()
    raise ValueError(f"unknown transform {spec.get('kind')!r}")


@dataclass(frozen=True)
class ParticleStandardize:
    """Per-feature standardisation of particle clouds (n, N, F + 1), the mask last.

    The first F channels become (x - mean) / std with mean and std over real particles only
    (mask > 0.5; ``std = 1`` for constant features); the mask channel is unchanged and padded
    rows stay exactly zero in both directions, so a padded cloud keeps the layout of
    :mod:`physgan.data.jets`.

    >>> x = np.array([[[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]]])
    >>> t = ParticleStandardize.fit(x)
    >>> t.mean, t.std
    ((2.0,), (1.0,))
    >>> t.forward(x)[0].tolist(), t.inverse(t.forward(x))[0].tolist()
    ([[-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]])
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> ParticleStandardize:
        """Mean and std of each feature over the real particles of clouds x (n, N, F + 1)."""
        x = np.asarray(x, dtype=np.float64)
        real = x[..., :-1][x[..., -1] > 0.5]
        if real.shape[0] == 0:
            return cls((0.0,) * real.shape[1], (1.0,) * real.shape[1])
        std = real.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(real.mean(axis=0).tolist()), tuple(std.tolist()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalised clouds (n, N, F + 1) from clouds in physics units."""
        x = np.asarray(x)
        real = x[..., -1:] > 0.5
        features = np.where(real, (x[..., :-1] - np.asarray(self.mean)) / np.asarray(self.std), 0.0)
        return np.concatenate([features, x[..., -1:].astype(features.dtype)], axis=-1)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        """Clouds in physics units (n, N, F + 1) from normalised ones."""
        x_norm = np.asarray(x_norm)
        real = x_norm[..., -1:] > 0.5
        features = np.where(
            real, x_norm[..., :-1] * np.asarray(self.std) + np.asarray(self.mean), 0.0
        )
        return np.concatenate([features, x_norm[..., -1:].astype(features.dtype)], axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "particle_standardize", "mean": list(self.mean), "std": list(self.std)}


# Any data transform a run may save (data.transform).
Transform = Standardize | ParticleStandardize | SqrtScale | Identity


class InverseTransform(nn.Module):
    """Torch twin of a transform's ``inverse``: normalised units -> physics units, float32.

    ``Standardize``: x = x_norm * std + mean per feature (last axis). ``ParticleStandardize``:
    the same on the features of real particles (mask, the last channel, > 0.5), exact zeros on
    padded ones, mask unchanged. ``SqrtScale``: x = scale * relu(x_norm)^2 (``std`` holds the
    scale). ``Identity``: x = x_norm. Mean and std are buffers, so they travel with the module
    (and into an ONNX graph) as constants.

    Shapes:
        ``forward(x_norm)``: (B, ..., F) -> (B, ..., F).

    >>> inverse = InverseTransform(Standardize(mean=(1.0, 10.0), std=(2.0, 1.0)))
    >>> inverse(torch.tensor([[1.0, -1.0]])).tolist()
    [[3.0, 9.0]]
    """

    mean: Tensor
    std: Tensor

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.particles = isinstance(transform, ParticleStandardize)
        self.identity = isinstance(transform, Identity)
        self.squared = isinstance(transform, SqrtScale)
        if self.squared:
            mean, std = (0.0,), (transform.scale,)
        else:
            mean = () if self.identity else transform.mean
            std = () if self.identity else transform.std
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x_norm: Tensor) -> Tensor:
        """Samples in physics units, same shape as ``x_norm``."""
        if self.identity:
            return x_norm
        if self.squared:
            return torch.relu(x_norm).square() * self.std
        if not self.particles:
            return x_norm * self.std + self.mean
        real = x_norm[..., -1:] > 0.5
        features = torch.where(real, x_norm[..., :-1] * self.std + self.mean, 0.0)
        return torch.cat([features, x_norm[..., -1:]], dim=-1)
