"""Training data for a run: a built-in toy mixture or a user's file, split into train/holdout."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from physgan.data.io import load, read_arrays, read_columns
from physgan.data.jets import JET_FEATURES
from physgan.data.stream import StreamPlan, open_stream
from physgan.data.toy import TOY_DATASETS, GaussianMixture
from physgan.errors import ConfigError, DataError

__all__ = [
    "IMAGE_CLASSES",
    "JETS_PREFIX",
    "JET_IMAGES",
    "TrainingData",
    "class_names",
    "load_training_data",
]

# Built-in jet data: "jets-gluon" etc., n_train jets of 30 particles simulated once with seed 0
# by Pythia 8 + FastJet and cached (see physgan.data.jetgen.cached_jets).
JETS_PREFIX = "jets-"
# Built-in jet images: n_train / 2 W and n_train / 2 QCD images of the LAGAN benchmark, cached;
# with data.conditional the condition is the one-hot class [W, QCD].
JET_IMAGES = "jet-images"
IMAGE_CLASSES = ("W", "QCD")  # in the order of the one-hot condition


@dataclass(frozen=True)
class TrainingData:
    """Samples in the data's own units (float32): training and held-out parts.

    ``truth`` is the exact density for built-in toys (None for files); conditions are
    (n, cond_dim) arrays or None for unconditional data. ``classes`` names the classes of
    data whose conditions are one-hot class labels (the W and QCD jet images), else None.
    For a streamed file, ``stream`` is its plan and ``x_train`` / ``cond_train`` a subsample
    of the training rows (to fit the transform on and draw conditions from); training reads
    the file through the plan.
    """

    x_train: np.ndarray
    x_holdout: np.ndarray
    cond_train: np.ndarray | None
    cond_holdout: np.ndarray | None
    truth: GaussianMixture | None = None
    stream: StreamPlan | None = None
    classes: tuple[str, ...] | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def cond_dim(self) -> int:
        return 0 if self.cond_train is None else int(self.cond_train.shape[1])


def class_names(name: str | None, conditional: bool) -> tuple[str, ...] | None:
    """The class names of built-in data conditioned on a one-hot class (the jet images, with
    ``data.conditional``), in the order of the one-hot condition; None for other data."""
    return IMAGE_CLASSES if name == JET_IMAGES and conditional else None


def load_training_data(
    *,
    name: str | None,
    path: str | Path | None,
    n_train: int,
    holdout_fraction: float,
    conditional: bool,
    seed: int,
    progress: bool = False,
    columns: list[str] | None = None,
    stream_fit_rows: int | None = None,
    condition_on: list[str] | None = None,
) -> TrainingData:
    """Build the run's data: ``n_train`` toy samples drawn from ``seed``, ``n_train`` cached
    simulated jets for a ``jets-PROCESS`` name (the same jets for every run seed), or a file's
    rows (``columns``: those columns of a table, e.g. ROOT branches, as the features).
    ``progress`` shows a progress bar while jets are simulated.

    For toys with ``conditional``, the condition is the one-hot index of the mixture component
    each sample came from. With ``condition_on`` (names in
    :data:`physgan.data.jets.JET_FEATURES`), the conditions are those columns of a jet file's
    ``jets`` array, in physics units (GeV for pt and mass). The holdout is the last
    ``holdout_fraction`` of a seeded shuffle.
    With ``stream_fit_rows``, an HDF5 ``path`` is planned for streaming instead of read
    (:func:`physgan.data.stream.open_stream`; the holdout is whole blocks of the file).
    """
    if stream_fit_rows is not None and path is not None:
        plan = open_stream(
            path, holdout_fraction=holdout_fraction, seed=seed, fit_rows=stream_fit_rows
        )
        if conditional and plan.cond_key is None:
            raise DataError(f"{path}: data.conditional is set but the file has no 'cond'")
        return TrainingData(
            x_train=plan.x_fit,
            x_holdout=plan.x_holdout,
            cond_train=plan.cond_fit,
            cond_holdout=plan.cond_holdout,
            stream=plan,
        )
    truth = None
    if name == JET_IMAGES:
        return _split(*_jet_images(n_train, conditional, progress), holdout_fraction, seed, name)
    if name is not None and name.startswith(JETS_PREFIX):
        from physgan.data.jetgen import cached_jets

        workers = min(4, os.cpu_count() or 1)  # the jets do not depend on it
        process = name.removeprefix(JETS_PREFIX)
        path = cached_jets(process, n_train, seed=0, workers=workers, progress=progress)
    if path is not None and columns:
        x, cond = read_columns(path, columns), None
    elif path is not None:
        x, cond = read_arrays(path)
        if conditional and cond is None:
            raise DataError(f"{path}: data.conditional is set but the file has no 'cond'")
        if condition_on:
            cond = _jet_conditions(path, condition_on, x.shape[0])
    else:
        truth = TOY_DATASETS.get(name)()
        x, labels = truth.sample_labelled(n_train, seed)
        x = x.astype(np.float32)
        cond = np.eye(truth.n_components, dtype=np.float32)[labels] if conditional else None
    data = _split(x, cond, None, holdout_fraction, seed, str(path or name))
    return data if truth is None else replace(data, truth=truth)


def _split(
    x: np.ndarray,
    cond: np.ndarray | None,
    classes: tuple[str, ...] | None,
    holdout_fraction: float,
    seed: int,
    source: str,
) -> TrainingData:
    """Training data with the last ``holdout_fraction`` of a seeded shuffle held out."""
    n_holdout = round(holdout_fraction * x.shape[0])
    if n_holdout < 1 or n_holdout >= x.shape[0]:
        raise ConfigError(
            f"config: data.holdout_fraction: leaves no training or holdout data "
            f"from the {x.shape[0]} samples of {source}"
        )
    order = np.random.default_rng([seed, 1]).permutation(x.shape[0])
    train, hold = order[:-n_holdout], order[-n_holdout:]
    return TrainingData(
        x_train=x[train],
        x_holdout=x[hold],
        cond_train=None if cond is None else cond[train],
        cond_holdout=None if cond is None else cond[hold],
        classes=classes if cond is not None else None,
    )


def _jet_images(
    n: int, conditional: bool, progress: bool
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """n // 2 cached images of each class (n, 1, P, P), one-hot classes if ``conditional``."""
    from physgan.data.jetgen import cached_jet_images

    if n < 2 * len(IMAGE_CLASSES):
        raise ConfigError(f"config: data.n_train: {JET_IMAGES} needs at least 4 images, got {n}")
    workers = min(4, os.cpu_count() or 1)  # the images do not depend on it
    parts = [
        read_arrays(cached_jet_images(c, n // 2, seed=0, workers=workers, progress=progress))[0]
        for c in IMAGE_CLASSES
    ]
    labels = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    cond = np.eye(len(parts), dtype=np.float32)[labels] if conditional else None
    return np.concatenate(parts), cond, IMAGE_CLASSES


def _jet_conditions(path: str | Path, names: list[str], n: int) -> np.ndarray:
    """Columns ``names`` of the ``jets`` array (n, 4) of a jet file, float32 (n, len(names))."""
    try:
        jets = load(path, ["jets"])["jets"]
    except DataError:
        raise DataError(
            f"{path}: data.condition_on needs a jet file (particles + jets); it has no 'jets'"
        ) from None
    if jets.shape != (n, len(JET_FEATURES)):
        raise DataError(
            f"{path}: jets must be {n} rows of {len(JET_FEATURES)} features "
            f"({', '.join(JET_FEATURES)}), got shape {jets.shape}"
        )
    cond = jets[:, [JET_FEATURES.index(name) for name in names]]
    for name, column in zip(names, cond.T, strict=True):
        if not np.isfinite(column).all():
            row = int((~np.isfinite(column)).argmax())
            raise DataError(
                f"{path}: jets: {name} is unknown (NaN) from row {row} on, as in a file a "
                f"generator wrote without that condition; data.condition_on cannot use it"
            )
    return cond.astype(np.float32)
