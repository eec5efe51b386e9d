"""Helpers shared by the benchmark scripts: machine facts and writing the JSON result."""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgan import api


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


def merged(base: dict[str, Any], *changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each change's leaves set (nested dicts merged, other values replaced)."""
    out = copy.deepcopy(base)
    for change in changes:
        stack = [(out, change)]
        while stack:
            target, patch = stack.pop()
            for key, value in patch.items():
                if isinstance(value, dict) and isinstance(target.get(key), dict):
                    stack.append((target[key], value))
                else:
                    target[key] = copy.deepcopy(value)
    return out


def run_variant(name: str, config: dict[str, Any], steps: int, every: int, out: Path) -> dict:
    """Train ``config`` for ``steps`` steps (resuming its run under ``out/runs``), scoring the
    sampling generator every ``every`` steps; the last and best validation scores, the step
    and outlier fraction of the best, every validation value there, and the seconds it took
    (this session's, if it resumed)."""
    config = copy.deepcopy(config)
    config["train"].update(steps=steps, log_every=every, checkpoint_every=every, select_every=every)
    run_dir = out / "runs" / name.split(" (")[0].replace(" ", "-").replace(",", "")
    start = time.perf_counter()
    api.train(config, run_dir, resume=True, progress=False)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "val_score" in r]
    best = min(scored, key=lambda r: r["val_score"])
    return {
        "variant": name,
        "last_score": scored[-1]["val_score"],
        "best_score": best["val_score"],
        "best_step": best["step"],
        "outliers_at_best": best["val_outliers"],
        "at_best": {key: value for key, value in best.items() if key.startswith("val_")},
        "seconds": seconds,
    }
