"""Energy flow polynomials (EFPs) of particle clouds, computed as energyflow does, without it.

An EFP of a multigraph G with vertices 1..n and edges E (Komiske, Metodiev, Thaler,
arXiv:1712.07124) is, for one jet of M particles,

    EFP_G = sum_{i_1..i_n = 1..M} z_{i_1} ... z_{i_n} prod_{(k, l) in E} theta_{i_k i_l}

summed over all assignments of particles to vertices (repeats included). JetNet calls
``energyflow.EFPSet(..., measure="hadr", beta=1, normed=None, coords="ptyphim")`` on
[pt_rel, eta_rel, phi_rel]; since energyflow 1.1, ``normed=None`` means *not* normalised, so
z_i = pt_rel_i, and theta_ij = sqrt(deta_ij^2 + dphi_ij^2) with dphi wrapped into [0, pi]. The
EFP values are therefore in units of pt_rel^n. ``normed=True`` gives energyflow's normalised
z_i = pt_i / sum_j pt_j instead. Graph order and contents are those of energyflow's
``efps_d_le_10`` table (energyflow 1.4, thaler-lab/EnergyFlow).
"""

from __future__ import annotations

import numpy as np

from physgan.metrics.jetfeatures import check_particles, masked_features

__all__ = ["Multigraph", "efp", "efps", "efps_d4"]

Multigraph = tuple[tuple[int, int], ...]
"""Edges (vertex, vertex) of a multigraph, repeated for multiplicity; () is the one-vertex
graph, whose EFP is sum_i z_i."""

# The 21 connected multigraphs of degree (edge count) d <= 4, in energyflow's order.
_CONNECTED_D4: tuple[Multigraph, ...] = (
    (),
    ((0, 1),),
    ((0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 2)),
    ((0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (0, 2), (0, 2)),
    ((0, 1), (0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
    ((0, 1), (0, 2), (0, 3), (0, 4)),
    ((0, 1), (0, 2), (0, 3), (1, 4)),
    ((0, 1), (0, 2), (1, 3), (2, 4)),
)
# The 15 disconnected ones of d <= 4, each the product of the connected EFPs at these indices.
_PRODUCTS_D4: tuple[tuple[int, ...], ...] = (
    (1, 1), (1, 2), (1, 3), (2, 2), (1, 5), (2, 5), (1, 6), (1, 9),
    (1, 1, 1), (1, 11), (1, 13), (5, 5), (1, 1, 2), (1, 1, 5), (1, 1, 1, 1),
)  # fmt: skip
# energyflow's ("n==", 4), ("d==", 4), ("p==", 1): star with a doubled edge, path with a doubled
# end edge, path with a doubled middle edge, triangle with a tail, square.
_W1EFP = (12, 14, 15, 16, 17)

# Jets per einsum chunk: keeps each (chunk, N, N) float64 matrix near 32 MB.
_CHUNK_ENTRIES = 2**22


def efp(particles: np.ndarray, graph: Multigraph, *, normed: bool = False) -> np.ndarray:
    """EFP (n,) of one multigraph for each jet of ``particles`` (n, N, 4), as the module says.

    >>> two = np.array([[[0.0, 0.0, 0.6, 1.0], [0.3, 0.4, 0.4, 1.0], [9.0, 9.0, 9.0, 0.0]]])
    >>> efp(two, ((0, 1),)).round(6).tolist()  # 2 * 0.6 * 0.4 * 0.5
    [0.24]
    """
    return _evaluate(particles, (graph,), normed)[:, 0]


def efps(particles: np.ndarray, *, normed: bool = False) -> np.ndarray:
    """The 5 EFPs (n, 5) of JetNet's ``w1efp``: the prime (connected) EFPs with n = 4 vertices
    and d = 4 edges, beta = 1, in energyflow's order (star with a doubled edge, path with a
    doubled end edge, path with a doubled middle edge, triangle with a tail, square).

    >>> cloud = np.array([[[0.0, 0.0, 0.5, 1.0], [0.1, 0.0, 0.3, 1.0], [0.0, 0.2, 0.2, 1.0]]])
    >>> efps(cloud).shape
    (1, 5)
    """
    return _evaluate(particles, tuple(_CONNECTED_D4[i] for i in _W1EFP), normed)


def efps_d4(particles: np.ndarray, *, normed: bool = False) -> np.ndarray:
    """All 36 EFPs (n, 36) of degree d <= 4 with beta = 1, the jet features of FPD and KPD
    (JetNet's ``get_fpd_kpd_jet_features``, arXiv:2211.10295): the 21 connected ones (the
    first is the d = 0 graph, sum_i z_i), then the 15 products of connected ones, in
    energyflow's order.

    >>> cloud = np.array([[[0.0, 0.0, 0.5, 1.0], [0.1, 0.0, 0.5, 1.0]]])
    >>> values = efps_d4(cloud)
    >>> values.shape, values[0, 0].round(6), values[0, 1].round(6)  # sum z, 2 z1 z2 theta12
    ((1, 36), np.float64(1.0), np.float64(0.05))
    """
    connected = _evaluate(particles, _CONNECTED_D4, normed)
    products = [np.prod(connected[:, list(factors)], axis=1) for factors in _PRODUCTS_D4]
    return np.concatenate([connected, np.stack(products, axis=1)], axis=1)


def _evaluate(particles: np.ndarray, graphs: tuple[Multigraph, ...], normed: bool) -> np.ndarray:
    features, _ = masked_features(check_particles("particles", particles))
    eta, phi, z = features[..., 0], features[..., 1], features[..., 2]
    if normed:
        total = z.sum(axis=1, keepdims=True)
        z = np.divide(z, total, out=np.zeros_like(z), where=total > 0)
    chunk = max(1, _CHUNK_ENTRIES // features.shape[1] ** 2)
    return np.concatenate(
        [
            _evaluate_chunk(eta[s : s + chunk], phi[s : s + chunk], z[s : s + chunk], graphs)
            for s in range(0, len(z), chunk)
        ]
    )


def _evaluate_chunk(
    eta: np.ndarray, phi: np.ndarray, z: np.ndarray, graphs: tuple[Multigraph, ...]
) -> np.ndarray:
    deta = eta[:, :, None] - eta[:, None, :]
    # energyflow's wrap of |dphi| into [0, pi]
    dphi = np.pi - np.abs(np.abs(phi[:, :, None] - phi[:, None, :]) - np.pi)
    theta = np.sqrt(deta**2 + dphi**2)
    theta_powers = {1: theta}
    for power in range(2, 1 + max((_max_multiplicity(g) for g in graphs), default=1)):
        theta_powers[power] = theta_powers[power - 1] * theta
    return np.stack([_contract(z, theta_powers, graph) for graph in graphs], axis=1)


def _max_multiplicity(graph: Multigraph) -> int:
    return max((graph.count(edge) for edge in graph), default=1)


def _contract(z: np.ndarray, theta_powers: dict[int, np.ndarray], graph: Multigraph) -> np.ndarray:
    letters = "abcdefghijklmnopqrstuvwxy"  # vertices; "z" indexes jets
    n_vertices = 1 + max((max(edge) for edge in graph), default=0)
    terms = [f"z{letters[v]}" for v in range(n_vertices)]
    operands = [z] * n_vertices
    for edge in sorted(set(graph)):
        terms.append(f"z{letters[edge[0]]}{letters[edge[1]]}")
        operands.append(theta_powers[graph.count(edge)])
    return np.einsum(",".join(terms) + "->z", *operands, optimize="greedy")
