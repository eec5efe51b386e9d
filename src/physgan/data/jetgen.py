"""Jet datasets written to HDF5: seeded chunks, worker processes, shards, atomic files.

A request for ``n`` jets is cut into chunks of :data:`CHUNK_JETS`; chunk ``c`` is simulated by
its own Pythia instance seeded from ``(seed, c)``. So the file depends on the seed and ``n``
only: not on the number of workers, and shard K of N holds the contiguous chunks
``[C*K//N, C*(K+1)//N)`` of the C chunks: the shards, read in order, are the unsharded file.

File layout (``.h5``, float32): ``particles`` (n, N, 4) as :mod:`physgan.data.jets` describes,
or ``images`` (n, P, P) as :mod:`physgan.data.images` describes, and ``jets`` (n, 4); attributes
name the features and units; file attributes record the process, seed, shard, jet selection
and versions.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from physgan.atomic import atomic_path, remove_stale
from physgan.data.images import jet_images
from physgan.data.jets import ARRAY_ATTRS, jet_features, particle_cloud
from physgan.data.pythia import IMAGE_SELECTION, PROCESSES, JetSelection, simulate_jets
from physgan.errors import DataError

__all__ = [
    "CHUNK_JETS",
    "IMAGE_PROCESSES",
    "cached_jet_images",
    "cached_jets",
    "chunk_seed",
    "generate_jet_images",
    "generate_jets",
    "parse_shard",
    "simulate_jet_images",
]

CHUNK_JETS = 500  # jets per seeded Pythia instance: ~0.6 s of initialisation per ~8 s of work
_FORMAT = 1  # bump when the file layout or the physics defaults change (invalidates caches)
IMAGE_PROCESSES = {"W": "Wprime", "QCD": "QCD"}  # jet-image names -> Pythia processes


def chunk_seed(seed: int, chunk: int) -> int:
    """Pythia seed (1 to 900,000,000) of chunk ``chunk`` of a request seeded with ``seed``."""
    state = np.random.SeedSequence([seed, chunk]).generate_state(1, dtype=np.uint64)[0]
    return int(state % 900_000_000) + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as (K, N) with 0 <= K < N.

    >>> parse_shard("2/8")
    (2, 8)
    """
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise DataError(f"shard {text!r}: expected K/N, e.g. 0/8") from None
    if not 0 <= k < n:
        raise DataError(f"shard {text!r}: need 0 <= K < N")
    return k, n


@dataclass(frozen=True)
class _Job:
    """One seeded chunk: ``width`` is N particles per jet, or pixels per side for images."""

    kind: str
    process: str
    size: int
    seed: int
    width: int
    selection: JetSelection


def _image_process(process: str) -> str:
    """The Pythia process of a jet-image class (W, QCD); DataError naming the choices else."""
    if process not in IMAGE_PROCESSES:
        raise DataError(f"unknown process {process!r}; choose from: {', '.join(IMAGE_PROCESSES)}")
    return IMAGE_PROCESSES[process]


def simulate_jet_images(process: str, n: int, seed: int, pixels: int = 25) -> np.ndarray:
    """``n`` W or QCD jet images (n, pixels, pixels) of pT in GeV from one seeded Pythia
    instance, in memory (:func:`generate_jet_images` writes a file)."""
    job = _Job("images", _image_process(process), n, seed, pixels, IMAGE_SELECTION)
    return _chunk(job)["images"]


def _chunk(job: _Job) -> dict[str, np.ndarray]:
    sim = simulate_jets(job.process, job.size, job.seed, job.selection)
    if job.kind == "images":
        images = jet_images(sim.constituents, sim.n_constituents, sim.subjets, job.width)
        return {"images": images, "jets": jet_features(sim.p4, sim.n_constituents)}
    cloud = particle_cloud(sim.p4, sim.constituents, sim.n_constituents, job.width)
    return {"particles": cloud.particles, "jets": cloud.jets}


def _exit_with_parent(parent: int) -> None:
    """Worker initialiser: exit as soon as the parent process is gone (killed, even by SIGKILL),
    so that no orphaned worker keeps simulating."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _results(jobs: list[_Job], workers: int) -> Iterator[dict[str, np.ndarray]]:
    if workers == 1 or len(jobs) == 1:
        yield from map(_chunk, jobs)
        return
    # spawn, not fork: the parent may hold torch's threads, which fork does not survive.
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(_chunk, job) for job in jobs]
        try:
            for future in futures:
                yield future.result()
        except BrokenProcessPool:
            raise DataError("a jet-generation worker process died (out of memory?)") from None
        finally:
            for future in futures:
                future.cancel()


def _check_request(process: str, out: Path, seed: int, **counts: int) -> None:
    if seed < 0:
        raise DataError(f"seed must be non-negative, got {seed}")
    if process not in PROCESSES:
        raise DataError(f"unknown process {process!r}; choose from: {', '.join(PROCESSES)}")
    for name, value in counts.items():
        if value < 1:
            raise DataError(f"{name} must be at least 1, got {value}")
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise DataError(f"{out}: output must end in .h5 or .hdf5")
    if not out.parent.is_dir():
        raise DataError(f"{out}: directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise DataError(f"{out}: directory {out.parent} is not writable")


def _write(
    out: Path,
    kind: str,
    n: int,
    width: int,
    seed: int,
    shard: tuple[int, int],
    selection: JetSelection,
    process: str,
    workers: int,
    progress: bool,
) -> Path:
    """Simulate this shard's chunks and append them to ``out`` through a temporary file."""
    import h5py

    from physgan.version import __version__

    k, n_shards = shard
    n_chunks = math.ceil(n / CHUNK_JETS)
    jobs = [
        _Job(
            kind,
            process,
            min(CHUNK_JETS, n - c * CHUNK_JETS),
            chunk_seed(seed, c),
            width,
            selection,
        )
        for c in range(n_chunks * k // n_shards, n_chunks * (k + 1) // n_shards)
    ]
    total = sum(job.size for job in jobs)
    bar = None
    if progress:
        from physgan.progress import progress_bar

        bar = progress_bar(total, unit="jet", desc=f"{process} jets")
    try:
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as fh:
            fh.attrs.update(
                format=_FORMAT,
                kind=kind,
                process=process,
                seed=seed,
                n_request=n,
                shard=f"{k}/{n_shards}",
                generator="Pythia 8 + FastJet",
                physgan=__version__,
                **{f"selection_{key}": v for key, v in asdict(selection).items() if v is not None},
            )
            for arrays in _results(jobs, workers):
                for name, values in arrays.items():
                    if name not in fh:
                        fh.create_dataset(
                            name,
                            (0, *values.shape[1:]),
                            np.float32,
                            maxshape=(None, *values.shape[1:]),
                            chunks=(min(total, 1024), *values.shape[1:]),
                        )
                        fh[name].attrs.update(ARRAY_ATTRS[name])
                    dataset = fh[name]
                    start = dataset.shape[0]
                    dataset.resize(start + len(values), axis=0)
                    dataset[start:] = values
                if bar is not None:
                    bar.update(len(arrays["jets"]))
    finally:
        if bar is not None:
            bar.close()
    return out


def generate_jets(
    process: str,
    n: int,
    out: str | Path,
    *,
    n_particles: int = 30,
    seed: int = 0,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    selection: JetSelection | None = None,
    progress: bool = False,
) -> Path:
    """Simulate jets of ``process`` with Pythia 8 + FastJet; write particle clouds to ``out``.

    Args:
        process: gluon, quark, top, W or Z (see :data:`physgan.data.pythia.PROCESSES`).
        n: jets in the whole request; shard K of N writes its share (about n / N).
        out: the HDF5 file to write, through a temporary file renamed at the end.
        n_particles: N, constituents kept per jet (highest pT first, zero-padded).
        seed: the request's seed; with ``n`` it fixes every jet.
        workers: processes simulating chunks in parallel (the result does not depend on it).
        shard: (K, N), this file's part of the request.
        selection: jet definition and cuts; JetNet-like 1 TeV jets by default.
        progress: show a progress bar with jets per second on stderr.
    """
    out = Path(out)
    _check_request(process, out, seed, n=n, particles=n_particles, workers=workers)
    selection = selection or JetSelection()
    return _write(
        out, "particles", n, n_particles, seed, shard, selection, process, workers, progress
    )


def generate_jet_images(
    process: str,
    n: int,
    out: str | Path,
    *,
    pixels: int = 25,
    seed: int = 0,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
) -> Path:
    """Simulate W (from a W') or QCD jet images of the LAGAN benchmark; write them to ``out``.

    Trimmed anti-kT R = 1.0 jets with 250 <= pT < 300 GeV (:data:`IMAGE_SELECTION`), as
    ``images`` (n, pixels, pixels) of pT in GeV (see :mod:`physgan.data.images`) and ``jets``
    (n, 4) of the trimmed jet. Other arguments as :func:`generate_jets`.
    """
    name = _image_process(process)
    out = Path(out)
    _check_request(name, out, seed, n=n, pixels=pixels, workers=workers)
    return _write(out, "images", n, pixels, seed, shard, IMAGE_SELECTION, name, workers, progress)


def _cache_dir() -> Path:
    base = os.environ.get("PHYSGAN_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "physgan"


def _valid(path: Path, process: str, seed: int, name: str, shape: tuple[int, ...]) -> bool:
    """Whether ``path`` is a whole file of ``process`` jets with dataset ``name`` of ``shape``."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return (
                fh.attrs.get("format") == _FORMAT
                and fh.attrs.get("process") == process
                and fh.attrs.get("seed") == seed
                and fh[name].shape == shape
                and fh["jets"].shape == (shape[0], 4)
            )
    except (OSError, KeyError):
        return False


def _cache_path(cache_dir: str | Path | None, stem: str) -> Path:
    directory = Path(cache_dir) if cache_dir is not None else _cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"{directory}: cannot create the cache directory ({err.strerror})"
        ) from None
    return directory / f"{stem}-v{_FORMAT}.h5"


def cached_jets(
    process: str,
    n: int,
    *,
    n_particles: int = 30,
    seed: int = 0,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """A jet file for these arguments from the cache, generated only if none is valid there.

    The cache is ``cache_dir``, else ``$PHYSGAN_CACHE``, else ``$XDG_CACHE_HOME/physgan``
    (``~/.cache/physgan``). A file that is unreadable or does not match is generated again.
    """
    path = _cache_path(cache_dir, f"jets-{process}-n{n}-p{n_particles}-seed{seed}")
    remove_stale(path.parent)  # what killed simulations left; never a running one's file
    if not _valid(path, process, seed, "particles", (n, n_particles, 4)):
        generate_jets(
            process, n, path, n_particles=n_particles, seed=seed, workers=workers, progress=progress
        )
    return path


def cached_jet_images(
    process: str,
    n: int,
    *,
    pixels: int = 25,
    seed: int = 0,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """A jet-image file (W or QCD) for these arguments from the cache, as :func:`cached_jets`."""
    name = _image_process(process)
    path = _cache_path(cache_dir, f"images-{process}-n{n}-p{pixels}-seed{seed}")
    remove_stale(path.parent)
    if not _valid(path, name, seed, "images", (n, pixels, pixels)):
        generate_jet_images(
            process, n, path, pixels=pixels, seed=seed, workers=workers, progress=progress
        )
    return path
