"""Generative models and their discriminators as plain ``nn.Module``s (no training code).

Look a model up by the name used in YAML with ``GENERATORS.get("dcgan")`` or
``DISCRIMINATORS.get("mlp")``; both registries live in :mod:`physgan.models.registry` and are
filled when this package is imported.
"""

from physgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from physgan.models.mlp import MLPDiscriminator, MLPGenerator
from physgan.models.pointcloud import EPiCDiscriminator, EPiCGenerator
from physgan.models.registry import DISCRIMINATORS, GENERATORS

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EPiCDiscriminator",
    "EPiCGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
]
