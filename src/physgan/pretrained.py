"""Generators trained by the physgan team and shipped in the package, addressed as
``pretrained:NAME`` wherever a run directory is accepted.

Each lives in ``physgan/generators/NAME/`` as a small run directory: ``config.yaml`` (the recipe
it was trained with), ``meta.json``, ``transform.json``, ``best.safetensors`` (the selected EMA
generator, no discriminator or optimiser), ``conditions.npy`` (jet conditions drawn from its
training data, for sampling without the data) and ``CARD.md``, its model card: data, steps,
CPU hours and its metric table with the command that measured it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from physgan.errors import ConfigError

__all__ = ["PREFIX", "is_pretrained", "pretrained_dir", "pretrained_models"]

PREFIX = "pretrained:"


def _root() -> Path:
    return Path(str(resources.files("physgan") / "generators"))


def pretrained_models() -> dict[str, str]:
    """Name -> the first line of its model card, for every shipped generator."""
    root = _root()
    if not root.is_dir():
        return {}
    models = {}
    for card in sorted(root.glob("*/CARD.md")):
        first = card.read_text(encoding="utf-8").splitlines()[0] if card.stat().st_size else ""
        models[card.parent.name] = first.lstrip("# ").strip()
    return models


def is_pretrained(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` names a shipped generator (``pretrained:NAME``)."""
    return isinstance(run_dir, str) and run_dir.startswith(PREFIX)


def pretrained_dir(run_dir: str) -> Path:
    """The directory of the shipped generator ``pretrained:NAME``; a one-line error naming the
    shipped ones for an unknown name."""
    name = run_dir.removeprefix(PREFIX)
    models = pretrained_models()
    if name not in models:
        known = ", ".join(PREFIX + m for m in models) or "none in this installation"
        raise ConfigError(f"{run_dir}: no such shipped generator (shipped: {known})")
    return _root() / name
