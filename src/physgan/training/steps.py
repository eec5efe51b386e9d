"""Step functions: what one training step of a model family does. The loop only calls them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from physgan.losses import Objective, gradient_penalty, jsd_lower_bound, r1_penalty
from physgan.training.runtime import Runtime, no_weight_grads, optimise
from physgan.training.state import GANState, LikelihoodState

__all__ = [
    "BatchSampler",
    "gan_eval",
    "gan_step",
    "nll_eval",
    "nll_step",
    "vae_eval",
    "vae_step",
]

# (batch_size, generator) -> (x, cond or None): real training data, drawn with the given stream.
# With several ranks, this rank's share of the global batch (see Runtime.share).
BatchSampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]]
_LOCAL = Runtime()  # one process on the CPU, float32, eager


def gan_step(
    *,
    objective: Objective,
    sample_real: BatchSampler,
    batch_size: int,
    seed: int,
    n_critic: int = 1,
    r1_weight: float = 0.0,
    r1_steps: int | None = None,
    gp_weight: float = 0.0,
    mmd: Callable[[Tensor, Tensor, Tensor | None], Tensor] | None = None,
    mmd_start: int = 0,
    runtime: Runtime = _LOCAL,
) -> Callable[[GANState], dict[str, Tensor]]:
    """One generator step preceded by ``n_critic`` discriminator steps.

    Randomness (real batches, z, interpolation weights) comes from a stream derived from
    ``(seed, state.step)``, so step k does the same thing whether or not the run was resumed.
    ``batch_size`` is the global batch: ``sample_real`` returns this rank's share of it, and
    the step keeps its share of each global draw (see :class:`Runtime`). The R1 penalty's
    weight falls linearly from ``r1_weight`` at step 0 to 0 at step ``r1_steps`` (None: constant).
    ``mmd`` (e.g. :class:`~physgan.losses.ObservableMMD`), given the generated batch, the last
    real one and their conditions (the same), returns a term added to G's loss from step
    ``mmd_start`` on.
    Returns detached scalar tensors (no host synchronisation): ``d_loss``, ``g_loss`` and the
    mean discriminator outputs ``d_real`` and ``d_fake`` (probabilities for the probabilistic
    objectives, raw critic scores otherwise), and ``mmd`` (the term, within ``g_loss``).
    """
    nets: dict[str, Callable[..., Tensor]] = {}  # wrapped at the first step (DDP needs a group)

    def step(state: GANState) -> dict[str, Tensor]:
        G, D = state.generator, state.discriminator
        if not nets:
            nets.update(
                g_train=runtime.trainable(G),
                g_frozen=runtime.frozen(G),
                d_train=runtime.trainable(D),
                d_frozen=runtime.frozen(D),
            )
        gen = runtime.generator(seed, state.step)
        r1 = r1_weight if r1_steps is None else r1_weight * max(0.0, 1 - state.step / r1_steps)
        for _ in range(n_critic):
            real, cond = sample_real(batch_size, gen)
            z = runtime.share(G.sample_latent(batch_size, generator=gen))
            with torch.no_grad(), runtime.autocast():
                fake = nets["g_frozen"](z, cond)
            if r1:
                real.requires_grad_(True)
            with runtime.autocast():
                real_out = nets["d_train"](real, cond)
                fake_out = nets["d_train"](fake, cond)
            # Losses and penalties in float32, whatever precision the networks ran in.
            real_out, fake_out = real_out.float(), fake_out.float()
            d_loss = objective.d_loss(real_out, fake_out)
            if r1:
                d_loss = d_loss + r1 * r1_penalty(real_out, real)
            if gp_weight:
                eps = runtime.share(torch.rand(batch_size, generator=gen, device=gen.device))
                with runtime.autocast():
                    gp = gradient_penalty(nets["d_train"], real, fake, cond, eps=eps)
                d_loss = d_loss + gp_weight * gp.float()
            optimise(d_loss, state.opt_d, state.scalers.get("opt_d"))

        z = runtime.share(G.sample_latent(batch_size, generator=gen))
        with no_weight_grads(D), runtime.autocast():
            fake = nets["g_train"](z, cond)
            g_out = nets["d_frozen"](fake, cond)
        g_loss = objective.g_loss(g_out.float())
        logged = {}
        if mmd is not None and state.step >= mmd_start:
            term = mmd(fake.float(), real.detach(), cond)
            g_loss = g_loss + term
            logged["mmd"] = term.detach()
        optimise(g_loss, state.opt_g, state.scalers.get("opt_g"))
        if state.ema is not None:
            state.ema.update_parameters(G)

        squash = torch.sigmoid if objective.probabilistic else (lambda t: t)
        return runtime.mean(
            {
                "d_loss": d_loss.detach(),
                "g_loss": g_loss.detach(),
                "d_real": squash(real_out.detach()).mean(),
                "d_fake": squash(fake_out.detach()).mean(),
            }
            | logged
        )

    return step


@torch.no_grad()
def gan_eval(
    state: GANState,
    *,
    objective: Objective,
    holdout: tuple[Tensor, Tensor | None],
    seed: int,
    runtime: Runtime = _LOCAL,
) -> dict[str, float]:
    """Discriminator outputs on held-out real data and on fresh samples of the training G.

    For the probabilistic objectives this adds ``jsd_bound`` = (V(D, G) + ln 4) / 2 in nats,
    the lower bound on JSD(p_data || p_g) that the current D gives (equal at D = D*).
    """
    real, cond = holdout
    gen = runtime.generator(seed, state.step, 1)
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


def _trained(runtime: Runtime, method: str) -> Callable[[LikelihoodState], Callable[..., Tensor]]:
    """``state.model.method`` as the step calls it, wrapped (DDP, compile) at the first step."""
    cache: dict[str, Callable[..., Tensor]] = {}

    def get(state: LikelihoodState) -> Callable[..., Tensor]:
        if not cache:
            cache["fn"] = runtime.trainable(state.model, method)
        return cache["fn"]

    return get


def _minimise(state: LikelihoodState, loss: Tensor) -> None:
    optimise(loss, state.opt, state.scalers.get("opt"))
    if state.ema is not None:
        state.ema.update_parameters(state.model)


def vae_step(
    *,
    sample_real: BatchSampler,
    batch_size: int,
    seed: int,
    beta: float = 1.0,
    warmup: int = 0,
    runtime: Runtime = _LOCAL,
) -> Callable[[LikelihoodState], dict[str, Tensor]]:
    """One step on the negative beta-ELBO, E[beta_t KL(q(z|x) || p(z)) - log p(x|z)].

    beta_t rises linearly from beta / warmup to beta over the first ``warmup`` steps (KL
    annealing, Bowman et al. 2016, arXiv:1511.06349), which keeps the decoder from learning to
    ignore z before the encoder carries information (posterior collapse). Returns detached
    scalars in nats per sample (normalised units): ``loss``, ``elbo`` (the bound on log p(x),
    at beta = 1) and ``kl``.
    """
    elbo_terms = _trained(runtime, "elbo_terms")

    def step(state: LikelihoodState) -> dict[str, Tensor]:
        gen = runtime.generator(seed, state.step)
        x, cond = sample_real(batch_size, gen)
        shape = (batch_size, state.model.latent_dim)
        eps = runtime.share(torch.randn(shape, generator=gen, device=gen.device))
        with runtime.autocast():
            reconstruction, kl = elbo_terms(state)(x, cond, eps=eps)
        reconstruction, kl = reconstruction.float(), kl.float()
        beta_t = beta * min(1.0, (state.step + 1) / warmup) if warmup else beta
        loss = (beta_t * kl - reconstruction).mean()
        _minimise(state, loss)
        return runtime.mean(
            {
                "loss": loss.detach(),
                "elbo": (reconstruction - kl).mean().detach(),
                "kl": kl.mean().detach(),
            }
        )

    return step


def nll_step(
    *,
    sample_real: BatchSampler,
    batch_size: int,
    seed: int,
    dequantize: float = 0.0,
    runtime: Runtime = _LOCAL,
) -> Callable[[LikelihoodState], dict[str, Tensor]]:
    """One maximum-likelihood step: minimise -E[log q(x)], i.e. KL(p_data || q) + H(p_data).

    ``dequantize`` is the std of Gaussian noise added to each batch (normalised units), which
    keeps the density finite on discrete or constant features (masks, zero padding). Returns
    ``loss`` = ``nll``, nats per sample in normalised units.
    """
    log_prob = _trained(runtime, "log_prob")

    def step(state: LikelihoodState) -> dict[str, Tensor]:
        gen = runtime.generator(seed, state.step)
        x, cond = sample_real(batch_size, gen)
        if dequantize:
            noise = torch.randn((batch_size, *x.shape[1:]), generator=gen, device=gen.device)
            x = x + dequantize * runtime.share(noise)
        with runtime.autocast():
            loss = -log_prob(state)(x, cond).float().mean()
        _minimise(state, loss)
        return runtime.mean({"loss": loss.detach()})

    return step


def _held_out(state: LikelihoodState, fn: Callable[[], Tensor]) -> float:
    model = state.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return fn().mean().item()
    finally:
        model.train(was_training)


def vae_eval(
    state: LikelihoodState,
    *,
    holdout: tuple[Tensor, Tensor | None],
    seed: int,
    runtime: Runtime = _LOCAL,
) -> dict[str, float]:
    """``holdout_elbo``: the ELBO (beta = 1) of held-out data, nats per sample."""
    x, cond = holdout
    gen = runtime.generator(seed, state.step, 1)

    def elbo() -> Tensor:
        reconstruction, kl = state.model.elbo_terms(x, cond, generator=gen)
        return reconstruction - kl

    return {"holdout_elbo": _held_out(state, elbo)}


def nll_eval(
    state: LikelihoodState,
    *,
    holdout: tuple[Tensor, Tensor | None],
    seed: int,
) -> dict[str, float]:
    """``holdout_nll``: -log q(x) of held-out data, nats per sample (``seed`` is unused)."""
    x, cond = holdout
    return {"holdout_nll": _held_out(state, lambda: -state.model.log_prob(x, cond))}
