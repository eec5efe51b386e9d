"""model.discriminator.observables: the DCGAN discriminator's last layer also sees each jet
image's mass and tau_21, standardised over the training images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from physgan import api
from physgan.config import parse_config
from physgan.data.images import image_mass, image_tau21
from physgan.data.transforms import Standardize
from physgan.errors import ConfigError
from physgan.models import DCGANDiscriminator
from physgan.training.builder import load_data
from physgan.training.rundir import RunDir


def sparse_images(seed: int, n: int = 6) -> np.ndarray:
    """Jet-image-like (n, 1, 25, 25): a bright centre and a few soft pixels."""
    rng = np.random.default_rng(seed)
    x = rng.exponential(0.5, (n, 1, 25, 25)) * (rng.random((n, 1, 25, 25)) < 0.1)
    x[:, 0, 12, 12] += 50.0
    return x


@pytest.mark.parametrize(("seed", "power"), [(5, 1.0), (6, 2.0)])
def test_observables_are_the_mass_and_tau21_of_the_pixels_to_the_power(seed, power):
    d = DCGANDiscriminator(image_size=25, base_channels=4, observables=True, pixel_power=power)
    x = sparse_images(seed)
    got = d.jet_observables(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got[:, 0], image_mass(x[:, 0] ** power), rtol=1e-9)
    np.testing.assert_allclose(got[:, 1], image_tau21(x[:, 0] ** power), rtol=1e-9)


@pytest.mark.parametrize("seed", [7, 8])
def test_the_last_layer_sees_the_standardised_mass_and_tau21(seed):
    torch.manual_seed(seed)
    d = DCGANDiscriminator(image_size=25, base_channels=4, cond_dim=2, observables=True)
    train = sparse_images(seed, n=40)
    d.set_observables(torch.tensor(train, dtype=torch.float32))
    mass, tau21 = image_mass(train[:, 0]), image_tau21(train[:, 0])
    np.testing.assert_allclose(d.observable_shift, [mass.mean(), tau21.mean()], rtol=1e-5)
    np.testing.assert_allclose(d.observable_scale, [mass.std(ddof=1), tau21.std(ddof=1)], rtol=1e-4)
    linear = d.head[1]
    with torch.no_grad():  # only the two observable inputs count
        linear.weight.zero_()
        linear.weight[0, -2:] = torch.tensor([0.7, -1.3])
        linear.bias.fill_(0.25)
    x = sparse_images(seed + 100)
    cond = torch.eye(2)[[0, 1, 0, 1, 1, 0]]
    m = (image_mass(x[:, 0]) - mass.mean()) / mass.std(ddof=1)
    t = (image_tau21(x[:, 0]) - tau21.mean()) / tau21.std(ddof=1)
    images = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    logits = d(images, cond)
    np.testing.assert_allclose(logits.detach().numpy(), 0.25 + 0.7 * m - 1.3 * t, rtol=1e-4)
    logits.sum().backward()
    assert images.grad.abs().sum() > 0  # G learns through them: a gradient on the pixels


def leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.2 * x)


@pytest.mark.parametrize("seed", [11, 12])
def test_the_observables_mlp_sees_the_standardised_values_and_the_class(seed):
    torch.manual_seed(seed)
    d = DCGANDiscriminator(
        image_size=25, base_channels=4, cond_dim=2, observables=True, observables_hidden=5
    )
    train = sparse_images(seed, n=40)
    d.set_observables(torch.tensor(train, dtype=torch.float64).float())
    linear = d.head[1]
    plain = DCGANDiscriminator(image_size=25, base_channels=4, cond_dim=2, observables=True)
    assert linear.in_features == plain.head[1].in_features - 2 + 5  # in place of the 2 values
    with torch.no_grad():  # only the MLP's features count
        linear.weight[0, :-5] = 0.0
    w = [p.detach().double().numpy() for p in d.observable_net.parameters()]
    x = sparse_images(seed + 100)
    cond = np.eye(2)[[0, 1, 0, 1, 1, 0]]
    shift, scale = d.observable_shift.double().numpy(), d.observable_scale.double().numpy()
    values = (np.stack([image_mass(x[:, 0]), image_tau21(x[:, 0])], 1) - shift) / scale
    h = leaky(leaky(np.hstack([values, cond]) @ w[0].T + w[1]) @ w[2].T + w[3])
    expected = h @ linear.weight[0, -5:].detach().double().numpy() + linear.bias.item()
    images = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    logits = d(images, torch.tensor(cond, dtype=torch.float32))
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    logits.sum().backward()
    assert images.grad.abs().sum() > 0
    swapped = d(images, torch.tensor(cond[:, ::-1].copy(), dtype=torch.float32))
    assert not torch.allclose(swapped, logits)  # the class enters the MLP


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"observables": True, "pack": 2}, "need one-channel images and pack 1"),
        ({"observables": True, "channels": 2}, "need one-channel images and pack 1"),
        ({"pixel_power": 0.0}, "pixel_power must be > 0, got 0.0"),
        ({"observables_hidden": 8}, "observables_hidden needs observables: true"),
        ({"observables": True, "observables_hidden": -1}, "observables_hidden must be an integer"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DCGANDiscriminator(image_size=25, **kwargs)


@pytest.mark.parametrize("hidden", [0, 8])
def test_training_standardises_by_the_training_images(tiny_image_overrides, tmp_path, hidden):
    pytest.importorskip("pythia8mc")
    overrides = [
        *tiny_image_overrides,
        "model.discriminator.observables=true",
        f"model.discriminator.observables_hidden={hidden}",
    ]
    api.train("jet-images", tmp_path / "run", overrides=overrides, progress=False)
    run = RunDir(tmp_path / "run")
    data = load_data(parse_config(run.read_config()))
    x = Standardize.fit_scale(data.x_train).forward(data.x_train)[:, 0]  # transform: scale
    mass, tau21 = image_mass(x), image_tau21(x)
    tensors = load_file(run.checkpoint)
    shift, scale = (tensors[f"discriminator.observable_{k}"] for k in ("shift", "scale"))
    mlp = [k for k in tensors if k.startswith("discriminator.observable_net.")]
    assert bool(mlp) == bool(hidden)
    np.testing.assert_allclose([shift[0], scale[0]], [mass.mean(), mass.std(ddof=1)], rtol=1e-4)
    # tau_21 in float32: the k-means may break a tie between two pixels the other way
    np.testing.assert_allclose([shift[1], scale[1]], [tau21.mean(), tau21.std(ddof=1)], rtol=2e-2)


def test_without_observables_the_shipped_checkpoints_still_load():
    """A discriminator without the switch keeps its old state dict: the shipped jet-image run
    (trained before the switch existed) resumes."""
    from physgan.training.builder import build_state
    from physgan.training.checkpoint import load_checkpoint

    run = RunDir(Path(__file__).resolve().parents[1] / "shipped-runs" / "jet-images-cpu")
    state = build_state(parse_config(run.read_config()), (1, 25, 25), 2)
    assert not any("observable" in k for k in state.discriminator.state_dict())
    load_checkpoint(run.checkpoint, state)
