"""The density ratio p_data / p_g of jet images on their observables, for rejection sampling.

A classifier trained to tell a class's training images (label 1) from as many of its
generator's (label 0) on a few observables estimates, through its logit, log(p_data / p_g) of
those observables: the lecture's D* = p_data / (p_data + p_g), here of a classifier that can
be trained to convergence in a minute, where the GAN's own D sees every pixel and never gets
there. Rejection sampling with this logit (``sample.ratio: observables``) keeps each generated
image with probability exp(logit - M), so the observables' joint distribution becomes the
data's wherever G covers it. DCTR (Andreassen and Nachman, arXiv:1907.08209) reweights
simulations by such a classifier, DCTRGAN (Diefenbacher et al., arXiv:2009.03796) a GAN's
samples; rejection turns the weights into unweighted images.

The classifier is scikit-learn's gradient-boosted trees (``HistGradientBoostingClassifier``,
stopped early on a tenth of the rows), one per class. A small MLP of the same observables
(sessions 25-26) learned the large differences (the soft pixels) and left the W mass peak
as it was; the trees fit both. Their nodes are kept as arrays (:meth:`ObservableRatio.tensors`)
and evaluated here, so that a shipped ratio is a file of numbers, not a pickle.

The observables (``OBSERVABLES``), of images in GeV: jet mass, tau_21, total pT and the number
of lit pixels in each bin of log10 pT between ``LOG_PT_EDGES``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from physgan.data.images import image_mass, image_tau21

__all__ = ["OBSERVABLES", "ObservableRatio", "fit_observable_ratio", "image_observables"]

# log10 pT (GeV) edges of the bins in which each image's lit pixels are counted: quarters of a
# decade from 0.3 MeV to 100 GeV (a generator's faint pixels sit at the soft end)
LOG_PT_EDGES = tuple(-3.5 + 0.25 * i for i in range(23))
OBSERVABLES = (
    "mass",
    "tau21",
    "pt",
    *(f"lit_log_pt_{i}" for i in range(len(LOG_PT_EDGES) + 1)),
)
_ROWS = 2048  # rows evaluated at once (arrays of rows x trees)


def image_observables(images: np.ndarray) -> np.ndarray:
    """(n, 27) float32 observables (``OBSERVABLES``) of (n, 1, P, P) images in GeV: jet mass,
    tau_21 (NaN for an empty image), total pT, and the number of lit pixels in each bin of
    log10 pT between ``LOG_PT_EDGES`` (open at both ends): summed over images, the counts are
    the pixel-intensity spectrum.

    >>> image = np.zeros((1, 1, 5, 5)); image[0, 0, 2, 1] = image[0, 0, 2, 3] = 100.0
    >>> image_observables(image)[0, :3].astype(float).round(2).tolist()
    [104.22, 0.0, 200.0]
    >>> int(image_observables(image)[0, -1])  # both at log10 pT = 2.0: the last, open bin
    2
    """
    x = np.asarray(images, dtype=np.float64)[:, 0]
    lit = x > 0
    with np.errstate(divide="ignore"):
        bins = np.digitize(np.log10(np.where(lit, x, 1.0)), LOG_PT_EDGES)
    counts = [(lit & (bins == i)).sum(axis=(1, 2)) for i in range(len(LOG_PT_EDGES) + 1)]
    columns = [image_mass(x), image_tau21(x), x.sum(axis=(1, 2)), *counts]
    return np.column_stack(columns).astype(np.float32)


@dataclass(frozen=True)
class Trees:
    """One class's boosted trees, their nodes flattened into arrays over all trees: a row x
    goes left at a split node if x[feature] <= threshold (NaN: if ``missing_left``), and its
    logit is ``baseline`` plus the ``value`` of the leaf it reaches in each tree."""

    feature: np.ndarray  # int64, per node
    threshold: np.ndarray  # float64
    missing_left: np.ndarray  # bool
    left: np.ndarray  # int64: index of the left child among all nodes
    right: np.ndarray  # int64
    leaf: np.ndarray  # bool
    value: np.ndarray  # float64: a leaf's contribution to the logit
    roots: np.ndarray  # int64, per tree
    baseline: np.ndarray  # float64, shape (1,)

    @classmethod
    def of(cls, classifier: HistGradientBoostingClassifier) -> Trees:
        """The trees of a fitted binary classifier on numerical features."""
        nodes = [tree[0].nodes for tree in classifier._predictors]
        if any(n["is_categorical"].any() for n in nodes):
            raise ValueError("categorical splits are not supported")
        offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]]).astype(np.int64)
        both = np.concatenate(nodes)
        shift = np.repeat(offsets, [len(n) for n in nodes])
        return cls(
            feature=both["feature_idx"].astype(np.int64),
            # a split of the missing values alone has threshold inf; as a file can hold no inf,
            # the largest float, which leaves every finite value on the same side
            threshold=np.minimum(both["num_threshold"], np.finfo(np.float64).max),
            missing_left=both["missing_go_to_left"].astype(bool),
            left=both["left"].astype(np.int64) + shift,
            right=both["right"].astype(np.int64) + shift,
            leaf=both["is_leaf"].astype(bool),
            value=both["value"].astype(np.float64),
            roots=offsets,
            baseline=np.asarray(classifier._baseline_prediction, np.float64).reshape(1),
        )

    def logit(self, x: np.ndarray) -> np.ndarray:
        """(n,) float64 logits of (n, features) rows."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(len(x))
        for start in range(0, len(x), _ROWS):
            part = x[start : start + _ROWS]
            rows = np.arange(len(part))[:, None]
            node = np.broadcast_to(self.roots, (len(part), len(self.roots))).copy()
            inner = ~self.leaf[node]
            while inner.any():  # one level of every tree per pass
                v = part[rows, self.feature[node]]
                go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
                child = np.where(go_left, self.left[node], self.right[node])
                node = np.where(inner, child, node)
                inner = ~self.leaf[node]
            out[start : start + len(part)] = self.baseline[0] + self.value[node].sum(axis=1)
        return out


class ObservableRatio:
    """log(p_data / p_g) of observables, by class: ``ratio(features, cond)`` with features
    (n, 27) from :func:`image_observables` and cond (n, classes) one-hot rows (None for an
    unconditional ratio, of one class) -> (n,) float64 logits."""

    def __init__(self, classes: list[Trees]) -> None:
        self.classes = classes

    def __call__(self, features: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        if cond is None:
            if len(self.classes) != 1:
                raise ValueError(f"ObservableRatio needs a condition of width {len(self.classes)}")
            return self.classes[0].logit(features)
        cond = np.asarray(cond)
        if cond.ndim != 2 or cond.shape[1] != len(self.classes):
            raise ValueError(
                f"ObservableRatio needs a condition of width {len(self.classes)}, got shape "
                f"{cond.shape}"
            )
        label = cond.argmax(axis=1)
        out = np.empty(len(features))
        for c in np.unique(label):
            out[label == c] = self.classes[c].logit(features[label == c])
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        """The trees as named tensors (``class{c}.{field}``), for a safetensors file."""
        # each a copy of its own: safetensors refuses tensors that share memory
        return {
            f"class{c}.{f.name}": torch.from_numpy(np.array(getattr(trees, f.name)))
            for c, trees in enumerate(self.classes)
            for f in fields(Trees)
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ObservableRatio:
        """The ratio of :meth:`tensors`; ValueError if some are missing or do not fit."""
        n = sum(key.endswith(".baseline") for key in tensors)
        try:
            classes = [
                Trees(**{f.name: tensors[f"class{c}.{f.name}"].numpy() for f in fields(Trees)})
                for c in range(n)
            ]
        except KeyError as missing:
            raise ValueError(f"no tensor {missing} for the observables' ratio") from None
        if not classes:
            raise ValueError("no trees for the observables' ratio")
        for trees in classes:
            per_node = (trees.feature, trees.threshold, trees.missing_left, trees.left, trees.right)
            children = np.concatenate([trees.left, trees.right, trees.roots])
            if (
                any(len(a) != len(trees.value) for a in (*per_node, trees.leaf))
                or not 0 <= trees.feature.min() <= trees.feature.max() < len(OBSERVABLES)
                or not 0 <= children.min() <= children.max() < len(trees.value)
            ):
                raise ValueError("the observables' ratio has nodes that do not fit together")
        return cls(classes)


def fit_observable_ratio(
    real: np.ndarray,
    generated: np.ndarray,
    cond: np.ndarray | None = None,
    *,
    max_iter: int = 600,
    seed: int = 0,
) -> ObservableRatio:
    """An :class:`ObservableRatio`: per class, boosted trees (at most ``max_iter``, learning
    rate 0.05, at least 100 rows a leaf; from 10,000 rows on, stopped early on a tenth held
    out) fitted on ``real`` (label 1) against ``generated`` (label 0), (n, 27) observables
    each; ``cond``: the (n, classes) one-hot classes that both share row by row (generated
    with the real images' classes), or None. ``seed``: any int (its low 32 bits are used)."""
    if real.shape != generated.shape or real.ndim != 2 or real.shape[1] != len(OBSERVABLES):
        raise ValueError(
            f"real and generated need the same shape (n, {len(OBSERVABLES)}), got "
            f"{real.shape} and {generated.shape}"
        )
    cond = np.ones((len(real), 1)) if cond is None else np.asarray(cond)  # None: one class
    label = cond.argmax(axis=1)
    classes = []
    for c in range(cond.shape[1]):
        rows = label == c
        if not rows.any():
            raise ValueError(f"no rows of class {c} to fit the observables' ratio on")
        x = np.concatenate([real[rows], generated[rows]]).astype(np.float64)
        y = np.concatenate([np.ones(rows.sum()), np.zeros(rows.sum())])
        classifier = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=max_iter,
            min_samples_leaf=100,
            early_stopping="auto",  # on above 10,000 rows
            random_state=seed % 2**32,
        )
        classes.append(Trees.of(classifier.fit(x, y)))
    return ObservableRatio(classes)
