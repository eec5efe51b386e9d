"""Data sources: toy mixtures with exact densities (:mod:`physgan.data.toy`), simulated jets
(:mod:`physgan.data.jetgen`) and the readers of users' files (:func:`load`).

Submodules are imported on demand so that ``import physgan.data`` stays light (NumPy only).
"""

from physgan.data.io import load

__all__ = ["load"]
