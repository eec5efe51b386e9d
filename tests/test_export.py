"""ONNX export: the exported graph run in ONNX Runtime gives what ``api.sample`` gives.

Each kind of run (MLP GAN with EMA, conditional MLP GAN, DCGAN on images, EPiC GAN on
particle clouds, VAE on particle clouds; a flow in the slow set) is trained for a few steps,
exported, and run in ONNX Runtime on the latent draws ``api.sample`` makes for a seed; the
result is compared with ``api.sample(..., rejection=False)``, whose inverse transform and
cloud layout are NumPy code independent of the exported torch graph.

Tolerance: both sides run the same float32 network, in different kernels (ONNX Runtime's
and torch's GEMM / convolutions sum in different orders), so each output differs by a few
float32 roundings, ~1e-7 relative, grown by the depth of the network and by the inverse
transform's scale (std ~1 here). rtol = atol = 1e-5 leaves a factor of ~10-100 above that
and is far below any difference an error in the graph would make (a wrong mean, std, mask
or order moves values by O(0.1-1)).
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch

from physgan import api
from physgan.cli import main
from physgan.data.jets import canonical_cloud, sort_by_pt
from physgan.data.transforms import (
    Identity,
    InverseTransform,
    ParticleStandardize,
    SqrtScale,
    Standardize,
)
from physgan.errors import ConfigError, MissingExtraError
from physgan.export import cloud_layout, export_onnx
from physgan.generation import load_run
from physgan.training import derive_seed
from physgan.training.seeding import Stream

RTOL = ATOL = 1e-5  # see the module docstring
N_PARTICLES = 6
TRAIN = {"steps": 2, "batch_size": 16, "log_every": 2, "checkpoint_every": 2, "eval_samples": 16}
GAN_MLP = {
    "generator": {"kind": "mlp", "latent_dim": 4, "hidden": 16, "depth": 2},
    "discriminator": {"kind": "mlp", "hidden": 16, "depth": 1},
}


def _clouds(n: int, seed: int) -> np.ndarray:
    """Clouds (n, N, 4) in the file layout: 1..N particles, pt_rel > 0 first, zero padding."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, N_PARTICLES + 1, size=(n, 1))
    mask = (np.arange(N_PARTICLES) < k)[..., None]
    eta_phi = rng.normal(0.0, 0.2, size=(n, N_PARTICLES, 2))
    pt = -np.sort(-rng.exponential(0.1, size=(n, N_PARTICLES, 1)), axis=1)
    cloud = np.concatenate([eta_phi, pt, np.ones_like(pt)], axis=-1) * mask
    return cloud.astype(np.float32)


def _configs(data_dir):
    clouds, images = data_dir / "clouds.npy", data_dir / "images.npy"
    np.save(clouds, _clouds(256, seed=0))
    np.save(images, np.random.default_rng(2).gamma(1.0, 1.0, (64, 1, 9, 9)).astype(np.float32))
    return {
        "mlp": {
            "data": {"name": "ring8", "n_train": 512},
            "model": GAN_MLP,
            "train": TRAIN | {"ema": 0.9},  # samples come from the EMA copy
        },
        "conditional": {
            "data": {"name": "ring8", "n_train": 512, "conditional": True},
            "model": GAN_MLP,
            "train": TRAIN,
        },
        "dcgan": {
            "data": {"path": str(images)},
            "model": {
                "generator": {"kind": "dcgan", "latent_dim": 4, "base_channels": 4},
                "discriminator": {"kind": "dcgan", "base_channels": 4},
            },
            "train": TRAIN,
        },
        "dcgan-total": {  # the drawn total: erf, a quantile look-up and a per-image sum
            "data": {"path": str(images), "transform": "scale"},
            "model": {
                "generator": {
                    "kind": "dcgan",
                    "latent_dim": 4,
                    "base_channels": 4,
                    "output": "relu",
                    "draw_total": True,
                },
                "discriminator": {"kind": "dcgan", "base_channels": 4},
            },
            "train": TRAIN,
        },
        "epic": {
            "data": {"path": str(clouds)},
            "model": {
                "generator": {
                    "kind": "epic",
                    "latent_dim": 4,
                    "global_dim": 4,
                    "hidden": 16,
                    "layers": 1,
                },
                "discriminator": {"kind": "epic", "global_dim": 4, "hidden": 16, "layers": 1},
            },
            "train": TRAIN,
        },
        "vae": {  # a continuous mask channel: the cloud layout thresholds and sorts it
            "data": {"path": str(clouds)},
            "model": {"family": "vae", "latent_dim": 3, "hidden": 16, "depth": 1},
            "train": TRAIN,
        },
    }


KINDS = ["mlp", "conditional", "dcgan", "dcgan-total", "epic", "vae"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """kind -> (run directory, its OnnxExport with a dynamic batch), made on first use."""
    _needs_onnx()
    root = tmp_path_factory.mktemp("export")
    configs = _configs(root)
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            run_dir = api.train(configs[kind], root / kind).run_dir
            # The graph is the generator alone: sampling's redraw of jets outside the training
            # support (sample.in_support) happens around it, so it is compared without one.
            (run_dir / "support.json").unlink(missing_ok=True)
            cache[kind] = run_dir, export_onnx(run_dir, root / f"{kind}.onnx")
        return cache[kind]

    return get


def _needs_onnx() -> None:
    """Skip unless the onnx extra is installed (the pure torch tests run without it)."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _api_latent(run_dir, n: int, seed: int) -> np.ndarray:
    """The z that ``api.sample(run_dir, n, seed=seed)`` draws (n <= its chunk of 65,536)."""
    sampler = load_run(run_dir)[3].sampler
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE))
    return sampler.sample_latent(n, generator=gen).numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_runtime_gives_api_samples(exported, kind):
    run_dir, result = exported(kind)
    n, seed = 300, 7
    z = _api_latent(run_dir, n, seed)
    cond = np.eye(8, dtype=np.float32)[np.arange(n) % 8] if kind == "conditional" else None
    expected = api.sample(run_dir, n, seed=seed, cond=cond, rejection=False)
    feeds = {"z": z} if cond is None else {"z": z, "cond": cond}
    session = _session(result.path)
    assert [i.name for i in session.get_inputs()] == list(result.inputs)
    (x,) = session.run(None, feeds)
    assert x.dtype == np.float32
    assert x.shape == expected.shape == (n, *result.outputs["x"][1:])
    np.testing.assert_allclose(x, expected, rtol=RTOL, atol=ATOL)
    # The batch axis is dynamic: another batch size runs, and each sample is its own.
    (x_small,) = session.run(None, {name: a[5:8] for name, a in feeds.items()})
    np.testing.assert_allclose(x_small, expected[5:8], rtol=RTOL, atol=ATOL)


def test_clouds_come_out_in_the_file_layout(exported):
    run_dir, result = exported("vae")
    (x,) = _session(result.path).run(None, {"z": _api_latent(run_dir, 300, 1)})
    mask = x[..., 3]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (x[mask == 0] == 0).all()  # padded rows all zero
    assert (x[..., 2] >= 0).all()
    key = np.where(mask > 0.5, x[..., 2], -np.inf)
    assert (key[:, 1:] <= key[:, :-1]).all()  # decreasing pt_rel, padding last
    assert 0 < mask.mean() < 1  # not vacuous: the VAE makes jets of several multiplicities


def test_metadata_describes_the_graph(exported):
    import onnx

    _, result = exported("epic")
    model = onnx.load(str(result.path))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["physgan"])
    assert meta["family"] == "gan"
    assert meta["sample_shape"] == [N_PARTICLES, 4]
    assert meta["latent"]["shape"] == [N_PARTICLES, 4 + 1]  # noise, then the mask channel
    counts = np.bincount((_clouds(256, seed=0)[..., 3] > 0.5).sum(1), minlength=N_PARTICLES + 1)
    assert len(meta["latent"]["multiplicity"]) == N_PARTICLES + 1
    assert sum(meta["latent"]["multiplicity"]) == pytest.approx(1.0)
    assert meta["latent"]["multiplicity"][0] == 0.0 == counts[0]
    assert meta["inputs"] == {"z": ["batch", N_PARTICLES, 5]}
    assert result.inputs == {"z": ("batch", N_PARTICLES, 5)}
    assert result.outputs == {"x": ("batch", N_PARTICLES, 4)}


# --- the torch twins of the NumPy transforms and cloud layout --------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        Standardize(mean=(3.0, -1.5, 250.0), std=(0.5, 2.0, 40.0)),
        ParticleStandardize(mean=(0.01, -0.02, 0.05), std=(0.2, 0.3, 0.07)),
        SqrtScale(scale=7.5),
        Identity(),
    ],
    ids=["standardize", "particle_standardize", "sqrt", "identity"],
)
def test_inverse_transform_equals_numpy(transform):
    rng = np.random.default_rng(0)
    x_norm = rng.normal(size=(50, 7, 4)).astype(np.float32)
    x_norm[..., 3] = rng.integers(0, 2, size=(50, 7))  # a mask channel for the clouds
    if isinstance(transform, Standardize):
        x_norm = x_norm[..., :3]
    expected = transform.inverse(x_norm).astype(np.float32)  # float64 inside, as api does
    got = InverseTransform(transform)(torch.from_numpy(x_norm)).numpy()
    # float32 x * std + mean rounds twice where NumPy rounds once (float64, then float32):
    # at most 1.5 ulp of the largest of x * std and the result.
    ulp = np.spacing(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1.5 * ulp)


def test_cloud_layout_equals_numpy_with_ties():
    rng = np.random.default_rng(1)
    clouds = rng.normal(size=(400, 9, 4)).astype(np.float32)
    clouds[..., 3] = rng.choice([0.0, 0.3, 0.5, 0.7, 1.0], size=(400, 9))  # 0.5 counts as real
    clouds[:, :4, 2] = rng.choice([0.25, -0.5], size=(400, 4))  # exact ties, and pt < 0 -> 0
    expected = sort_by_pt(canonical_cloud(clouds))
    np.testing.assert_array_equal(cloud_layout(torch.from_numpy(clouds)).numpy(), expected)


# --- the command line and bad inputs -------------------------------------------------------


def test_cli_exports_a_fixed_batch_that_refuses_other_sizes(exported, tmp_path, capsys):
    run_dir, _ = exported("mlp")
    out = tmp_path / "fixed.onnx"
    assert main(["export", str(run_dir), "--onnx", str(out), "--batch", "3"]) == 0
    line = capsys.readouterr().out
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))} \(ONNX opset \d+\): z \(3, 4\) -> x \(3, 2\)\n", line
    )
    session = _session(out)
    assert session.get_inputs()[0].shape == [3, 4]
    z = _api_latent(run_dir, 4, 0)
    np.testing.assert_allclose(
        session.run(None, {"z": z[:3]})[0],
        api.sample(run_dir, 4, seed=0, rejection=False)[:3],
        rtol=RTOL,
        atol=ATOL,
    )
    with pytest.raises(Exception, match="invalid dimensions for input: z"):
        session.run(None, {"z": z})


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ("{run} --onnx {tmp}/out.onnx --batch 0", "--batch: must be a positive integer, got 0"),
        ("{run} --onnx {tmp}/out.onnx --batch -2", "--batch: must be a positive integer"),
        ("{run} --onnx {tmp}/out.onnx --opset 11", "--opset: the exporter supports opsets 18"),
        ("{tmp}/missing --onnx {tmp}/out.onnx", "not a run directory"),
        ("{run} --onnx {tmp}/missing/model.onnx", "missing does not exist"),
        ("{run} --onnx {tmp}/file/model.onnx", "file is not a directory"),
        ("{run} --onnx {tmp}/dir", "dir: is a directory"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_no_file(exported, tmp_path, capsys, args, needle):
    run_dir, _ = exported("mlp")
    (tmp_path / "file").write_text("a file, not a directory")
    (tmp_path / "dir").mkdir()
    before = sorted(tmp_path.iterdir())
    assert main(["export", *args.format(run=run_dir, tmp=tmp_path).split()]) == 2
    captured = capsys.readouterr()
    assert needle in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert sorted(tmp_path.iterdir()) == before
    assert list((tmp_path / "dir").iterdir()) == []


@pytest.mark.parametrize("module", ["onnx", "onnxscript"])
def test_missing_extra_names_it(tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(MissingExtraError, match=r"ONNX export needs physgan\[onnx\]"):
        export_onnx(tmp_path, tmp_path / "model.onnx")


def test_an_exporter_failure_is_one_line_and_leaves_no_file(exported, tmp_path, monkeypatch):
    run_dir, _ = exported("mlp")  # a real run; the exporter is replaced by one that fails

    def fail(*args, **kwargs):
        try:
            raise RuntimeError("No ONNX function found for aten.frobnicate\nmore detail")
        except RuntimeError as cause:
            raise torch.onnx.errors.OnnxExporterError("Failed to convert\nlong report") from cause

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ConfigError) as info:
        export_onnx(run_dir, tmp_path / "model.onnx")
    message = str(info.value)
    assert "the gan model (MLPGenerator) cannot be exported to ONNX" in message
    assert message.endswith("RuntimeError: No ONNX function found for aten.frobnicate")
    assert list(tmp_path.iterdir()) == []


# --- flows (slow to export: torch.export traces zuko's spline inverse op by op) -------------


@pytest.mark.slow
def test_flow_exports(tmp_path):
    _needs_onnx()
    pytest.importorskip("zuko")
    config = {
        "data": {"name": "ring8", "n_train": 512},
        "model": {"family": "flow", "transforms": 2, "hidden": 16, "depth": 1},
        "train": TRAIN,
    }
    run_dir = api.train(config, tmp_path / "run").run_dir
    result = export_onnx(run_dir, tmp_path / "flow.onnx")
    z = _api_latent(run_dir, 300, 3)
    (x,) = _session(result.path).run(None, {"z": z})
    np.testing.assert_allclose(
        x, api.sample(run_dir, 300, seed=3, rejection=False), rtol=RTOL, atol=ATOL
    )


def test_fully_autoregressive_flow_on_many_features_is_refused(tmp_path):
    _needs_onnx()
    pytest.importorskip("zuko")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(64, 40)).astype(np.float32))
    config = {
        "data": {"path": str(tmp_path / "x.npy")},
        "model": {"family": "flow", "transforms": 2, "hidden": 8, "depth": 1},
        "train": TRAIN | {"steps": 1, "checkpoint_every": 1, "log_every": 1},
    }
    run_dir = api.train(config, tmp_path / "run").run_dir
    with pytest.raises(
        ConfigError, match=r"model family flow: .* 80 sequential .* model\.passes: 2"
    ):
        export_onnx(run_dir, tmp_path / "flow.onnx")
    assert not (tmp_path / "flow.onnx").exists()
