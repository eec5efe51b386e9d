"""The run directory: the unit of reproducibility.

``RUN/config.yaml`` (resolved config), ``meta.json`` (seed, versions), ``transform.json``,
``metrics.jsonl`` (one JSON object per logged step), ``checkpoint.safetensors``, with
``train.select_every`` ``best.safetensors`` (the best-scored sampling generator), with
``data.condition_on`` ``conditions.npy`` (the training jets' conditions, which sampling draws
from), for jets ``support.json`` (the training jets' range of each support feature, see
:mod:`physgan.metrics.support`), after ``evaluate``, ``metrics.json``, and after rejection
sampling with a D calibrated at sampling time, ``calibrated.safetensors`` (that D, for the
generator of its step), or with ``sample.ratio: observables``, ``ratio.safetensors``. Every file is
written through a temporary file and a rename. Reading checks what is read: a run of another
physgan version, a config the schema refuses, and malformed ``meta.json`` or ``transform.json``
are each one line naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from physgan.atomic import write_atomic
from physgan.errors import CheckpointError, ConfigError
from physgan.version import __version__

__all__ = ["SUPPORT_TAIL", "RunDir", "json_ready"]

# The support that sampling keeps generated jets in leaves out this fraction of the training
# jets at each end of each feature: the outermost few of 10^5 jets, whose extremes a fresh real
# sample rarely reaches (so jets generated there would count as outside its range).
SUPPORT_TAIL = 1e-4


class RunDir:
    """Paths and small files of one run directory."""

    def __init__(self, root: str | Path) -> None:
        from physgan.pretrained import is_pretrained, pretrained_dir

        # A shipped generator (pretrained:NAME) is read in the package and never written to.
        self.shipped = is_pretrained(root)
        self.root = pretrained_dir(str(root)) if self.shipped else Path(root)
        self.config = self.root / "config.yaml"
        self.meta = self.root / "meta.json"
        self.transform = self.root / "transform.json"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoint = self.root / "checkpoint.safetensors"
        self.best = self.root / "best.safetensors"
        self.calibrated = self.root / "calibrated.safetensors"
        self.ratio = self.root / "ratio.safetensors"
        self.conditions = self.root / "conditions.npy"
        self.support = self.root / "support.json"
        self.evaluation = self.root / "metrics.json"
        self.tensorboard = self.root / "tensorboard"

    def prepare(self, *, resume: bool) -> bool:
        """Create the directory (or check it for ``resume``); return True if resuming.

        A fresh run refuses a non-empty directory, so no earlier result is overwritten, and
        checks that the directory is writable before any training starts. A resume refuses a
        directory that is not a run, and a run of another version or with malformed files.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root}: exists and is not a directory")
        if self.checkpoint.exists() and not self.checkpoint.is_file():
            raise CheckpointError(f"{self.checkpoint}: not a file")
        resuming = resume and self.checkpoint.is_file()
        if not resuming and self.root.is_dir() and any(self.root.iterdir()):
            if resume and self.config.is_file():
                resuming = False  # killed before its first checkpoint: start it again
            elif resume:
                raise ConfigError(
                    f"--out {self.root}: not a run directory (no config.yaml) and not empty; "
                    "choose a new directory"
                )
            else:
                raise ConfigError(
                    f"--out {self.root}: directory is not empty; pass --resume to continue "
                    "the run in it, or choose a new directory"
                )
        if resuming:
            self.read_config()  # refuses another version's run and a config the schema refuses
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
        """The run's config as saved (a dict), checked against this version and the schema.

        A run written by another physgan version is refused first (its config may predate the
        schema), then malformed ``meta.json`` or ``transform.json`` (so that a command refuses
        the run before it writes anything), then a config that is not YAML or that the schema
        refuses, naming the file.
        """
        from physgan.config import parse_config

        if not self.config.is_file():
            raise CheckpointError(f"{self.root}: not a run directory (no config.yaml)")
        for path in (self.meta, self.transform):  # the version first, then the transform
            if path.exists():
                self.read_json(path)
        try:
            raw = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            raise CheckpointError(f"{self.config}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{self.config}: expected a mapping")
        try:
            parse_config(raw)
        except ConfigError as err:
            raise CheckpointError(f"{self.config}: {str(err).removeprefix('config: ')}") from None
        return raw

    def write_conditions(self, cond: np.ndarray) -> None:
        """Save the training data's conditions (m, cond_dim), float32, for sampling."""
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(cond, dtype=np.float32), allow_pickle=False)
        write_atomic(self.conditions, buffer.getvalue())

    def read_conditions(self, cond_dim: int) -> np.ndarray | None:
        """The saved conditions (m, cond_dim), checked; None if the run has none saved."""
        if not self.conditions.is_file():
            return None
        try:
            cond = np.load(self.conditions, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{self.conditions}: cannot read ({err})") from None
        if cond.ndim != 2 or cond.shape[1] != cond_dim or not len(cond):
            raise CheckpointError(
                f"{self.conditions}: expected (m, {cond_dim}) conditions, got {cond.shape}"
            )
        if not np.isfinite(cond).all():
            raise CheckpointError(f"{self.conditions}: holds NaN or inf")
        return cond

    def write_support(self, clouds: np.ndarray) -> None:
        """Save the support of the training clouds (n, N, 4): for each support feature, the
        range between its ``SUPPORT_TAIL`` and 1 - ``SUPPORT_TAIL`` quantiles."""
        from physgan.metrics.support import SUPPORT_FEATURES, support_features

        lo, hi = np.quantile(support_features(clouds), [SUPPORT_TAIL, 1 - SUPPORT_TAIL], axis=0)
        self.write_json(
            self.support,
            {
                "features": list(SUPPORT_FEATURES),
                "tail": SUPPORT_TAIL,
                "min": lo.tolist(),
                "max": hi.tolist(),
            },
        )

    def read_support(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The saved support (min, max), each (4,), checked; None if the run has none."""
        if not self.support.is_file():
            return None
        spec = self.read_json(self.support)
        lo, hi = np.asarray(spec.get("min"), float), np.asarray(spec.get("max"), float)
        if lo.shape != (4,) or hi.shape != (4,) or not (np.isfinite(lo).all() and (lo <= hi).all()):
            raise CheckpointError(f"{self.support}: expected min <= max, 4 finite numbers each")
        return lo, hi

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, path: Path) -> dict[str, Any]:
        """A JSON object from ``path``; ``meta.json`` and ``transform.json`` are validated."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else err
            raise CheckpointError(f"{path}: cannot read ({reason})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
        if path == self.meta:
            self._check_meta(data)
        elif path == self.transform:
            self._check_transform(data)
        return data

    def _check_meta(self, meta: dict[str, Any]) -> None:
        version = meta.get("physgan_version")
        if not isinstance(version, str):
            raise CheckpointError(f"{self.meta}: no physgan_version (not written by physgan?)")
        if version != __version__:
            raise CheckpointError(
                f"{self.root}: written by physgan {version}, this is {__version__}; "
                "use that version, or train the run again"
            )
        shape, cond_dim = meta.get("sample_shape"), meta.get("cond_dim")
        if not (isinstance(shape, list) and shape and all(_count(n, 1) for n in shape)):
            raise CheckpointError(f"{self.meta}: sample_shape must be a list of positive integers")
        if not _count(cond_dim, 0):
            raise CheckpointError(f"{self.meta}: cond_dim must be a non-negative integer")
        if "cond_transform" in meta:  # written since physgan conditions on jet features
            spec = meta["cond_transform"]
            if not isinstance(spec, dict) or spec.get("kind") not in ("standardize", "none"):
                raise CheckpointError(f"{self.meta}: cond_transform: expected standardize or none")
            _check_affine(self.meta, spec, cond_dim)

    def _check_transform(self, spec: dict[str, Any]) -> None:
        kinds = ("standardize", "particle_standardize", "sqrt", "none")
        kind = spec.get("kind")
        if kind not in kinds:
            raise CheckpointError(
                f"{self.transform}: unknown kind {kind!r}; expected one of {', '.join(kinds)}"
            )
        if kind == "sqrt":
            if not (_numbers([spec.get("scale")]) and spec["scale"] > 0):
                raise CheckpointError(f"{self.transform}: scale must be a positive number")
            return
        if kind == "none" or not self.meta.is_file():
            _check_affine(self.transform, spec, None)
            return
        shape = self.read_json(self.meta)["sample_shape"]
        _check_affine(self.transform, spec, shape[-1] - (kind == "particle_standardize"))

    def read_metrics(self) -> list[dict[str, Any]]:
        """The logged rows of ``metrics.jsonl``; a line cut by a kill, and all after it, are
        left out (as :meth:`truncate_metrics` drops them)."""
        if not self.metrics.is_file():
            return []
        rows = []
        for line in self.metrics.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(row, dict):
                break
            rows.append(row)
        return rows

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


def _count(value: Any, least: int) -> bool:
    """An int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _numbers(values: Any) -> bool:
    """A list of finite numbers (not bools)."""
    return isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_affine(path: Path, spec: dict[str, Any], features: int | None) -> None:
    """A standardisation's mean and std: finite, positive std, ``features`` long if given."""
    if spec.get("kind") == "none":
        return
    mean, std = spec.get("mean"), spec.get("std")
    if not (_numbers(mean) and _numbers(std) and len(mean) == len(std) and mean):
        raise CheckpointError(f"{path}: mean and std must be equally long lists of finite numbers")
    if min(std) <= 0:
        raise CheckpointError(f"{path}: std must be positive")
    if features is not None and len(mean) != features:
        raise CheckpointError(f"{path}: {len(mean)} features, but the data have {features}")


def json_ready(value: Any) -> Any:
    """Infinite and NaN floats as null, recursively, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
