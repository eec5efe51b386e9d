"""What ``physgan compare`` puts side by side: divergences to the data and a table of runs.

The lecture's claim is about divergences, so every run gets forward KL(p_data || p_model),
reverse KL(p_model || p_data) and JS(p_data, p_model), in nats:

* ``kNN`` for every run (a GAN or a VAE has no tractable density; real data have none): the
  k-nearest-neighbour estimators of :mod:`physgan.divergences`, on the samples themselves,
  or for particle clouds on the jets' [pt, eta, phi, mass] standardised by the real jets;
* ``exact`` as well where both densities are known (a toy's truth and a flow): Monte Carlo
  with standard errors, KL(p||q) = E_p[log p - log q], JS = E_p[log 2p/(p+q)] / 2 +
  E_q[log 2q/(p+q)] / 2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgan.atomic import write_atomic
from physgan.data.transforms import transform_from_dict
from physgan.errors import ConfigError
from physgan.evaluation import data_kind, evaluate_samples
from physgan.generation import load_run, sample_run
from physgan.models.draw import CHUNK
from physgan.report.plots import ComparisonPanel, comparison_figure
from physgan.report.theory_figure import save_figure
from physgan.training.builder import load_data
from physgan.training.rundir import RunDir, json_ready
from physgan.training.seeding import Stream, derive_seed
from physgan.training.state import TrainingState

__all__ = [
    "COLUMNS",
    "Comparison",
    "compare_runs",
    "divergences",
    "format_table",
    "mode_width",
    "model_log_density",
]

LogDensity = Callable[[np.ndarray], np.ndarray]

# (key in a run's row, column title, how to print the value)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "run", "s"),
    ("family", "family", "s"),
    ("data", "data", "s"),
    ("kl_forward_exact", "KL(data||model) exact", "e"),
    ("kl_reverse_exact", "KL(model||data) exact", "e"),
    ("jsd_exact", "JSD exact", "e"),
    ("kl_forward_knn", "KL(data||model) kNN", "e"),
    ("kl_reverse_knn", "KL(model||data) kNN", "e"),
    ("jsd_knn", "JSD kNN", "e"),
    ("modes", "modes", "s"),
    ("high_quality", "high quality", "%"),
    ("mode_width", "mode width", "f"),
    ("w1m", "W1M x1e3", "m"),
    ("w1p", "W1P x1e3", "m"),
    ("fpd", "FPD x1e3", "m"),
    ("kpd", "KPD x1e3", "m"),
    ("auc", "AUC", "e"),
    ("holdout_nll", "NLL bound", "f"),
    ("samples_per_s", "samples/s", "r"),
)


def _estimate(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def _exact(
    real: np.ndarray, generated: np.ndarray, log_p: LogDensity, log_q: LogDensity
) -> dict[str, dict[str, float]]:
    lp_real, lq_real = log_p(real), log_q(real)
    lp_gen, lq_gen = log_p(generated), log_q(generated)
    forward = _estimate(lp_real - lq_real)
    reverse = _estimate(lq_gen - lp_gen)
    js_real = lp_real - (np.logaddexp(lp_real, lq_real) - math.log(2))
    js_gen = lq_gen - (np.logaddexp(lp_gen, lq_gen) - math.log(2))
    (a, a_err), (b, b_err) = _estimate(js_real), _estimate(js_gen)
    jsd = ((a + b) / 2, math.hypot(a_err, b_err) / 2)
    return {
        f"{name}_exact": {"value": value, "std": std}
        for name, (value, std) in (("kl_forward", forward), ("kl_reverse", reverse), ("jsd", jsd))
    }


def _knn_features(real: np.ndarray, generated: np.ndarray, kind: str) -> tuple[np.ndarray, ...]:
    if kind == "jets":
        from physgan.data.jets import canonical_cloud
        from physgan.metrics.jetfeatures import jet_features

        real, generated = jet_features(real), jet_features(canonical_cloud(generated))
    real = real.reshape(len(real), -1).astype(np.float64)
    generated = generated.reshape(len(generated), -1).astype(np.float64)
    mean, std = real.mean(axis=0), real.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (real - mean) / std, (generated - mean) / std


def divergences(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    kind: str,
    log_p: LogDensity | None = None,
    log_q: LogDensity | None = None,
) -> dict[str, dict[str, float | None]]:
    """Forward KL, reverse KL and JSD of real vs generated samples, each {value, std}.

    Always the kNN estimates (``kl_forward_knn``, ``kl_reverse_knn``, ``jsd_knn``; ``std``
    None: the estimators give no error bar), so that every run is measured the same way;
    with ``log_p`` (the data's log-density) and ``log_q`` (the model's) also the exact Monte
    Carlo ones (``kl_forward_exact``, ...). ``kind`` is :func:`physgan.evaluation.data_kind`'s;
    for ``jets`` kNN uses jet features.

    >>> rng = np.random.default_rng(0)
    >>> p = lambda x: -0.5 * (x[:, 0] ** 2 + math.log(2 * math.pi))
    >>> q = lambda x: -0.5 * ((x[:, 0] - 1) ** 2 + math.log(2 * math.pi))
    >>> d = divergences(rng.normal(0, 1, (100_000, 1)), rng.normal(1, 1, (100_000, 1)),
    ...                 kind="vectors", log_p=p, log_q=q)
    >>> round(d["kl_forward_exact"]["value"], 2), round(d["kl_forward_knn"]["value"], 1)
    (0.5, 0.5)
    """
    from physgan.divergences import js_knn, kl_knn

    a, b = _knn_features(real, generated, kind)
    knn = {"kl_forward": kl_knn(a, b), "kl_reverse": kl_knn(b, a), "jsd": js_knn(a, b)}
    result: dict[str, dict[str, float | None]] = {
        f"{name}_knn": {"value": value, "std": None} for name, value in knn.items()
    }
    if log_p is not None and log_q is not None:
        result |= _exact(real, generated, log_p, log_q)
    return result


def mode_width(x: np.ndarray, means: np.ndarray, stds: np.ndarray) -> float:
    """RMS distance, in units of the mode's std, of samples x (n, d) within 3 std of their
    nearest mode (a mixture's ``means`` and ``stds``, (k, d)), per dimension.

    The ratio of this for generated and for real samples says whether the model's modes are
    too narrow (< 1, mode-seeking) or too wide (> 1). For exact draws in 2-D it is
    sqrt((2 - 11 e^-4.5) / (2 (1 - e^-4.5))) = 0.974, the 3-std cut trimming the tails:

    >>> from physgan.data.toy import ring8
    >>> ring = ring8()
    >>> round(mode_width(ring.sample(100_000, seed=1), ring.means, ring.stds), 2)
    0.97
    """
    z = (x[:, None, :] - means[None]) / stds[None]
    r2 = (z**2).sum(-1)
    nearest = r2.argmin(axis=1)
    best = r2[np.arange(len(x)), nearest]
    inside = best < 9.0
    if not inside.any():
        return math.nan
    return float(np.sqrt(best[inside].mean() / x.shape[1]))


def _cell(value: Any, style: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # {value, std[, method]}
        text = _cell(value["value"], style)
        if value.get("std") is not None and value["value"] is not None:
            text += f" ± {_cell(value['std'], style)}"
        return text
    if style == "s":
        return str(value)
    if style == "%":
        return f"{100 * value:.1f}%"
    if style == "m":
        return f"{1e3 * value:.3g}"
    if style == "r":
        return f"{value:,.0f}"
    if style == "f":
        return f"{value:.3f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the runs, with only the columns some run has a value for."""
    columns = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    lines = [
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), s) for k, _, s in columns) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """``physgan compare``'s outcome: one row of metrics per run, the table and its files."""

    rows: list[dict[str, Any]]
    table: str
    figure: Path
    json: Path
    markdown: Path


def model_log_density(
    run: RunDir, state: TrainingState
) -> Callable[[np.ndarray], np.ndarray] | None:
    """log q(x) in the data's units for a run with a density (a flow), else None."""
    model = state.sampler
    if not hasattr(model, "log_prob"):
        return None
    transform = transform_from_dict(run.read_json(run.transform))
    if not hasattr(transform, "log_abs_det"):
        return None

    @torch.no_grad()
    def log_q(x: np.ndarray) -> np.ndarray:
        model.eval()
        x_norm = torch.as_tensor(transform.forward(x), dtype=torch.float32)
        log_q_norm = torch.cat([model.log_prob(c) for c in x_norm.split(CHUNK)]).double()
        return log_q_norm.numpy() + transform.log_abs_det(x)

    return log_q


def _last_likelihood(run: RunDir) -> float | None:
    """The last held-out -log-likelihood (flow) or -ELBO (VAE) logged, nats per sample."""
    rows = run.read_metrics()
    last = rows[-1] if rows else {}
    if "holdout_nll" in last:
        return float(last["holdout_nll"])
    if "holdout_elbo" in last:
        return -float(last["holdout_elbo"])
    return None


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    out: str | Path = "compare",
    n: int = 5_000,
    seed: int = 0,
) -> Comparison:
    """Put trained runs (any family, any data) side by side; write the table and a figure.

    For each run: forward KL, reverse KL and JSD to the data in nats (kNN for every run, and
    exact Monte Carlo too where both densities are known, a toy's and a flow's: see
    :mod:`physgan.comparison`), modes, high-quality fraction and the width of the modes
    relative to the truth's (:func:`physgan.comparison.mode_width`) on toys, W1M, W1P, FPD, KPD
    on jets, the classifier AUC, the held-out negative log-likelihood for a flow (the -ELBO
    bound for a VAE; normalised units), and samples per second of :func:`sample`. ``n``
    samples per run are compared with ``2 n`` draws of a toy's truth or with the held-out
    data. Writes ``compare.md``, ``compare.json`` and ``compare.png`` into ``out``.
    """
    loaded = [load_run(run_dir) for run_dir in run_dirs]  # every run checked before work
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create ({err.strerror})") from None
    rows, panels = [], []
    for run, config, meta, state in loaded:
        data = load_data(config)
        kind = data_kind(data.sample_shape, data.truth)
        if data.truth is not None:
            real = data.truth.sample(2 * n, derive_seed(seed, Stream.EVAL_TRUTH)).astype(np.float32)
        else:
            real = data.x_holdout
        times = []
        for _ in range(2):  # the second draw runs warm; both draw the same samples
            start = time.perf_counter()
            generated = sample_run(run, config, meta, state, n, seed, data=data)
            times.append(time.perf_counter() - start)
        scored = evaluate_samples(real, generated, seed=seed, truth=data.truth, figures=False)
        log_p = None if data.truth is None else data.truth.log_prob
        log_q = model_log_density(run, state) if log_p is not None else None
        row: dict[str, Any] = {
            "run": run.root.name,
            "path": str(run.root),
            "family": config.model.family,
            "data": str(config.data.path or config.data.name),
            "kind": kind,
            "step": state.step,
            **divergences(real, generated, kind=kind, log_p=log_p, log_q=log_q),
            "holdout_nll": _last_likelihood(run),
            "samples_per_s": n / min(times),
        }
        metrics = scored.metrics
        if data.truth is not None:
            row["modes"] = f"{metrics['modes']}/{metrics['n_modes']}"
            row["high_quality"] = metrics["high_quality"]
            flat_gen, flat_real = generated.reshape(n, -1), real.reshape(len(real), -1)
            truth_means, truth_stds = data.truth.means, data.truth.stds
            row["mode_width"] = mode_width(flat_gen, truth_means, truth_stds) / mode_width(
                flat_real, truth_means, truth_stds
            )
        for name in ("w1m", "w1p", "fpd", "kpd", "auc"):
            if name in metrics:
                row[name] = {"value": metrics[name]["value"], "std": metrics[name]["std"]}
        rows.append(json_ready(row))
        panels.append(
            ComparisonPanel(f"{run.root.name} ({config.model.family})", real, generated, data.truth)
        )
    table = format_table(rows)
    markdown = out / "compare.md"
    write_atomic(markdown, table + "\n")
    json_path = out / "compare.json"
    RunDir(out).write_json(json_path, {"n": n, "seed": seed, "runs": rows})
    figure = save_figure(comparison_figure(panels), out / "compare.png")
    return Comparison(rows, table, figure, json_path, markdown)
