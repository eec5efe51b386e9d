"""Step functions: what one training step of a model family does. The loop only calls them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from physgan.losses import Objective, gradient_penalty, jsd_lower_bound, r1_penalty
from physgan.training.seeding import step_generator
from physgan.training.state import GANState

__all__ = ["BatchSampler", "gan_eval", "gan_step"]

# (batch_size, generator) -> (x, cond or None): real training data, drawn with the given stream.
BatchSampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]]


def gan_step(
    *,
    objective: Objective,
    sample_real: BatchSampler,
    batch_size: int,
    seed: int,
    n_critic: int = 1,
    r1_weight: float = 0.0,
    gp_weight: float = 0.0,
) -> Callable[[GANState], dict[str, Tensor]]:
    """One generator step preceded by ``n_critic`` discriminator steps.

    Randomness (real batches, z, interpolation weights) comes from a stream derived from
    ``(seed, state.step)``, so step k does the same thing whether or not the run was resumed.
    Returns detached scalar tensors (no host synchronisation): ``d_loss``, ``g_loss`` and the
    mean discriminator outputs ``d_real`` and ``d_fake`` (probabilities for the probabilistic
    objectives, raw critic scores otherwise).
    """

    def step(state: GANState) -> dict[str, Tensor]:
        gen = step_generator(seed, state.step)
        G, D = state.generator, state.discriminator
        for _ in range(n_critic):
            real, cond = sample_real(batch_size, gen)
            z = G.sample_latent(batch_size, generator=gen)
            with torch.no_grad():
                fake = G(z, cond)
            if r1_weight:
                real.requires_grad_(True)
            real_out = D(real, cond)
            fake_out = D(fake, cond)
            d_loss = objective.d_loss(real_out, fake_out)
            if r1_weight:
                d_loss = d_loss + r1_weight * r1_penalty(real_out, real)
            if gp_weight:
                d_loss = d_loss + gp_weight * gradient_penalty(D, real, fake, cond, generator=gen)
            state.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            state.opt_d.step()

        z = G.sample_latent(batch_size, generator=gen)
        g_out = D(G(z, cond), cond)
        g_loss = objective.g_loss(g_out)
        state.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        state.opt_g.step()
        if state.ema is not None:
            state.ema.update_parameters(G)

        squash = torch.sigmoid if objective.probabilistic else (lambda t: t)
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": squash(real_out.detach()).mean(),
            "d_fake": squash(fake_out.detach()).mean(),
        }

    return step


@torch.no_grad()
def gan_eval(
    state: GANState,
    *,
    objective: Objective,
    holdout: tuple[Tensor, Tensor | None],
    seed: int,
) -> dict[str, float]:
    """Discriminator outputs on held-out real data and on fresh samples of the training G.

    For the probabilistic objectives this adds ``jsd_bound`` = (V(D, G) + ln 4) / 2 in nats,
    the lower bound on JSD(p_data || p_g) that the current D gives (equal at D = D*).
    """
    real, cond = holdout
    gen = step_generator(seed, state.step, 1)
    G, D = state.generator, state.discriminator
    z = G.sample_latent(real.shape[0], generator=gen)
    was_training = G.training, D.training
    G.eval()
    D.eval()
    try:
        real_out = D(real, cond)
        fake_out = D(G(z, cond), cond)
    finally:
        G.train(was_training[0])
        D.train(was_training[1])
    if not objective.probabilistic:
        return {"holdout_d_real": real_out.mean().item(), "holdout_d_fake": fake_out.mean().item()}
    return {
        "holdout_d_real": torch.sigmoid(real_out).mean().item(),
        "holdout_d_fake": torch.sigmoid(fake_out).mean().item(),
        "jsd_bound": jsd_lower_bound(real_out, fake_out).item(),
    }
