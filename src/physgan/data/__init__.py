"""Data sources: toy mixtures with exact densities (:mod:`physgan.data.toy`) and physics data.

Submodules are imported on demand so that ``import physgan.data`` stays light.
"""
