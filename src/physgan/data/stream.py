"""HDF5 training data larger than memory, streamed through RAM one shuffled buffer at a time.

:func:`open_stream` cuts a file into blocks of whole HDF5 chunks, holds out a seeded random
fraction of the blocks (read into RAM) and reads a subsample of training blocks to fit the
transform on. :class:`StreamingSampler` trains on a buffer of training blocks drawn from across
the file and swaps it every ``refresh_every`` steps. The buffer of period
``r = step // refresh_every`` depends only on ``(seed, r)``, so resuming at step k is exact.
While one buffer trains, a thread reads the next: h5py releases the GIL inside its reads
(contiguous, chunked and gzip datasets alike), so reading overlaps the training steps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from physgan.data.io import READ_ERRORS, Source, as_float32, select_layout, unreadable
from physgan.errors import ConfigError, DataError, PhysganError

__all__ = ["StreamPlan", "StreamingSampler", "open_stream"]

_BLOCK_BYTES = 1 << 20  # reads of about 1 MiB run at disk speed ...
_MIN_BLOCKS = 64  # ... but a small file still gets enough blocks to shuffle

# Raw rows (n, *sample_shape) float32 -> normalised rows of the same shape.
Transform = Callable[[np.ndarray], np.ndarray]
# Allocates a float32 CPU tensor of the given shape.
Empty = Callable[[tuple[int, ...]], Tensor]


def _empty(shape: tuple[int, ...]) -> Tensor:
    return torch.from_numpy(np.empty(shape, np.float32))


@dataclass(frozen=True)
class StreamPlan:
    """An HDF5 file cut into blocks: which ones train and which are held out (read into RAM).

    Block ``b`` is rows ``[b * block_rows, (b + 1) * block_rows)`` of the file (the last one may
    be shorter). Arrays are float32 in the file's own units: ``x_*`` of shape
    (n, *sample_shape), ``cond_*`` of shape (n, cond_dim), or None for a file without
    conditions. ``x_fit`` and ``cond_fit`` are a seeded random subsample of whole training
    blocks, to fit the transform, count particle multiplicities and draw conditions from.
    """

    path: Path
    x_key: str
    cond_key: str | None
    n_rows: int
    block_rows: int
    sample_shape: tuple[int, ...]
    seed: int
    train_blocks: np.ndarray  # sorted block indices (int64)
    holdout_blocks: np.ndarray
    x_holdout: np.ndarray
    cond_holdout: np.ndarray | None
    x_fit: np.ndarray
    cond_fit: np.ndarray | None

    @property
    def cond_dim(self) -> int:
        return 0 if self.cond_holdout is None else int(self.cond_holdout.shape[1])


class _Blocks:
    """Reads whole blocks of a file into float32 tensors, refusing NaN and inf."""

    def __init__(self, plan: StreamPlan) -> None:
        self.src, self.plan = str(plan.path), plan
        try:
            self.file = h5py.File(plan.path, "r")
        except READ_ERRORS as err:
            raise unreadable(self.src, err) from None

    def read(
        self, blocks: np.ndarray, *, transform: Transform | None = None, empty: Empty = _empty
    ) -> tuple[Tensor, Tensor | None]:
        """Rows of ``blocks`` in that order: x (n, *sample_shape) with ``transform`` applied
        block by block, and cond (n, cond_dim) or None."""
        p = self.plan
        rows = [slice(b * p.block_rows, min((b + 1) * p.block_rows, p.n_rows)) for b in blocks]
        n = sum(r.stop - r.start for r in rows)
        x = empty((n, *p.sample_shape))
        self._fill(p.x_key, rows, x.numpy(), transform)
        if p.cond_key is None:
            return x, None
        cond = empty((n, self.file[p.cond_key].shape[1]))
        self._fill(p.cond_key, rows, cond.numpy(), None)
        return x, cond

    def _fill(
        self, key: str, rows: list[slice], out: np.ndarray, transform: Transform | None
    ) -> None:
        at = 0
        for r in rows:
            try:
                raw = np.asarray(self.file[key][r])
            except READ_ERRORS as err:
                raise unreadable(self.src, err) from None
            block = _finite32(self.src, key, raw, r.start).reshape(-1, *out.shape[1:])
            # Block by block, so that the transform's temporaries stay the size of a block.
            out[at : at + len(block)] = block if transform is None else transform(block)
            at += len(block)

    def close(self) -> None:
        self.file.close()


def _finite32(src: str, key: str, raw: np.ndarray, first_row: int) -> np.ndarray:
    if raw.dtype.kind == "f":
        flat = raw.reshape(len(raw), -1)
        finite = np.isfinite(flat)
        if not finite.all():
            row = int((~finite).any(axis=1).argmax())
            value = flat[row][~finite[row]][0]
            raise DataError(
                f"{src}: {key} holds NaN or inf (first at row {first_row + row}: {value})"
            )
    return raw if raw.dtype == np.float32 else as_float32(src, key, raw)


def _layout(src: str, fh: h5py.File) -> tuple[str, str | None]:
    """The x and cond datasets of the file's layout (those of ``read_arrays``), validated."""
    names: list[str] = []

    def collect(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    fh.visititems(collect)
    keys = select_layout(Source(Path(src)), names)
    for key in keys:
        shape, dtype = fh[key].shape, fh[key].dtype
        if shape is None:  # h5py.Empty
            raise DataError(f"{src}: {key} is an empty dataset (no shape, no values)")
        if dtype.kind not in "fiub":
            raise DataError(f"{src}: {key} has dtype {dtype}, expected numbers")
        if len(shape) == 0 or math.prod(shape) == 0:
            raise DataError(f"{src}: {key} has shape {shape}, expected (n_rows, ...) n > 0")
    x_shape = fh[keys[0]].shape
    if len(x_shape) < 2:
        raise DataError(f"{src}: {keys[0]} has shape {x_shape}, expected (n_samples, ...)")
    for key in keys[1:]:
        if len(fh[key].shape) != 2 or fh[key].shape[0] != x_shape[0]:
            raise DataError(f"{src}: {key} has shape {fh[key].shape}, expected ({x_shape[0]}, c)")
    return keys[0], keys[1] if len(keys) > 1 else None


def _block_rows(ds: h5py.Dataset) -> int:
    """Whole chunks (compressed ones are read whole anyway) of about ``_BLOCK_BYTES``."""
    n_rows = ds.shape[0]
    row_bytes = ds.dtype.itemsize * math.prod(ds.shape[1:])
    rows = max(1, min(_BLOCK_BYTES // row_bytes, n_rows // _MIN_BLOCKS))
    chunk = ds.chunks[0] if ds.chunks else 1
    return max(1, rows // chunk) * chunk


def open_stream(
    path: str | os.PathLike[str], *, holdout_fraction: float, seed: int, fit_rows: int = 200_000
) -> StreamPlan:
    """Plan training on an HDF5 file without reading it whole.

    Accepts the layouts of :func:`physgan.data.io.read_arrays` (``x`` with optional ``cond``,
    CaloChallenge, jets, jet images). Blocks are whole HDF5 chunks of about 1 MiB (at least 64
    blocks in the file); a seeded ``holdout_fraction`` of them is the holdout, read into RAM;
    ``fit_rows`` (rounded down to whole blocks, at least one) is the size of the training
    subsample read for fitting the transform.

    Raises:
        DataError: one line naming the file (missing, not HDF5, corrupt, no known layout, wrong
            shape or dtype, NaN or inf in a block read).
        ConfigError: ``holdout_fraction`` leaves no training or no holdout block.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.h5"
    >>> with h5py.File(path, "w") as fh:
    ...     _ = fh.create_dataset("x", data=np.ones((1000, 3)), chunks=(10, 3))
    >>> plan = open_stream(path, holdout_fraction=0.1, seed=0, fit_rows=100)
    >>> plan.block_rows, len(plan.train_blocks), plan.x_holdout.shape, plan.x_fit.shape
    (10, 90, (100, 3), (100, 3))
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataError(f"{src}: {'not a regular file' if path.exists() else 'no such file'}")
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise DataError(f"{src}: streaming reads HDF5 files (.h5, .hdf5) only")
    try:
        with h5py.File(path, "r") as fh:
            x_key, cond_key = _layout(src, fh)
            x_shape, block_rows = fh[x_key].shape, _block_rows(fh[x_key])
    except PhysganError:
        raise
    except READ_ERRORS as err:
        raise unreadable(src, err) from None
    n_blocks = -(-x_shape[0] // block_rows)
    n_holdout = round(holdout_fraction * n_blocks)
    if not 1 <= n_holdout < n_blocks:
        raise ConfigError(
            f"config: data.holdout_fraction: {holdout_fraction} leaves no training or holdout "
            "block among "
            f"the {n_blocks} blocks of {block_rows} rows of {src}"
        )
    order = np.random.default_rng([seed, 1]).permutation(n_blocks)
    train = np.sort(order[n_holdout:])
    fit = np.random.default_rng([seed, 3]).permutation(train)[: max(1, fit_rows // block_rows)]
    plan = StreamPlan(
        path=path,
        x_key=x_key,
        cond_key=cond_key,
        n_rows=x_shape[0],
        block_rows=block_rows,
        # Jet images (n, P, P) get one channel, as read_arrays gives them to image models.
        sample_shape=(1, *x_shape[1:]) if x_key == "images" else tuple(x_shape[1:]),
        seed=seed,
        train_blocks=train,
        holdout_blocks=np.sort(order[:n_holdout]),
        x_holdout=np.empty(0, np.float32),  # read next, with this plan
        cond_holdout=None,
        x_fit=np.empty(0, np.float32),
        cond_fit=None,
    )
    reader = _Blocks(plan)
    try:
        x_holdout, cond_holdout = reader.read(plan.holdout_blocks)
        x_fit, cond_fit = reader.read(np.sort(fit))
    finally:
        reader.close()
    return replace(
        plan,
        x_holdout=x_holdout.numpy(),
        cond_holdout=None if cond_holdout is None else cond_holdout.numpy(),
        x_fit=x_fit.numpy(),
        cond_fit=None if cond_fit is None else cond_fit.numpy(),
    )


class StreamingSampler:
    """Real batches from a buffer of training blocks that changes every ``refresh_every`` steps.

    A ``BatchSampler`` (``sampler(n, gen) -> (x, cond or None)``, float32 on ``device``, x of
    shape (n / world_size, *sample_shape) in normalised units, cond (n / world_size, cond_dim))
    and a loop callback. The buffer holds ``buffer_rows // block_rows`` training blocks (at
    least one, at most all): the next ones in a stream that visits every training block once
    per pass, each pass in a fresh seeded order, so rows from across the file mix. Call
    :meth:`start` with the step training resumes from (0 for a new run) before every call of
    ``fit`` (also after a rollback), and pass the sampler to ``fit`` as a callback; its
    ``on_end`` (or :meth:`close`) stops the reading thread and closes the file.

    Args:
        plan: from :func:`open_stream`.
        buffer_rows: rows held in RAM per buffer; two buffers are alive at most (the one in use
            and the one being read).
        refresh_every: steps per buffer; ``buffer_rows // batch_size`` draws each buffered row
            about once.
        transform: raw rows (n, *sample_shape) -> normalised rows, applied once to each row
            read (block by block), e.g. ``Standardize.fit(plan.x_fit).forward``; None: identity.
        rank, world_size: with data parallelism, ``n`` is the global batch (a multiple of
            ``world_size``): every rank draws the same global indices from ``gen`` and keeps
            its contiguous share ``[rank * n // world_size, (rank + 1) * n // world_size)``.
        device: where batches go. On CUDA the buffer is read into page-locked memory (torch's
            host allocator rounds it up to a power of two bytes) and copied to the GPU once
            per period, asynchronously: one buffer lives on the GPU, where batches are gathered.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.h5"
    >>> with h5py.File(path, "w") as fh:
    ...     _ = fh.create_dataset("x", data=np.ones((1000, 2)), chunks=(10, 2))
    >>> plan = open_stream(path, holdout_fraction=0.1, seed=0)
    >>> with StreamingSampler(plan, buffer_rows=100, refresh_every=5) as sampler:
    ...     sampler.start(0)
    ...     x, cond = sampler(8, torch.Generator().manual_seed(0))
    >>> x.shape, cond, sampler.blocks_per_buffer, len(plan.train_blocks)
    (torch.Size([8, 2]), None, 10, 90)
    """

    def __init__(
        self,
        plan: StreamPlan,
        *,
        buffer_rows: int,
        refresh_every: int,
        transform: Transform | None = None,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if buffer_rows < 1 or refresh_every < 1:
            raise ConfigError(
                f"buffer_rows ({buffer_rows}) and refresh_every ({refresh_every}) must be >= 1"
            )
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not one of the {world_size} ranks")
        self.plan, self.refresh_every, self.transform = plan, refresh_every, transform
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        n_train = len(plan.train_blocks)
        self.blocks_per_buffer = min(n_train, max(1, buffer_rows // plan.block_rows))
        self._blocks: _Blocks | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._next: tuple[int, Future[tuple[Tensor, Tensor | None]]] | None = None
        self._buffer: tuple[Tensor, Tensor | None] | None = None
        self._period = -1

    def blocks(self, period: int) -> np.ndarray:
        """The training blocks of ``period``'s buffer, sorted: positions
        ``[period * k, (period + 1) * k)`` (k = ``blocks_per_buffer``) of the block stream."""
        train, k = self.plan.train_blocks, self.blocks_per_buffer
        positions = np.arange(period * k, (period + 1) * k)
        passes = positions // len(train)
        parts = [
            np.random.default_rng([self.plan.seed, 2, int(p)]).permutation(train)[
                positions[passes == p] % len(train)
            ]
            for p in np.unique(passes)
        ]
        return np.sort(np.concatenate(parts))

    def start(self, step: int) -> None:
        """Read the buffer of ``step``'s period (waiting for it) and start reading the next."""
        self.close()
        self._blocks = _Blocks(self.plan)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="physgan-stream")
        self._swap(step // self.refresh_every)

    def __call__(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor | None]:
        if self._buffer is None:
            raise RuntimeError("StreamingSampler: call start(step) before drawing batches")
        if n % self.world_size:
            raise ConfigError(f"batch size {n} is not a multiple of world_size {self.world_size}")
        x, cond = self._buffer
        idx = torch.randint(len(x), (n,), generator=gen, device=gen.device)
        share = n // self.world_size
        idx = idx[self.rank * share : (self.rank + 1) * share].to(x.device)
        return x[idx], None if cond is None else cond[idx]

    def on_step(self, state: Any, logs: dict[str, Tensor]) -> None:
        """After each step (``state.step`` already counts it): swap at a new period."""
        period = state.step // self.refresh_every
        if period != self._period and self.blocks_per_buffer < len(self.plan.train_blocks):
            self._swap(period)

    def on_end(self, state: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reading thread (after its current read) and close the file."""
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
        if self._blocks is not None:
            self._blocks.close()
        self._blocks = self._reader = self._next = self._buffer = None
        self._period = -1

    def __enter__(self) -> StreamingSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _empty(self, shape: tuple[int, ...]) -> Tensor:
        if self.device.type == "cuda":  # page-locked, so that the copy to the GPU is async
            return torch.empty(shape, dtype=torch.float32, pin_memory=True)
        return _empty(shape)

    def _read(self, period: int) -> tuple[Tensor, Tensor | None]:
        assert self._blocks is not None
        return self._blocks.read(self.blocks(period), transform=self.transform, empty=self._empty)

    def _prefetch(self, period: int) -> None:
        assert self._reader is not None
        self._next = (period, self._reader.submit(self._read, period))

    def _swap(self, period: int) -> None:
        self._buffer = None  # let go first: at most two buffers are ever alive
        if self._next is None or self._next[0] != period:
            self._prefetch(period)  # after a jump: a stale read still running ends unused
        assert self._next is not None
        try:
            x, cond = self._next[1].result()
        except BaseException:
            self.close()
            raise
        self._buffer = (
            x.to(self.device, non_blocking=True),
            None if cond is None else cond.to(self.device, non_blocking=True),
        )
        self._period, self._next = period, None
        if self.blocks_per_buffer < len(self.plan.train_blocks):
            self._prefetch(period + 1)
