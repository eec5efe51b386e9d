"""Tests of physgan.models: shapes, packing, conditioning, spectral norm, gradients, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from physgan.errors import ConfigError
from physgan.models import (
    DISCRIMINATORS,
    GENERATORS,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)
from physgan.models.layers import ACTIVATIONS, NORMS, OUTPUT_ACTIVATIONS, minibatch_std, pack_batch

# Small settings for every registry entry; generator and discriminator of one name fit together.
LATENT_DIM = 4
GEN_KWARGS = {
    "mlp": {"out_dim": 5, "latent_dim": LATENT_DIM, "hidden": 16, "depth": 2},
    "dcgan": {"image_size": 25, "latent_dim": LATENT_DIM, "base_channels": 4},
    "epic": {
        "n_particles": 5,
        "latent_dim": LATENT_DIM,
        "global_dim": 4,
        "hidden": 16,
        "layers": 1,
    },
}
DISC_KWARGS = {
    "mlp": {"in_dim": 5, "hidden": 16, "depth": 2},
    "dcgan": {"image_size": 25, "base_channels": 4},
    "epic": {"n_particles": 5, "global_dim": 4, "hidden": 16, "layers": 1},
}
SAMPLE_SHAPE = {"mlp": (5,), "dcgan": (1, 25, 25), "epic": (5, 4)}
NAMES = sorted(GEN_KWARGS)


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Module constructors draw from torch's global generator.
    torch.manual_seed(0)


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def make_cond(batch_size: int, cond_dim: int, seed: int = 2) -> torch.Tensor | None:
    return randn(batch_size, cond_dim, seed=seed) if cond_dim else None


def make_g(name: str, **kwargs: object) -> nn.Module:
    return GENERATORS.get(name)(**{**GEN_KWARGS[name], **kwargs})


def latent(g: nn.Module, batch_size: int, seed: int = 1) -> torch.Tensor:
    return g.sample_latent(batch_size, generator=torch.Generator().manual_seed(seed))


def make_d(name: str, **kwargs: object) -> nn.Module:
    return DISCRIMINATORS.get(name)(**{**DISC_KWARGS[name], **kwargs})


def test_every_registry_entry_has_test_settings() -> None:
    # lagan has no pack or minibatch_std, which the shared tests here vary: tests/test_lagan.py.
    assert GENERATORS.names() == sorted([*NAMES, "lagan"])
    assert DISCRIMINATORS.names() == sorted([*NAMES, "lagan"])
    assert GENERATORS.get("mlp") is MLPGenerator
    assert GENERATORS.get("dcgan") is DCGANGenerator
    assert DISCRIMINATORS.get("mlp") is MLPDiscriminator
    assert DISCRIMINATORS.get("dcgan") is DCGANDiscriminator


def test_registry_miss_lists_names() -> None:
    with pytest.raises(
        ConfigError, match="unknown generator 'gan'; choose from: dcgan, epic, lagan, mlp"
    ):
        GENERATORS.get("gan")


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("cond_dim", [0, 3])
@pytest.mark.parametrize("norm", NORMS.names())
@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_mlp_generator_shape(cond_dim: int, norm: str, activation: str) -> None:
    g = MLPGenerator(
        out_dim=5,
        latent_dim=4,
        cond_dim=cond_dim,
        hidden=8,
        depth=2,
        activation=activation,
        norm=norm,
    )
    assert (g.latent_dim, g.cond_dim) == (4, cond_dim)
    assert g(randn(6, 4), make_cond(6, cond_dim)).shape == (6, 5)


def test_mlp_depth_zero_is_linear() -> None:
    g = MLPGenerator(out_dim=3, latent_dim=2, depth=0)
    d = MLPDiscriminator(in_dim=3, depth=0)
    assert [type(m) for m in g.modules() if not isinstance(m, nn.Sequential)][1:] == [nn.Linear]
    assert d(g(randn(4, 2))).shape == (4,)


@pytest.mark.parametrize("cond_dim", [0, 3])
@pytest.mark.parametrize("pack", [1, 4])
@pytest.mark.parametrize("mbstd", [False, True])
@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("norm", NORMS.names())
def test_mlp_discriminator_shape(
    cond_dim: int, pack: int, mbstd: bool, sn: bool, norm: str
) -> None:
    d = MLPDiscriminator(
        in_dim=5,
        cond_dim=cond_dim,
        hidden=8,
        depth=2,
        norm=norm,
        spectral_norm=sn,
        pack=pack,
        minibatch_std=mbstd,
    )
    assert d(randn(8, 5), make_cond(8, cond_dim)).shape == (8 // pack,)


@pytest.mark.parametrize("cond_dim", [0, 3])
@pytest.mark.parametrize("image_size", [25, 32])
@pytest.mark.parametrize("output", OUTPUT_ACTIVATIONS.names())
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_dcgan_generator_shape(cond_dim: int, image_size: int, output: str, upsample: str) -> None:
    g = DCGANGenerator(
        image_size=image_size,
        channels=2,
        latent_dim=4,
        cond_dim=cond_dim,
        base_channels=4,
        output=output,
        upsample=upsample,
    )
    assert (g.latent_dim, g.cond_dim) == (4, cond_dim)
    assert g(randn(3, 4), make_cond(3, cond_dim)).shape == (3, 2, image_size, image_size)


@pytest.mark.parametrize("cond_dim", [0, 3])
@pytest.mark.parametrize("pack", [1, 4])
@pytest.mark.parametrize("mbstd", [False, True])
@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("image_size", [25, 32])
def test_dcgan_discriminator_shape(
    cond_dim: int, pack: int, mbstd: bool, sn: bool, image_size: int
) -> None:
    d = DCGANDiscriminator(
        image_size=image_size,
        channels=2,
        cond_dim=cond_dim,
        base_channels=4,
        spectral_norm=sn,
        pack=pack,
        minibatch_std=mbstd,
    )
    x = randn(8, 2, image_size, image_size)
    assert d(x, make_cond(8, cond_dim)).shape == (8 // pack,)


def test_dcgan_tiny_image_needs_no_resampling() -> None:
    # image_size <= 4: G only projects (no upsampling) and crops; D only flattens.
    g = DCGANGenerator(image_size=3, latent_dim=4, base_channels=4)
    d = DCGANDiscriminator(image_size=3, base_channels=4, pack=2, minibatch_std=True)
    assert len(g.upsample) == len(d.downsample) == 0
    assert d(g(randn(4, 4))).shape == (2,)


@pytest.mark.parametrize(("image_size", "final_size"), [(25, 3), (28, 3), (32, 4), (64, 4)])
def test_dcgan_discriminator_reduces_to_about_4x4(image_size: int, final_size: int) -> None:
    d = DCGANDiscriminator(image_size=image_size, base_channels=4)
    h = d.downsample(randn(2, 1, image_size, image_size))
    assert h.shape[-2:] == (final_size, final_size)


def test_dcgan_generator_crops_the_centre() -> None:
    # 25 and 32 share the same 4 -> 32 network; 25 must be its central crop (offset 3).
    g32 = DCGANGenerator(image_size=32, latent_dim=4, base_channels=4).eval()
    g25 = DCGANGenerator(image_size=25, latent_dim=4, base_channels=4).eval()
    g25.load_state_dict(g32.state_dict())
    z = randn(2, 4)
    torch.testing.assert_close(g25(z), g32(z)[:, :, 3:28, 3:28])


@pytest.mark.parametrize("seed", [3, 4])
def test_resize_upsampling_of_a_flat_map_is_flat_for_any_weights(seed: int) -> None:
    # A strided transposed convolution sums different kernel taps into the four pixels of each
    # 2x2 output cell, so a flat input comes out as a 2x2 pattern (the checkerboard); nearest
    # upsampling then a 3x3 convolution treats every pixel alike.
    for upsample, expect_flat in (("transpose", False), ("resize", True)):
        torch.manual_seed(seed)
        g = DCGANGenerator(image_size=16, latent_dim=4, base_channels=4, upsample=upsample)
        first = list(g.upsample)
        layers = nn.Sequential(
            *first[: next(i for i, m in enumerate(first) if isinstance(m, nn.BatchNorm2d))]
        )
        for m in layers:
            if hasattr(m, "weight"):
                nn.init.normal_(m.weight)
        interior = layers(torch.ones(1, 8, 4, 4))[0, :, 2:-2, 2:-2]  # away from the zero padding
        spread = (interior - interior[:, :1, :1]).abs().amax().item()
        assert (spread < 1e-4) == expect_flat, (upsample, spread)


@pytest.mark.parametrize("seed", [5, 6])
def test_log_pixels_feeds_log1p_of_the_image_as_a_second_channel(seed: int) -> None:
    eps = 0.3
    d_log = DCGANDiscriminator(image_size=9, base_channels=4, cond_dim=2, log_pixels=eps)
    d_two = DCGANDiscriminator(image_size=9, channels=2, base_channels=4, cond_dim=2)
    d_two.load_state_dict(d_log.state_dict())  # same weights: both take 2 + 2 input channels
    rng = np.random.default_rng(seed)
    x = rng.exponential(1.0, (4, 1, 9, 9)) * (rng.random((4, 1, 9, 9)) < 0.4)
    cond = torch.eye(2)[[0, 1, 1, 0]]
    by_hand = np.concatenate([x, np.log(1 + x / eps)], axis=1)
    got = d_log(torch.tensor(x, dtype=torch.float32), cond)
    want = d_two(torch.tensor(by_hand, dtype=torch.float32), cond)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("seed", [7, 8])
def test_relu_leak_keeps_the_image_and_passes_the_leak_below_zero(seed: int) -> None:
    torch.manual_seed(seed)
    plain = DCGANGenerator(image_size=9, latent_dim=4, base_channels=4, output="relu")
    leaky = DCGANGenerator(
        image_size=9, latent_dim=4, base_channels=4, output="relu", relu_leak=0.1
    )
    leaky.load_state_dict(plain.state_dict())
    z = randn(3, 4, seed=seed)
    a = plain.to_image(plain.upsample(plain.project(z)))[:, :, 3:12, 3:12].detach()
    images = leaky(z)
    torch.testing.assert_close(images, plain(z))  # the same ReLU image
    # d(sum of pixels)/d(pre-activation) is 1 where a > 0 and the leak where a < 0.
    pre = a.clone().requires_grad_()
    leaky.output(pre).sum().backward()
    expected = np.where(a.numpy() > 0, 1.0, 0.1)
    np.testing.assert_allclose(pre.grad.numpy(), expected, rtol=1e-6)
    assert (a < 0).any()  # both branches are checked
    assert (a > 0).any()


@pytest.mark.parametrize("output", ["relu", "softplus"])
def test_dcgan_non_negative_output(output: str) -> None:
    z = randn(8, 4)
    linear = DCGANGenerator(image_size=25, latent_dim=4, base_channels=4)(z)
    assert (linear < 0).any()  # so that the check below is not vacuous
    torch.manual_seed(0)
    g = DCGANGenerator(image_size=25, latent_dim=4, base_channels=4, output=output)
    assert (g(z) >= 0).all()


# --- packing ------------------------------------------------------------------------------


def test_pack_batch_concatenates_consecutive_samples() -> None:
    x = randn(6, 3)
    expected = torch.cat([x[0::3], x[1::3], x[2::3]], dim=1)
    torch.testing.assert_close(pack_batch(x, 3), expected, rtol=0, atol=0)
    images = randn(4, 2, 5, 5)
    expected = torch.cat([images[0::2], images[1::2]], dim=1)
    torch.testing.assert_close(pack_batch(images, 2), expected, rtol=0, atol=0)


def test_mlp_packing_by_hand() -> None:
    d = MLPDiscriminator(in_dim=5, cond_dim=3, hidden=16, depth=2, pack=2)
    x, cond = randn(8, 5), make_cond(8, 3)
    rows = [torch.cat([x[2 * i], cond[2 * i], x[2 * i + 1], cond[2 * i + 1]]) for i in range(4)]
    expected = d.head(d.trunk(torch.stack(rows))).squeeze(1)
    torch.testing.assert_close(d(x, cond), expected)


def test_dcgan_packing_by_hand() -> None:
    d = DCGANDiscriminator(image_size=25, cond_dim=3, base_channels=4, pack=2)
    x, cond = randn(4, 1, 25, 25), make_cond(4, 3)
    cond_maps = [c[:, None, None].expand(3, 25, 25) for c in cond]
    rows = [
        torch.cat([x[2 * i], cond_maps[2 * i], x[2 * i + 1], cond_maps[2 * i + 1]])
        for i in range(2)
    ]
    expected = d.head(d.downsample(torch.stack(rows))).squeeze(1)
    torch.testing.assert_close(d(x, cond), expected)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mbstd", [False, True])
def test_packing_permutations(name: str, mbstd: bool) -> None:
    d = make_d(name, cond_dim=3, pack=2, minibatch_std=mbstd).eval()
    x, cond = randn(8, *SAMPLE_SHAPE[name]), make_cond(8, 3)
    out = d(x, cond)
    # Permuting whole packs permutes the outputs.
    packs = torch.tensor([2, 3, 0, 1])
    samples = torch.stack([2 * packs, 2 * packs + 1], dim=1).flatten()
    torch.testing.assert_close(d(x[samples], cond[samples]), out[packs])
    # Swapping the two samples inside pack 0 changes its score, so D sees the pack as a whole.
    swap = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7])
    swapped = d(x[swap], cond[swap])
    assert not torch.allclose(swapped[0], out[0])
    if not mbstd:
        torch.testing.assert_close(swapped[1:], out[1:])


# --- minibatch standard deviation -----------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 5), (6, 3, 4, 4)])
def test_minibatch_std_matches_numpy(shape: tuple[int, ...]) -> None:
    x = randn(*shape)
    out = minibatch_std(x)
    assert out.shape == (shape[0], shape[1] + 1, *shape[2:])
    torch.testing.assert_close(out[:, :-1], x, rtol=0, atol=0)
    expected = np.std(x.numpy(), axis=0).mean()
    np.testing.assert_allclose(out[:, -1].numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mbstd", [False, True])
def test_minibatch_std_couples_the_batch(name: str, mbstd: bool) -> None:
    d = make_d(name, minibatch_std=mbstd).eval()
    x = randn(4, *SAMPLE_SHAPE[name])
    other = x.clone()
    other[1:] = randn(3, *SAMPLE_SHAPE[name], seed=5)
    coupled = not torch.allclose(d(x)[0], d(other)[0])
    assert coupled == mbstd


# --- conditioning -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_generator_uses_cond(name: str) -> None:
    g = make_g(name, cond_dim=3).eval()
    z = latent(g, 4)
    assert not torch.allclose(g(z, make_cond(4, 3, seed=2)), g(z, make_cond(4, 3, seed=3)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pack", [1, 2])
def test_discriminator_uses_cond(name: str, pack: int) -> None:
    d = make_d(name, cond_dim=3, pack=pack).eval()
    x = randn(4, *SAMPLE_SHAPE[name])
    out, other = d(x, make_cond(4, 3, seed=2)), d(x, make_cond(4, 3, seed=3))
    assert not torch.isclose(out, other).any()


# --- spectral norm ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_spectral_norm_bounds_every_weight(name: str) -> None:
    d = make_d(name, cond_dim=3, spectral_norm=True, minibatch_std=True)
    n_layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in d.modules())
    x = randn(8, *SAMPLE_SHAPE[name])
    for _ in range(10):  # one power iteration per forward in train mode
        d(x, make_cond(8, 3))
    d.eval()
    wrapped = [m for m in d.modules() if parametrize.is_parametrized(m, "weight")]
    assert len(wrapped) == n_layers > 0
    for module in wrapped:
        weight = module.weight.detach()
        sigma = torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2)
        assert sigma.item() == pytest.approx(1.0, rel=0.05)


# --- gradients and determinism ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_generator_parameter(name: str) -> None:
    g = make_g(name, cond_dim=3)
    d = make_d(name, cond_dim=3, pack=2, minibatch_std=True, spectral_norm=True)
    cond = make_cond(8, 3)
    d(g(latent(g, 8), cond), cond).sum().backward()
    for param_name, param in itertools.chain(g.named_parameters(), d.named_parameters()):
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_same_seed_same_weights_and_outputs(name: str, role: str) -> None:
    def build(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(seed)
        if role == "generator":
            model = make_g(name, cond_dim=3)
            out = model(latent(model, 4), make_cond(4, 3))
        else:
            model = make_d(name, cond_dim=3, spectral_norm=True, pack=2, minibatch_std=True)
            out = model(randn(4, *SAMPLE_SHAPE[name]), make_cond(4, 3))
        return model.state_dict(), out

    (state_a, out_a), (state_b, out_b), (_, out_c) = build(123), build(123), build(124)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=0)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    assert not torch.equal(out_a, out_c)


# --- bad input ----------------------------------------------------------------------------


def _call(name: str, role: str, cond_dim: int, batch_size: int, cond: torch.Tensor | None):
    if role == "generator":
        g = make_g(name, cond_dim=cond_dim)
        return g(latent(g, batch_size), cond)
    return make_d(name, cond_dim=cond_dim)(randn(batch_size, *SAMPLE_SHAPE[name]), cond)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_bad_cond(name: str, role: str) -> None:
    with pytest.raises(ValueError, match=r"cond given, but the model is unconditional"):
        _call(name, role, 0, 4, randn(4, 3))
    with pytest.raises(ValueError, match=r"cond of shape \(B, 3\) is required"):
        _call(name, role, 3, 4, None)
    with pytest.raises(ValueError, match=r"cond must have shape \(4, 3\), got \(4, 2\)"):
        _call(name, role, 3, 4, randn(4, 2))
    with pytest.raises(ValueError, match=r"cond must have shape \(4, 3\), got \(5, 3\)"):
        _call(name, role, 3, 4, randn(5, 3))
    with pytest.raises(ValueError, match=r"cond must have shape \(4, 3\), got \(4, 3, 1\)"):
        _call(name, role, 3, 4, randn(4, 3, 1))


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_shape(name: str) -> None:
    with pytest.raises(ValueError, match=r"z must have shape \(B, (4|5, 5)\), got \(3, 5\)"):
        make_g(name)(randn(3, LATENT_DIM + 1))
    with pytest.raises(ValueError, match=r"x must have shape"):
        make_d(name)(randn(3, 7))


@pytest.mark.parametrize("name", NAMES)
def test_batch_not_divisible_by_pack(name: str) -> None:
    d = make_d(name, pack=4)
    with pytest.raises(ValueError, match="batch size 6 is not divisible by pack=4"):
        d(randn(6, *SAMPLE_SHAPE[name]))


@pytest.mark.parametrize("cls", [MLPGenerator, MLPDiscriminator])
def test_unknown_activation_or_norm(cls: type[nn.Module]) -> None:
    kwargs = {"out_dim": 2} if cls is MLPGenerator else {"in_dim": 2}
    with pytest.raises(ValueError, match="unknown activation 'swish'; choose from: elu, gelu"):
        cls(**kwargs, activation="swish")
    with pytest.raises(ValueError, match="unknown norm 'group'; choose from: batch, layer, none"):
        cls(**kwargs, norm="group")
    with pytest.raises(ConfigError, match="unknown norm"):  # even with no hidden layer
        cls(**kwargs, norm="group", depth=0)


def test_unknown_output_activation() -> None:
    with pytest.raises(ValueError, match="unknown output activation 'sigmoid'; choose from"):
        DCGANGenerator(output="sigmoid")
    with pytest.raises(ValueError, match="upsample is transpose or resize, not 'bilinear'"):
        DCGANGenerator(upsample="bilinear")
    with pytest.raises(ValueError, match="relu_leak >= 0 needs output relu"):
        DCGANGenerator(relu_leak=0.1)
    with pytest.raises(ValueError, match="relu_leak >= 0 needs output relu"):
        DCGANGenerator(output="relu", relu_leak=-0.1)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (MLPGenerator, {"out_dim": 0}, "out_dim must be an integer >= 1, got 0"),
        (MLPGenerator, {"out_dim": 2, "depth": -1}, "depth must be an integer >= 0"),
        (MLPDiscriminator, {"in_dim": 2, "pack": 0}, "pack must be an integer >= 1"),
        (MLPDiscriminator, {"in_dim": 2, "cond_dim": -1}, "cond_dim must be an integer >= 0"),
        (DCGANGenerator, {"image_size": 0}, "image_size must be an integer >= 1"),
        (DCGANDiscriminator, {"pack": 2.0}, "pack must be an integer >= 1, got 2.0"),
        (DCGANDiscriminator, {"log_pixels": -0.1}, "log_pixels must be >= 0, got -0.1"),
    ],
)
def test_bad_hyperparameters(cls: type[nn.Module], kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


def test_categorical_latent_is_one_hot_and_uniform():
    from scipy import stats

    from physgan.models.layers import sample_latent

    z = sample_latent(20_000, 3, 5, generator=torch.Generator().manual_seed(4))
    code = z[:, 3:]
    assert z.shape == (20_000, 8)
    assert torch.equal(code.sum(1), torch.ones(20_000))
    counts = code.sum(0).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 5 categories
    assert abs(float(z[:, :3].mean())) < 0.03  # the Gaussian part is untouched


def test_generator_with_categories_takes_the_wider_latent():
    g = MLPGenerator(out_dim=2, latent_dim=3, categories=5, hidden=8, depth=1)
    z = g.sample_latent(7, generator=torch.Generator().manual_seed(0))
    assert g(z).shape == (7, 2)
    with pytest.raises(ValueError, match="z"):
        g(torch.zeros(7, 3))


def test_draw_is_the_model_on_its_latent_draws_and_keeps_the_mode(monkeypatch):
    from physgan.models import draw as draw_module

    monkeypatch.setattr(draw_module, "CHUNK", 7)  # several chunks and forward passes
    G = MLPGenerator(out_dim=3, latent_dim=2, hidden=8, depth=1, cond_dim=1).train()
    cond = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
    x = draw_module.draw(G, 20, cond, torch.Generator().manual_seed(4))
    assert G.training  # put back in the mode it was in
    gen = torch.Generator().manual_seed(4)
    z = torch.cat([G.sample_latent(k, generator=gen) for k in (7, 7, 6)])
    with torch.no_grad():
        want = G.eval()(z, torch.as_tensor(cond)).numpy()
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-7)
    first = draw_module.draw(G, 9, cond[:9], torch.Generator().manual_seed(4))
    np.testing.assert_allclose(first, x[:9], rtol=1e-6, atol=1e-7)  # a prefix: same draws


def test_the_dcgan_layout_is_channels_last_and_changes_no_value(monkeypatch):
    from physgan.models import dcgan

    torch.manual_seed(5)
    G = DCGANGenerator(image_size=25, latent_dim=8, cond_dim=2, base_channels=8, output="relu")
    D = DCGANDiscriminator(image_size=25, cond_dim=2, base_channels=8, minibatch_std=True)
    G.eval(), D.eval()  # no batch statistics, no power iteration: two calls see the same nets
    z, cond = torch.randn(16, 8), torch.eye(2)[torch.arange(16) % 2]
    x = torch.rand(16, 1, 25, 25)
    strides = []
    D.downsample[0].register_forward_pre_hook(lambda m, args: strides.append(args[0].stride()))
    fast = G(z, cond), D(x, cond)
    assert strides[-1][1] == 1  # channels-last: the channel index is the innermost
    monkeypatch.setattr(dcgan, "_nhwc", lambda t: t)
    plain = G(z, cond), D(x, cond)
    assert strides[-1][1] != 1
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
