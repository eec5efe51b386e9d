"""Checkpoints as one safetensors file (weights) with JSON metadata: no pickle, atomic writes.

Layout: tensors named ``<module>.<state-dict key>`` for each network and
``<optimizer>.state.<param index>.<name>`` for optimiser buffers; the metadata entry
``physgan`` holds JSON with the step, the optimisers' ``param_groups`` and any extra fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from physgan.atomic import write_atomic
from physgan.errors import CheckpointError
from physgan.training.state import TrainingState

__all__ = ["load_checkpoint", "save_checkpoint"]


def _flatten(state: TrainingState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in state.modules().items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().contiguous()
    groups = {}
    for name, opt in state.optimizers().items():
        sd = opt.state_dict()
        for index, buffers in sd["state"].items():
            for key, value in buffers.items():
                if not torch.is_tensor(value):
                    raise CheckpointError(f"{name}: non-tensor optimiser state {key!r}")
                tensors[f"{name}.state.{index}.{key}"] = value.detach().contiguous()
        groups[name] = sd["param_groups"]
    return tensors, {"step": state.step, "param_groups": groups}


def save_checkpoint(
    path: str | Path, state: TrainingState, extra: dict[str, Any] | None = None
) -> None:
    """Write ``state`` to ``path`` atomically: temporary file, fsync, rename."""
    path = Path(path)
    tensors, meta = _flatten(state)
    meta.update(extra or {})
    # Clone so that tensors sharing storage (e.g. tied or EMA-initialised weights) serialise.
    blob = save({k: v.clone() for k, v in tensors.items()}, metadata={"physgan": json.dumps(meta)})
    write_atomic(path, blob)


def load_checkpoint(path: str | Path, state: TrainingState) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``state``; return its metadata."""
    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["physgan"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: not a physgan checkpoint ({err})") from None
    try:
        for name, module in state.modules().items():
            prefix = f"{name}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        for name, opt in state.optimizers().items():
            buffers: dict[int, dict[str, torch.Tensor]] = {}
            prefix = f"{name}.state."
            for key, value in tensors.items():
                if key.startswith(prefix):
                    index, buf = key[len(prefix) :].split(".", 1)
                    buffers.setdefault(int(index), {})[buf] = value
            opt.load_state_dict({"state": buffers, "param_groups": meta["param_groups"][name]})
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: does not match the model ({err})") from None
    state.step = int(meta["step"])
    return meta
