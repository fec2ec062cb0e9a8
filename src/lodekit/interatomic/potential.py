"""A trained model on recipe features as an interatomic potential.

The chain rule runs backwards through the three stages without forming any Jacobian:
model (dE/dx per environment) -> features (dE/dc per coefficient, the vector-Jacobian products
of the recipe's feature kinds) -> expansions (dE/dr and dE/d eps by the calculators'
vector-Jacobian products).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..features.recipe import Expanded, Recipe, as_species
from ..systems import System, as_systems, stress_volume

__all__ = ["LodePotential", "as_references"]


class LodePotential:
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3) of a model on the features of a recipe.

    Parameters
    ----------
    model : StructureRidge or AdditiveKernelRidge
        Fitted with ``reduce="sum"`` (extensive energies) on the columns of
        ``recipe.compute`` (same species list), in that order.
    recipe : Recipe, dict or JSON str
        The features (:class:`~lodekit.features.recipe.Recipe`): any blocks of the feature
        kinds, e.g. SOAP power spectrum + LODE nu = 1, with their own ``center_types``
        split.
    species : sequence of int, optional
        The neighbour-channel species the model was trained with (default: those present in
        each structure, which is the same when every structure holds every species). Give
        them whenever a structure may lack one of the training species (a model trained on
        H, C, N, O applied to a molecule without N); potential files store them.
    references : dict {int: float}, optional
        Energy (eV) added per atom of each atomic number, on top of the model: the fixed
        per-species references a model was fitted after (its targets had them subtracted).
        Forces and stress do not change.
    """

    def __init__(self, model, recipe, *, species=None, references=None):
        if not hasattr(model, "environment_gradient"):
            raise InputError(
                f"`model` ({type(model).__name__}) has no environment_gradient: use a lodekit "
                "StructureRidge or AdditiveKernelRidge"
            )
        if getattr(model, "reduce", "sum") != "sum":
            raise InputError("`model` must be fitted with reduce='sum' to give an energy")
        self.model = model
        self.recipe = Recipe.coerce(recipe)
        self.species = None if species is None else as_species(species)
        self.references = as_references(references)

    def _expand(self, structure, gradients=None) -> Expanded:
        systems = as_systems(structure)
        if len(systems) != 1:
            raise InputError(f"`structure` holds {len(systems)} structures; give one")
        # the structure as given: calculators that read per-atom weights from an ase array
        # need the ase.Atoms
        return self.recipe.expand(structure, self.species, gradients=gradients)

    def _forward(self, structure):
        expanded = self._expand(structure)
        features = self.recipe.forward(expanded)
        return expanded, features.values, features.samples[:, 2]

    def _pullback(self, expanded: Expanded, grad):
        """dE/dr and dE/d eps for dE/d(model features) ``grad`` (n_env, n_columns)."""
        gradient = np.zeros((len(expanded.systems[0]), 3))
        strain = np.zeros((3, 3))
        upstream = self.recipe.vjp(expanded, grad)
        for index, (calculator, up) in enumerate(
            zip(self.recipe.calculators, upstream, strict=True)
        ):
            if up is None:
                continue
            result = calculator.vector_jacobian_product(expanded.systems_of(index)[0], up)
            gradient += result["positions"][0]
            strain += result["strain"][0]
        return gradient, strain

    def compute(self, structure, *, forces=True, stress=True) -> dict:
        """``energy`` (float), and when asked ``forces`` (n_atoms, 3) and, for a periodic
        structure, ``stress`` (3, 3, (1/V) dE/d eps, ASE's sign convention).

        A slab's stress follows ASE too: the strain deforms the positions and the two periodic
        vectors, and V = |det(cell)|, so its non-periodic cell vector must be out of the
        plane (else an :class:`~lodekit.errors.InputError`; ask ``stress=False``). A
        molecule gets no stress.
        """
        expanded, values, species = self._forward(structure)
        system = expanded.systems[0]
        groups = np.zeros(len(values), dtype=np.int64)
        energy = float(self.model.predict(values, groups, species)[0])
        if self.references:
            energy += sum(self.references.get(int(z), 0.0) for z in system.numbers)
        out = {"energy": energy}
        if not (forces or stress):
            return out
        grad = self.model.environment_gradient(values, groups, species)
        gradient, strain = self._pullback(expanded, grad)
        if forces:
            out["forces"] = -gradient
        if stress and not system.is_molecule:
            # an energy is rotation-invariant: dE/d eps is symmetric up to rounding
            out["stress"] = 0.5 * (strain + strain.T) / _volume_for_stress(system)
        return out

    def save(self, path, metadata: dict | None = None):
        """Write the potential (model, recipe, species, references) to one ``.npz`` file:
        :func:`lodekit.interatomic.files.save_potential`."""
        from .files import save_potential

        return save_potential(path, self, metadata)

    @classmethod
    def from_file(cls, path) -> LodePotential:
        """The potential in a file written by :meth:`save` or ``lodekit train``."""
        from .files import load_potential

        return load_potential(path)

    def feature_derivatives(self, structure) -> np.ndarray:
        """d(sum_i x_i)/dr_j of the model's feature columns, shape (n_atoms, 3, n_columns).

        One product per column (each costs about one evaluation): the input of force training
        (``StructureRidge.fit(..., forces=, feature_derivatives=)``), meant for the small
        feature sets of linear models.
        """
        expanded, values, species = self._forward(structure)
        out = np.zeros((len(expanded.systems[0]), 3, values.shape[1]))
        # columns of centre species absent from this structure are zero, and so are their
        # derivatives
        live = self.recipe.live_columns(expanded.species, species)
        for column in np.flatnonzero(live):
            grad = np.zeros_like(values)
            grad[:, column] = 1.0
            out[:, :, column] = self._pullback(expanded, grad)[0]
        return out

    def feature_jacobian(self, structure, *, strain: bool = False, sparse: bool = False):
        """d x_i / d r_j of every environment's feature columns.

        Per environment, unlike :meth:`feature_derivatives`: what kernel models need to be
        trained on forces (``AdditiveKernelRidge.fit(..., forces=, feature_jacobians=)``).
        Built by the chain rule on the expansions' sparse Jacobians
        (``compute(..., gradients=["positions"])``, rows keyed by (centre, atom)): the
        features of environment i depend only on the atoms its expansions see (for SOAP the
        neighbours within the cutoff and i itself; for LODE every atom), so only those rows
        are computed (:meth:`lodekit.features.Recipe.sparse_jvp`).

        Parameters
        ----------
        structure : ase.Atoms or System
        strain : bool
            Also d x_i / d eps_ab (periodic structures: bulk or slab), the derivative with
            respect to a homogeneous strain of cell and positions.
        sparse : bool
            Return a :class:`~lodekit.models.SparseJacobian` (keys (n_rows, 2) (environment,
            atom), values (n_rows, 3, n_columns), and ``strain`` (n_env, 3, 3, n_columns) or
            None) instead of dense arrays: memory grows with the (environment, atom) pairs
            that interact, not environments x atoms.

        Returns
        -------
        ndarray (n_env, n_atoms, 3, n_columns), or with ``strain`` (positions, strain
        (n_env, 3, 3, n_columns)); with ``sparse`` one :class:`~lodekit.models.SparseJacobian`.
        """
        from ..models import SparseJacobian

        gradients = ["positions", "strain"] if strain else ["positions"]
        expanded = self._expand(structure, gradients=gradients)
        system = expanded.systems[0]
        if strain and system.is_molecule:
            raise InputError(
                "`strain` derivatives need a periodic structure (bulk or slab); `structure` "
                f"has pbc {list(system.pbc)}"
            )
        keys, values = self.recipe.sparse_jvp(expanded)
        n_env = len(expanded.expansions[0])
        by_strain = self._strain_jacobian(expanded) if strain else None
        jacobian = SparseJacobian(keys, values, n_env, len(system), by_strain)
        if sparse:
            return jacobian
        positions = jacobian.to_dense()
        return (positions, by_strain) if strain else positions

    def _strain_jacobian(self, expanded: Expanded) -> np.ndarray:
        """d x_i / d eps_ab, (n_env, 3, 3, n_columns): the recipe's forward products on the
        expansions' strain Jacobians (9 tangents per centre)."""
        tangents = []
        for expansion in expanded.expansions:
            by_strain = expansion.gradients["strain"]
            tangent = []
            for values in by_strain.values:
                # (rows, 3, 3, species, m, n) -> (centres, 9, species, m, n)
                cell = np.zeros((len(expansion), 9, *values.shape[3:]))
                cell[by_strain.samples[:, 0]] = values.reshape(len(values), 9, *values.shape[3:])
                tangent.append(cell)
            tangents.append(tangent)
        out = self.recipe.jvp(expanded, tangents)
        return out.reshape(out.shape[0], 3, 3, out.shape[2])


def _volume_for_stress(system: System) -> float:
    """:func:`lodekit.systems.stress_volume` of ``system``, or an error that says why there is
    none.

    Raises
    ------
    InputError
        For a slab whose non-periodic cell vector is zero or lies in its plane, and for a
        molecule.
    """
    volume = stress_volume(system.cell, system.pbc)
    if volume is None:
        axis = system.pbc.index(False)
        raise InputError(
            f"`structure` has pbc {list(system.pbc)} and cell vector {axis} "
            f"{system.cell[axis].tolist()}: a stress is dE/d eps / |det(cell)| (ASE's "
            "convention), so a slab's stress needs a non-zero third cell vector out of its "
            "plane (any length: only the volume changes); give one, or ask stress=False"
        )
    return volume


def as_references(references) -> dict:
    """``references`` checked: {atomic number: finite energy in eV}."""
    if references is None:
        return {}
    if not isinstance(references, dict):
        raise InputError(f"`references` is {type(references).__name__}; expected a dict {{Z: eV}}")
    out = {}
    for z, value in references.items():
        try:
            number, energy = int(z), float(value)
        except (TypeError, ValueError):
            number, energy = -1, float("nan")
        if str(number) != str(z).strip() or not 1 <= number <= 118 or not np.isfinite(energy):
            raise InputError(
                f"`references` entry {z!r}: {value!r} must map an atomic number (1-118) to a "
                "finite energy in eV"
            )
        out[number] = energy
    return out
