"""Steps per second of physgan's training loop against a minimal hand-written PyTorch loop.

Both train the same MLP generator and discriminator (grid25 config sizes) with the same batch,
Adam optimisers, non-saturating loss and generator EMA; physgan's loop also writes metrics
(with the held-out JSD bound) every ``log_every`` steps and checkpoints, as a real run does.
The two are interleaved ``--repeats`` times in one process and the median ratio is reported,
because this machine is shared and noisy. Run: ``.venv/bin/python benchmarks/trainer_overhead.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from _common import StepTimer, grid25_config, write_json
from physgan import api
from physgan.data.toy import grid25
from physgan.models import MLPDiscriminator, MLPGenerator


def physgan_rate(steps: int, hidden: int, batch: int) -> float:
    config = grid25_config(hidden, batch, steps, log_every=100, ema=0.999)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        api.train(config, Path(tmp) / "run", callbacks=[timer])
    return timer.rate


def hand_rate(steps: int, hidden: int, batch: int) -> float:
    torch.manual_seed(0)
    x = torch.as_tensor(grid25().sample(90_000, 0), dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    G = MLPGenerator(out_dim=2, latent_dim=8, hidden=hidden, depth=3)
    D = MLPDiscriminator(in_dim=2, hidden=hidden, depth=3)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    start = 0.0
    for step in range(steps):
        if step == 1:
            start = time.perf_counter()
        real = x[torch.randint(x.shape[0], (batch,))]
        with torch.no_grad():
            fake = G(torch.randn(batch, 8))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(G(torch.randn(batch, 8)))).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        ema.update_parameters(G)
    return (steps - 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    rows = []
    for rep in range(args.repeats):
        hand = hand_rate(args.steps, args.hidden, args.batch)
        ours = physgan_rate(args.steps, args.hidden, args.batch)
        rows.append(
            {
                "repeat": rep,
                "hand_steps_per_s": hand,
                "physgan_steps_per_s": ours,
                "ratio": ours / hand,
            }
        )
    ratio = statistics.median(r["ratio"] for r in rows)
    print("| repeat | hand-written (steps/s) | physgan (steps/s) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['repeat']} | {r['hand_steps_per_s']:.1f} | {r['physgan_steps_per_s']:.1f} "
            f"| {r['ratio']:.3f} |"
        )
    print(
        f"\nmedian ratio physgan / hand-written: {ratio:.3f} "
        f"(hidden {args.hidden}, batch {args.batch}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads)"
    )
    path = write_json(
        args.out, "trainer_overhead.json", {"args": vars(args), "rows": rows, "median_ratio": ratio}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
