"""Several processes training one model: torchrun's environment, the process group, launching.

``torchrun --nproc-per-node N -m physgan train CONFIG --out DIR`` starts N copies of the CLI
with RANK, WORLD_SIZE and LOCAL_RANK set; :func:`runtime_from_env` turns that into a
:class:`~physgan.training.runtime.Runtime` (NCCL on GPUs, gloo on CPUs). ``physgan train
--nproc N`` does the same through :func:`launch`, torch's own elastic launcher.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from physgan.errors import ConfigError, WorkerFailed
from physgan.training.runtime import Precision, Runtime

__all__ = ["is_worker", "launch", "quiet", "report_failure", "runtime_from_env", "session"]

_ERRORS = "PHYSGAN_RANK_ERRORS"  # folder where launched ranks leave their one-line errors


def is_worker() -> bool:
    """Whether this process was started by torchrun (or :func:`launch`) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config: train.device: cuda, but torch sees no GPU on this machine")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def runtime_from_env(device: str, precision: Precision, compile: bool) -> Runtime:
    """The runtime of this process: one process, or this rank of a torchrun job (the process
    group is initialised here, once)."""
    if not is_worker():
        return Runtime(_device(device, 0), precision, compile)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    where = _device(device, local_rank)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if not dist.is_initialized():
        # Imported before the group exists: its functions take ``group=group.WORLD`` as a default
        # argument, and imported later (DistributedDataParallel does) they would hold the group,
        # and gloo's worker threads, until the interpreter exits.
        importlib.import_module("torch.distributed.nn.functional")
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return Runtime(where, precision, compile, rank, world)


@contextlib.contextmanager
def session(device: str, precision: Precision, compile: bool) -> Iterator[Runtime]:
    """The runtime of this process for one training run; a process group joined here (under
    torchrun) is left again at the end."""
    joined = is_worker() and not dist.is_initialized()
    try:
        yield runtime_from_env(device, precision, compile)
    finally:
        if joined and dist.is_initialized():
            _leave()


def _leave() -> None:
    """Destroy the process group, and with it gloo's worker threads, before the interpreter
    exits: a worker thread that lets go of a finished collective's tensors takes the GIL, and
    one that does so while the interpreter finalises is ended by ``pthread_exit``, which C++
    turns into ``terminate called without an active exception`` (issue 19)."""
    # DistributedDataParallel wrappers left in reference cycles would keep the group past
    # destroy_process_group and free it in a later garbage collection, which holds the GIL
    # while gloo joins its threads (that may be waiting for it); collected first, they don't.
    gc.collect()
    dist.destroy_process_group()


def quiet() -> bool:
    """Whether this process leaves reporting to another: a rank other than 0, or any rank
    of :func:`launch` (the launcher reports)."""
    return os.environ.get("RANK", "0") != "0" or _ERRORS in os.environ


def report_failure(message: str) -> bool:
    """In a rank started by :func:`launch`, leave ``message`` (one line) for the launcher to
    raise, and return True; elsewhere return False (the caller prints it)."""
    folder = os.environ.get(_ERRORS)
    if not folder:
        return False
    (Path(folder) / f"rank{os.environ.get('RANK', '0')}").write_text(message)
    return True


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``python -m physgan *argv`` as ``nproc`` local ranks under torch's elastic launcher
    (what ``torchrun --standalone`` does). Returns 0, or 130 / 143 when a signal stopped the
    ranks after their checkpoint; raises :class:`WorkerFailed` with the failing rank's message
    otherwise."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc: must be a positive number of processes, got {nproc}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    # The launcher logs each failure and signal at length (each module's logger has its own
    # level); the ranks say what went wrong themselves.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="physgan-ranks-") as folder:
        previous = os.environ.get(_ERRORS)
        os.environ[_ERRORS] = folder
        try:
            elastic_launch(config, sys.executable)("-m", "physgan", *argv)
        except SignalException as err:
            # The launcher passed the signal on to the ranks and waited for their checkpoint.
            return 128 + int(err.sigval)
        except ChildFailedError as err:
            rank, failure = err.get_first_failure()
            code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
            messages = sorted(Path(folder).iterdir())  # rank 0's first, when it left one
            if code in (130, 143) and not messages:
                return code
            if messages:
                rank, said = int(messages[0].name[4:]), messages[0].read_text()
            else:
                said = f"exit code {code}"
            raise WorkerFailed(f"rank {rank} of {nproc}: {said}") from None
        finally:
            if previous is None:
                del os.environ[_ERRORS]
            else:
                os.environ[_ERRORS] = previous
    return 0
