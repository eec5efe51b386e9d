"""Losses against hand-computed values, gradients against theory, penalties against closed forms."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from physgan.divergences import js_density
from physgan.errors import ConfigError
from physgan.losses import OBJECTIVES, gradient_penalty, jsd_lower_bound, r1_penalty

REAL = [0.5, 2.0, -1.0]
FAKE = [-2.0, 0.5, 1.0]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x)))


def _hand(name):
    """Each objective's (d_loss, g_loss) written directly from its paper's formula."""
    r, f = np.array(REAL), np.array(FAKE)
    dr, df = _sigmoid(r), _sigmoid(f)
    return {
        "minimax": (-np.mean(np.log(dr)) - np.mean(np.log(1 - df)), np.mean(np.log(1 - df))),
        "nonsaturating": (-np.mean(np.log(dr)) - np.mean(np.log(1 - df)), -np.mean(np.log(df))),
        "wgan-gp": (f.mean() - r.mean(), -f.mean()),
        # hinge on these logits: (0.5 + 0 + 2) / 3 + (0 + 1.5 + 2) / 3
        "hinge": ((0.5 + 0.0 + 2.0) / 3 + (0.0 + 1.5 + 2.0) / 3, -f.mean()),
        "lsgan": (0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2), 0.5 * np.mean((f - 1) ** 2)),
    }[name]


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_matches_hand_computed_values(name):
    obj = OBJECTIVES.get(name)
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d_expected, g_expected = _hand(name)
    assert obj.d_loss(real, fake).item() == pytest.approx(d_expected, rel=1e-12)
    assert obj.g_loss(fake).item() == pytest.approx(g_expected, rel=1e-12)


def test_every_registered_loss_has_a_hand_value():
    assert set(OBJECTIVES.names()) == {"minimax", "nonsaturating", "wgan-gp", "hinge", "lsgan"}


def _grad_wrt_logit(name, logit):
    x = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    OBJECTIVES.get(name).g_loss(x).backward()
    return x.grad.item()


@pytest.mark.parametrize("logit", [-8.0, -12.0, -20.0])
def test_minimax_generator_gradient_vanishes_where_d_rejects_fakes(logit):
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0, while d/dl -log sigmoid(l) = -sigmoid(-l) -> -1.
    minimax, nonsat = _grad_wrt_logit("minimax", logit), _grad_wrt_logit("nonsaturating", logit)
    assert minimax == pytest.approx(-1.0 / (1.0 + math.exp(-logit)), rel=1e-9)
    assert nonsat == pytest.approx(-1.0 / (1.0 + math.exp(logit)), rel=1e-9)
    assert minimax < 0
    assert nonsat < 0
    assert abs(nonsat) / abs(minimax) > math.exp(-logit) / 2  # ... with very different strength


def test_both_generator_losses_agree_in_direction_at_the_equilibrium():
    assert _grad_wrt_logit("minimax", 0.0) == pytest.approx(_grad_wrt_logit("nonsaturating", 0.0))


def test_r1_penalty_of_a_linear_discriminator_is_half_the_squared_weight_norm():
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    assert r1_penalty(x @ w, x).item() == pytest.approx(0.5 * 25.0)


@pytest.mark.parametrize(("norm", "expected"), [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(norm, expected):
    w = torch.tensor([0.6, 0.8]) * norm  # ||w|| = norm, so the penalty is (norm - 1)^2

    def critic(x, cond=None):
        return x @ w

    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(32, 2, generator=gen), torch.randn(32, 2, generator=gen)
    gp = gradient_penalty(critic, real, fake, generator=gen).item()
    assert gp == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("mu", "sigma"), [(1.0, 1.0), (0.5, 2.0), (3.0, 0.7)])
def test_jsd_bound_at_the_optimal_discriminator_equals_jsd(mu, sigma):
    # With logits log p_data - log p_g (D = D*), the bound is the JSD itself (Monte Carlo).
    rng = np.random.default_rng(7)
    p, q = stats.norm(0.0, 1.0), stats.norm(mu, sigma)
    x_real, x_fake = p.rvs(400_000, random_state=rng), q.rvs(400_000, random_state=rng)

    def logits(x):
        return torch.from_numpy(p.logpdf(x) - q.logpdf(x))

    bound = jsd_lower_bound(logits(x_real), logits(x_fake)).item()
    exact = js_density(p.pdf, q.pdf, -30, 30)
    assert bound == pytest.approx(exact, abs=3e-3)
    # Any other discriminator gives less (here: D* with logits halved).
    worse = jsd_lower_bound(0.5 * logits(x_real), 0.5 * logits(x_fake)).item()
    assert worse < bound


def _d_weights_after_one_step(step: int, **r1: float | int | None) -> list[torch.Tensor]:
    """D's weights after gan_step at generator step ``step`` from one fixed tiny state."""
    from physgan.config import parse_config
    from physgan.training.builder import build_state
    from physgan.training.steps import gan_step

    config = parse_config(
        {
            "data": {"name": "ring8"},
            "model": {
                "generator": {"hidden": 8, "depth": 1},
                "discriminator": {"hidden": 8, "depth": 1},
            },
        }
    )
    state = build_state(config, (2,), cond_dim=0)
    state.step = step
    real = torch.randn(64, 2, generator=torch.Generator().manual_seed(3)) * 2

    def sample_real(n, gen):
        return real[torch.randint(64, (n,), generator=gen)], None

    objective = OBJECTIVES.get("nonsaturating")
    gan_step(objective=objective, sample_real=sample_real, batch_size=16, seed=0, **r1)(state)
    return [p.detach().clone() for p in state.discriminator.parameters()]


def test_the_r1_weight_falls_linearly_to_zero():
    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    def after(step, r1_weight=0.0, r1_steps=None):
        return _d_weights_after_one_step(step, r1_weight=r1_weight, r1_steps=r1_steps)

    # Adam's first step moves each weight by the sign of its gradient: weights large enough
    # for R1 to flip some signs make the steps differ.
    for step, weight in ((0, 80.0), (1, 60.0), (3, 20.0)):  # 80 (1 - step / 4)
        falling = after(step, 80.0, 4)
        assert same(falling, after(step, weight))
        assert not same(falling, after(step))  # R1 matters here
    assert same(after(4, 80.0, 4), after(4))
    assert same(after(9, 80.0, 4), after(9))


def test_r1_until_is_a_share_of_the_steps():
    from physgan.config import parse_config

    loss = parse_config({"loss": {"r1": 1.0, "r1_until": 0.25}}).loss
    assert loss.r1_steps(16_000) == 4_000
    assert parse_config({}).loss.r1_steps(16_000) is None
    with pytest.raises(ConfigError, match="r1_until"):
        parse_config({"loss": {"r1_until": 0}})
