"""Jets per second of physgan's jet generation against a naive per-particle Python loop.

Three ways to make the same kind of file (gluon jets, 30 particles, JetNet layout), each timed
end to end including Pythia's event generation:
- ``naive``: ``pythia.next()`` per event, a Python loop over the event record building one
  FastJet ``PseudoJet`` per particle, clustering per event, and features computed per particle;
- ``physgan, 1 worker`` and ``physgan, 2 workers``: :func:`physgan.data.jetgen.generate_jets`
  (``nextBatch`` of whole events as awkward arrays, FastJet's multi-event clustering, NumPy).
Also prints the Pythia + FastJet rate alone, the ceiling for any Python-side speed-up.
Run: ``.venv/bin/python benchmarks/jetgen.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import write_json
from physgan.data import jetgen
from physgan.data.pythia import PROCESSES, JetSelection, _pythia, _stdout_silenced


def naive_jets(n_jets: int, seed: int, n_particles: int = 30) -> np.ndarray:
    """The per-particle loop physgan avoids; returns particles (n, N, 4) like physgan's."""
    import fastjet
    import pythia8mc

    sel = JetSelection()
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, sel.radius)
    out = []
    with _stdout_silenced():
        pythia = _pythia(pythia8mc, PROCESSES["gluon"], sel, seed)
        while len(out) < n_jets:
            if not pythia.next():
                continue
            particles, gluons = [], []
            for i in range(pythia.event.size()):
                p = pythia.event[i]
                if p.isFinal() and p.isVisible() and p.pT() > 0:
                    particles.append(fastjet.PseudoJet(p.px(), p.py(), p.pz(), p.e()))
                if p.status() == -23 and p.id() == 21:
                    gluons.append((p.eta(), p.phi()))
            cluster = fastjet.ClusterSequence(particles, definition)
            for jet in fastjet.sorted_by_pt(cluster.inclusive_jets(sel.pt_min)):
                pt, eta, phi = jet.pt(), jet.eta(), jet.phi_std()
                near = any(
                    math.hypot(eta - g_eta, (phi - g_phi + math.pi) % (2 * math.pi) - math.pi)
                    < sel.match_radius
                    for g_eta, g_phi in gluons
                )
                if not near or pt >= sel.pt_max or abs(eta) >= sel.eta_max:
                    continue
                rows = []
                for c in fastjet.sorted_by_pt(jet.constituents())[:n_particles]:
                    d_phi = (c.phi_std() - phi + math.pi) % (2 * math.pi) - math.pi
                    rows.append([c.eta() - eta, d_phi, c.pt() / pt, 1.0])
                rows += [[0.0] * 4] * (n_particles - len(rows))
                out.append(rows)
    return np.asarray(out[:n_jets], dtype=np.float32)


def pythia_only(n_events: int, seed: int) -> float:
    """Events per second of Pythia's ``nextBatch`` alone, the floor of every method's time."""
    import pythia8mc

    with _stdout_silenced():
        pythia = _pythia(pythia8mc, PROCESSES["gluon"], JetSelection(), seed)
        start = time.perf_counter()
        pythia.nextBatch(n_events)
        return n_events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8 * jetgen.CHUNK_JETS, help="jets per method")
    parser.add_argument("--naive-n", type=int, default=1_000, help="jets for the naive loop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()

    rows = []
    start = time.perf_counter()
    naive = naive_jets(args.naive_n, jetgen.chunk_seed(args.seed, 0))
    rows.append(("naive per-particle loop", len(naive), time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            path = jetgen.generate_jets(
                "gluon", args.n, Path(tmp) / f"w{workers}.h5", seed=args.seed, workers=workers
            )
            rows.append((f"physgan, {workers} worker(s)", args.n, time.perf_counter() - start))
            path.unlink()
    events_per_s = pythia_only(200, jetgen.chunk_seed(args.seed, 0))

    base = rows[0][1] / rows[0][2]
    print(f"{'method':<28} {'jets':>6} {'seconds':>8} {'jets/s':>8} {'vs naive':>9}")
    for name, n, seconds in rows:
        rate = n / seconds
        print(f"{name:<28} {n:>6} {seconds:>8.1f} {rate:>8.1f} {rate / base:>8.2f}x")
    print(f"Pythia 8 alone (nextBatch): {events_per_s:.1f} events/s on one core")
    path = write_json(
        args.out,
        "jetgen.json",
        {
            "rows": [
                {"method": name, "jets": n, "seconds": s, "jets_per_s": n / s}
                for name, n, s in rows
            ],
            "pythia_events_per_s": events_per_s,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
