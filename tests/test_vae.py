"""Tests of physgan.models.vae against the closed forms of the linear-Gaussian model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from physgan.divergences import kl_gaussian
from physgan.errors import ConfigError
from physgan.models.vae import VAE

# The linear-Gaussian model: x in R^D, z in R^L.
D, L = 3, 2
# Monte-Carlo draws per data point, and the tolerance in standard errors.
N_DRAWS = 50_000
N_SE = 5.0


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Module constructors draw from torch's global generator.
    torch.manual_seed(7)


def as_float32(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to float32, the precision the model stores them in, as float64."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def linear_vae(
    w: np.ndarray,
    b: np.ndarray,
    sigma: np.ndarray,
    enc_weight: np.ndarray | None = None,
    enc_bias: np.ndarray | None = None,
) -> VAE:
    """A depth-0 VAE with decoder mean W z + b, noise sigma and encoder h = enc_weight x +
    enc_bias, h = (mu, log_var); the encoder keeps its random initialisation if not given."""
    vae = VAE(sample_shape=(D,), latent_dim=L, depth=0)
    assert len(vae.encoder) == 1  # a single Linear: the encoder is linear too
    with torch.no_grad():
        vae.decoder.head.weight.copy_(torch.as_tensor(w))
        vae.decoder.head.bias.copy_(torch.as_tensor(b))
        vae.raw_sigma.copy_(torch.as_tensor(np.log(np.expm1(sigma - vae.min_sigma))))
        if enc_weight is not None:
            vae.encoder[0].weight.copy_(torch.as_tensor(enc_weight))
            vae.encoder[0].bias.copy_(torch.as_tensor(enc_bias))
    np.testing.assert_allclose(vae.sigma.detach().numpy(), sigma, rtol=1e-6)
    return vae


def closed_form_elbo(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: np.ndarray, m: np.ndarray, s2: np.ndarray
) -> float:
    """E_q[log N(x; W z + b, diag sigma^2)] - KL(q || N(0, I)) for q = N(m, diag s2)."""
    expected_sq = (x - (w @ m + b)) ** 2 + (w**2) @ s2
    kl = 0.5 * np.sum(s2 + m**2 - 1.0 - np.log(s2))
    return float(
        -0.5 * D * math.log(2.0 * math.pi)
        - np.sum(np.log(sigma))
        - np.sum(expected_sq / (2.0 * sigma**2))
        - kl
    )


def mc_elbo(vae: VAE, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo ELBO of each row of x (P, D) over N_DRAWS draws: (mean, standard error)."""
    x_rep = torch.as_tensor(np.repeat(x, N_DRAWS, axis=0), dtype=torch.float32)
    with torch.no_grad():
        reconstruction, kl = vae.elbo_terms(x_rep, generator=torch.Generator().manual_seed(seed))
    elbo = (reconstruction - kl).double().numpy().reshape(len(x), N_DRAWS)
    return elbo.mean(axis=1), elbo.std(axis=1, ddof=1) / math.sqrt(N_DRAWS)


def test_elbo_matches_linear_gaussian_closed_form() -> None:
    rng = np.random.default_rng(3141)
    w = as_float32(rng.normal(size=(D, L)))
    b = as_float32(rng.normal(size=D))
    sigma = as_float32(rng.uniform(0.3, 1.5, size=D))
    enc_weight = as_float32(0.5 * rng.normal(size=(2 * L, D)))
    enc_bias = as_float32(0.5 * rng.normal(size=2 * L))
    vae = linear_vae(w, b, sigma, enc_weight, enc_bias)

    x = as_float32(rng.normal(size=(4, D)))
    mean, se = mc_elbo(vae, x, seed=2718)
    for i, xi in enumerate(x):
        h = enc_weight @ xi + enc_bias
        expected = closed_form_elbo(xi, w, b, sigma, m=h[:L], s2=np.exp(h[L:]))
        assert abs(mean[i] - expected) < N_SE * se[i], (mean[i], expected, se[i])


def test_elbo_is_tight_at_the_exact_posterior() -> None:
    rng = np.random.default_rng(1618)
    sigma = as_float32(rng.uniform(0.4, 1.2, size=D))
    # W = diag(sigma) Q diag(c) with orthonormal Q makes W^T Sigma^-1 W = diag(c^2), so the
    # posterior covariance S = (I + W^T Sigma^-1 W)^-1 is diagonal and a mean-field q is exact.
    q, _ = np.linalg.qr(rng.normal(size=(D, L)))
    w = as_float32(sigma[:, None] * q * np.array([1.5, 0.7]))
    b = as_float32(rng.normal(size=D))
    sigma_inv2 = np.diag(sigma**-2.0)
    s = np.linalg.inv(np.eye(L) + w.T @ sigma_inv2 @ w)
    np.testing.assert_allclose(s, np.diag(np.diag(s)), atol=1e-6)
    s_diag = np.diag(s)
    gain = np.diag(s_diag) @ w.T @ sigma_inv2  # posterior mean = gain @ (x - b)
    enc_weight = np.vstack([gain, np.zeros((L, D))])
    enc_bias = np.concatenate([-gain @ b, np.log(s_diag)])
    x = as_float32(rng.normal(b, 1.5, size=(4, D)))
    log_px = stats.multivariate_normal.logpdf(x, mean=b, cov=w @ w.T + np.diag(sigma**2))

    # The closed form itself is tight at the exact posterior (no sampling involved).
    for xi, log_pxi in zip(x, log_px, strict=True):
        m = gain @ (xi - b)
        assert closed_form_elbo(xi, w, b, sigma, m, s_diag) == pytest.approx(log_pxi, abs=1e-9)

    mean, se = mc_elbo(linear_vae(w, b, sigma, enc_weight, enc_bias), x, seed=5772)
    assert np.all(np.abs(mean - log_px) < N_SE * se), (mean, log_px, se)

    # A wrong q (shifted mean, wider variance) leaves a gap KL(q || posterior) > 0.
    shift = np.concatenate([np.full(L, 0.5), np.full(L, 0.7)])
    vae_off = linear_vae(w, b, sigma, enc_weight, enc_bias + shift)
    mean_off, se_off = mc_elbo(vae_off, x, seed=6931)
    assert np.all(mean_off + N_SE * se_off < log_px), (mean_off, log_px, se_off)


def test_kl_term_matches_closed_form() -> None:
    vae = VAE(sample_shape=(5,), latent_dim=4, hidden=16, depth=2)
    with torch.no_grad():
        # Spread log_var well away from 0, where the random initialisation puts it.
        vae.encoder[-1].bias.normal_(0.0, 1.5, generator=torch.Generator().manual_seed(11))
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        mu, log_var = vae.encode(x)
        _, kl = vae.elbo_terms(x, generator=torch.Generator().manual_seed(13))
    mu_np, log_var_np = mu.double().numpy(), log_var.double().numpy()
    expected = kl_gaussian(mu_np, np.exp(log_var_np / 2), 0.0, 1.0).sum(axis=1)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_reconstruction_is_gaussian_log_likelihood_of_one_reparameterised_draw() -> None:
    vae = VAE(sample_shape=(6, 2), latent_dim=3, hidden=16, depth=2, activation="tanh")
    with torch.no_grad():
        vae.raw_sigma.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(21))
    x = torch.randn(32, 6, 2, generator=torch.Generator().manual_seed(22))
    with torch.no_grad():
        reconstruction, _ = vae.elbo_terms(x, generator=torch.Generator().manual_seed(23))
        mu, log_var = vae.encode(x)
        # The documented draw: eps ~ N(0, I) of shape (B, latent_dim) from the generator.
        eps = torch.randn(32, 3, generator=torch.Generator().manual_seed(23))
        x_mean = vae.decode(mu + torch.exp(log_var / 2) * eps).double().numpy()
        sigma = vae.sigma.double().numpy()
    expected = stats.norm.logpdf(x.double().numpy(), loc=x_mean, scale=sigma).sum(axis=(1, 2))
    np.testing.assert_allclose(reconstruction.numpy(), expected, rtol=1e-5)


def test_elbo_is_differentiable() -> None:
    vae = VAE(sample_shape=(4,), cond_dim=2, latent_dim=3, hidden=8, depth=1)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(31))
    cond = torch.randn(16, 2, generator=torch.Generator().manual_seed(32))
    reconstruction, kl = vae.elbo_terms(x, cond, generator=torch.Generator().manual_seed(33))
    (kl - reconstruction).mean().backward()
    for name, parameter in vae.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_samples_follow_the_linear_gaussian_marginal() -> None:
    rng = np.random.default_rng(4669)
    w = as_float32(rng.normal(size=(D, L)))
    b = as_float32(rng.normal(size=D))
    sigma = as_float32(rng.uniform(0.2, 1.0, size=D))
    vae = linear_vae(w, b, sigma)
    n = 200_000
    with torch.no_grad():
        x = vae(vae.sample_latent(n, generator=torch.Generator().manual_seed(8))).double().numpy()
    cov = w @ w.T + np.diag(sigma**2)
    var = np.diag(cov)
    assert np.all(np.abs(x.mean(axis=0) - b) < N_SE * np.sqrt(var / n))
    # Var of a sample covariance entry of a Gaussian: (C_ii C_jj + C_ij^2) / n.
    cov_se = np.sqrt((np.outer(var, var) + cov**2) / n)
    assert np.all(np.abs(np.cov(x, rowvar=False) - cov) < N_SE * cov_se)


def test_same_seed_gives_same_samples() -> None:
    vae = VAE(sample_shape=(30, 4), latent_dim=4, hidden=16, depth=2)

    def draw(seed: int) -> torch.Tensor:
        with torch.no_grad():
            return vae(vae.sample_latent(10, generator=torch.Generator().manual_seed(seed)))

    assert torch.equal(draw(41), draw(41))
    assert not torch.equal(draw(41), draw(42))


@pytest.mark.parametrize("cond_dim", [0, 3])
@pytest.mark.parametrize(
    ("sample_shape", "decoder"),
    [((2,), "mlp"), ((30, 4), "mlp"), ((1, 25, 25), "mlp"), ((1, 25, 25), "conv")],
)
def test_shapes(sample_shape: tuple[int, ...], decoder: str, cond_dim: int) -> None:
    vae = VAE(
        sample_shape=sample_shape,
        cond_dim=cond_dim,
        latent_dim=4,
        hidden=16,
        depth=1,
        decoder=decoder,
        base_channels=4,
    )
    assert (vae.sample_shape, vae.latent_dim, vae.cond_dim) == (sample_shape, 4, cond_dim)
    gen = torch.Generator().manual_seed(51)
    batch = 3
    x = torch.randn(batch, *sample_shape, generator=gen)
    cond = torch.randn(batch, cond_dim, generator=gen) if cond_dim else None
    mu, log_var = vae.encode(x, cond)
    assert mu.shape == log_var.shape == (batch, 4)
    assert vae.decode(mu, cond).shape == (batch, *sample_shape)
    reconstruction, kl = vae.elbo_terms(x, cond, generator=gen)
    assert reconstruction.shape == kl.shape == (batch,)
    assert reconstruction.dtype == kl.dtype == torch.float32
    latent = vae.sample_latent(batch, generator=gen)
    assert latent.shape == (batch, 4 + math.prod(sample_shape))
    assert vae(latent, cond).shape == (batch, *sample_shape)
    assert vae.sigma.shape == sample_shape


def test_missing_or_wrong_cond_raises() -> None:
    vae = VAE(sample_shape=(2,), cond_dim=3, latent_dim=4, hidden=8, depth=1)
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="cond of shape"):
        vae.elbo_terms(x)
    with pytest.raises(ValueError, match="cond of shape"):
        vae(vae.sample_latent(5))
    with pytest.raises(ValueError, match="cond must have shape"):
        vae.encode(x, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="latent must have shape"):
        vae(torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        vae.encode(torch.zeros(5, 3), torch.zeros(5, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_shape": (2,), "decoder": "conv"}, r"\(2,\)"),
        ({"sample_shape": (1, 25, 24), "decoder": "conv"}, r"\(1, 25, 24\)"),
        ({"sample_shape": (25, 25), "decoder": "conv"}, r"\(25, 25\)"),
        ({"sample_shape": (2,), "decoder": "gan"}, "mlp, conv"),
        ({"sample_shape": (2,), "min_sigma": 0.0}, "min_sigma"),
        ({"sample_shape": (2,), "min_sigma": -0.1}, "min_sigma"),
        ({"sample_shape": (2,), "min_sigma": 1.0}, "min_sigma"),
        ({"sample_shape": (2,), "min_sigma": math.nan}, "min_sigma"),
        ({"sample_shape": (2,), "latent_dim": 0}, "latent_dim"),
        ({"sample_shape": (2,), "hidden": 0}, "hidden"),
        ({"sample_shape": (2,), "depth": -1}, "depth"),
        ({"sample_shape": (2,), "cond_dim": -1}, "cond_dim"),
        ({"sample_shape": (2,), "activation": "sigmoid"}, "activation"),
        ({"sample_shape": (30, 0)}, "sample_shape"),
        ({"sample_shape": ()}, "sample_shape"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        VAE(**kwargs)


@pytest.mark.parametrize("min_sigma", [1e-4, 1e-2, 0.5])
def test_sigma_is_one_at_init_and_never_below_min_sigma(min_sigma: float) -> None:
    vae = VAE(sample_shape=(30, 4), latent_dim=2, hidden=8, depth=1, min_sigma=min_sigma)
    torch.testing.assert_close(vae.sigma, torch.ones(30, 4))
    with torch.no_grad():
        vae.raw_sigma.normal_(0.0, 10.0, generator=torch.Generator().manual_seed(61))
        vae.raw_sigma[0] = -1e4
    sigma = vae.sigma.detach()
    assert torch.all(sigma >= min_sigma)
    torch.testing.assert_close(sigma[0], torch.full((4,), min_sigma))
    # The floor keeps the likelihood finite on constant (zero-padded) features.
    reconstruction, kl = vae.elbo_terms(
        torch.zeros(2, 30, 4), generator=torch.Generator().manual_seed(62)
    )
    assert torch.isfinite(reconstruction).all()
    assert torch.isfinite(kl).all()
