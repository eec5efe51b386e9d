"""Tests of the LAGAN models (physgan.models.lagan) and their layers: locally connected layers
against Conv2d and a hand computation, minibatch discrimination against a double loop, shapes,
batch coupling, spectral norm, config and builder wiring, a short training run and its ONNX
export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from physgan import api
from physgan.config import parse_config
from physgan.errors import ConfigError
from physgan.models import DISCRIMINATORS, GENERATORS, LAGANDiscriminator, LAGANGenerator
from physgan.models.layers import (
    LocallyConnected2d,
    MinibatchDiscrimination,
    add_spectral_norm,
    minibatch_similarity,
)
from physgan.training.builder import build_state

# Small widths keep every test fast; the layer structure is the one of the defaults.
SMALL_G = {"latent_dim": 8, "base_channels": 4}
SMALL_D = {"base_channels": 4}


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Module constructors draw from torch's global generator.
    torch.manual_seed(0)


def randn(*shape: int, seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def one_hot(classes: list[int]) -> torch.Tensor:
    return torch.eye(2)[classes]


# --- LocallyConnected2d -------------------------------------------------------------------

# (in_channels, out_channels, kernel, stride, padding, input_size), including LAGAN's layers.
LOCAL_CASES = [
    (3, 4, 3, 1, 0, 9),
    (2, 3, 5, 1, 2, 14),  # G's first: 'same' 5x5
    (3, 8, 5, 2, 2, 25),  # D's first: 5x5, stride 2 -> 13x13
    (8, 8, 3, 2, 1, 13),  # D's last: 3x3, stride 2 -> 7x7
    (6, 1, 2, 1, 0, 26),  # G's last: 2x2 -> 25x25
    (2, 3, (3, 2), (2, 1), (1, 0), (7, 6)),  # rectangular everything
]


@pytest.mark.parametrize(("cin", "cout", "kernel", "stride", "padding", "size"), LOCAL_CASES)
def test_locally_connected_with_shared_weights_is_conv2d(cin, cout, kernel, stride, padding, size):
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding).double()
    local = LocallyConnected2d(
        cin, cout, kernel, input_size=size, stride=stride, padding=padding
    ).double()
    with torch.no_grad():
        local.weight.copy_(conv.weight.reshape(1, cout, -1).expand_as(local.weight))
        local.bias.copy_(conv.bias[:, None, None].expand_as(local.bias))
    h, w = (size, size) if isinstance(size, int) else size
    x = randn(4, cin, h, w, dtype=torch.float64)
    expected = conv(x)
    assert local.output_size == tuple(expected.shape[2:])
    torch.testing.assert_close(local(x), expected)


@pytest.mark.parametrize(("cin", "cout", "kernel", "stride", "padding", "size"), LOCAL_CASES[:4])
def test_locally_connected_output_by_hand(cin, cout, kernel, stride, padding, size):
    """Unshared random weights: y[b, o, i, j] = <zero-padded window at (i, j), W[p, o]> + b."""
    local = LocallyConnected2d(cin, cout, kernel, input_size=size, stride=stride, padding=padding)
    with torch.no_grad():
        local.bias.normal_()
    x = randn(2, cin, size, size)
    y = local(x).detach().numpy().astype(np.float64)
    weight = local.weight.detach().numpy().astype(np.float64)
    bias = local.bias.detach().numpy().astype(np.float64)
    padded = np.pad(x.numpy().astype(np.float64), [(0, 0), (0, 0), (padding,) * 2, (padding,) * 2])
    out_h, out_w = local.output_size
    for i, j in [(0, 0), (out_h - 1, out_w - 1), (out_h // 2, 1), (1, out_w - 2)]:
        window = padded[:, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel]
        p = i * out_w + j
        for o in range(cout):
            kernel_po = weight[p, o].reshape(cin, kernel, kernel)
            by_hand = (window * kernel_po).sum(axis=(1, 2, 3)) + bias[o, i, j]
            np.testing.assert_allclose(y[:, o, i, j], by_hand, rtol=1e-5, atol=1e-5)


def test_locally_connected_has_one_kernel_per_position():
    """Changing one position's kernel changes that output pixel and no other."""
    local = LocallyConnected2d(2, 3, 3, input_size=6, padding=1, bias=False)
    x = randn(1, 2, 6, 6)
    before = local(x).detach()
    with torch.no_grad():
        local.weight[2 * 6 + 4, 1] += 1.0  # output channel 1 at pixel (2, 4)
    changed = (local(x).detach() != before).nonzero().tolist()
    assert changed == [[0, 1, 2, 4]]


@pytest.mark.parametrize(
    ("init", "scale"),
    [
        ("he_uniform", math.sqrt(6 / (5 * 9))),  # U(+-sqrt(6 / fan_in))
        ("glorot_uniform", math.sqrt(6 / (5 * 9 + 7 * 9))),  # U(+-sqrt(6 / (fan_in + fan_out)))
        ("glorot_normal", math.sqrt(2 / (5 * 9 + 7 * 9))),  # N(0, 2 / (fan_in + fan_out))
    ],
)
def test_locally_connected_keras_initialisation(init, scale):
    local = LocallyConnected2d(5, 7, 3, input_size=20)  # 18 * 18 * 7 * 45 = 102,060 weights
    local.reset_parameters(init)
    w = local.weight.detach().double()
    if init.endswith("uniform"):
        assert w.abs().max() <= scale
        assert w.std().item() == pytest.approx(scale / math.sqrt(3), rel=0.02)
    else:
        assert w.std().item() == pytest.approx(scale, rel=0.02)
    assert (local.bias == 0).all()


def test_locally_connected_bad_arguments():
    with pytest.raises(ConfigError, match="does not fit the padded input"):
        LocallyConnected2d(1, 1, 5, input_size=3)
    with pytest.raises(ConfigError, match="stride must be an integer >= 1, got 0"):
        LocallyConnected2d(1, 1, 3, input_size=5, stride=0)
    with pytest.raises(ConfigError, match="unknown init 'he_normal'; choose from"):
        LocallyConnected2d(1, 1, 3, input_size=5).reset_parameters("he_normal")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 5, 5\), got \(2, 1, 6, 6\)"):
        LocallyConnected2d(1, 1, 3, input_size=5)(torch.zeros(2, 1, 6, 6))


def test_spectral_norm_covers_locally_connected_layers():
    local = LocallyConnected2d(3, 4, 3, input_size=6)
    add_spectral_norm(local)
    assert parametrize.is_parametrized(local, "weight")
    for _ in range(30):  # power iterations, one per forward in train mode
        local(torch.zeros(1, 3, 6, 6))
    local.eval()
    sigma = torch.linalg.matrix_norm(local.weight.detach().double(), ord=2)  # per position
    assert sigma.max().item() == pytest.approx(1.0, abs=1e-3)
    assert sigma.min().item() < 0.99  # one divisor for all positions, not one each


def test_spectral_norm_discriminator_wraps_every_weight():
    d = LAGANDiscriminator(**SMALL_D, spectral_norm=True)
    layers = [m for m in d.modules() if isinstance(m, nn.Linear | nn.Conv2d | LocallyConnected2d)]
    assert len(layers) == 1 + 3 + 2  # conv, 3 locally connected, minibatch T, head
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert d(randn(4, 1, 25, 25)).shape == (4,)


# --- minibatch discrimination --------------------------------------------------------------


def test_minibatch_similarity_equals_a_double_loop():
    m = randn(7, 5, 3, dtype=torch.float64)
    mm = m.numpy()
    expected = np.zeros((7, 5))
    for i in range(7):
        for j in range(7):  # j = i included, as in LAGAN's ops.py
            expected[i] += np.exp(-np.abs(mm[i] - mm[j]).sum(axis=-1))
    np.testing.assert_allclose(minibatch_similarity(m).numpy(), expected, rtol=1e-12)
    # Rows in chunks (max_elements: one row of 5 kernels x 7 samples at a time): the same.
    np.testing.assert_allclose(minibatch_similarity(m, max_elements=35).numpy(), expected)
    assert (minibatch_similarity(m[:1]) == 1).all()  # a batch of one: exp(0)


def test_minibatch_discrimination_layer_by_hand():
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3).double()
    x = randn(5, 6, dtype=torch.float64)
    out = layer(x).detach().numpy()
    t = layer.projection.weight.detach().numpy().T  # (in_features, kernels * kernel_dim)
    m = (x.numpy() @ t).reshape(5, 4, 3)
    o = np.exp(-np.abs(m[:, None] - m[None, :]).sum(-1)).sum(axis=1)  # (i, j, b) summed over j
    np.testing.assert_allclose(out, np.concatenate([x.numpy(), o], axis=1), rtol=1e-12)


def test_minibatch_similarity_gradient_equals_the_direct_formula():
    m1 = randn(6, 4, 3, dtype=torch.float64).requires_grad_(True)
    m2 = m1.detach().clone().requires_grad_(True)
    weights = randn(6, 4, seed=3, dtype=torch.float64)
    (minibatch_similarity(m1) * weights).sum().backward()
    direct = (-(m2[:, None] - m2[None, :]).abs().sum(-1)).exp().sum(1)
    (direct * weights).sum().backward()
    torch.testing.assert_close(m1.grad, m2.grad)


# --- the models ----------------------------------------------------------------------------


def test_registered_as_lagan():
    assert GENERATORS.get("lagan") is LAGANGenerator
    assert DISCRIMINATORS.get("lagan") is LAGANDiscriminator


@pytest.mark.parametrize("cond_dim", [0, 2])
def test_shapes(cond_dim):
    g = LAGANGenerator(**SMALL_G, cond_dim=cond_dim, channels=2)
    d = LAGANDiscriminator(**SMALL_D, cond_dim=cond_dim, channels=2)
    cond = one_hot([0, 1, 1, 0, 1]) if cond_dim else None
    x = g(g.sample_latent(5, generator=torch.Generator().manual_seed(0)), cond)
    assert x.shape == (5, 2, 25, 25)
    assert d(x, cond).shape == (5,)
    with pytest.raises(ValueError, match="cond"):
        g(torch.zeros(5, 8), None if cond_dim else one_hot([0] * 5))


def test_defaults_have_lagans_layers():
    """Parameter counts of the paper's layers (biases per position in the locally connected
    ones), counted from the architecture, and Keras's LeakyReLU and BatchNorm constants."""
    g, d = LAGANGenerator(cond_dim=2), LAGANDiscriminator(cond_dim=2)
    g_layers = [
        2 * 200,  # class embedding (no bias)
        200 * 128 * 49 + 128 * 49,  # Dense(128 * 7 * 7)
        128 * 64 * 25 + 64 + 2 * 64,  # Conv2D(64, 5x5), BatchNorm
        14 * 14 * 6 * (64 * 25 + 1) + 2 * 6,  # LocallyConnected2D(6, 5x5) at 14x14, BatchNorm
        26 * 26 * 6 * (6 * 9 + 1),  # LocallyConnected2D(6, 3x3) at 26x26
        25 * 25 * 1 * (6 * 4),  # LocallyConnected2D(1, 2x2, bias=False) at 25x25
    ]
    d_layers = [
        3 * 32 * 25 + 32,  # Conv2D(32, 5x5) on image + 2 condition channels
        13 * 13 * 8 * (32 * 25 + 1) + 2 * 8,  # LocallyConnected2D(8, 5x5, stride 2), BatchNorm
        13 * 13 * 8 * (8 * 25 + 1) + 2 * 8,  # LocallyConnected2D(8, 5x5), BatchNorm
        7 * 7 * 8 * (8 * 9 + 1) + 2 * 8,  # LocallyConnected2D(8, 3x3, stride 2), BatchNorm
        72 * 20 * 10,  # minibatch kernels T (no bias: it cancels)
        (72 + 20) + 1,  # Dense(1)
    ]
    assert sum(p.numel() for p in g.parameters()) == sum(g_layers) == 3_586_932
    assert sum(p.numel() for p in d.parameters()) == sum(d_layers) == 1_400_293
    for model in (g, d):
        slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
        norms = {(m.momentum, m.eps) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
        assert slopes == {0.3}
        assert norms == {(0.01, 1e-3)}


def test_relu_output_is_non_negative_with_exact_zeros():
    g = LAGANGenerator(**SMALL_G, cond_dim=2)
    x = g(randn(16, 8), one_hot([0, 1] * 8))
    assert (x >= 0).all()
    assert 0 < (x == 0).float().mean() < 1  # empty pixels are exactly 0, not all of them
    linear = LAGANGenerator(**SMALL_G, cond_dim=2, output="linear")
    assert (linear(randn(16, 8), one_hot([0, 1] * 8)) < 0).any()


def test_condition_multiplies_the_latent():
    """h = z * E[class]: a class whose embedding row is zero makes the same image for every z."""
    g = LAGANGenerator(**SMALL_G, cond_dim=2, output="linear").eval()
    with torch.no_grad():
        g.embed.weight[:, 1] = 0.0
    x = g(randn(3, 8), one_hot([1, 1, 1]))
    torch.testing.assert_close(x, x[:1].expand_as(x))
    assert not torch.allclose(*g(randn(2, 8), one_hot([0, 0])))


def test_discriminator_sees_the_batch_only_through_minibatch_discrimination():
    x, cond = randn(6, 1, 25, 25), one_hot([0, 1, 0, 1, 1, 0])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    d = LAGANDiscriminator(**SMALL_D, cond_dim=2).eval()
    out = d(x, cond)
    torch.testing.assert_close(d(x[perm], cond[perm]), out[perm])
    # Another batch around the same image changes its score ...
    other = torch.cat([x[:1], randn(5, 1, 25, 25, seed=9)])
    assert not torch.allclose(d(other, torch.cat([cond[:1], cond[1:]]))[0], out[0])
    # ... but not without minibatch discrimination (eval mode: batch norm uses running stats).
    alone = LAGANDiscriminator(**SMALL_D, cond_dim=2, minibatch_kernels=0).eval()
    single = torch.cat([alone(x[i : i + 1], cond[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(alone(x, cond), single)


def test_discriminator_options():
    d = LAGANDiscriminator(**SMALL_D, batch_norm=False, dropout=0.0, minibatch_kernels=0)
    kinds = {type(m) for m in d.modules()}
    assert nn.BatchNorm2d not in kinds
    assert MinibatchDiscrimination not in kinds
    assert d.head.in_features == 72
    x = randn(3, 1, 25, 25)
    torch.testing.assert_close(d(x), d(x))  # train mode, no dropout: deterministic
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\), got 1.0"):
        LAGANDiscriminator(dropout=1.0)


@pytest.mark.parametrize("model", [LAGANGenerator, LAGANDiscriminator])
def test_only_25x25_images(model):
    with pytest.raises(ValueError, match=r"image_size must be 25 \(LAGAN.*\), got 32$"):
        model(image_size=32)


# --- config, builder, training, export -----------------------------------------------------


def lagan_config(path, **overrides):
    return {
        "seed": 1,
        "data": {"path": str(path), "transform": "scale", "holdout_fraction": 0.25},
        "model": {
            "generator": {"kind": "lagan", **SMALL_G},
            "discriminator": {"kind": "lagan", **SMALL_D, "spectral_norm": True},
        },
        "train": {
            "steps": 3,
            "batch_size": 16,
            "log_every": 3,
            "checkpoint_every": 3,
            "eval_samples": 16,
        },
        **overrides,
    }


def test_config_loads_and_builds(tmp_path):
    config = parse_config(lagan_config(tmp_path / "images.npz"))
    assert config.model.generator.output == "relu"
    assert config.model.generator.base_channels == 4
    assert config.model.discriminator.minibatch_kernels == 20
    state = build_state(config, (1, 25, 25), cond_dim=2)
    assert isinstance(state.generator, LAGANGenerator)
    assert isinstance(state.discriminator, LAGANDiscriminator)
    assert (state.generator.cond_dim, state.discriminator.cond_dim) == (2, 2)
    assert parametrize.is_parametrized(state.discriminator.features[3], "weight")
    # Rejection sampling asks for one logit per sample (no PacGAN packing): LAGAN's D has.
    assert parse_config(lagan_config(tmp_path / "x.npy", sample={"rejection": True}))


@pytest.mark.parametrize(
    ("role", "shape"), [("generator", (1, 25, 24)), ("discriminator", (1, 32, 32))]
)
def test_builder_refuses_other_images(tmp_path, role, shape):
    raw = lagan_config(tmp_path / "images.npz")
    other = "discriminator" if role == "generator" else "generator"
    raw["model"][other] = {"kind": "dcgan", "base_channels": 4}
    with pytest.raises(ConfigError) as err:
        build_state(parse_config(raw), shape, cond_dim=0)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config: model.{role}.kind: lagan needs 25x25 images")
    assert f"(n, {', '.join(map(str, shape))})" in message


def test_config_errors_name_lagan(tmp_path):
    raw = lagan_config(tmp_path / "images.npz")
    raw["model"]["discriminator"]["pack"] = 2
    with pytest.raises(ConfigError, match=r"^config: model\.discriminator\.pack: unknown key$"):
        parse_config(raw)
    raw["model"]["discriminator"] = {"kind": "lagn"}
    with pytest.raises(ConfigError, match=r"kind 'lagn'; choose from: mlp, dcgan, lagan, epic$"):
        parse_config(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A class-conditional LAGAN trained for 3 steps on 64 sparse fake jet images (GeV)."""
    root = tmp_path_factory.mktemp("lagan")
    rng = np.random.default_rng(0)
    images = rng.gamma(0.5, 20.0, (64, 1, 25, 25)) * (rng.random((64, 1, 25, 25)) < 0.1)
    cond = np.eye(2)[np.arange(64) % 2]
    np.savez(root / "images.npz", x=images.astype(np.float32), cond=cond.astype(np.float32))
    config = lagan_config(root / "images.npz")
    return api.train(config, root / "run")


def test_trains_three_steps(trained):
    assert trained.step == 3
    assert {"d_loss", "g_loss", "d_real", "d_fake", "jsd_bound"} <= set(trained.metrics)
    assert all(math.isfinite(v) for v in trained.metrics.values())


def test_run_loads_with_the_discriminators_spectral_norm_and_samples(trained):
    from safetensors.numpy import load_file

    from physgan.generation import load_run

    saved = load_file(str(trained.run_dir / "checkpoint.safetensors"))
    key = "features.3.parametrizations.weight.0._u"  # the first locally connected layer's
    loaded = load_run(trained.run_dir).state.discriminator.state_dict()[key]
    assert loaded.shape == (13 * 13, 8)
    np.testing.assert_array_equal(loaded.numpy(), saved[f"discriminator.{key}"])
    cond = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
    x = api.sample(trained.run_dir, 40, seed=3, cond=cond)
    assert x.shape == (40, 1, 25, 25)
    assert (x >= 0).all()


def test_onnx_export_gives_api_samples(trained, tmp_path):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    import onnxruntime

    from physgan.export import export_onnx
    from physgan.generation import load_run
    from physgan.training import derive_seed
    from physgan.training.seeding import Stream

    result = export_onnx(trained.run_dir, tmp_path / "lagan.onnx")
    n, seed = 10, 5
    cond = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    gen = torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE))
    z = load_run(trained.run_dir)[3].sampler.sample_latent(n, generator=gen).numpy()
    expected = api.sample(trained.run_dir, n, seed=seed, cond=cond, rejection=False)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (x,) = session.run(None, {"z": z, "cond": cond})
    assert x.shape == (n, 1, 25, 25)
    # Float32 roundings in other kernels, times the transform's scale (see test_export.py).
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
