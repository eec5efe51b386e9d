"""ONNX export of a trained run's sampler, with its inverse transform: physics units out.

The exported graph maps the latent ``z`` (and, for a conditional run, ``cond``) to samples
``x`` in the data's own units (GeV, radians, the file's units), so a C++ framework (ONNX
Runtime, ...) generates what :func:`physgan.api.sample` generates: for the same ``z`` and
``cond``, the same samples as ``api.sample(..., rejection=False)`` up to float32 rounding
(without ``sample.truncation``).
The graph holds the sampler's forward pass (the EMA weights when the run kept them), the torch
twin of the run's transform's ``inverse`` (:class:`~physgan.data.transforms.InverseTransform`)
and, for particle clouds (N, 4), the file layout of :mod:`physgan.data.jets`
(:func:`cloud_layout`). Drawing ``z`` is
left to the caller: it is whatever the sampler's ``sample_latent`` draws (N(0, I) for most
models; see the ``physgan`` metadata in the file). Discriminator rejection sampling
(``sample.rejection``) and Jacobian truncation (``sample.truncation``) are not part of the
graph. Needs the ``onnx`` extra.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from physgan.data.jets import is_cloud
from physgan.data.transforms import (
    Identity,
    InverseTransform,
    ParticleStandardize,
    Standardize,
    transform_from_dict,
)
from physgan.errors import ConfigError, MissingExtraError
from physgan.generation import Weights, cond_transform_of, load_run
from physgan.models.flow import Flow
from physgan.version import __version__

__all__ = [
    "OnnxExport",
    "PhysicsSampler",
    "cloud_layout",
    "export_onnx",
    "physics_sampler",
]

log = logging.getLogger(__name__)

# Opsets the torch 2.13 exporter (torch.export + ONNX Script) implements; it would convert a
# lower request with a version converter that fails on common ops such as Relu.
_OPSETS = range(18, 24)
# A flow's inverse unrolls `transforms x passes` conditioner passes into the graph, each a few
# seconds of export; a fully autoregressive flow on jets (120 features) would take hours.
_MAX_UNROLLED_PASSES = 64


def _stable_descending_rank(key: Tensor) -> Tensor:
    """Position (B, N) of each entry of key (B, N) in a stable sort by decreasing key.

    rank_i = #{j: key_j > key_i} + #{j < i: key_j == key_i}: NumPy's stable argsort of
    ``-key`` as a permutation, with only comparisons and sums (exact in any ONNX runtime; the
    exporter has no stable sort, and TopK leaves the order of ties to the runtime).
    """
    n = key.shape[1]
    earlier = torch.ones(n, n, dtype=torch.bool, device=key.device).tril(-1)  # [i, j]: j < i
    key_i, key_j = key.unsqueeze(2), key.unsqueeze(1)
    return ((key_j > key_i) | ((key_j == key_i) & earlier)).sum(dim=2)


def cloud_layout(particles: Tensor) -> Tensor:
    """Generated clouds (B, N, 4) [eta_rel, phi_rel, pt_rel, mask] in the file layout.

    The torch twin of ``sort_by_pt(canonical_cloud(particles))`` (:mod:`physgan.data.jets`):
    mask 1 where mask >= 0.5, else an all-zero row; negative pt_rel clipped to 0; each jet's
    particles by decreasing pt_rel (ties in their original order), padded rows last.

    >>> cloud = torch.tensor([[[0.25, 0.5, 0.25, 0.75], [0.5, -0.25, -0.125, 0.5],
    ...                        [0.5, 0.5, 0.5, 0.25], [0.75, 0.0, 1.5, 1.0]]])
    >>> cloud_layout(cloud)[0].tolist()
    [[0.75, 0.0, 1.5, 1.0], [0.25, 0.5, 0.25, 1.0], [0.5, -0.25, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    """
    real = particles[..., 3:] >= 0.5
    kept = torch.where(real, particles, 0.0)
    pt_rel = kept[..., 2:3].clamp(min=0.0)
    cloud = torch.cat([kept[..., :2], pt_rel, real.to(particles.dtype)], dim=-1)
    key = torch.where(real[..., 0], cloud[..., 2], float("-inf"))
    rank = _stable_descending_rank(key).unsqueeze(-1).expand_as(cloud)
    return torch.zeros_like(cloud).scatter(1, rank, cloud)


class PhysicsSampler(nn.Module):
    """A run's sampler followed by its inverse transform (and the cloud layout): z -> x.

    Args:
        sampler: the generator, VAE or flow (``sample_latent(n, generator=...)`` and
            ``forward(z, cond=None)``), in eval mode for export.
        inverse: the run's :class:`InverseTransform`.
        cloud: apply :func:`cloud_layout` (samples of shape (N, 4)).
        condition: the run's transform of conditions (``data.condition_on`` is standardised),
            applied to ``cond`` before the sampler sees it.

    Shapes:
        ``forward(z, cond=None)``: z (B, *latent_shape), cond (B, cond_dim) in physics units
        or None -> (B, *sample_shape) in physics units.
    """

    cond_mean: Tensor
    cond_std: Tensor

    def __init__(
        self,
        sampler: nn.Module,
        inverse: InverseTransform,
        *,
        cloud: bool,
        condition: Standardize | ParticleStandardize | Identity | None = None,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.inverse = inverse
        self.cloud = cloud
        scaled = isinstance(condition, Standardize)
        self.register_buffer("cond_mean", torch.tensor(condition.mean if scaled else ()))
        self.register_buffer("cond_std", torch.tensor(condition.std if scaled else ()))

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z, as the sampler draws them."""
        return self.sampler.sample_latent(n, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Samples (B, *sample_shape) in physics units; see the class docstring."""
        if cond is not None and self.cond_mean.numel():
            cond = (cond - self.cond_mean) / self.cond_std
        x = self.inverse(self.sampler(z, cond))
        return cloud_layout(x) if self.cloud else x


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, the opset, and the graph's inputs (``z``,
    and ``cond`` for conditional runs) and output ``x`` as {name: shape}, with the batch axis
    ``"batch"`` when it is dynamic."""

    path: Path
    opset: int
    inputs: dict[str, tuple[int | str, ...]]
    outputs: dict[str, tuple[int | str, ...]]


def physics_sampler(
    run_dir: str | Path, weights: Weights = "best"
) -> tuple[PhysicsSampler, dict[str, Any]]:
    """A trained run's :class:`PhysicsSampler` in eval mode (``weights`` as
    :func:`~physgan.generation.load_run` takes them), and a summary of the run.

    The summary holds ``run`` (the directory), ``family`` (gan, vae, flow), ``step``,
    ``sample_shape``, ``cond_dim``, ``rejection`` and ``truncation`` (the run's ``sample.rejection``
    and ``sample.truncation``).
    """
    run, config, meta, state = load_run(run_dir, weights)
    transform = transform_from_dict(run.read_json(run.transform))
    sample_shape = tuple(meta["sample_shape"])
    model = PhysicsSampler(
        state.sampler,
        InverseTransform(transform),
        cloud=is_cloud(sample_shape),
        condition=cond_transform_of(meta),
    ).eval()
    summary = {
        "run": str(run.root),
        "family": config.model.family,
        "step": state.step,
        "sample_shape": sample_shape,
        "cond_dim": int(meta["cond_dim"]),
        "rejection": config.sample.rejection,
        "truncation": config.sample.truncation,
    }
    return model, summary


def _check_arguments(out: Path, batch_size: int | None, opset: int | None) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigError(f"--batch: must be a positive integer, got {batch_size!r}")
    if opset is not None and (isinstance(opset, bool) or opset not in _OPSETS):
        raise ConfigError(
            f"--opset: the exporter supports opsets {_OPSETS[0]} to {_OPSETS[-1]}, got {opset!r}"
        )
    if out.is_dir():
        raise ConfigError(f"--onnx {out}: is a directory")
    if not out.parent.exists():
        raise ConfigError(f"--onnx {out}: directory {out.parent} does not exist")
    if not out.parent.is_dir():
        raise ConfigError(f"--onnx {out}: {out.parent} is not a directory")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"--onnx {out}: directory {out.parent} is not writable")


def _check_exportable(model: PhysicsSampler) -> None:
    if not isinstance(model.sampler, Flow):
        return
    # zuko: each autoregressive layer inverts in `passes` passes, an element-wise one in 1.
    layers = model.sampler.flow.transform.transforms
    passes = sum(getattr(layer, "passes", 1) for layer in layers)
    if passes > _MAX_UNROLLED_PASSES:
        raise ConfigError(
            f"model family flow: inverting it takes {passes} sequential conditioner passes, "
            f"more than the {_MAX_UNROLLED_PASSES} an ONNX graph can unroll in reasonable time; "
            "export flows trained with model.passes: 2 (coupling layers)"
        )


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


class _DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``needles``."""

    def __init__(self, *needles: str) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(needle in record.getMessage() for needle in self.needles)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known noise, and only that, for the duration of one export."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    drop = _DropMessages("torchvision is not installed")  # it skips torchvision's ops
    registration.addFilter(drop)
    try:
        with warnings.catch_warnings():
            # torch 2.13's exporter calls a pytree API that torch itself deprecates.
            warnings.filterwarnings(
                "ignore",
                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
            )
            # z and cond share the batch axis: it is named once, which is what we want.
            warnings.filterwarnings(
                "ignore",
                message=r"# The axis name: batch will not be used, since it shares the same "
                r"shape constraints with another axis: batch\.",
                category=UserWarning,
            )
            yield
    finally:
        registration.removeFilter(drop)


def export_onnx(
    run_dir: str | Path,
    out: str | Path,
    *,
    batch_size: int | None = None,
    opset: int | None = None,
    weights: Weights = "best",
) -> OnnxExport:
    """Write a trained run's sampler as an ONNX model ``out`` that generates physics units.

    The graph's inputs are ``z`` (B, *latent_shape), float32, drawn as the sampler's
    ``sample_latent`` draws it, and for a conditional run ``cond`` (B, cond_dim), float32; its
    output ``x`` (B, *sample_shape), float32, is in the data's units (see the module
    docstring). The file is written atomically (a failure leaves no file) and carries a
    ``physgan`` metadata entry (JSON: version, run, step, family, shapes, latent layout).

    Args:
        run_dir: a trained run directory (``physgan train``).
        out: the ONNX file to write; its directory must exist.
        batch_size: a fixed batch size B; None makes the batch axis dynamic.
        opset: the ONNX opset (18 to 23); None takes the exporter's default.
        weights: ``best`` (the run's selected generator, where it has one) or ``last``.

    Returns:
        An :class:`OnnxExport` naming the file, the opset and the inputs' and output's shapes.

    Raises:
        ConfigError: bad ``batch_size``, ``opset`` or ``out``, or a model that cannot be
            exported.
        CheckpointError: ``run_dir`` is not a trained run.
        MissingExtraError: onnx or onnxscript is not installed.
    """
    out = Path(out)
    _check_arguments(out, batch_size, opset)
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as err:
        raise MissingExtraError(
            "ONNX export needs physgan[onnx]: pip install 'physgan[onnx]'"
        ) from err
    from physgan.atomic import write_atomic

    model, summary = physics_sampler(run_dir, weights)
    family, cond_dim = summary["family"], summary["cond_dim"]
    _check_exportable(model)
    for key in ("rejection", "truncation"):
        if summary[key]:
            log.warning("%s: sample.%s is on; the ONNX model samples without it", run_dir, key)
    # Batch 2 for a dynamic axis: torch.export specialises example sizes 0 and 1.
    example_batch = batch_size or 2
    gen = torch.Generator().manual_seed(0)
    z = model.sample_latent(example_batch, generator=gen)
    args: tuple[Tensor, ...] = (z,)
    names = ["z"]
    if cond_dim:
        args += (torch.zeros(example_batch, cond_dim),)
        names.append("cond")
    dynamic_shapes = None
    if batch_size is None:
        batch = torch.export.Dim("batch", min=1)
        dynamic_shapes = tuple({0: batch} for _ in args)
    sampler_name = type(model.sampler).__name__
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model,
                args,
                dynamo=True,
                input_names=names,
                output_names=["x"],
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except torch.onnx.errors.OnnxExporterError as err:
        raise ConfigError(
            f"{run_dir}: the {family} model ({sampler_name}) cannot be exported to ONNX: "
            f"{_root_cause(err)}"
        ) from None
    proto = program.model_proto
    got_opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and got_opset != opset:
        raise ConfigError(f"--opset {opset}: the exporter produced opset {got_opset}")

    axis: int | str = batch_size or "batch"
    inputs = {name: (axis, *a.shape[1:]) for name, a in zip(names, args, strict=True)}
    outputs = {"x": (axis, *summary["sample_shape"])}
    latent: dict[str, Any] = {"shape": list(z.shape[1:]), "sampler": sampler_name}
    multiplicity = getattr(model.sampler, "multiplicity", None)
    column = getattr(model.sampler, "multiplicity_cond", None)
    if column is not None:  # EPiC conditioned on k: noise for all N rows, rows < k kept
        latent["multiplicity_from_cond"] = column
    elif isinstance(multiplicity, Tensor):  # EPiC: k ~ Categorical(p_k), mask = rows < k
        latent["multiplicity"] = multiplicity.tolist()
    categories = getattr(model.sampler, "categories", 0)
    if categories:
        latent["categories"] = categories
    metadata = {
        "physgan_version": __version__,
        "run": summary["run"],
        "step": summary["step"],
        "family": family,
        "sample_shape": list(summary["sample_shape"]),
        "cond_dim": cond_dim,
        "latent": latent,
        "inputs": {k: list(v) for k, v in inputs.items()},
        "outputs": {k: list(v) for k, v in outputs.items()},
    }
    onnx.helper.set_model_props(proto, {"physgan": json.dumps(metadata)})
    proto.producer_name = "physgan"
    proto.producer_version = __version__
    data = proto.SerializeToString()
    try:
        write_atomic(out, data)
    except OSError as err:
        raise ConfigError(f"--onnx {out}: cannot write ({err.strerror})") from None
    return OnnxExport(out, got_opset, inputs, outputs)
