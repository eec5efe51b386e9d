"""physgan: train, sample and evaluate generative models of physics data."""

__version__ = "0.1.0"

__all__ = ["__version__"]
