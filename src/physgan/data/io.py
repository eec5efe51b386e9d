"""Reading the files physicists already have, validated at load.

``load`` reads named arrays from ``.npy``, ``.npz``, HDF5, ROOT trees and Parquet, from one
file or from shards (a directory or a glob) concatenated along the rows. ROOT and Parquet need
the ``physgan[hep]`` extra (uproot, awkward, pyarrow). Jets stored there one entry per jet, with
jagged particle lists (the naming of :data:`PARTICLE_COLUMNS` and :data:`JET_COLUMNS`, as
:mod:`physgan.data.writers` writes them), are read as the ``particles`` (n, N, 4) and ``jets``
(n, 4) arrays of an HDF5 jet file. Every problem with the input is a one-line ``DataError``
naming the file.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import struct
import textwrap
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from physgan.errors import DataError, MissingExtraError, PhysganError

__all__ = [
    "JET_COLUMNS",
    "METADATA_KEY",
    "PARTICLE_COLUMNS",
    "PARTICLE_COUNT",
    "READ_ERRORS",
    "Source",
    "as_float32",
    "import_extra",
    "load",
    "read_arrays",
    "read_columns",
    "select_layout",
    "unreadable",
]

# Jets in ROOT trees and Parquet tables, one entry per jet, named as in CMS NanoAOD: the counter,
# the jagged lists of the real particles' [eta_rel, phi_rel, pt_rel] (pt_rel = pT / jet pT,
# highest first) and the jet columns [pt (GeV), eta, mass (GeV), n_particles].
PARTICLE_COUNT = "nParticle"
PARTICLE_COLUMNS = ("Particle_eta", "Particle_phi", "Particle_pt")
JET_COLUMNS = ("Jet_pt", "Jet_eta", "Jet_mass", "Jet_nParticle")
# physgan's JSON object of file attributes: a TObjString of a ROOT file, a key of a Parquet
# file's schema metadata. Its "max_particles" is N, the particles per jet of ``particles``.
METADATA_KEY = "physgan"


@dataclass(frozen=True)
class Source:
    """One file to read, with the tree to read from it for ROOT (``file.root:tree``)."""

    path: Path
    tree: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.tree}" if self.tree else str(self.path)


# Picks the arrays to read among those the file holds (raising DataError for a miss).
Select = Callable[[Source, list[str]], list[str]]
Reader = Callable[[Source, Select, slice | None], dict[str, np.ndarray]]

_READERS: dict[str, Reader] = {}

# What numpy, h5py, uproot and pyarrow raise for files they cannot parse (pyarrow's
# ArrowInvalid is a ValueError, ArrowIOError an OSError, ArrowNotImplementedError one too).
# Corrupt files also give RuntimeError (h5py's visititems, an encrypted zip member),
# AssertionError (uproot's checks of RNTuple envelopes), tokenize.TokenError and SyntaxError (a
# mangled .npy header), OverflowError, and MemoryError (a header claiming a huge array).
READ_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    AssertionError,
    ArithmeticError,
    MemoryError,
    SyntaxError,
    tokenize.TokenError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
)


def _reader(*suffixes: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        _READERS.update(dict.fromkeys(suffixes, fn))
        return fn

    return register


def _listing(names: Sequence[str], limit: int = 20) -> str:
    """``a, b, c`` (at most ``limit`` names, then how many more), or ``nothing``."""
    shown = ", ".join(names[:limit]) or "nothing"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def unreadable(src: Source | str, err: BaseException) -> DataError:
    """The one-line error for a file that ``err`` (one of :data:`READ_ERRORS`) stopped."""
    reason = textwrap.shorten(str(err), width=200, placeholder=" ...") or type(err).__name__
    return DataError(f"{src}: cannot read ({reason})")


def import_extra(module: str, purpose: str) -> ModuleType:
    """``module`` of the ``physgan[hep]`` extra, or a one-line MissingExtraError naming it.

    ``purpose`` starts the message: ``"reading ROOT files"`` gives ``reading ROOT files needs
    uproot: pip install 'physgan[hep]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(f"{purpose} needs {package}: pip install 'physgan[hep]'") from None


def _take(arr: Any, rows: slice | None) -> Any:
    """``arr[rows]`` for an array (or an h5py dataset, a memory map) that has rows."""
    return arr if rows is None or arr.ndim == 0 else arr[rows]


@_reader(".npy")
def _read_npy(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    # Without the magic np.load would try the file as a zip (leaking its handle) or a pickle.
    with open(src.path, "rb") as fh:
        if fh.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            raise DataError(f"{src}: cannot read (not a .npy file: no NumPy header)")
    # A memory map reads only the rows asked for; np.array copies them out of the map.
    arr = np.load(src.path, mmap_mode="r", allow_pickle=False)
    return {name: np.array(_take(arr, rows)) for name in select(src, ["x"])}


@_reader(".npz")
def _read_npz(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    # Our own handle: np.load leaks the one it opens when the zip directory is corrupt.
    with open(src.path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
        return {name: _take(data[name], rows) for name in select(src, list(data.files))}


@_reader(".h5", ".hdf5")
def _read_hdf5(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(src.path, "r") as fh:
        names: list[str] = []

        def collect(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                names.append(name)

        fh.visititems(collect)
        selected = select(src, names)
        for name in selected:
            if fh[name].shape is None:  # h5py.Empty: a dataset with neither shape nor values
                raise DataError(f"{src}: {name} is an empty dataset (no shape, no values)")
        # Indexing a dataset with a slice makes h5py read only those rows from disk.
        return {name: np.asarray(_take(fh[name], rows)) for name in selected}


def _regular(src: Source, name: str, column: Any, rows: slice | None) -> np.ndarray:
    """An awkward array as a numpy array, refusing jagged entries and missing values."""
    import awkward as ak

    try:
        arr = ak.to_numpy(column, allow_missing=False)
    except ValueError:
        kind = str(column.type.content)
        problem = "is jagged (entries differ in length)" if "var" in kind else "has missing values"
        raise DataError(
            f"{src}: {name} {problem}, type {kind}; pad it to a fixed size or leave it out of keys"
        ) from None
    return _take(arr, rows)


def _jet_names(names: list[str]) -> list[str]:
    """The arrays of a table with columns ``names``: its jagged particle columns (and their
    counter) read as one ``particles``, its jet columns also as ``jets``."""
    if all(name in names for name in PARTICLE_COLUMNS) and "particles" not in names:
        hidden = {PARTICLE_COUNT, *PARTICLE_COLUMNS}
        names = [name for name in names if name not in hidden] + ["particles"]
    if all(name in names for name in JET_COLUMNS) and "jets" not in names:
        names = [*names, "jets"]
    return names


def _columns_of(selected: list[str], names: list[str]) -> list[str]:
    """The table columns to read for the arrays ``selected`` among ``_jet_names(names)``."""
    parts = {"particles": PARTICLE_COLUMNS, "jets": JET_COLUMNS}
    columns: list[str] = []
    for name in selected:
        columns += [name] if name in names else parts[name]
    return list(dict.fromkeys(columns))


def _max_particles(metadata: str | bytes | None) -> int | None:
    """N, the particles per jet that physgan's metadata (JSON) names, if it names one."""
    meta = json.loads(metadata) if metadata else None
    return meta.get("max_particles") if isinstance(meta, dict) else None


def _cloud(src: Source, lists: list[Any], max_particles: int | None) -> np.ndarray:
    """Jagged [eta_rel, phi_rel, pt_rel] lists as particles (n, N, 4) float32, each jet's in
    order, zero-padded to N = ``max_particles`` (else the longest list), mask 1 then 0."""
    import awkward as ak

    counts = ak.to_numpy(ak.num(lists[0], axis=1))
    for name, values in zip(PARTICLE_COLUMNS[1:], lists[1:], strict=True):
        if not np.array_equal(ak.to_numpy(ak.num(values, axis=1)), counts):
            raise DataError(f"{src}: {name} and {PARTICLE_COLUMNS[0]} differ in length")
    longest = int(counts.max(initial=0))
    width = longest if max_particles is None else int(max_particles)
    if longest > width:
        raise DataError(f"{src}: a jet has {longest} particles, its metadata says {width} at most")
    mask = np.arange(width) < counts[:, None]
    particles = np.zeros((len(counts), width, 4), np.float32)
    for i, values in enumerate(lists):
        particles[..., i][mask] = ak.to_numpy(ak.flatten(values), allow_missing=False)
    particles[..., 3] = mask
    return particles


def _table_arrays(
    src: Source,
    selected: list[str],
    names: list[str],
    column: Callable[[str], Any],
    max_particles: int | None,
    rows: slice | None,
) -> dict[str, np.ndarray]:
    """The arrays ``selected`` among ``_jet_names(names)`` of a table whose awkward columns
    ``column(name)`` gives."""
    arrays = {}
    for name in selected:
        if name == "particles" and name not in names:
            lists = [column(c) for c in PARTICLE_COLUMNS]
            arrays[name] = _take(_cloud(src, lists, max_particles), rows)
        elif name == "jets" and name not in names:
            jets = [_regular(src, c, column(c), rows) for c in JET_COLUMNS]
            arrays[name] = np.stack(jets, axis=1)
        else:
            arrays[name] = _regular(src, name, column(name), rows)
    return arrays


@_reader(".root")
def _read_root(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    uproot = import_extra("uproot", "reading ROOT files")
    try:
        with uproot.open(src.path) as fh:
            # uproot reads what it can reach; the header's end-of-file offset tells a cut file.
            size = src.path.stat().st_size
            if fh.file.fEND > size:
                raise DataError(f"{src}: cannot read (truncated: {size} bytes of {fh.file.fEND})")
            kinds = fh.classnames(cycle=False)
            trees = [key for key, kind in kinds.items() if kind in ("TTree", "ROOT::RNTuple")]
            if src.tree is None and len(trees) != 1:
                raise DataError(
                    f"{src}: holds {len(trees)} trees ({_listing(trees)}); "
                    f"name one as {src.path.name}:TREE"
                )
            if src.tree is not None and src.tree not in trees:
                raise DataError(f"{src}: no tree named {src.tree!r} (trees: {_listing(trees)})")
            tree = fh[src.tree or trees[0]]
            names = list(tree.keys())
            has_meta = kinds.get(METADATA_KEY) == "TObjString"
            return _table_arrays(
                src,
                select(src, _jet_names(names)),
                names,
                lambda name: tree[name].array(library="ak"),
                _max_particles(str(fh[METADATA_KEY]) if has_meta else None),
                rows,
            )
    except PhysganError:
        raise
    except Exception as err:
        # uproot walks a corrupt file's object graph in Python and fails in many ways besides
        # DeserializationError (e.g. AttributeError on a member that did not deserialise).
        raise unreadable(src, err) from None


@_reader(".parquet")
def _read_parquet(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    pq = import_extra("pyarrow.parquet", "reading Parquet files")
    ak = import_extra("awkward", "reading Parquet files")
    schema = pq.read_schema(src.path)
    names = list(schema.names)
    selected = select(src, _jet_names(names))
    table = pq.read_table(src.path, columns=_columns_of(selected, names))
    return _table_arrays(
        src,
        selected,
        names,
        lambda name: ak.from_arrow(table[name]),
        _max_particles((schema.metadata or {}).get(METADATA_KEY.encode())),
        rows,
    )


def _check(src: Source | str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Refuse non-numbers, arrays without rows, NaN/inf and row counts that disagree."""
    if not arrays:
        raise DataError(f"{src}: no arrays to read")
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiub":
            raise DataError(f"{src}: {name} has dtype {arr.dtype}, expected numbers")
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise DataError(f"{src}: {name} has shape {arr.shape}, expected (n_rows, ...) n > 0")
        if arr.size == 0:
            raise DataError(f"{src}: {name} has shape {arr.shape}, no values in its rows")
        if arr.dtype.kind == "f":
            flat = arr.reshape(arr.shape[0], -1)
            # A generated file's jets are NaN where the generator did not make the feature
            # (eta; pt and mass without a pt condition): unknown, not corrupt.
            unknown_allowed = name == "jets"
            bad = np.isinf(flat) if unknown_allowed else ~np.isfinite(flat)
            if bad.any():
                row = int(bad.any(axis=1).argmax())
                value = flat[row][bad[row]][0]
                what = "inf" if unknown_allowed else "NaN or inf"
                raise DataError(f"{src}: {name} holds {what} (first at row {row}: {value})")
    counts = {name: arr.shape[0] for name, arr in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise DataError(f"{src}: arrays disagree in their number of rows ({listed})")
    return arrays


def _read_file(src: Source, select: Select, rows: slice | None) -> dict[str, np.ndarray]:
    if not src.path.is_file():
        # Devices, FIFOs and sockets are refused too: /dev/zero or a pipe would never end.
        what = "not a regular file" if src.path.exists() else "no such file"
        raise DataError(f"{src}: {what}")
    suffix = src.path.suffix.lower()
    if suffix not in _READERS:
        raise DataError(f"{src}: unsupported format; use one of {', '.join(_READERS)}")
    if src.path.stat().st_size == 0:
        raise DataError(f"{src}: empty file (0 bytes)")
    try:
        arrays = _READERS[suffix](src, select, rows)
    except PhysganError:
        raise
    except READ_ERRORS as err:
        raise unreadable(src, err) from None
    return _check(src, arrays)


def _sources(path: str | os.PathLike[str]) -> list[Source]:
    """The file, or the shards of a directory or glob, each with a ROOT tree name if given."""
    text = os.fspath(path)
    head, colon, tree = text.rpartition(":")
    if not (colon and head.lower().endswith(".root") and tree):
        head, tree = text, ""
    base = Path(head)
    if base.is_dir():
        files = sorted(
            p
            for p in base.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _READERS
        )
        if not files:
            raise DataError(f"{base}: no data files ({', '.join(_READERS)}) in the directory")
        inside = base.resolve()
        for p in files:  # the user named this directory, not where its links point
            if not p.resolve().is_relative_to(inside):
                raise DataError(f"{p}: a link out of {base}; copy the shard in or name it")
    elif not base.exists() and any(char in head for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(head) if Path(p).is_file())
        if not files:
            raise DataError(f"{head}: no files match")
    else:
        files = [base]
    suffixes = sorted({p.suffix.lower() for p in files})
    if len(suffixes) > 1:
        raise DataError(f"{head}: shards mix formats ({', '.join(suffixes)}); keep one")
    return [Source(p, tree or None) for p in files]


def _load(
    path: str | os.PathLike[str], select: Select, rows: slice | None
) -> dict[str, np.ndarray]:
    sources = _sources(path)
    if len(sources) == 1:
        return _read_file(sources[0], select, rows)
    first, *others = sources
    arrays = _read_file(first, select, None)
    parts = {name: [arr] for name, arr in arrays.items()}
    for src in others:
        shard = _read_file(src, select, None)
        if shard.keys() != arrays.keys():
            missing = _listing([name for name in arrays if name not in shard])
            extra = _listing([name for name in shard if name not in arrays])
            raise DataError(
                f"{src}: shard's arrays differ from {first.path.name}'s "
                f"(missing: {missing}; extra: {extra})"
            )
        for name, arr in shard.items():
            if arr.shape[1:] != arrays[name].shape[1:]:
                raise DataError(
                    f"{src}: {name} has shape {arr.shape}, "
                    f"but {arrays[name].shape} in {first.path.name}"
                )
            parts[name].append(arr)
    joined = {name: np.concatenate(arrs) for name, arrs in parts.items()}
    if rows is None:
        return joined
    return _check(os.fspath(path), {name: arr[rows] for name, arr in joined.items()})


def load(
    path: str | os.PathLike[str],
    keys: str | Sequence[str] | None = None,
    *,
    rows: slice | None = None,
) -> dict[str, np.ndarray]:
    """Read named arrays from a file or from shards, validated, in their stored dtypes.

    Args:
        path: a ``.npy`` (one array, named ``x``), ``.npz``, ``.h5``/``.hdf5`` (datasets;
            nested ones as ``"group/name"``), ``.root`` (the branches of its single TTree, or
            ``file.root:tree``) or ``.parquet`` file (columns). A directory or a glob pattern
            (``"data/*.h5"``) reads its files, sorted by name, concatenated along axis 0.
        keys: the arrays to read; ``None`` reads all of them.
        rows: only these rows (HDF5 and ``.npy`` read just them from disk; for shards the
            slice applies to the concatenation).

    Returns:
        ``{name: array}`` with arrays of shape ``(n_rows, ...)`` sharing ``n_rows``. Fixed-size
        ROOT array branches and Parquet list columns of fixed length become 2-D arrays; jagged
        particle lists ``Particle_eta``, ``_phi``, ``_pt`` become ``particles`` (n, N, 4), and
        ``Jet_pt``, ``_eta``, ``_mass``, ``_nParticle`` also ``jets`` (n, 4).

    Raises:
        DataError: one line naming the file and the problem (missing, empty, corrupt, unknown
            suffix or key, jagged branch, non-numeric dtype, no rows, NaN or inf with the
            first bad row, row counts that disagree, shards whose arrays differ).
        MissingExtraError: ROOT or Parquet without the ``physgan[hep]`` extra.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.npz"
    >>> np.savez(path, pt=np.array([20.0, 35.5, 41.0]), eta=np.zeros((3, 2)))
    >>> arrays = load(path, rows=slice(1, None))
    >>> arrays["pt"], arrays["eta"].shape
    (array([35.5, 41. ]), (2, 2))
    """
    wanted = [keys] if isinstance(keys, str) else keys

    def select(src: Source, names: list[str]) -> list[str]:
        if wanted is None:
            return names
        for key in wanted:
            if key not in names:
                raise DataError(f"{src}: no array named {key!r} (found: {_listing(names)})")
        return list(wanted)

    return _load(path, select, rows)


class _Layout(NamedTuple):
    name: str
    x: str
    cond: str | None
    needs: tuple[str, ...]


# The file layouts read_arrays knows, tried in this order.
_LAYOUTS = (
    _Layout("physgan", x="x", cond="cond", needs=("x",)),
    _Layout(
        "CaloChallenge",
        x="showers",
        cond="incident_energies",
        needs=("showers", "incident_energies"),
    ),
    _Layout("jets", x="particles", cond=None, needs=("particles", "jets")),
    _Layout("jet images", x="images", cond=None, needs=("images", "jets")),
    _Layout("images", x="images", cond=None, needs=("images",)),
)


def select_layout(src: Source, names: list[str]) -> list[str]:
    """The arrays to read, samples then conditions, of the first layout ``names`` holds."""
    for layout in _LAYOUTS:
        if all(name in names for name in layout.needs):
            return [layout.x] + ([layout.cond] if layout.cond in names else [])
    accepted = "; ".join(f"{lay.name}: {' + '.join(lay.needs)}" for lay in _LAYOUTS)
    raise DataError(f"{src}: no known layout in {_listing(names)} (accepted: {accepted})")


def as_float32(path: str | os.PathLike[str], name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as float32; values beyond its range are refused with the file and array named."""
    try:
        with np.errstate(over="raise"):
            return arr.astype(np.float32)
    except FloatingPointError:
        raise DataError(f"{path}: {name} has values beyond the float32 range") from None


def read_arrays(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read training samples ``x`` (n, ...) and optional conditions ``cond`` (n, c) as float32.

    Accepts anything ``load`` reads that holds one of these layouts (tried in order):
    ``x`` with optional ``cond`` (a ``.npy`` holds ``x`` alone); CaloChallenge
    ``showers`` (n, n_voxels) with ``incident_energies`` (n, 1) as ``cond``; jets, with
    ``particles`` (n, n_particles, 4) as ``x`` next to ``jets`` (n, 4), and no ``cond``; jet
    images, with ``images`` (n, P, P) as ``x`` of shape (n, 1, P, P), next to ``jets`` or alone
    (generated images).
    Raises DataError naming the file and the problem.
    """
    arrays = _load(path, select_layout, None)
    layout = next(lay for lay in _LAYOUTS if lay.x in arrays)
    x = as_float32(path, layout.x, arrays[layout.x])
    if x.ndim < 2:
        raise DataError(f"{path}: {layout.x} has shape {x.shape}, expected (n_samples, ...)")
    if layout.x == "images":
        x = x[:, None]  # one channel: (n, 1, P, P), as image models take them
    if layout.cond is None or layout.cond not in arrays:
        return x, None
    cond = as_float32(path, layout.cond, arrays[layout.cond])
    if cond.ndim != 2:
        raise DataError(f"{path}: {layout.cond} has shape {cond.shape}, expected ({len(x)}, c)")
    return x, cond


def read_columns(path: str | os.PathLike[str], columns: Sequence[str]) -> np.ndarray:
    """Training samples (n, d) float32 from named columns, branches or datasets of any format
    ``load`` reads: 1-D ones become one feature each, (n, k) ones k features, in the order given.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "jets.npz"
    >>> np.savez(path, pt=np.array([20.0, 35.0]), eta=np.array([0.1, -0.3]))
    >>> read_columns(path, ["eta", "pt"]).tolist()
    [[0.10000000149011612, 20.0], [-0.30000001192092896, 35.0]]
    """
    arrays = load(path, list(columns))
    parts = []
    for name in columns:
        arr = as_float32(path, name, arrays[name])
        if arr.ndim > 2:
            raise DataError(f"{path}: {name} has shape {arr.shape}; columns must be (n,) or (n, k)")
        parts.append(arr.reshape(len(arr), -1))
    return np.concatenate(parts, axis=1)
