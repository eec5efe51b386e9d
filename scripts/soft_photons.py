"""List the visible final-state particles below a pT threshold in Pythia events of a process.

Written for the W jet images' faintest pixels (1e-13 to 1e-6 GeV, in 1.4% of W images and in
no QCD image): they are photons that Pythia's QED shower radiates off the W itself. Run:
``.venv/bin/python scripts/soft_photons.py [--process Wprime] [--events 400] [--seed 7]``;
prints one line per particle (id, pT and energy in GeV, status, mother's id and status) and a
count.
"""

from __future__ import annotations

import argparse

import pythia8mc

from physgan.data.pythia import IMAGE_SELECTION, NEUTRINOS, PROCESSES, _pythia


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--process", default="Wprime", choices=sorted(PROCESSES))
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--below", type=float, default=1e-6, help="pT threshold in GeV")
    args = parser.parse_args()
    pythia = _pythia(pythia8mc, PROCESSES[args.process], IMAGE_SELECTION, args.seed)
    found = 0
    for index in range(args.events):
        if not pythia.next():
            continue
        event = pythia.event
        for i in range(event.size()):
            p = event[i]
            if p.isFinal() and 0 < p.pT() < args.below and abs(p.id()) not in NEUTRINOS:
                mother = event[p.mother1()]
                print(
                    f"event {index}: id {p.id()} pT {p.pT():.3g} E {p.e():.3g} status "
                    f"{p.status()}, mother id {mother.id()} status {mother.status()}"
                )
                found += 1
    print(f"{found} visible particles below {args.below:g} GeV in {args.events} events")


if __name__ == "__main__":
    main()
