"""Pythia 8 events clustered with FastJet: the only module that imports either.

One call, :func:`simulate_jets`, runs a seeded Pythia 8 generator for a named process at
13 TeV, clusters the final visible particles of whole batches of events at once with FastJet's
awkward-array interface (no Python loop over particles), keeps the jets matched to the hard
object of the process and returns their four-momenta and constituents as NumPy arrays.

References: Sjostrand et al., "A comprehensive guide to the physics and usage of PYTHIA 8.3"
(arXiv:2203.11601); Cacciari, Salam, Soyez, "FastJet user manual" (arXiv:1111.6097).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from physgan.errors import DataError, MissingExtraError

__all__ = [
    "IMAGE_SELECTION",
    "PROCESSES",
    "JetSelection",
    "Process",
    "SimulatedJets",
    "simulate_jets",
]

NEUTRINOS = (12, 14, 16)
_P4 = ("px", "py", "pz", "E")
_HADRONIC = "1 2 3 4 5"  # decays of W and Z to quark pairs only


@dataclass(frozen=True)
class Process:
    """A hard process: Pythia settings, and the particles whose jets are kept.

    ``ids`` are the |PDG ids| of the jet's origin; a resonance (W, Z, top) is matched at the copy
    that decays, a parton (quark, gluon) at its outgoing hard-process copy (status -23). No
    ids: every jet passing the cuts is kept (generic QCD).
    """

    settings: tuple[str, ...]
    ids: tuple[int, ...]
    resonance: bool


PROCESSES: dict[str, Process] = {
    "gluon": Process(("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"), (21,), False),
    "quark": Process(("HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on"), (1, 2, 3, 4, 5), False),
    "top": Process(
        (
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
            "24:onMode = off",
            f"24:onIfAny = {_HADRONIC}",
        ),
        (6,),
        True,
    ),
    "W": Process(
        (
            "WeakBosonAndParton:qqbar2Wg = on",
            "WeakBosonAndParton:qg2Wq = on",
            "24:onMode = off",
            f"24:onIfAny = {_HADRONIC}",
        ),
        (24,),
        True,
    ),
    "Z": Process(
        (
            "WeakBosonAndParton:qqbar2gmZg = on",
            "WeakBosonAndParton:qg2gmZq = on",
            "WeakZ0:gmZmode = 2",  # Z only, no photon interference
            "23:onMode = off",
            f"23:onIfAny = {_HADRONIC}",
        ),
        (23,),
        True,
    ),
    # The jet-image benchmark (de Oliveira et al., arXiv:1511.05190; LAGAN, arXiv:1701.05927):
    # a 600 GeV W' -> W Z with Z -> neutrinos gives boosted W jets near pT = 250-300 GeV.
    "Wprime": Process(
        (
            "NewGaugeBoson:ffbar2Wprime = on",
            "34:m0 = 600",
            "Wprime:coup2WZ = 1",
            "34:onMode = off",
            "34:onIfAll = 23 24",
            "24:onMode = off",
            f"24:onIfAny = {_HADRONIC}",
            "23:onMode = off",
            "23:onIfAny = 12 14 16",
        ),
        (24,),
        True,
    ),
    "QCD": Process(("HardQCD:all = on",), (), False),
}


@dataclass(frozen=True)
class JetSelection:
    """Which events to generate and which jets to keep; energies in GeV.

    Hard-process transverse momentum in ``pt_hat`` (GeV); anti-kT jets of ``radius``, kept when
    matched within ``match_radius`` (in eta-phi) to the process's hard object, with
    ``pt_min <= pT < pt_max`` and ``|eta| < eta_max``, after trimming if ``trim`` is
    (R_sub, f_cut). The defaults give JetNet-like 1 TeV jets; :data:`IMAGE_SELECTION` those of
    the jet-image benchmark.
    """

    radius: float = 0.8
    pt_hat: tuple[float, float] = (900.0, 1100.0)
    pt_min: float = 800.0
    pt_max: float = 1200.0
    eta_max: float = 2.5
    match_radius: float = 0.4
    energy: float = 13_000.0
    trim: tuple[float, float] | None = None


IMAGE_SELECTION = JetSelection(
    radius=1.0, pt_hat=(200.0, 400.0), pt_min=250.0, pt_max=300.0, eta_max=2.0, trim=(0.2, 0.05)
)


@dataclass(frozen=True)
class SimulatedJets:
    """Jets and their constituents, in GeV.

    ``p4``: (n_jets, 4) jet four-momenta (px, py, pz, E); ``constituents``: (n_jets, m, 4)
    constituent four-momenta, each jet's sorted by decreasing pT and zero-padded to the largest
    multiplicity ``m``; ``n_constituents``: (n_jets,) how many rows of each are real;
    ``n_events``: how many events were generated; ``subjets``: (n_jets, 2, 4) the two leading
    subjets of trimmed jets (zeros where a jet has one), None without trimming.
    """

    p4: np.ndarray
    constituents: np.ndarray
    n_constituents: np.ndarray
    n_events: int
    subjets: np.ndarray | None = None


def _import() -> tuple[Any, Any, Any]:
    try:
        import awkward
        import fastjet
        import pythia8mc
    except ImportError as err:
        raise MissingExtraError(
            f"jet generation needs Pythia 8 and FastJet ({err.name} is missing); "
            "install them with: pip install 'physgan[hep]'"
        ) from None
    return pythia8mc, fastjet, awkward


@contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: Pythia and FastJet print banners from C++."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _pythia(pythia8mc: Any, process: Process, selection: JetSelection, seed: int) -> Any:
    lo, hi = selection.pt_hat
    settings = (
        f"Beams:eCM = {selection.energy}",
        f"PhaseSpace:pTHatMin = {lo}",
        f"PhaseSpace:pTHatMax = {hi}",
        "Print:quiet = on",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        *process.settings,
    )
    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise DataError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise DataError("Pythia failed to initialise")
    return pythia


def _eta_phi(px: Any, py: Any, pz: Any) -> tuple[Any, Any]:
    pt = np.hypot(px, py)
    return np.arcsinh(pz / pt), np.arctan2(py, px)


def _origins(ak: Any, prt: Any, process: Process) -> Any:
    """The hard objects whose jets are kept, per event (px, py, pz records)."""
    is_id = prt.id != prt.id  # all False, same jagged structure
    for pdg in process.ids:
        is_id = is_id | (abs(prt.id) == pdg)
    if process.resonance:
        # The copy that decays: its first daughter is something else.
        first = ak.where(prt.daughter1 > 0, prt.daughter1, 0)
        keep = is_id & (prt.daughter1 > 0) & (abs(prt.id[first]) != abs(prt.id))
    else:
        keep = is_id & (prt.status == -23)
    return prt.p[keep]


def _batch(ak: Any, fastjet: Any, events: Any, process: Process, sel: JetSelection) -> tuple:
    """Jets of one batch of events matched to the process's origin, flattened over events."""
    prt = events.prt
    visible = (prt.status > 0) & (np.hypot(prt.p.px, prt.p.py) > 0)
    for pdg in NEUTRINOS:
        visible = visible & (abs(prt.id) != pdg)
    p = prt.p[visible]
    particles = ak.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.e})
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, sel.radius)
    cluster = fastjet.ClusterSequence(particles, definition)
    # Trimming only removes momentum, so no jet below the window could pass it afterwards.
    jets = cluster.inclusive_jets(min_pt=sel.pt_min)
    constituents = cluster.constituents(min_pt=sel.pt_min)
    if process.ids:
        eta, phi = _eta_phi(jets.px, jets.py, jets.pz)
        origin = _origins(ak, prt, process)
        o_eta, o_phi = _eta_phi(origin.px, origin.py, origin.pz)
        j = ak.zip({"eta": eta, "phi": phi})
        pairs = ak.cartesian({"j": j, "o": ak.zip({"eta": o_eta, "phi": o_phi})}, nested=True)
        dphi = np.angle(np.exp(1j * (pairs.j.phi - pairs.o.phi)))
        dr = np.hypot(pairs.j.eta - pairs.o.eta, dphi)
        matched = ak.fill_none(ak.min(dr, axis=-1), np.inf) < sel.match_radius
        jets, constituents = jets[matched], constituents[matched]
    return ak.flatten(jets, axis=1), ak.flatten(constituents, axis=1)


def _trim(ak: Any, fastjet: Any, jets: Any, constituents: Any, sel: JetSelection) -> tuple:
    """Trimmed jets, their constituents and their subjets (sorted by decreasing pT).

    Each jet's constituents are reclustered with kT of radius ``trim[0]``; subjets with less
    than ``trim[1]`` of the jet's pT are dropped (Krohn, Thaler, Wang, arXiv:0912.1342).
    """
    radius, fraction = sel.trim
    definition = fastjet.JetDefinition(fastjet.kt_algorithm, radius)
    cluster = fastjet.ClusterSequence(constituents, definition)
    subjets, parts = cluster.inclusive_jets(), cluster.constituents()
    sub_pt = np.hypot(subjets.px, subjets.py)
    keep = sub_pt >= fraction * np.hypot(jets.px, jets.py)
    order = ak.argsort(sub_pt[keep], axis=-1, ascending=False)
    subjets = subjets[keep][order]
    trimmed = ak.zip({f: ak.sum(subjets[f], axis=-1) for f in _P4})
    return trimmed, ak.flatten(parts[keep], axis=2), subjets


def _padded(ak: Any, constituents: Any) -> tuple[np.ndarray, np.ndarray]:
    pt = np.hypot(constituents.px, constituents.py)
    ordered = constituents[ak.argsort(pt, axis=-1, ascending=False)]
    counts = ak.to_numpy(ak.num(ordered, axis=-1))
    width = int(counts.max(initial=0))
    columns = [ak.to_numpy(ak.fill_none(ak.pad_none(ordered[f], width, axis=-1), 0.0)) for f in _P4]
    return np.stack(columns, axis=-1).reshape(len(counts), width, 4), counts


def simulate_jets(
    process: str,
    n_jets: int,
    seed: int,
    selection: JetSelection | None = None,
    batch_events: int = 100,
) -> SimulatedJets:
    """Generate events until ``n_jets`` jets of ``process`` pass ``selection``; seeded.

    Args:
        process: a key of :data:`PROCESSES` (gluon, quark, top, W, Z).
        n_jets: how many jets to return (the last batch's surplus is dropped).
        seed: Pythia's seed, 1 to 900,000,000; same seed, same jets.
        selection: the jet definition and cuts (defaults: anti-kT R = 0.8, 1 TeV).
        batch_events: events generated and clustered per vectorised batch.
    """
    if process not in PROCESSES:
        raise DataError(f"unknown process {process!r}; choose from: {', '.join(PROCESSES)}")
    if not 1 <= seed <= 900_000_000:
        raise DataError(f"Pythia seed {seed} is outside 1 to 900000000")
    pythia8mc, fastjet, ak = _import()
    spec, sel = PROCESSES[process], selection or JetSelection()
    jets, constituents, subjets, n_events = [], [], [], 0
    with _stdout_silenced():
        pythia = _pythia(pythia8mc, spec, sel, seed)
        found = 0
        while found < n_jets:
            events = pythia.nextBatch(batch_events)
            n_events += len(events)
            batch_jets, batch_constituents = _batch(ak, fastjet, events, spec, sel)
            if len(batch_jets) == 0:
                continue
            if sel.trim is not None:
                batch_jets, batch_constituents, batch_subjets = _trim(
                    ak, fastjet, batch_jets, batch_constituents, sel
                )
            eta, _ = _eta_phi(batch_jets.px, batch_jets.py, batch_jets.pz)
            pt = np.hypot(batch_jets.px, batch_jets.py)
            keep = (pt >= sel.pt_min) & (pt < sel.pt_max) & (abs(eta) < sel.eta_max)
            jets.append(batch_jets[keep])
            constituents.append(batch_constituents[keep])
            if sel.trim is not None:
                subjets.append(batch_subjets[keep])
            found += int(ak.sum(keep))
    all_jets = ak.concatenate(jets)[:n_jets]
    p4 = np.stack([ak.to_numpy(all_jets[f]) for f in _P4], axis=-1)
    padded, counts = _padded(ak, ak.concatenate(constituents)[:n_jets])
    two = None
    if subjets:
        leading = ak.pad_none(ak.concatenate(subjets)[:n_jets], 2, axis=-1, clip=True)
        two = np.stack([ak.to_numpy(ak.fill_none(leading[f], 0.0)) for f in _P4], axis=-1)
    return SimulatedJets(
        p4=p4, constituents=padded, n_constituents=counts, n_events=n_events, subjets=two
    )
