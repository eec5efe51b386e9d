"""Generative models (GAN generators and discriminators, a VAE, a flow) as plain ``nn.Module``s.

Look a model up by the name used in YAML with ``GENERATORS.get("dcgan")`` or
``DISCRIMINATORS.get("mlp")``; both registries live in :mod:`physgan.models.registry` and are
filled when this package is imported.
"""

from physgan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from physgan.models.flow import Flow
from physgan.models.lagan import LAGANDiscriminator, LAGANGenerator
from physgan.models.mlp import MLPDiscriminator, MLPGenerator
from physgan.models.pointcloud import EPiCDiscriminator, EPiCGenerator
from physgan.models.registry import DISCRIMINATORS, GENERATORS
from physgan.models.vae import VAE

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "VAE",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EPiCDiscriminator",
    "EPiCGenerator",
    "Flow",
    "LAGANDiscriminator",
    "LAGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
]
