"""Helpers shared by the benchmark scripts: machine facts and writing the JSON result."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def write_json(out_dir: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus machine facts to ``out_dir/name`` and return the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def grid25_config(hidden: int, batch: int, steps: int, **train: Any) -> dict[str, Any]:
    """The grid25 MLP GAN (3 hidden layers of ``hidden`` each) that the loop benchmarks train;
    a checkpoint at the end, ``train`` overrides the rest of the train section."""
    return {
        "seed": 0,
        "data": {"name": "grid25", "n_train": 100_000},
        "model": {
            "generator": {"latent_dim": 8, "hidden": hidden, "depth": 3},
            "discriminator": {"hidden": hidden, "depth": 3},
        },
        "train": {"steps": steps, "batch_size": batch, "checkpoint_every": steps, **train},
    }


class StepTimer:
    """A training-loop callback timing the steps after the first (warm-up excluded)."""

    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.steps = 0

    def on_step(self, state: Any, logs: Any) -> None:
        if self.steps == 0:
            self.start = time.perf_counter()
        self.steps += 1
        self.end = time.perf_counter()

    def on_end(self, state: Any) -> None:
        pass

    @property
    def rate(self) -> float:
        """Steps per second after the first step."""
        return (self.steps - 1) / (self.end - self.start)
