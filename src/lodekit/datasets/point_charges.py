"""Random point-charge boxes of the paper's first experiment (Sec. III.A)."""

from __future__ import annotations

import ase
import numpy as np

from ..errors import InputError
from .ewald import ewald_energy

__all__ = ["random_point_charges"]


def random_point_charges(
    n_structures: int,
    *,
    seed: int = 0,
    n_charges: int = 64,
    box_range: tuple[float, float] = (12.0, 20.0),
    min_distance: float = 2.5,
    accuracy: float = 1e-10,
    progress=None,
) -> list[ase.Atoms]:
    """Cubic periodic boxes with n/2 charges +1 (Na) and n/2 charges -1 (Cl).

    The box edge is uniform in ``box_range``; charges are placed uniformly one after another
    and a placement closer than ``min_distance`` (minimum image) to an earlier charge is
    redrawn (random sequential addition: rejecting whole configurations, as a literal
    reading of the protocol suggests, essentially never succeeds at 64 charges in a 12 Å box).
    Each box carries ``initial_charges`` and its Ewald energy (eV) in ``atoms.info["energy"]``.
    """
    if n_charges % 2:
        raise InputError(f"`n_charges` is {n_charges} but must be even (neutral boxes)")
    rng = np.random.default_rng(seed)
    frames = []
    iterator = range(n_structures) if progress is None else progress(range(n_structures))
    for _ in iterator:
        side = rng.uniform(*box_range)
        points = np.empty((0, 3))
        attempts = 0
        while len(points) < n_charges:
            attempts += 1
            if attempts > 1000 * n_charges:
                raise InputError(
                    f"cannot place {n_charges} charges {min_distance} Å apart in a {side:.2f} Å box"
                )
            candidate = rng.uniform(0, side, size=3)
            delta = points - candidate
            delta -= side * np.round(delta / side)
            if len(points) and np.min(np.einsum("ij,ij->i", delta, delta)) < min_distance**2:
                continue
            points = np.vstack([points, candidate])
        symbols = ["Na"] * (n_charges // 2) + ["Cl"] * (n_charges // 2)
        atoms = ase.Atoms(symbols, positions=points, cell=np.eye(3) * side, pbc=True)
        atoms.set_initial_charges([1.0] * (n_charges // 2) + [-1.0] * (n_charges // 2))
        atoms.info["energy"] = ewald_energy(atoms, accuracy=accuracy)
        frames.append(atoms)
    return frames
