"""The model registries: YAML names (``generator: dcgan``) -> model classes.

Each model module registers its classes with a decorator; importing :mod:`physgan.models`
imports them all, so the registries are full once the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from physgan.registry import Registry

__all__ = ["DISCRIMINATORS", "GENERATORS"]

GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator")
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator")
