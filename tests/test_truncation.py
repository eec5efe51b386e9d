"""Jacobian-based truncation: the norms against autograd's Jacobian and closed forms, the
truncated law against SciPy's truncated normal, and its use through the config and the API."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from physgan import api
from physgan.cli import main
from physgan.errors import ConfigError
from physgan.truncation import TruncatedSampler, jacobian_norms


class Cube(nn.Module):
    """G(z) = z^3 elementwise: ||dG/dz||_F = 3 ||z^2||, increasing in |z| in 1-D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.unused = nn.Parameter(torch.zeros(()))

    def sample_latent(self, n, *, generator=None):
        return torch.randn(n, self.dim, generator=generator)

    def forward(self, z):
        return z**3


def test_norms_equal_autograd_jacobians_and_the_closed_forms():
    torch.manual_seed(7)
    mlp = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    z = torch.randn(5, 3)
    expected = [torch.autograd.functional.jacobian(lambda v: mlp(v[None])[0], v).norm() for v in z]
    torch.testing.assert_close(jacobian_norms(mlp, z), torch.stack(expected))

    linear = nn.Linear(4, 2)  # a constant Jacobian: the weight matrix
    norms = jacobian_norms(linear, torch.randn(6, 4))
    torch.testing.assert_close(norms, linear.weight.norm().detach().expand(6))

    z = torch.randn(8, 2)
    torch.testing.assert_close(jacobian_norms(Cube(2), z), 3 * (z**2).norm(dim=1))


def test_truncation_keeps_the_latents_of_the_smallest_norms():
    # For z^3 in 1-D the norm 3 z^2 grows with |z|: dropping 10% of the largest norms leaves
    # N(0, 1) truncated to |z| <= the 95% quantile, 1.645.
    sampler = TruncatedSampler(Cube(1), 0.1, torch.Generator().manual_seed(11))
    assert sampler.threshold == pytest.approx(3 * 1.6449**2, rel=0.03)
    z = np.cbrt(sampler(20_000).numpy().ravel())
    edge = stats.norm.ppf(0.95)
    assert np.abs(z).max() <= edge * 1.02
    assert stats.kstest(z, stats.truncnorm(-edge, edge).cdf).pvalue > 0.01


def test_truncated_draws_are_seeded_and_the_fraction_is_checked():
    def draw(seed):
        return TruncatedSampler(Cube(2), 0.05, torch.Generator().manual_seed(seed), burn_in=500)(50)

    assert torch.equal(draw(4), draw(4))
    assert not torch.equal(draw(4), draw(5))
    for drop in (0.0, 1.0):
        with pytest.raises(ValueError, match="drop"):
            TruncatedSampler(Cube(1), drop, torch.Generator())


def test_truncation_from_the_config_and_its_checks(tiny_config, tmp_path, capsys):
    truncated = {**tiny_config, "sample": {"truncation": 0.1}}
    api.train(truncated, tmp_path / "run")
    x = api.sample(tmp_path / "run", 300, seed=2)
    assert x.shape == (300, 2)
    assert np.isfinite(x).all()
    np.testing.assert_array_equal(x, api.sample(tmp_path / "run", 300, seed=2))
    api.train(tiny_config, tmp_path / "plain")
    plain = api.sample(tmp_path / "plain", 300, seed=2)
    assert not np.array_equal(x, plain)
    # The argument overrides the config either way: 0 switches it off, a fraction switches it on.
    np.testing.assert_array_equal(api.sample(tmp_path / "run", 300, seed=2, truncation=0), plain)
    np.testing.assert_array_equal(api.sample(tmp_path / "plain", 300, seed=2, truncation=0.1), x)
    assert api.evaluate(tmp_path / "plain", n=300, seed=2, truncation=0.1)["truncation"] == 0.1
    out = tmp_path / "x.npy"
    assert (
        main(
            [
                "sample",
                str(tmp_path / "run"),
                "-n",
                "300",
                "--seed",
                "2",
                "-o",
                str(out),
                "--truncation",
                "0",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out), plain)
    assert (
        main(["sample", str(tmp_path / "run"), "-n", "3", "-o", str(out), "--truncation", "1.5"])
        == 2
    )
    assert "sample.truncation" in capsys.readouterr().err
    both = api.sample(tmp_path / "run", 300, seed=2, rejection=True)  # truncated, then rejected
    assert both.shape == (300, 2)
    assert np.isfinite(both).all()

    for model in (
        {
            **tiny_config["model"],
            "generator": {**tiny_config["model"]["generator"], "categories": 4},
        },
        "vae",
    ):
        with pytest.raises(ConfigError, match=r"sample\.truncation"):
            api.train({**truncated, "model": model}, tmp_path / "bad")
    conditional = {**truncated, "data": {**truncated["data"], "conditional": True}}
    with pytest.raises(ConfigError, match=r"sample\.truncation: supported for unconditional"):
        api.train(conditional, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_export_warns_that_the_graph_is_not_truncated(tiny_config, tmp_path, caplog):
    for module in ("onnx", "onnxscript"):
        pytest.importorskip(module)
    from physgan.export import export_onnx

    api.train({**tiny_config, "sample": {"truncation": 0.1}}, tmp_path / "run")
    export_onnx(tmp_path / "run", tmp_path / "g.onnx")
    assert "sample.truncation is on; the ONNX model samples without it" in caplog.text
