"""Generated samples written where a physicist's analysis reads them, in the simulator's layout.

Jet particle clouds (n, N, 4) [eta_rel, phi_rel, pt_rel, mask] are written as
:mod:`physgan.data.jetgen` writes simulated jets: ``particles`` (mask 0/1, zero padding, highest
pT first) next to ``jets`` (n, 4) [pt (GeV), eta, mass (GeV), n_particles] computed from the
particles and the generator's conditions (:func:`generated_jets`). Images (n, 1, P, P) are
written as ``images`` (n, P, P), with ``label`` (n,), the index of each image's class, for a
class-conditional run; other samples as ``x``. The suffix picks the format:

- ``.h5``/``.hdf5``: those datasets, with the simulator's attributes (features, units) and file
  attributes saying what made them (generator, run, step, seed, version, kind, process);
- ``.npy``: the array alone;
- ``.root``: a TTree (``Jets``, ``Images`` or ``Samples``); jets as NanoAOD-style branches
  ``nParticle``, jagged ``Particle_eta``, ``Particle_phi``, ``Particle_pt`` (relative units) and
  ``Jet_pt``, ``Jet_eta``, ``Jet_mass``, ``Jet_nParticle``; the file attributes as JSON in a
  TObjString ``physgan``;
- ``.parquet``: one row per sample, the same columns (particle lists as list columns), the file
  attributes as JSON under the schema metadata key ``physgan``.

ROOT and Parquet need the ``physgan[hep]`` extra. Files are written through a temporary file and
a rename, and read back with :func:`physgan.data.io.read_arrays` to the samples written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from physgan.atomic import atomic_path
from physgan.data.datasets import JET_IMAGES, JETS_PREFIX
from physgan.data.io import (
    JET_COLUMNS,
    METADATA_KEY,
    PARTICLE_COLUMNS,
    PARTICLE_COUNT,
    import_extra,
)
from physgan.data.jets import (
    ARRAY_ATTRS,
    canonical_cloud,
    is_cloud,
    jet_features,
    sort_by_pt,
)
from physgan.errors import DataError
from physgan.version import __version__

__all__ = ["FORMATS", "Provenance", "check_output", "generated_jets", "write_samples"]

FORMATS = (".h5", ".hdf5", ".npy", ".parquet", ".root")
_TREES = {"particles": "Jets", "images": "Images", "samples": "Samples"}
_TITLES = {
    "particles": "physgan generated jets: Particle_eta, Particle_phi relative to the jet axis, "
    "Particle_pt = pT / Jet_pt (relative units), real particles only; Jet_pt, Jet_mass in GeV",
    "images": "physgan generated images (jet, phi_rel, eta_rel)",
    "samples": "physgan generated samples",
}
_EXTRAS = {".root": ("ROOT", "uproot"), ".parquet": ("Parquet", "pyarrow")}
_BASKET_ENTRIES = 100_000  # entries per ROOT basket: a few MB, well under ROOT's 1 GB limit


@dataclass(frozen=True)
class Provenance:
    """What made the samples, recorded in the file's attributes."""

    run: str  # the run directory, or pretrained:NAME
    step: int  # the training step of the generator's weights
    seed: int  # the sampling seed
    data: str | None = None  # the training data: a built-in name (jets-gluon) or a file


class _Samples(NamedTuple):
    kind: str  # particles, images or samples
    arrays: dict[str, np.ndarray]  # name -> (n, ...), as HDF5 datasets
    attrs: dict[str, dict[str, Any]]  # name -> its attributes


def generated_jets(
    particles: np.ndarray, pt: np.ndarray | None = None, eta: np.ndarray | None = None
) -> np.ndarray:
    """Jet features (n, 4) float32 [pt (GeV), eta, mass (GeV), n_particles] of generated clouds.

    The cloud (n, N, 4) [eta_rel, phi_rel, pt_rel, mask] fixes n_particles (mask >= 0.5) and the
    mass relative to the jet pT, that of the real particles' summed massless four-momenta
    pt_rel (cos phi, sin phi, sinh eta, cosh eta); ``pt`` (n,) in GeV and ``eta`` (n,) are the
    generator's conditions. Where not given they are NaN, and with pt the mass.

    >>> pair = np.array([[[0.1, 0.0, 0.5, 1.0], [-0.1, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    >>> jets = generated_jets(pair, pt=np.array([1000.0]))  # mass: 1000 sinh(0.1)
    >>> jets.astype(float).round(2).tolist()
    [[1000.0, nan, 100.17, 2.0]]
    """
    mask = particles[..., 3] >= 0.5
    real = np.where(mask[..., None], particles[..., :3], 0.0).astype(np.float64)
    eta_rel, phi_rel, pt_rel = real[..., 0], real[..., 1], real[..., 2]
    trig = [np.cos(phi_rel), np.sin(phi_rel), np.sinh(eta_rel), np.cosh(eta_rel)]
    p4_rel = np.stack([(pt_rel * t).sum(axis=1) for t in trig], axis=-1)  # (px, py, pz, E)
    relative = jet_features(p4_rel, mask.sum(axis=1))
    unknown = np.full(len(particles), np.nan)
    pt = unknown if pt is None else np.asarray(pt, np.float64)
    eta = unknown if eta is None else np.asarray(eta, np.float64)
    return np.stack([pt, eta, relative[:, 2] * pt, relative[:, 3]], axis=-1).astype(np.float32)


def _named_conditions(
    cond: np.ndarray | Mapping[str, float] | None, names: Sequence[str], n: int
) -> dict[str, np.ndarray]:
    """Each named condition (n,) in physics units; none for unnamed conditions."""
    if isinstance(cond, Mapping):
        return {name: np.full(n, float(value)) for name, value in cond.items()}
    if cond is None or not names:
        return {}
    cond = np.asarray(cond, np.float64)
    if cond.shape != (n, len(names)):
        raise DataError(f"cond: expected shape ({n}, {len(names)}) for {', '.join(names)}")
    return {name: cond[:, i] for i, name in enumerate(names)}


def _jet_notes(known: Mapping[str, np.ndarray], cond_names: Sequence[str]) -> dict[str, str]:
    """Attributes of a generated ``jets`` array: where each feature comes from, what is NaN."""
    notes = {
        "origin": "pt, eta: the generator's conditions; mass: the real particles' invariant "
        "mass (massless particles) times pt; n_particles: the real generated particles. A "
        "simulated file's mass is the whole jet's (all constituents, not only the stored "
        "particles): compare the particles' mass, computed alike, across the two"
    }
    unknown = []
    for name, also in (("pt", " and mass"), ("eta", "")):
        if name not in known:
            why = (
                "no condition rows were given"
                if name in cond_names
                else f"the generator is not conditioned on {name}"
            )
            unknown.append(f"{name}{also} NaN: {why}")
    if unknown:
        notes["unknown"] = "; ".join(unknown)
    return notes


def _samples(
    x: np.ndarray,
    cond: np.ndarray | Mapping[str, float] | None,
    cond_names: Sequence[str],
    training: Mapping[str, Any],
    classes: Sequence[str] = (),
) -> _Samples:
    if is_cloud(x.shape[1:]):
        particles = sort_by_pt(canonical_cloud(x))
        known = _named_conditions(cond, cond_names, len(x))
        jets = generated_jets(particles, known.get("pt"), known.get("eta"))
        attrs = {"jets": {**ARRAY_ATTRS["jets"], **_jet_notes(known, cond_names)}}
        return _Samples(
            "particles",
            {"particles": particles, "jets": jets},
            {"particles": ARRAY_ATTRS["particles"], **attrs},
        )
    if x.ndim == 4 and x.shape[1] == 1:
        jet_images = training.get("kind") == "images"
        arrays = {"images": x[:, 0]}
        attrs = {"images": ARRAY_ATTRS["images"]} if jet_images else {}
        if classes and isinstance(cond, np.ndarray):
            if cond.shape != (len(x), len(classes)):
                raise DataError(f"cond: expected one-hot rows ({len(x)}, {len(classes)})")
            arrays["label"] = cond.argmax(axis=1).astype(np.int8)
            attrs["label"] = {
                "classes": list(classes),
                "description": "the class each image was generated as: an index into classes",
            }
        return _Samples("images", arrays, attrs)
    return _Samples("samples", {"x": x}, {})


def _training_attrs(data: str | None) -> dict[str, Any]:
    """``kind`` and ``process`` of the training data, where known: from a built-in name, or
    the attributes of a simulated HDF5 file."""
    if data is None:
        return {}
    if data.startswith(JETS_PREFIX):
        return {"kind": "particles", "process": data.removeprefix(JETS_PREFIX)}
    if data == JET_IMAGES:
        return {"kind": "images"}
    if Path(data).suffix.lower() in (".h5", ".hdf5") and Path(data).is_file():
        import h5py

        try:
            with h5py.File(data, "r") as fh:
                return {key: fh.attrs[key] for key in ("kind", "process") if key in fh.attrs}
        except OSError:  # not readable now: the samples are written without it
            return {}
    return {}


def _file_attrs(
    kind: str, made_by: Provenance | None, training: Mapping[str, Any]
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"generator": f"physgan {__version__}", "physgan": __version__}
    if kind != "samples":
        attrs["kind"] = kind
    if "process" in training:
        attrs["process"] = str(training["process"])
    if made_by is not None:
        attrs.update(run=made_by.run, step=int(made_by.step), seed=int(made_by.seed))
        if made_by.data is not None:
            attrs["training_data"] = made_by.data
    return attrs


def _write_h5(tmp: Path, samples: _Samples, attrs: dict[str, Any]) -> None:
    import h5py

    with h5py.File(tmp, "w") as fh:
        fh.attrs.update(attrs)
        for name, values in samples.arrays.items():
            fh.create_dataset(name, data=values)
            fh[name].attrs.update(samples.attrs.get(name, {}))


def _columns(samples: _Samples) -> dict[str, Any]:
    """The ROOT branches and Parquet columns: jets as jagged particle lists and jet columns."""
    if samples.kind != "particles":  # arrow takes contiguous arrays only
        return {name: np.ascontiguousarray(values) for name, values in samples.arrays.items()}
    import awkward as ak

    particles, jets = samples.arrays["particles"], samples.arrays["jets"]
    real = particles[..., 3] > 0.5  # the real particles come first in each jet
    counts = real.sum(axis=1).astype(np.int32)
    columns: dict[str, Any] = {PARTICLE_COUNT: counts}
    for i, name in enumerate(PARTICLE_COLUMNS):
        columns[name] = ak.unflatten(particles[..., i][real], counts)
    for i, name in enumerate(JET_COLUMNS):
        columns[name] = counts if name == JET_COLUMNS[-1] else np.ascontiguousarray(jets[:, i])
    return columns


def _metadata(samples: _Samples, attrs: dict[str, Any]) -> str:
    """The JSON of ROOT's TObjString and Parquet's metadata: the file attributes, N and each
    array's attributes."""
    meta = {**attrs, "description": _TITLES[samples.kind], "arrays": samples.attrs}
    if samples.kind == "particles":
        meta["max_particles"] = samples.arrays["particles"].shape[1]
    return json.dumps(meta)


def _write_root(tmp: Path, samples: _Samples, attrs: dict[str, Any]) -> None:
    import awkward as ak
    import uproot

    # uproot writes a record PREFIX of fields F as branches PREFIX_F, a jagged one with the
    # counter nPREFIX: Particle_eta, ... with nParticle. Names without a prefix stay branches.
    groups: dict[str, Any] = {}
    for name, values in _columns(samples).items():
        prefix, _, field = name.partition("_")
        if name != PARTICLE_COUNT:
            groups.setdefault(prefix, {})[field] = values
    branches = {
        prefix: ak.zip(fields) if "" not in fields else ak.Array(fields[""])
        for prefix, fields in groups.items()
    }
    with uproot.recreate(tmp) as fh:
        types = {name: values.type for name, values in branches.items()}
        tree = fh.mktree(_TREES[samples.kind], types, title=_TITLES[samples.kind])
        n = len(next(iter(samples.arrays.values())))
        for start in range(0, n, _BASKET_ENTRIES):
            tree.extend({k: v[start : start + _BASKET_ENTRIES] for k, v in branches.items()})
        fh[METADATA_KEY] = _metadata(samples, attrs)


def _write_parquet(tmp: Path, samples: _Samples, attrs: dict[str, Any]) -> None:
    import awkward as ak
    import pyarrow.parquet as pq

    table = ak.to_arrow_table(ak.Array(_columns(samples)), extensionarray=False)
    meta = {**(table.schema.metadata or {}), METADATA_KEY.encode(): _metadata(samples, attrs)}
    pq.write_table(table.replace_schema_metadata(meta), tmp)


def _write_layout(
    tmp: Path,
    suffix: str,
    x: np.ndarray,
    cond: np.ndarray | Mapping[str, float] | None,
    cond_names: Sequence[str],
    made_by: Provenance | None,
    classes: Sequence[str],
) -> None:
    """Write ``x`` in the simulator's layout to ``tmp`` in the format of ``suffix``."""
    training = _training_attrs(made_by.data if made_by is not None else None)
    samples = _samples(x, cond, cond_names, training, classes)
    attrs = _file_attrs(samples.kind, made_by, training)
    writer = {".root": _write_root, ".parquet": _write_parquet}.get(suffix, _write_h5)
    writer(tmp, samples, attrs)


def check_output(path: str | Path) -> Path:
    """``path`` if samples can be written there: a supported suffix, an existing directory and,
    for ROOT and Parquet, the libraries (so a command can refuse before it samples)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unsupported output format; use one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise DataError(f"{path}: directory {path.parent} does not exist")
    if suffix in _EXTRAS:
        what, package = _EXTRAS[suffix]
        for module in (package, "awkward"):
            import_extra(module, f"writing {what} files")
    return path


def write_samples(
    path: str | Path,
    x: np.ndarray,
    *,
    cond: np.ndarray | Mapping[str, float] | None = None,
    cond_names: Sequence[str] = (),
    made_by: Provenance | None = None,
    classes: Sequence[str] = (),
) -> Path:
    """Write generated samples ``x`` (n, ...) in the data's units to ``path``, atomically.

    Args:
        path: ``.h5``/``.hdf5``, ``.npy``, ``.root`` or ``.parquet`` (see the module).
        x: jet clouds (n, N, 4), images (n, 1, P, P) or other samples (n, ...).
        cond: the conditions the samples were drawn with, rows (n, len(cond_names)) or one
            value per name, in physics units; a jet's ``pt`` and ``eta`` come from them.
        cond_names: the names of the conditions (``data.condition_on``: pt, eta, mass,
            n_particles).
        made_by: the run, step and seed recorded in the file's attributes.
        classes: for images of a class-conditional run, the names of the one-hot classes of
            ``cond``: each image's class index is written as ``label`` (n,), the names as its
            ``classes`` attribute.

    Raises:
        DataError: an unsupported suffix, a missing directory, ``x`` without rows, or a write
            that failed; one line, and no file is left.
        MissingExtraError: ROOT or Parquet without the ``physgan[hep]`` extra.
    """
    path = check_output(path)
    suffix = path.suffix.lower()
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: samples of shape {x.shape}, expected (n_samples, ...) n > 0")
    try:
        with atomic_path(path) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, x, allow_pickle=False)
            else:
                _write_layout(tmp, suffix, x, cond, cond_names, made_by, classes)
    except OSError as err:
        raise DataError(f"{path}: cannot write ({err.strerror or err})") from None
    return path
