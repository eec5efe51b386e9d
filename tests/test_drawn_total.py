"""Image generators whose total (sum of pixels) is drawn from the training images' totals:
``model.generator.draw_total`` and :class:`~physgan.models.layers.DrawnTotal`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from physgan import api
from physgan.errors import ConfigError
from physgan.models import DCGANGenerator
from physgan.models.layers import DrawnTotal


def _totals(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Totals of two classes with different distributions, and their one-hot classes."""
    rng = np.random.default_rng(seed)
    totals = np.concatenate([rng.gamma(4.0, 10.0, 300), 200 + rng.exponential(5.0, 500)])
    labels = np.repeat([0, 1], [300, 500])
    return totals, np.eye(2)[labels]


@pytest.mark.parametrize("seed", [11, 12])
def test_at_the_quantile_levels_the_total_is_numpys_quantile(seed: int) -> None:
    totals, cond = _totals(seed)
    layer = DrawnTotal(classes=2, n_quantiles=16)
    layer.fit(torch.as_tensor(totals), torch.as_tensor(cond))
    levels = np.linspace(0, 1, 16)[1:-1]  # Phi^-1 of 0 and 1 is infinite
    z0 = torch.as_tensor(stats.norm.ppf(levels), dtype=torch.float32)
    a = torch.rand(len(z0), 1, 3, 3, generator=torch.Generator().manual_seed(seed))
    for c in (0, 1):
        onehot = torch.eye(2)[[c] * len(z0)]
        images = layer(a, z0, onehot)
        expected = np.quantile(totals[cond[:, c] == 1], levels)
        np.testing.assert_allclose(images.sum(dim=(1, 2, 3)), expected, rtol=1e-4)
        # Only the scale changes: each image is a multiple of relu(a).
        ratio = images / a
        torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))


def test_with_power_2_the_sum_of_squares_is_the_total() -> None:
    layer = DrawnTotal(classes=1, n_quantiles=2, power=2.0)
    layer.fit(torch.tensor([8.0, 8.0]))  # every total 8
    a = torch.tensor([[1.0, -1.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    image = layer(a, torch.zeros(1))
    # relu(a) = [1, 0, 1, 0]: sum of squares 2, so each lit pixel is multiplied by sqrt(8 / 2).
    torch.testing.assert_close(image, 2.0 * torch.relu(a))


def test_drawn_totals_follow_the_training_distribution() -> None:
    totals, cond = _totals(13)
    layer = DrawnTotal(classes=2)
    layer.fit(torch.as_tensor(totals), torch.as_tensor(cond))
    z0 = torch.randn(4000, generator=torch.Generator().manual_seed(14))
    onehot = torch.eye(2)[torch.arange(4000) % 2]
    drawn = layer(torch.ones(4000, 1, 2, 2), z0, onehot).sum(dim=(1, 2, 3)).numpy()
    for c in (0, 1):
        mine, truth = drawn[c::2], totals[cond[:, c] == 1]
        assert stats.ks_2samp(mine, truth).pvalue > 1e-3
        assert truth.min() - 1e-3 <= mine.min()
        assert mine.max() <= truth.max() + 1e-3


def test_a_dark_image_keeps_its_brightest_pixel_lit_with_a_finite_gradient() -> None:
    layer = DrawnTotal(classes=1)
    layer.fit(torch.tensor([5.0, 5.0]))
    a = torch.tensor([[-3.0, -1.0], [-2.0, -4.0]]).reshape(1, 1, 2, 2).requires_grad_()
    image = layer(a, torch.zeros(1))
    expected = torch.tensor([[0.0, 5.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(image.detach(), expected)
    (image * torch.arange(4.0).reshape(1, 1, 2, 2)).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_with_a_leak_the_image_is_the_same_and_dark_pixels_get_a_gradient() -> None:
    a = torch.tensor([[2.0, -1.0], [1.0, -3.0]]).reshape(1, 1, 2, 2)
    images = {}
    for leak in (0.0, 0.2):
        layer = DrawnTotal(classes=1, leak=leak)
        layer.fit(torch.tensor([6.0, 6.0]))
        pre = a.clone().requires_grad_()
        images[leak] = layer(pre, torch.zeros(1))
        # weight the pixels so that the rescaling to the total does not cancel the gradient
        (images[leak] * torch.tensor([1.0, 5.0, 2.0, 7.0]).reshape(1, 1, 2, 2)).sum().backward()
        dark = pre.grad.flatten()[[1, 3]]
        assert (dark == 0).all() if leak == 0 else (dark != 0).all()
    torch.testing.assert_close(images[0.0], images[0.2])
    torch.testing.assert_close(
        images[0.0].detach(), torch.tensor([[4.0, 0], [2, 0]]).reshape(1, 1, 2, 2)
    )


@pytest.mark.parametrize(
    ("totals", "cond", "match"),
    [
        ([1.0, -1.0], None, "finite and non-negative"),
        ([1.0, np.nan], None, "finite and non-negative"),
        ([1.0, 2.0], [[0.5, 0.5], [1.0, 0.0]], "one-hot"),
        ([1.0, 2.0], [[1.0, 0.0], [1.0, 0.0]], "no training image of class 1"),
    ],
)
def test_fit_refuses_bad_totals(totals, cond, match) -> None:
    layer = DrawnTotal(classes=2 if cond is not None else 1)
    with pytest.raises(ValueError, match=match):
        layer.fit(torch.tensor(totals), None if cond is None else torch.tensor(cond))


def test_dcgan_draws_its_total_from_z0_and_its_class() -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(
        image_size=9, latent_dim=4, base_channels=4, cond_dim=2, output="relu", draw_total=True
    )
    totals, cond = _totals(15)
    g.set_totals(totals, cond)
    z = torch.randn(6, 4)
    onehot = torch.eye(2)[[0, 0, 0, 1, 1, 1]]
    x = g(z, onehot)
    assert (x >= 0).all()
    expected = g.total(torch.ones(6, 1, 1, 1), z[:, 0], onehot).flatten()
    torch.testing.assert_close(x.sum(dim=(1, 2, 3)), expected)
    with pytest.raises(ValueError, match="draw_total needs output relu"):
        DCGANGenerator(image_size=9, latent_dim=4, base_channels=4, draw_total=True)
    with pytest.raises(ValueError, match="does not draw"):
        DCGANGenerator(image_size=9, latent_dim=4, base_channels=4).set_totals(totals, None)


def _images(path, n: int = 120, seed: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.exponential(30.0, size=(n, 1, 5, 5)) * (rng.random((n, 1, 5, 5)) < 0.3)
    x[:, 0, 2, 2] += 100.0  # every image has a lit pixel
    cond = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    x[1::2] *= 3.0  # the second class is three times brighter
    np.savez(path, x=x.astype(np.float32), cond=cond)
    return x


def _config(path, **data) -> dict:
    return {
        "data": {"path": str(path), "conditional": True, "transform": "scale", **data},
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
        "train": {"steps": 2, "batch_size": 16, "log_every": 1, "eval_samples": 16},
    }


@pytest.mark.parametrize(
    ("transform", "resize_and_log"), [("scale", False), ("sqrt", False), ("scale", True)]
)
def test_a_trained_run_samples_each_class_within_its_training_totals(
    tmp_path, transform, resize_and_log
) -> None:
    path = tmp_path / "images.npz"
    x = _images(path)
    config = _config(path, transform=transform)
    if resize_and_log:  # the jet-image recipe's other switches, through config, run and sampling
        config["model"]["generator"] |= {"upsample": "resize", "relu_leak": 0.1}
        config["model"]["discriminator"]["log_pixels"] = 0.01
    run = api.train(config, tmp_path / "run").run_dir
    for c in (0, 1):
        cond = np.eye(2, dtype=np.float32)[[c] * 400]
        sums = api.sample(run, 400, seed=3, cond=cond).sum(axis=(1, 2, 3))
        real = x[c::2].sum(axis=(1, 2, 3))
        # Within the class's range (training images are a subset of x), and not the other's.
        assert real.min() * (1 - 1e-4) <= sums.min()
        assert sums.max() <= real.max() * (1 + 1e-4)
        assert abs(np.median(sums) - np.median(real)) < 0.25 * np.std(real)


def test_draw_total_needs_a_transform_that_keeps_the_total(tmp_path) -> None:
    path = tmp_path / "images.npz"
    _images(path)
    with pytest.raises(ConfigError, match="scale, sqrt or none, not standardize"):
        api.train(_config(path, transform="standardize"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    config = _config(path)
    config["model"]["generator"]["output"] = "softplus"
    with pytest.raises(ConfigError, match="draw_total is a ReLU output"):
        api.train(config, tmp_path / "run")
