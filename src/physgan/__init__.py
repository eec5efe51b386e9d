"""physgan: train, sample and evaluate generative models of physics data.

The API functions (``physgan.train``, ``sample``, ``evaluate``, ``theory``) live in
:mod:`physgan.api` and are loaded on first use, so ``import physgan`` stays light.
"""

from typing import Any

__version__ = "0.1.0"

_API = ("evaluate", "sample", "theory", "train")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from physgan import api

        return getattr(api, name)
    raise AttributeError(f"module 'physgan' has no attribute {name!r}")
