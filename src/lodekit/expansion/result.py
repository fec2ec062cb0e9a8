"""The result of a spherical expansion: dense per-l arrays plus sample metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Expansion", "Gradient", "split_by_l", "split_gradient_by_l"]

SAMPLE_NAMES = ("system", "atom", "center_type")

#: What :meth:`compute` can differentiate with respect to, in featomic's names.
GRADIENT_PARAMETERS = ("positions", "strain", "weights")

#: Component names of gradients in featomic's layout.
XYZ = ("xyz", "xyz_1", "xyz_2")


@dataclass(frozen=True, eq=False)
class Gradient:
    """The Jacobian of an :class:`Expansion` with respect to positions or strain.

    Attributes
    ----------
    samples : ndarray of int64
        Positions: (n_rows, 3), (sample, system, atom): row ``sample`` of the expansion
        differentiated with respect to the position of ``atom`` of ``system``; only the
        atoms the coefficients depend on (for cutoff expansions, the neighbours and the
        centre). Strain: (n_centres, 1), the sample.
    values : list of ndarray
        Positions: ``values[l]`` of shape (n_rows, 3, n_species, 2l+1, n_radial), d c / d r_x
        (coefficient units per Å). Strain: (n_centres, 3, 3, n_species, 2l+1, n_radial),
        d c / d eps_ab for r -> (1 + eps) r of positions and cell (axis 1 is a, axis 2 is b;
        dimensionless strain, so coefficient units).
        Weights: samples as for positions; ``values[l]`` of shape (n_rows, n_species, 2l+1,
        n_radial), d c / d w_atom (coefficient units per unit weight): atom's contribution
        with unit weight. Every (sample, atom) whose derivative is not identically zero.
    atom_types : ndarray of int64, shape (n_rows,), or None
        Positions and weights: atomic number of the differentiated atom.
    """

    samples: np.ndarray
    values: list
    atom_types: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Expansion:
    """Spherical-expansion coefficients of a set of atomic environments.

    Attributes
    ----------
    values : list of ndarray
        ``values[l]`` has shape (n_centres, n_neighbour_species, 2l + 1, n_radial), float64;
        m runs from -l to l, the radial index n from 0 to max_radial.
    samples : ndarray of int64, shape (n_centres, 3)
        One row per centre: (system index, atom index within the system, centre atomic number).
    neighbor_types : ndarray of int64, shape (n_neighbour_species,)
        Atomic numbers of the neighbour-species channels, sorted. With several LODE
        exponents, the atomic number of every channel: the sorted species repeated once per
        exponent (channels run over (exponent, species), exponent-major; see ``exponents``).
    hypers : dict
        The calculator's hyperparameters (JSON-serialisable), with ``"calculator"`` naming it.
    has_neighbors : ndarray of bool, shape (n_centres, n_neighbour_species), or None
        For cutoff-based expansions: whether any atom of that species (the centre included,
        if its weight is not zero) lies within the cutoff. Rows without are zero in
        ``values`` and, as in featomic, absent from the blocks of :meth:`to_tensormap`.
        None means every centre sees every species (LODE).
    info : dict
        How the numbers were computed, per structure (``info["structures"][i]``): e.g. the
        LODE plan (k-space cutoff, range separation) chosen for an ``accuracy``.
    gradients : dict
        ``"positions"`` and/or ``"strain"`` -> :class:`Gradient`, when requested from
        ``compute(..., gradients=[...])``.
    exponents : ndarray of int64, shape (n_neighbour_species,), or None
        LODE with several exponents (``exponent=[...]``): the exponent p of every neighbour
        channel; None otherwise (docs/conventions.md, "Several exponents").
    """

    values: list
    samples: np.ndarray
    neighbor_types: np.ndarray
    hypers: dict = field(default_factory=dict)
    has_neighbors: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    gradients: dict = field(default_factory=dict)
    exponents: np.ndarray | None = None

    sample_names = SAMPLE_NAMES

    @property
    def max_angular(self) -> int:
        return len(self.values) - 1

    @property
    def n_radial(self) -> int:
        return self.values[0].shape[-1]

    @property
    def center_types(self) -> np.ndarray:
        """Atomic numbers of the centres present, sorted."""
        return np.unique(self.samples[:, 2])

    def __len__(self) -> int:
        return self.samples.shape[0]

    def block(self, o3_lambda: int) -> np.ndarray:
        """Coefficients of angular channel ``o3_lambda``, shape (n_centres, n_species, 2l+1, n)."""
        if not 0 <= o3_lambda <= self.max_angular:
            raise InputError(
                f"`o3_lambda` is {o3_lambda} but must be between 0 and {self.max_angular}"
            )
        return self.values[o3_lambda]

    def __repr__(self) -> str:
        return (
            f"Expansion({self.hypers.get('calculator', '?')}, {len(self)} centres, "
            f"neighbor_types={self.neighbor_types.tolist()}, max_angular={self.max_angular}, "
            f"n_radial={self.n_radial})"
        )

    def to_tensormap(self):
        """The same numbers as a metatensor ``TensorMap`` in featomic's layout.

        Keys (o3_lambda, o3_sigma, center_type, neighbor_type), sorted by centre type, then
        neighbour type, then lambda; with several exponents a fifth key, ``exponent``, and
        the neighbour channels in their order (exponent, then neighbour type); samples
        (system, atom); components o3_mu; properties n.
        Computed gradients become gradient blocks: "positions" with samples (sample, system,
        atom) for the atoms of the block's neighbour type and the centre, components (xyz,
        o3_mu); "strain" with samples (sample,), components (xyz_2, xyz_1, o3_mu) holding
        d c / d eps_{xyz_1 xyz_2} (featomic's order: the transpose of ``Gradient.values``).
        A "weights" gradient has no featomic counterpart and is not carried over.
        Requires ``metatensor-core`` (``pip install lodekit[metatensor]``).
        """
        try:
            from metatensor import Labels, TensorBlock, TensorMap
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_tensormap() needs metatensor-core: pip install 'lodekit[metatensor]'"
            ) from err

        keys, blocks = [], []
        properties = Labels(["n"], np.arange(self.n_radial, dtype=np.int32).reshape(-1, 1))
        xyz = [Labels([name], np.arange(3, dtype=np.int32).reshape(-1, 1)) for name in XYZ]
        positions = self.gradients.get("positions")
        strain = self.gradients.get("strain")
        for center in self.center_types:
            centre_rows = np.flatnonzero(self.samples[:, 2] == center)
            for a, neighbor in enumerate(self.neighbor_types):
                rows = centre_rows
                if self.has_neighbors is not None:
                    rows = rows[self.has_neighbors[rows, a]]
                samples = Labels(["system", "atom"], self.samples[rows, :2].astype(np.int32))
                # gradient rows of this block: its samples, differentiated with respect to
                # the atoms of this neighbour type and the centre itself
                block_row = np.full(len(self), -1)
                block_row[rows] = np.arange(len(rows))
                if positions is not None:
                    sample = positions.samples[:, 0]
                    centre_atom = self.samples[sample, 1]
                    keep = (block_row[sample] >= 0) & (
                        (positions.atom_types == neighbor)
                        | (positions.samples[:, 2] == centre_atom)
                    )
                    gradient_samples = positions.samples[keep].astype(np.int32)
                    gradient_samples[:, 0] = block_row[sample[keep]]
                for l, values in enumerate(self.values):
                    mu = Labels(["o3_mu"], np.arange(-l, l + 1, dtype=np.int32).reshape(-1, 1))
                    block = TensorBlock(
                        values=np.ascontiguousarray(values[rows, a]),
                        samples=samples,
                        components=[mu],
                        properties=properties,
                    )
                    if positions is not None:
                        block.add_gradient(
                            "positions",
                            TensorBlock(
                                values=np.ascontiguousarray(positions.values[l][keep, :, a]),
                                samples=Labels(["sample", "system", "atom"], gradient_samples),
                                components=[xyz[0], mu],
                                properties=properties,
                            ),
                        )
                    if strain is not None:
                        block.add_gradient(
                            "strain",
                            TensorBlock(
                                # featomic stores d c / d eps_{xyz_1 xyz_2} as
                                # (xyz_2, xyz_1): the axes of ours swapped
                                values=np.ascontiguousarray(
                                    strain.values[l][rows, :, :, a].swapaxes(1, 2)
                                ),
                                samples=Labels(
                                    ["sample"], np.arange(len(rows), dtype=np.int32)[:, None]
                                ),
                                components=[xyz[2], xyz[1], mu],
                                properties=properties,
                            ),
                        )
                    blocks.append(block)
                    key = (l, 1, int(center), int(neighbor))
                    if self.exponents is not None:
                        key += (int(self.exponents[a]),)
                    keys.append(key)
        names = ["o3_lambda", "o3_sigma", "center_type", "neighbor_type"]
        if self.exponents is not None:
            names.append("exponent")
        return TensorMap(Labels(names, np.array(keys, dtype=np.int32)), blocks)


def split_gradient_by_l(jacobian: np.ndarray, max_angular: int) -> list[np.ndarray]:
    """(n, ..., n_species, (L+1)^2, n_radial) -> per l, (n, ..., n_species, 2l+1, n_radial).

    Views of ``jacobian``, not copies: a Jacobian's consumers (the feature products, the
    dense placement, archives) read them once, and copying them cost as much as a fifth of
    a SOAP Jacobian (48 atoms, 900 rows)."""
    return [jacobian[..., l * l : (l + 1) ** 2, :] for l in range(max_angular + 1)]


def split_by_l(coeffs: np.ndarray, max_angular: int) -> list[np.ndarray]:
    """(n_centres, n_species, (L+1)^2, n) -> per l, (n_centres, n_species, 2l+1, n)."""
    return [
        np.ascontiguousarray(coeffs[:, :, l * l : (l + 1) ** 2, :]) for l in range(max_angular + 1)
    ]
