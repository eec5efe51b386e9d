"""The run directory: the unit of reproducibility.

``RUN/config.yaml`` (resolved config), ``meta.json`` (seed, versions), ``transform.json``,
``metrics.jsonl`` (one JSON object per logged step), ``checkpoint.safetensors`` and, after
``evaluate``, ``metrics.json``. Every file is written through a temporary file and a rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from physgan.atomic import write_atomic
from physgan.errors import CheckpointError, ConfigError

__all__ = ["RunDir"]


class RunDir:
    """Paths and small files of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.meta = self.root / "meta.json"
        self.transform = self.root / "transform.json"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoint = self.root / "checkpoint.safetensors"
        self.evaluation = self.root / "metrics.json"
        self.tensorboard = self.root / "tensorboard"

    def prepare(self, *, resume: bool) -> bool:
        """Create the directory (or check it for ``resume``); return True if resuming.

        A fresh run refuses a non-empty directory, so no earlier result is overwritten, and
        checks that the directory is writable before any training starts.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root}: exists and is not a directory")
        resuming = resume and self.checkpoint.is_file()
        if not resuming and self.root.is_dir() and any(self.root.iterdir()):
            if resume and self.config.is_file():
                resuming = False  # killed before its first checkpoint: start it again
            else:
                raise ConfigError(
                    f"--out {self.root}: directory is not empty; pass --resume to continue "
                    "the run in it, or choose a new directory"
                )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise ConfigError(f"--out {self.root}: not writable ({err.strerror})") from None
        return resuming

    def write_config(self, config: dict[str, Any]) -> None:
        write_atomic(self.config, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config.is_file():
            raise CheckpointError(f"{self.root}: not a run directory (no config.yaml)")
        try:
            raw = yaml.safe_load(self.config.read_text())
        except yaml.YAMLError:
            raise CheckpointError(f"{self.config}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{self.config}: expected a mapping")
        return raw

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: cannot read ({err})") from None

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric lines after ``last_step`` (written after the checkpoint a resume uses)."""
        if not self.metrics.is_file():
            return
        kept = []
        for line in self.metrics.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= last_step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # a line cut by the kill: it and anything after it go
        write_atomic(self.metrics, "".join(kept))
