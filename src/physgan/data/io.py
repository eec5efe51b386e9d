"""Reading and writing sample arrays (.npy, .npz, .h5), validated, written atomically."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from physgan.atomic import atomic_path
from physgan.errors import DataError

__all__ = ["read_arrays", "write_array"]

SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")


def _check(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{path}: {name} has dtype {arr.dtype}, expected numbers")
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise DataError(f"{path}: {name} has shape {arr.shape}, expected (n_samples, ...) n > 0")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{path}: {name} holds NaN or inf (first at sample {row})")
    return arr


def read_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read samples ``x`` (n, ...) and optional conditions ``cond`` (n, c) as float32.

    ``.npy`` holds ``x`` alone; ``.npz`` and ``.h5`` hold arrays named ``x`` and ``cond``.
    Raises DataError naming the file and the problem (missing, truncated, NaN, shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported format; use one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".npy":
            x, cond = np.load(path, allow_pickle=False), None
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data:
                    raise DataError(f"{path}: no array named 'x' (found {', '.join(data)})")
                x = data["x"]
                cond = data.get("cond")
        else:
            import h5py

            with h5py.File(path, "r") as fh:
                if "x" not in fh:
                    raise DataError(f"{path}: no dataset named 'x' (found {', '.join(fh)})")
                x = fh["x"][()]
                cond = fh["cond"][()] if "cond" in fh else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    x = _check(path, "x", np.asarray(x))
    if cond is not None:
        cond = _check(path, "cond", np.asarray(cond))
        if cond.ndim != 2 or cond.shape[0] != x.shape[0]:
            raise DataError(f"{path}: cond has shape {cond.shape}, expected ({x.shape[0]}, c)")
    return x, cond


def write_array(path: str | Path, x: np.ndarray) -> Path:
    """Write samples to ``.npy`` or ``.h5`` (dataset ``x``) via a temporary file and a rename."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".h5", ".hdf5"):
        raise DataError(f"{path}: output must end in .npy or .h5")
    if not path.parent.is_dir():
        raise DataError(f"{path}: directory {path.parent} does not exist")
    try:
        with atomic_path(path) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, x, allow_pickle=False)
            else:
                import h5py

                with h5py.File(tmp, "w") as fh:
                    fh.create_dataset("x", data=x)
    except OSError as err:
        raise DataError(f"{path}: cannot write ({err.strerror or err})") from None
    return path
