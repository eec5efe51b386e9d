"""physgan: train, sample and evaluate generative models of physics data.

The API functions (``physgan.train``, ``sample``, ``evaluate``, ``compare``, ``demo``) live in
:mod:`physgan.api` and are loaded on first use, so ``import physgan`` stays light. The lecture's
theory demo is ``physgan.api.theory``: ``physgan.theory`` is the module of the theory's formulas.
"""

from typing import Any

from physgan.version import __version__

_API = ("compare", "demo", "evaluate", "sample", "train")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from physgan import api

        return getattr(api, name)
    raise AttributeError(f"module 'physgan' has no attribute {name!r}")
