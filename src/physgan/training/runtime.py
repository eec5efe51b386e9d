"""How the one loop runs: device, mixed precision, torch.compile and data-parallel ranks.

A :class:`Runtime` is handed to the step functions; it never changes what a step computes,
only where and how. Under DistributedDataParallel every rank draws the same global batch from
the per-step stream (seed, step) and keeps its own contiguous share, so N ranks with a global
batch B take the same steps, within floating-point reduction order, as one process with B.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from physgan.training.seeding import step_generator

__all__ = ["Precision", "Runtime", "no_weight_grads", "optimise"]

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class _Method(nn.Module):
    """Routes ``forward`` to another method (a VAE's ``elbo_terms``, a flow's ``log_prob``), so
    that DistributedDataParallel, which hooks ``forward``, sees the call."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, self.method)(*args, **kwargs)


@dataclass(frozen=True)
class Runtime:
    """Device, autocast precision, compilation, and this process's rank among ``world_size``.

    >>> rt = Runtime(rank=1, world_size=2)
    >>> rt.share(torch.arange(6)).tolist()
    [3, 4, 5]
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Precision = "fp32"
    compile: bool = False
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def generator(self, *keys: int) -> torch.Generator:
        """A generator on the device seeded from ``derive_seed(*keys)``: the same on every rank."""
        return step_generator(*keys, device=self.device)

    def share(self, batch: Tensor) -> Tensor:
        """This rank's contiguous share of a global batch (its first dimension)."""
        if not self.distributed:
            return batch
        size = batch.shape[0] // self.world_size
        return batch[self.rank * size : (self.rank + 1) * size]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for the forward passes (a no-op for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def trainable(self, module: nn.Module, method: str = "forward") -> Callable[..., Any]:
        """``module.method`` as the step calls it when its gradients train the module:
        wrapped in DistributedDataParallel on several ranks, then compiled if asked."""
        wrapped: nn.Module = module if method == "forward" else _Method(module, method)
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # No buffer broadcast before each forward: every rank updates its buffers
            # (spectral-norm vectors, batch-norm statistics) from the same weights itself.
            wrapped = nn.parallel.DistributedDataParallel(
                wrapped, device_ids=ids, forward_sync_buffers=False
            )
        return torch.compile(wrapped) if self.compile else wrapped

    def frozen(self, module: nn.Module) -> Callable[..., Any]:
        """``module`` as the step calls it when no gradient reaches its weights."""
        return torch.compile(module) if self.compile else module

    def mean(self, logs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The step's scalars averaged over ranks (one collective): the global batch's values."""
        if not self.distributed or not logs:
            return logs
        values = torch.stack([v.detach().float().reshape(()) for v in logs.values()])
        dist.all_reduce(values)
        return dict(zip(logs, values / self.world_size, strict=True))

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (e.g. a signal reached one rank)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def optimise(loss: Tensor, opt: torch.optim.Optimizer, scaler: Any = None) -> None:
    """One optimiser step on ``loss``, through the grad scaler when there is one."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


@contextlib.contextmanager
def no_weight_grads(module: nn.Module) -> Iterator[None]:
    """Skip the gradients of ``module``'s weights (they would be discarded) in a backward pass
    that only trains another network through it."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
