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
        return self.recipe.expand(systems, self.species, gradients=gradients)

    def _forward(self, structure):
        expanded = self._expand(structure)
        features = self.recipe.forward(expanded)
        return expanded, features.values, features.samples[:, 2]

    def _pullback(self, expanded: Expanded, grad):
        """dE/dr and dE/d eps for dE/d(model features) ``grad`` (n_env, n_columns)."""
        system = expanded.systems[0]
        gradient = np.zeros((len(system), 3))
        strain = np.zeros((3, 3))
        upstream = self.recipe.vjp(expanded, grad)
        for calculator, up in zip(self.recipe.calculators, upstream, strict=True):
            if up is None:
                continue
            result = calculator.vector_jacobian_product(system, up)
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

    def feature_jacobian(self, structure, *, strain: bool = False):
        """d x_i / d r_j of every environment's feature columns, (n_env, n_atoms, 3, n_columns).

        Per environment, unlike :meth:`feature_derivatives`: what kernel models need to be
        trained on forces (``AdditiveKernelRidge.fit(..., forces=, feature_jacobians=)``).
        Built forward (the recipe's Jacobian-vector products) from the full Jacobians of the
        expansions (``compute(..., gradients=["positions"])``), so memory grows as
        environments x atoms x coefficients: meant for training structures of up to a few
        hundred atoms.

        With ``strain`` (periodic structures: bulk or slab), also d x_i / d eps_ab, the
        derivative with respect to a homogeneous strain of cell and positions: returns
        (positions (n_env, n_atoms, 3, n_columns), strain (n_env, 3, 3, n_columns)) from one
        forward pass over both.
        """
        gradients = ["positions", "strain"] if strain else ["positions"]
        expanded = self._expand(structure, gradients=gradients)
        if strain and expanded.systems[0].is_molecule:
            raise InputError(
                "`strain` derivatives need a periodic structure (bulk or slab); `structure` "
                f"has pbc {list(expanded.systems[0].pbc)}"
            )
        n_atoms = len(expanded.systems[0])
        tangents = []
        for expansion in expanded.expansions:
            gradient = expansion.gradients["positions"]
            tangent = []
            for l, values in enumerate(gradient.values):
                # (rows, 3, species, m, n) -> (centres, atoms x 3, species, m, n)
                dense = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
                dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
                dense = dense.reshape(len(expansion), 3 * n_atoms, *values.shape[2:])
                if strain:
                    # (rows, 3, 3, species, m, n) -> (centres, 9, species, m, n), after the atoms
                    by_strain = expansion.gradients["strain"]
                    cell = np.zeros((len(expansion), 9, *values.shape[2:]))
                    cell[by_strain.samples[:, 0]] = by_strain.values[l].reshape(
                        len(by_strain.samples), 9, *values.shape[2:]
                    )
                    dense = np.concatenate([dense, cell], axis=1)
                tangent.append(dense)
            tangents.append(tangent)
        out = self.recipe.jvp(expanded, tangents)
        positions = out[:, : 3 * n_atoms].reshape(out.shape[0], n_atoms, 3, out.shape[2])
        if not strain:
            return positions
        return positions, out[:, 3 * n_atoms :].reshape(out.shape[0], 3, 3, out.shape[2])


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
