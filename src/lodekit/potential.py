"""A trained model on periodic LODE features as an interatomic potential: energy, forces, stress.

The chain rule runs backwards through the three stages without forming any Jacobian:
model (dE/dx per environment) -> features (dE/dc per coefficient) -> expansion (dE/dr and
dE/d eps by the vector-Jacobian product of :class:`~lodekit.LodeSphericalExpansion`).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .expansion import LodeSphericalExpansion
from .features import lode_nu1, power_spectrum
from .features.backward import by_center_type_backward, lode_nu1_backward, power_spectrum_backward
from .systems import System, as_systems

__all__ = ["LodePotential"]

FEATURES = ("nu1", "power_spectrum")


class LodePotential:
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3) of a model on LODE features.

    Parameters
    ----------
    calculator : LodeSphericalExpansion
        The expansion the model was trained on (periodic structures, pure k-space sum).
    model : StructureRidge or AdditiveKernelRidge
        Fitted on environments of these features with ``reduce="sum"`` (extensive energies).
    features : {"nu1", "power_spectrum"}
        :func:`~lodekit.features.lode_nu1` or the nu = 2 :func:`~lodekit.features.power_spectrum`.
    center_types : sequence of int, optional
        When the model was trained on ``features.by_center_type(center_types)``.
    """

    def __init__(self, calculator, model, *, features="nu1", center_types=None):
        if not isinstance(calculator, LodeSphericalExpansion):
            raise InputError(
                f"`calculator` is a {type(calculator).__name__}; expected a LodeSphericalExpansion"
            )
        if features not in FEATURES:
            raise InputError(f"`features` is {features!r} but must be one of {FEATURES}")
        if not hasattr(model, "environment_gradient"):
            raise InputError(
                f"`model` ({type(model).__name__}) has no environment_gradient: use a lodekit "
                "StructureRidge or AdditiveKernelRidge"
            )
        if getattr(model, "reduce", "sum") != "sum":
            raise InputError("`model` must be fitted with reduce='sum' to give an energy")
        self.calculator = calculator
        self.model = model
        self.features = features
        self.center_types = None if center_types is None else np.asarray(center_types)

    def _features(self, expansion):
        if self.features == "nu1":
            values = lode_nu1(expansion)
        else:
            values = power_spectrum(expansion)
        n_features = values.n_features
        if self.center_types is not None:
            values = values.by_center_type(self.center_types)
        return values, n_features

    def compute(self, structure, *, forces=True, stress=True) -> dict:
        """``energy`` (float), and when asked ``forces`` (n_atoms, 3) and ``stress`` (3, 3,
        (1/V) dE/d eps, ASE's sign convention) of one periodic structure."""
        systems = as_systems(structure)
        if len(systems) != 1:
            raise InputError(f"`structure` holds {len(systems)} structures; give one")
        system: System = systems[0]
        expansion = self.calculator.compute(system)
        features, n_features = self._features(expansion)
        groups = np.zeros(len(features), dtype=np.int64)
        species = expansion.samples[:, 2]
        energy = float(self.model.predict(features.values, groups, species)[0])
        out = {"energy": energy}
        if not (forces or stress):
            return out
        grad = self.model.environment_gradient(features.values, groups, species)
        if self.center_types is not None:
            grad = by_center_type_backward(grad, species, self.center_types, n_features)
        if self.features == "nu1":
            upstream = lode_nu1_backward(expansion, grad)
        else:
            upstream, _ = power_spectrum_backward(grad, expansion)
        gradients = self.calculator.vector_jacobian_product(system, upstream)
        if forces:
            out["forces"] = -gradients["positions"][0]
        if stress:
            strain = gradients["strain"][0]
            # an energy is rotation-invariant: dE/d eps is symmetric up to rounding
            out["stress"] = 0.5 * (strain + strain.T) / system.volume
        return out
