"""Tests of the EPiC point-cloud GAN and ParticleStandardize: symmetry, masks, multiplicity,
conditioning, serialisation and a short adversarial training run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from physgan.data.transforms import ParticleStandardize, transform_from_dict
from physgan.losses import OBJECTIVES
from physgan.models.pointcloud import (
    EPiCDiscriminator,
    EPiCGenerator,
    masked_pool,
    multiplicity_counts,
)
from physgan.models.registry import DISCRIMINATORS, GENERATORS

N = 7  # particles per jet
FEATURES = 3
SMALL = {"n_particles": N, "features": FEATURES, "global_dim": 4, "hidden": 16}


@pytest.fixture(autouse=True)
def _seed():
    # Module constructors draw from torch's global generator; leave it as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_g(**kwargs: object) -> EPiCGenerator:
    g = EPiCGenerator(**{**SMALL, "latent_dim": 5, "layers": 2, **kwargs})
    # Every multiplicity from 0 to N, so that z holds empty, partial and full jets.
    g.set_multiplicity(np.ones(N + 1))
    return g


def make_d(**kwargs: object) -> EPiCDiscriminator:
    return EPiCDiscriminator(**{**SMALL, "layers": 2, **kwargs})


def make_cond(batch_size: int, cond_dim: int, seed: int = 3) -> torch.Tensor | None:
    return torch.randn(batch_size, cond_dim, generator=gen(seed)) if cond_dim else None


def random_clouds(batch_size: int, seed: int) -> torch.Tensor:
    """Clouds (B, N, FEATURES + 1) with k ~ U{1..N} real particles first, padded rows zero."""
    g = gen(seed)
    k = torch.randint(1, N + 1, (batch_size, 1), generator=g)
    mask = (torch.arange(N) < k).unsqueeze(-1).float()
    features = torch.randn(batch_size, N, FEATURES, generator=g)
    return torch.cat([features, torch.ones(batch_size, N, 1)], dim=-1) * mask


def test_registered() -> None:
    assert GENERATORS.get("epic") is EPiCGenerator
    assert DISCRIMINATORS.get("epic") is EPiCDiscriminator


def test_masked_pool_by_hand() -> None:
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [50.0, 60.0]], [[5.0, 6.0], [0.0, 0.0], [7, 8]]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).unsqueeze(-1)
    expected = torch.tensor([[2.0, 3.0, 4.0 / 3, 2.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(masked_pool(h, mask), expected)


# --- symmetry -----------------------------------------------------------------------------


@pytest.mark.parametrize("cond_dim", [0, 2])
def test_generator_is_permutation_equivariant(cond_dim: int) -> None:
    g = make_g(cond_dim=cond_dim).eval()
    z, cond = g.sample_latent(16, generator=gen(1)), make_cond(16, cond_dim)
    out = g(z, cond)
    for seed in range(3):
        perm = torch.randperm(N, generator=gen(10 + seed))
        torch.testing.assert_close(g(z[:, perm], cond), out[:, perm], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cond_dim", [0, 2])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_is_permutation_invariant(cond_dim: int, spectral_norm: bool) -> None:
    d = make_d(cond_dim=cond_dim, spectral_norm=spectral_norm).eval()
    x, cond = random_clouds(16, seed=2), make_cond(16, cond_dim)
    logits = d(x, cond)
    assert logits.shape == (16,)
    for seed in range(3):
        perm = torch.randperm(N, generator=gen(20 + seed))
        torch.testing.assert_close(d(x[:, perm], cond), logits, rtol=0, atol=1e-5)
    # Not vacuous: changing one real particle does change the score.
    other = x.clone()
    other[:, 0, :FEATURES] += 1.0
    assert (d(other, cond) - logits).abs().min() > 1e-6  # float error is ~1e-7


def test_pairs_of_jets_are_not_mixed_up_by_pooling() -> None:
    # Per-jet pooling: a jet's score does not depend on the other jets in the batch.
    d = make_d().eval()
    x = random_clouds(8, seed=4)
    torch.testing.assert_close(d(x[:3]), d(x)[:3], rtol=0, atol=1e-6)


# --- masks and padding --------------------------------------------------------------------


def test_discriminator_ignores_padded_rows() -> None:
    d = make_d(cond_dim=2).eval()
    x, cond = random_clouds(32, seed=5), make_cond(32, 2)
    padded = x[..., -1] == 0
    assert padded.any()
    junk = x.clone()
    noise = 100 * torch.randn(*x.shape[:2], FEATURES, generator=gen(6))
    junk[..., :FEATURES] = torch.where(padded.unsqueeze(-1), noise, x[..., :FEATURES])
    junk[..., -1] = torch.where(padded, 0.5 * torch.rand(x.shape[:2], generator=gen(7)), 1.0)
    junk[0, -1, 0] = float("nan") if padded[0, -1] else junk[0, -1, 0]
    torch.testing.assert_close(d(junk, cond), d(x, cond), rtol=0, atol=1e-6)


def test_generator_padding_is_zero_and_ignored() -> None:
    g = make_g(cond_dim=2).eval()
    z, cond = g.sample_latent(64, generator=gen(8)), make_cond(64, 2)
    out = g(z, cond)
    assert out.shape == (64, N, FEATURES + 1)
    padded = z[..., -1] == 0
    assert padded.any()
    assert (~padded).any()
    assert torch.equal(out[..., -1], z[..., -1])  # the mask is carried over
    assert torch.equal(out[padded], torch.zeros_like(out[padded]))  # padded rows exactly zero
    # Noise in padded rows changes nothing.
    junk = z.clone()
    noise = torch.randn(*z.shape[:2], z.shape[2] - 1, generator=gen(9))
    junk[..., :-1] = torch.where(padded.unsqueeze(-1), noise, z[..., :-1])
    torch.testing.assert_close(g(junk, cond), out, rtol=0, atol=1e-6)


def test_sample_latent_layout_and_determinism() -> None:
    g = make_g()
    z = g.sample_latent(200, generator=gen(11))
    assert z.shape == (200, N, 5 + 1)
    mask = z[..., -1]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask[:, 1:] <= mask[:, :-1]).all()  # real particles first
    assert torch.equal(z[mask == 0], torch.zeros_like(z[mask == 0]))
    assert torch.equal(z, g.sample_latent(200, generator=gen(11)))
    assert not torch.equal(z, g.sample_latent(200, generator=gen(12)))


def test_default_multiplicity_is_all_particles() -> None:
    g = EPiCGenerator(**SMALL, layers=1)
    z = g.sample_latent(50, generator=gen(13))
    assert torch.equal(z[..., -1], torch.ones(50, N))


def test_multiplicity_follows_set_multiplicity() -> None:
    g = make_g()
    counts = np.array([0, 10, 0, 30, 25, 5, 20, 10])  # k = 0..N, zeros included
    g.set_multiplicity(counts)
    probs = counts / counts.sum()
    torch.testing.assert_close(g.multiplicity, torch.tensor(probs, dtype=torch.float32))
    n = 20_000
    z = g.sample_latent(n, generator=gen(14))
    observed = np.bincount(z[..., -1].sum(dim=1).long().numpy(), minlength=N + 1)
    assert (observed[probs == 0] == 0).all()
    support = probs > 0
    result = stats.chisquare(observed[support], n * probs[support])
    assert result.pvalue > 1e-3
    # Counts of the data themselves, via multiplicity_counts, give the same thing.
    clouds = np.zeros((counts.sum(), N, FEATURES + 1))
    k = np.repeat(np.arange(N + 1), counts)
    clouds[..., -1] = np.arange(N) < k[:, None]
    np.testing.assert_array_equal(multiplicity_counts(clouds), counts)


def test_set_multiplicity_pads_short_counts_and_rejects_bad_ones() -> None:
    g = make_g()
    g.set_multiplicity(torch.tensor([1.0, 3.0]))
    assert g.multiplicity.tolist() == [0.25, 0.75] + [0.0] * (N - 1)
    for bad in (np.ones(N + 2), np.zeros(N + 1), -np.ones(3), np.ones((2, 2)), [np.inf]):
        with pytest.raises(ValueError, match="counts must"):
            g.set_multiplicity(bad)


def test_sample_latent_with_given_multiplicities() -> None:
    g = make_g()
    n_real = torch.tensor([0, 3, N, 1])
    z = g.sample_latent(4, generator=gen(23), n_real=n_real)
    assert z[..., -1].sum(dim=1).long().tolist() == n_real.tolist()
    for bad in (torch.tensor([0, 1, N + 1, 2]), torch.tensor([1, 2, 3]), torch.ones(4)):
        with pytest.raises(ValueError, match="n_real must hold"):
            g.sample_latent(4, n_real=bad)


def test_multiplicity_is_saved_in_the_state_dict() -> None:
    g = make_g()
    g.set_multiplicity(np.arange(N + 1))
    other = EPiCGenerator(**SMALL, latent_dim=5, layers=2)
    other.load_state_dict(g.state_dict())
    assert torch.equal(other.multiplicity, g.multiplicity)


# --- conditioning and input checks --------------------------------------------------------


def test_conditioning_changes_the_output() -> None:
    g, d = make_g(cond_dim=2).eval(), make_d(cond_dim=2).eval()
    z = g.sample_latent(16, generator=gen(15))
    z[..., -1] = 1.0  # every particle real, so that every row can show the condition
    a, b = g(z, make_cond(16, 2, seed=1)), g(z, make_cond(16, 2, seed=2))
    assert (a - b)[..., :FEATURES].abs().amax(dim=(1, 2)).min() > 1e-6
    x = random_clouds(16, seed=16)
    assert (d(x, make_cond(16, 2, seed=1)) - d(x, make_cond(16, 2, seed=2))).abs().min() > 1e-5


def test_bad_shapes_and_cond() -> None:
    g, d = make_g(cond_dim=2), make_d()
    with pytest.raises(ValueError, match=r"z must have shape \(B, 7, 6\)"):
        g(torch.zeros(3, N, 5), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"cond of shape \(B, 2\) is required"):
        g(torch.zeros(3, N, 6))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 7, 4\)"):
        d(torch.zeros(3, N + 1, FEATURES + 1))
    with pytest.raises(ValueError, match="n_particles must be an integer >= 1"):
        EPiCGenerator(n_particles=0)


def test_packing_and_minibatch_std() -> None:
    d = make_d(pack=2, minibatch_std=True, spectral_norm=True).eval()
    x = random_clouds(8, seed=17)
    out = d(x)
    assert out.shape == (4,)
    perm = torch.randperm(N, generator=gen(18))
    torch.testing.assert_close(d(x[:, perm]), out, rtol=0, atol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    g, d = make_g(cond_dim=2), make_d(cond_dim=2, spectral_norm=True)
    cond = make_cond(8, 2)
    z = g.sample_latent(8, generator=gen(19))
    z[:, :2, -1] = 1.0  # no empty jets, so that every jet carries a gradient
    d(g(z, cond), cond).sum().backward()
    for name, param in [*g.named_parameters(), *d.named_parameters()]:
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cond_dim", [0, 2])
def test_parameter_counts_match_the_architecture(cond_dim: int) -> None:
    # Closed-form counts (weights + biases) for N = 30 at the defaults, e.g. 423,113 for G.
    f, latent, glob, h, c = 3, 10, 10, 128, cond_dim
    epic_layer = (2 * h + glob + c + 1) * h + (h + 1) * glob + (h + glob + 1) * h + (h + 1) * h
    n_g = (latent + 1) * h + (latent + c + 1) * h + (h + 1) * glob + 6 * epic_layer + (h + 1) * f
    n_d = (
        (f + 1) * h  # per-particle input
        + (h + 1) * h  # per-particle residual
        + (2 * h + c + 1) * h
        + (h + 1) * glob  # global input
        + 3 * epic_layer
        + (2 * h + glob + c + 1) * h
        + (h + 1) * h
        + (h + 1)  # head
    )
    g = EPiCGenerator(n_particles=30, cond_dim=cond_dim)
    d = EPiCDiscriminator(n_particles=30, cond_dim=cond_dim)
    assert sum(p.numel() for p in g.parameters()) == n_g
    assert sum(p.numel() for p in d.parameters()) == n_d
    # The parameter count does not depend on N (weights are shared across particles).
    assert (
        sum(p.numel() for p in EPiCGenerator(n_particles=150, cond_dim=cond_dim).parameters())
        == n_g
    )


# --- ParticleStandardize ------------------------------------------------------------------


def physical_clouds(n: int, seed: int) -> np.ndarray:
    """Clouds (n, N, 4) in physics units: eta, phi ~ N(0.1, 0.2^2), pt_rel ~ U(0, 0.3)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, N + 1, size=n)
    mask = (np.arange(N) < k[:, None])[..., None]
    features = np.concatenate(
        [rng.normal(0.1, 0.2, size=(n, N, 2)), rng.uniform(0, 0.3, size=(n, N, 1))], axis=-1
    )
    return np.concatenate([features, np.ones((n, N, 1))], axis=-1) * mask


def test_particle_standardize_round_trip() -> None:
    x = physical_clouds(2_000, seed=20).astype(np.float32)
    t = ParticleStandardize.fit(x)
    x_norm = t.forward(x)
    real = x[..., -1] > 0.5
    assert not real.all()
    np.testing.assert_array_equal(x_norm[..., -1], x[..., -1])  # mask unchanged
    assert (x_norm[~real] == 0).all()  # padded rows exactly zero
    np.testing.assert_allclose(x_norm[real][:, :-1].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(x_norm[real][:, :-1].std(axis=0), 1.0, rtol=1e-9)
    back = t.inverse(x_norm)
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-6)
    assert (back[~real] == 0).all()
    # Padded rows of normalised junk map back to zeros too.
    junk = x_norm.copy()
    junk[~real, :-1] = 5.0
    np.testing.assert_allclose(t.inverse(junk), x, rtol=0, atol=1e-6)
    # The statistics are those of the real particles (not diluted by padding).
    np.testing.assert_allclose(t.mean, x[real][:, :-1].astype(np.float64).mean(axis=0))


def test_particle_standardize_serialises() -> None:
    t = ParticleStandardize.fit(physical_clouds(100, seed=21))
    spec = json.loads(json.dumps(t.to_dict()))
    assert spec["kind"] == "particle_standardize"
    assert transform_from_dict(spec) == t


def test_particle_standardize_constant_feature() -> None:
    x = physical_clouds(50, seed=22)
    x[..., 0] = np.where(x[..., -1] > 0.5, 2.0, 0.0)
    t = ParticleStandardize.fit(x)
    assert t.std[0] == 1.0
    np.testing.assert_allclose(t.inverse(t.forward(x)), x, atol=1e-12)


# --- training -----------------------------------------------------------------------------


def test_adversarial_training_moves_features_to_the_data() -> None:
    """200 non-saturating GAN steps on toy clouds whose particles have feature ~ N(1, 0.1^2)."""
    n_particles, batch_size = 6, 64
    data_gen = gen(30)
    k = torch.randint(2, n_particles + 1, (4_096, 1), generator=data_gen)
    mask = (torch.arange(n_particles) < k).unsqueeze(-1).float()
    feature = 1.0 + 0.1 * torch.randn(4_096, n_particles, 1, generator=data_gen)
    data = torch.cat([feature, torch.ones_like(feature)], dim=-1) * mask

    small = {"n_particles": n_particles, "features": 1, "global_dim": 4, "hidden": 16}
    g = EPiCGenerator(**small, latent_dim=4, layers=2)
    d = EPiCDiscriminator(**small, layers=1)
    g.set_multiplicity(multiplicity_counts(data.numpy()))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    objective = OBJECTIVES.get("nonsaturating")

    def generated_mean() -> float:
        with torch.no_grad():
            fake = g(g.sample_latent(2_048, generator=gen(31)))
        return fake[..., 0][fake[..., -1] > 0.5].mean().item()

    before = generated_mean()
    stream = gen(32)
    for _ in range(200):
        real = data[torch.randint(data.shape[0], (batch_size,), generator=stream)]
        with torch.no_grad():
            fake = g(g.sample_latent(batch_size, generator=stream))
        d_loss = objective.d_loss(d(real), d(fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = objective.g_loss(d(g(g.sample_latent(batch_size, generator=stream))))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    after = generated_mean()

    assert abs(after - 1.0) < 0.3
    assert abs(after - 1.0) < 0.5 * abs(before - 1.0)
