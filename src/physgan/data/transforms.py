"""Invertible, serialisable feature transforms: models see normalised data, users physics units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Identity", "Standardize", "transform_from_dict"]


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

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        return np.asarray(x_norm) * np.asarray(self.std) + np.asarray(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "standardize", "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class Identity:
    """The identity transform (``transform: none``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        return np.asarray(x_norm)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "none"}


def transform_from_dict(spec: dict[str, Any]) -> Standardize | Identity:
    """Rebuild a transform saved with ``to_dict``."""
    if spec.get("kind") == "standardize":
        return Standardize(tuple(spec["mean"]), tuple(spec["std"]))
    if spec.get("kind") == "none":
        return Identity()
    raise ValueError(f"unknown transform {spec.get('kind')!r}")
