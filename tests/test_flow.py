"""Tests of physgan.models.flow against quadrature, autograd Jacobians and closed forms."""

import copy
import math
import sys
from functools import cache

import numpy as np
import pytest
import torch

from physgan.errors import ConfigError, MissingExtraError
from physgan.models.flow import Flow

pytest.importorskip("zuko")

KINDS = ["nsf", "maf"]


def _make(seed: int, **kwargs) -> Flow:
    """A Flow whose weights come from torch's global generator seeded with ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Flow(**kwargs)


def _bimodal(n: int, dim: int, seed: int) -> torch.Tensor:
    """n draws of 0.5 N(-2 * 1, 0.5^2 I) + 0.5 N(2 * 1, 0.5^2 I): two modes on the diagonal."""
    gen = torch.Generator().manual_seed(seed)
    sign = torch.randint(2, (n, 1), generator=gen) * 2.0 - 1.0
    return 2.0 * sign + 0.5 * torch.randn(n, dim, generator=gen)


def _fit(flow: Flow, data: torch.Tensor, steps: int, lr: float = 1e-2) -> Flow:
    """Maximum likelihood: ``steps`` Adam steps, cosine-annealed from ``lr`` to 0, on minibatches
    of 256 rows of ``data``."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = data[torch.randint(len(data), (256,), generator=gen)]
        loss = -flow.log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return flow


def _fit_bimodal(flow: Flow, steps: int) -> Flow:
    """Fit the bimodal data set and check that the fit left the initialisation behind."""
    data = _bimodal(4096, flow.features, seed=21)
    with torch.no_grad():
        before = flow.log_prob(data).mean().item()
    _fit(flow, data, steps)
    with torch.no_grad():
        after = flow.log_prob(data).mean().item()
    assert after > before + 0.3 * flow.features
    return flow


@cache
def _flow_2d(kind: str, steps: int) -> Flow:
    """A 2-D flow, trained for ``steps`` steps on the bimodal data (shared; deep-copy to edit)."""
    flow = _make(31, sample_shape=(2,), kind=kind, transforms=2, hidden=32)
    return _fit_bimodal(flow, steps) if steps else flow


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("cond_dim", "steps"), [(0, 0), (0, 100), (2, 0)])
def test_density_integrates_to_one_1d(kind, cond_dim, steps):
    flow = _make(11, sample_shape=(1,), cond_dim=cond_dim, kind=kind, transforms=2, hidden=16)
    if steps:
        _fit_bimodal(flow, steps)
    flow = flow.double()
    gen = torch.Generator().manual_seed(12)
    conds = torch.randn(2, 1, cond_dim, generator=gen, dtype=torch.float64) if cond_dim else [None]
    for cond in conds:
        with torch.no_grad():
            # forward = T^{-1} is increasing, so [T^{-1}(-10), T^{-1}(10)] holds all but
            # 2 Phi(-10) ~ 1.5e-23 of the mass, wherever the flow has put it.
            ends = torch.tensor([[-10.0], [10.0]], dtype=torch.float64)
            lo, hi = flow(ends, None if cond is None else cond.expand(2, -1))[:, 0].tolist()
            x = torch.linspace(lo, hi, 20_001, dtype=torch.float64)
            grid_cond = None if cond is None else cond.expand(len(x), -1)
            density = flow.log_prob(x[:, None], grid_cond).exp()
        # Trapezoid rule with h = (hi - lo) / 2e4 ~ 1e-3: error (hi - lo) h^2 / 12 * max|p''|,
        # far below the tolerance for densities varying on scales >~ 0.05.
        assert torch.trapezoid(density, x).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [0, 100])
def test_density_integrates_to_one_2d(kind, steps):
    flow = copy.deepcopy(_flow_2d(kind, steps)).double()
    with torch.no_grad():
        z = flow.sample_latent(20_000, generator=torch.Generator().manual_seed(13))
        samples = flow(z.double())
        # The grid [-8, 8]^2 must hold the mass: none of 2e4 samples falls outside.
        assert samples.abs().max().item() < 8.0
        u = torch.linspace(-8.0, 8.0, 401, dtype=torch.float64)
        grid = torch.cartesian_prod(u, u)
        log_p = torch.cat([flow.log_prob(chunk) for chunk in grid.split(20_000)])
    density = log_p.exp().reshape(len(u), len(u))
    # Product trapezoid rule with h = 0.04 against features of width ~0.5: error ~1e-4 or less.
    integral = torch.trapezoid(torch.trapezoid(density, u, dim=1), u)
    assert integral.item() == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("cond_dim", "steps", "passes"), [(0, 100, None), (2, 0, 2)])
def test_change_of_variables_2d(kind, cond_dim, steps, passes):
    if cond_dim:
        flow = _make(41, sample_shape=(2,), cond_dim=cond_dim, kind=kind, passes=passes)
    else:
        flow = copy.deepcopy(_flow_2d(kind, steps))
    flow = flow.double()
    gen = torch.Generator().manual_seed(42)
    z = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    cond = torch.randn(6, cond_dim, generator=gen, dtype=torch.float64) if cond_dim else None
    log_p = flow.log_prob(flow(z, cond), cond)
    for i in range(len(z)):
        c = None if cond is None else cond[i : i + 1]
        jacobian = torch.autograd.functional.jacobian(lambda v, c=c: flow(v[None], c)[0], z[i])
        log_normal = -0.5 * z[i].square().sum() - math.log(2.0 * math.pi)
        expected = log_normal - torch.linalg.slogdet(jacobian).logabsdet
        assert log_p[i].item() == pytest.approx(expected.item(), abs=1e-8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cond_dim", [0, 2])
@pytest.mark.parametrize("passes", [None, 2])
def test_forward_inverts_the_transform(kind, cond_dim, passes):
    flow = _make(51, sample_shape=(5,), cond_dim=cond_dim, kind=kind, transforms=3, passes=passes)
    gen = torch.Generator().manual_seed(52)
    z = flow.sample_latent(64, generator=gen)
    cond = torch.randn(64, cond_dim, generator=gen) if cond_dim else None
    with torch.no_grad():
        x = flow(z, cond)
        assert (x - z).abs().max().item() > 0.3  # not a near-identity map
        torch.testing.assert_close(flow.flow(cond).transform(x), z, rtol=1e-4, atol=1e-4)
        x_data = torch.randn(64, 5, generator=gen)
        torch.testing.assert_close(
            flow(flow.flow(cond).transform(x_data), cond), x_data, rtol=1e-4, atol=1e-4
        )
        if cond is not None:  # each row is inverted with its own condition
            rows = torch.cat([flow(z[i : i + 1], cond[i : i + 1]) for i in range(3)])
            torch.testing.assert_close(x[:3], rows)


# An unconditional 1-D MAF is a chain of affine maps whose shifts Adam moves by at most ~lr per
# step; it needs more, larger steps than the spline flow to carry the mass from 0 to 3.
@pytest.mark.parametrize(("kind", "steps", "lr"), [("nsf", 500, 0.1), ("maf", 1000, 0.2)])
def test_maximum_likelihood_learns_a_gaussian(kind, steps, lr):
    mu, sigma = 3.0, 0.5
    rng = np.random.default_rng(61)
    train, test = torch.as_tensor(rng.normal(mu, sigma, (2, 20_000, 1)), dtype=torch.float32)
    flow = _fit(_make(62, sample_shape=(1,), kind=kind, transforms=2), train, steps, lr=lr)
    with torch.no_grad():
        x = flow(flow.sample_latent(20_000, generator=torch.Generator().manual_seed(63)))
        mean_log_p = flow.log_prob(test).mean().item()
    # Standard errors: 0.0035 (mean), 0.0025 (std), 0.005 nats (mean log density).
    assert x.mean().item() == pytest.approx(mu, abs=0.02)
    assert x.std().item() == pytest.approx(sigma, abs=0.03)
    neg_entropy = -0.5 * math.log(2.0 * math.pi * math.e * sigma**2)
    assert mean_log_p == pytest.approx(neg_entropy, abs=0.05)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("passes", [None, 2])
@pytest.mark.parametrize("shape", [(1,), (2,), (30, 4), (1, 8, 8)])
def test_shapes(kind, passes, shape):
    flow = _make(71, sample_shape=shape, kind=kind, transforms=2, hidden=16, depth=1, passes=passes)
    assert (flow.sample_shape, flow.features, flow.cond_dim) == (shape, math.prod(shape), 0)
    z = flow.sample_latent(3, generator=torch.Generator().manual_seed(72))
    assert z.shape == (3, math.prod(shape))
    with torch.no_grad():
        x = flow(z)
        log_p = flow.log_prob(x)
    assert x.shape == (3, *shape)
    assert x.dtype == log_p.dtype == torch.float32
    assert log_p.shape == (3,)
    assert torch.isfinite(log_p).all()
    with pytest.raises(ValueError, match="x must have shape"):
        flow.log_prob(z.reshape(3, 1, -1))
    with pytest.raises(ValueError, match="unconditional"):
        flow(z, torch.zeros(3, 2))


@pytest.mark.parametrize("kind", KINDS)
def test_conditional_flow(kind):
    flow = _make(81, sample_shape=(3,), cond_dim=2, kind=kind, transforms=2, hidden=16)
    gen = torch.Generator().manual_seed(82)
    x = torch.randn(4, 3, generator=gen)
    cond_a, cond_b = torch.randn(2, 4, 2, generator=gen)
    with torch.no_grad():
        assert (flow.log_prob(x, cond_a) - flow.log_prob(x, cond_b)).abs().min().item() > 1e-4
    with pytest.raises(ValueError, match="cond of shape"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match="cond of shape"):
        flow(flow.sample_latent(4))
    with pytest.raises(ValueError, match="cond must have shape"):
        flow.log_prob(x, cond_a[:3])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_flow(kind):
    flows = [_make(91, sample_shape=(4,), cond_dim=1, kind=kind, transforms=2) for _ in range(2)]
    other = _make(92, sample_shape=(4,), cond_dim=1, kind=kind, transforms=2)
    states = [f.state_dict() for f in (*flows, other)]
    assert states[0].keys() == states[2].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])
    cond = torch.ones(5, 1)
    with torch.no_grad():
        samples = [
            f(f.sample_latent(5, generator=torch.Generator().manual_seed(93)), cond) for f in flows
        ]
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "glow"}, "unknown kind 'glow'; choose from: nsf, maf"),
        ({"sample_shape": ()}, "sample_shape"),
        ({"sample_shape": (2, 0)}, "sample_shape"),
        ({"sample_shape": 3}, "sample_shape"),
        ({"cond_dim": -1}, "cond_dim"),
        ({"transforms": 0}, "transforms"),
        ({"hidden": 0}, "hidden"),
        ({"depth": 0}, "depth"),
        ({"bins": 0}, "bins"),
        ({"passes": 1}, "passes"),
        ({"passes": 2.0}, "passes"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        Flow(**{"sample_shape": (2,), **kwargs})


def test_missing_zuko(monkeypatch):
    monkeypatch.setitem(sys.modules, "zuko", None)  # makes ``import zuko`` fail
    with pytest.raises(MissingExtraError, match=r"physgan\[flow\]"):
        Flow(sample_shape=(2,))
