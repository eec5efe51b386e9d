"""Checkpoints as one safetensors file (weights) with JSON metadata: no pickle, atomic writes.

Layout: tensors named ``<module>.<state-dict key>`` for each network and
``<optimizer>.state.<param index>.<name>`` for optimiser buffers; the metadata entry
``physgan`` holds JSON with the step, the optimisers' ``param_groups``, the fp16 grad scalers'
state and any extra fields. Tensors are saved from the CPU, so a run moves between devices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from physgan.atomic import write_atomic
from physgan.errors import CheckpointError
from physgan.training.state import TrainingState

__all__ = [
    "checkpoint_step",
    "load_checkpoint",
    "load_weights",
    "read_weights",
    "save_checkpoint",
    "save_weights",
    "saved_modules",
]


def _flatten(state: TrainingState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in state.modules().items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    groups = {}
    for name, opt in state.optimizers().items():
        sd = opt.state_dict()
        for index, buffers in sd["state"].items():
            for key, value in buffers.items():
                if not torch.is_tensor(value):
                    raise CheckpointError(f"{name}: non-tensor optimiser state {key!r}")
                tensors[f"{name}.state.{index}.{key}"] = value.detach().cpu().contiguous()
        groups[name] = sd["param_groups"]
    scalers = {name: scaler.state_dict() for name, scaler in state.scalers.items()}
    return tensors, {"step": state.step, "param_groups": groups, "scalers": scalers}


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


def _refuse_code_formats(path: Path) -> None:
    """Name the formats that can run code when loaded (pickle, torch.save's zip) and refuse them."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path}: cannot read ({err.strerror})") from None
    kind = None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocol 2-5
        kind = "a pickle"
    elif head.startswith(b"PK\x03\x04"):
        kind = "a zip archive (torch.save)"
    if kind:
        raise CheckpointError(
            f"checkpoint {path}: {kind}, refused: loading it could run code "
            "(physgan checkpoints are safetensors)"
        )


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def _open(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the physgan metadata (with a step) of a safetensors file, checked;
    nothing unpickled."""
    _refuse_code_formats(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("physgan")
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint {path}: not a safetensors file ({_one_line(err)})"
        ) from None
    if raw is None:
        raise CheckpointError(f"checkpoint {path}: no physgan metadata (not a physgan checkpoint)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"checkpoint {path}: its physgan metadata is not JSON") from None
    step = meta.get("step") if isinstance(meta, dict) else None
    if not (isinstance(step, int) and step >= 0):
        raise CheckpointError(f"checkpoint {path}: its physgan metadata lacks the step")
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"checkpoint {path}: {key} holds NaN or inf")
    return tensors, meta


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A whole checkpoint: :func:`_open`, and the optimisers' ``param_groups``."""
    tensors, meta = _open(path)
    if not isinstance(meta.get("param_groups"), dict):
        raise CheckpointError(f"checkpoint {path}: its physgan metadata lacks param_groups")
    return tensors, meta


def save_weights(path: str | Path, module: nn.Module, meta: dict[str, Any]) -> None:
    """Write one network's state dict (e.g. the best sampling generator) to ``path``
    atomically, with ``meta`` (which holds at least the ``step``) as its physgan metadata."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_tensors(path, tensors, meta)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write named tensors to ``path`` atomically, as :func:`save_weights` does (read back by
    :func:`read_weights`)."""
    write_atomic(Path(path), save(tensors, metadata={"physgan": json.dumps(meta)}))


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a file of :func:`save_weights`, checked as checkpoints are."""
    return _open(Path(path))


def load_weights(path: str | Path, module: nn.Module) -> dict[str, Any]:
    """Load a file of :func:`save_weights` into ``module``; return its metadata. A file that
    does not fit the module is refused with one line naming it."""
    path = Path(path)
    tensors, meta = _open(path)
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in tensors or tuple(tensors[key].shape) != tuple(value.shape):
            raise CheckpointError(f"weights {path}: do not match the model (at {key})")
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        reason = _one_line(err)
        raise CheckpointError(f"weights {path}: do not match the model ({reason})") from None
    return meta


def _check_modules(path: Path, state: TrainingState, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse, before loading anything, tensors the state's networks do not have or shape."""
    for name, module in state.modules().items():
        prefix = f"{name}."
        saved = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        for key, value in module.state_dict().items():
            if key not in saved:
                raise CheckpointError(
                    f"checkpoint {path}: does not match the model (no tensor {name}.{key})"
                )
            if tuple(saved[key].shape) != tuple(value.shape):
                raise CheckpointError(
                    f"checkpoint {path}: does not match the model ({name}.{key} has shape "
                    f"{tuple(saved[key].shape)}, the model {tuple(value.shape)})"
                )


def checkpoint_step(path: str | Path) -> int:
    """The training step a checkpoint was written at (the file is checked, not loaded)."""
    return _read(Path(path))[1]["step"]


def saved_modules(path: str | Path) -> set[str]:
    """The names of the networks and optimisers a checkpoint holds, from its header alone (no
    tensor is read); empty for a file that is not safetensors, which ``load_checkpoint`` then
    refuses with its one-line error."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {key.split(".", 1)[0] for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return set()


def load_checkpoint(path: str | Path, state: TrainingState) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``state``; return its metadata.

    Only safetensors is read: a pickle or a ``torch.save`` file is refused before any of it is
    parsed. Raises CheckpointError (one line naming the file) for a missing, truncated or
    foreign file, non-finite tensors, or tensors that do not fit the state's networks.
    """
    path = Path(path)
    tensors, meta = _read(path)
    _check_modules(path, state, tensors)
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
        for name, scaler in state.scalers.items():
            saved = meta.get("scalers", {}).get(name)
            if saved:  # absent from checkpoints written before fp16 training existed
                scaler.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint {path}: does not match the model ({_one_line(err)})"
        ) from None
    state.step = meta["step"]
    return meta
