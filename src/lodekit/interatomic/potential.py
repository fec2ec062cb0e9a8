"""A trained model on LODE (and SOAP) features as an interatomic potential.

The chain rule runs backwards through the three stages without forming any Jacobian:
model (dE/dx per environment) -> features (dE/dc per coefficient) -> expansion (dE/dr and
dE/d eps by the vector-Jacobian product of :class:`~lodekit.LodeSphericalExpansion`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..expansion import LodeSphericalExpansion, SphericalExpansion
from ..features import lode_nu1, power_spectrum
from ..features.backward import by_center_type_backward, lode_nu1_backward, power_spectrum_backward
from ..features.forward import by_center_type_forward, lode_nu1_forward, power_spectrum_forward
from ..systems import System, as_systems

__all__ = ["LodePotential"]

FEATURES = ("nu1", "power_spectrum", "soap", "rho_x_v")
_NEEDS = {"nu1": "lode", "power_spectrum": "lode", "soap": "soap", "rho_x_v": "both"}


class LodePotential:
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3) of a model on LODE (and SOAP) features.

    Parameters
    ----------
    model : StructureRidge or AdditiveKernelRidge
        Fitted with ``reduce="sum"`` (extensive energies) on the environments of the features
        below, in that column order.
    lode : LodeSphericalExpansion, optional
        Needed by "nu1", "power_spectrum" and "rho_x_v".
    soap : SphericalExpansion, optional
        Needed by "soap" and "rho_x_v".
    features : str or sequence of str
        Feature blocks, concatenated column-wise: "nu1" (:func:`~lodekit.features.lode_nu1`),
        "power_spectrum" (LODE nu = 2, V x V), "soap" (rho x rho) and "rho_x_v" (the
        multi-scale rho x V); e.g. ``("soap", "power_spectrum")`` for a SOAP + LODE kernel with
        ``feature_blocks``.
    center_types : sequence of int, optional
        When the model was trained on ``features.by_center_type(center_types)`` of the
        concatenated blocks.
    """

    def __init__(self, model, *, lode=None, soap=None, features="nu1", center_types=None):
        blocks = (features,) if isinstance(features, str) else tuple(features)
        if not blocks or any(block not in FEATURES for block in blocks):
            raise InputError(f"`features` is {features!r}; each block must be one of {FEATURES}")
        needs_lode = any(_NEEDS[b] in ("lode", "both") for b in blocks)
        needs_soap = any(_NEEDS[b] in ("soap", "both") for b in blocks)
        if needs_lode and not isinstance(lode, LodeSphericalExpansion):
            raise InputError(
                f"`lode` is {type(lode).__name__}; features {blocks} need a LodeSphericalExpansion"
            )
        if needs_soap and not isinstance(soap, SphericalExpansion):
            raise InputError(
                f"`soap` is {type(soap).__name__}; features {blocks} need a SphericalExpansion"
            )
        if not hasattr(model, "environment_gradient"):
            raise InputError(
                f"`model` ({type(model).__name__}) has no environment_gradient: use a lodekit "
                "StructureRidge or AdditiveKernelRidge"
            )
        if getattr(model, "reduce", "sum") != "sum":
            raise InputError("`model` must be fitted with reduce='sum' to give an energy")
        self.model = model
        self.lode = lode if needs_lode else None
        self.soap = soap if needs_soap else None
        self.features = blocks
        self.center_types = None if center_types is None else np.asarray(center_types)

    def _blocks(self, expansions):
        lode, soap = expansions
        out = []
        for block in self.features:
            if block == "nu1":
                out.append(lode_nu1(lode))
            elif block == "power_spectrum":
                out.append(power_spectrum(lode))
            elif block == "soap":
                out.append(power_spectrum(soap))
            else:
                out.append(power_spectrum(soap, lode))
        return out

    def _forward(self, structure):
        systems = as_systems(structure)
        if len(systems) != 1:
            raise InputError(f"`structure` holds {len(systems)} structures; give one")
        system: System = systems[0]
        expansions = (
            None if self.lode is None else self.lode.compute(system),
            None if self.soap is None else self.soap.compute(system),
        )
        samples = next(e for e in expansions if e is not None).samples
        blocks = self._blocks(expansions)
        widths = [block.n_features for block in blocks]
        values = np.hstack([block.values for block in blocks])
        species = samples[:, 2]
        if self.center_types is not None:
            # the columns of Features.by_center_type: one copy per centre species
            which = np.searchsorted(self.center_types, species)
            if np.any(self.center_types[np.minimum(which, len(self.center_types) - 1)] != species):
                raise InputError(
                    f"`structure` has centre species {sorted(set(species.tolist()))} outside "
                    f"the model's center_types {self.center_types.tolist()}"
                )
            split = np.zeros((len(values), len(self.center_types), values.shape[1]))
            split[np.arange(len(values)), which] = values
            values = split.reshape(len(values), -1)
        return system, expansions, values, widths, species

    def _pullback(self, system, expansions, widths, species, grad):
        """dE/dr and dE/d eps for dE/d(model features) ``grad`` (n_env, n_columns)."""
        if self.center_types is not None:
            grad = by_center_type_backward(grad, species, self.center_types, sum(widths))
        upstream = [None, None]  # dE/dc of the LODE and of the SOAP expansion

        def add(which, contribution):
            if upstream[which] is None:
                upstream[which] = contribution
            else:
                upstream[which] = [
                    u + c for u, c in zip(upstream[which], contribution, strict=True)
                ]

        start = 0
        for block, width in zip(self.features, widths, strict=True):
            g = grad[:, start : start + width]
            start += width
            if block == "nu1":
                add(0, lode_nu1_backward(expansions[0], g))
            elif block == "power_spectrum":
                add(0, power_spectrum_backward(g, expansions[0])[0])
            elif block == "soap":
                add(1, power_spectrum_backward(g, expansions[1])[0])
            else:
                grad_soap, grad_lode = power_spectrum_backward(g, expansions[1], expansions[0])
                add(1, grad_soap)
                add(0, grad_lode)
        gradient = np.zeros((len(system), 3))
        strain = np.zeros((3, 3))
        for calculator, up in zip((self.lode, self.soap), upstream, strict=True):
            if up is None:
                continue
            result = calculator.vector_jacobian_product(system, up)
            gradient += result["positions"][0]
            strain += result["strain"][0]
        return gradient, strain

    def compute(self, structure, *, forces=True, stress=True) -> dict:
        """``energy`` (float), and when asked ``forces`` (n_atoms, 3) and, for a periodic
        structure, ``stress`` (3, 3, (1/V) dE/d eps, ASE's sign convention)."""
        system, expansions, values, widths, species = self._forward(structure)
        groups = np.zeros(len(values), dtype=np.int64)
        energy = float(self.model.predict(values, groups, species)[0])
        out = {"energy": energy}
        if not (forces or stress):
            return out
        grad = self.model.environment_gradient(values, groups, species)
        gradient, strain = self._pullback(system, expansions, widths, species, grad)
        if forces:
            out["forces"] = -gradient
        if stress and system.periodic:
            # an energy is rotation-invariant: dE/d eps is symmetric up to rounding
            out["stress"] = 0.5 * (strain + strain.T) / system.volume
        return out

    def feature_derivatives(self, structure) -> np.ndarray:
        """d(sum_i x_i)/dr_j of the model's feature columns, shape (n_atoms, 3, n_columns).

        One product per column (each costs about one evaluation): the input of force training
        (``StructureRidge.fit(..., forces=, feature_derivatives=)``), meant for the small
        feature sets of linear models.
        """
        system, expansions, values, widths, species = self._forward(structure)
        out = np.zeros((len(system), 3, values.shape[1]))
        present = np.ones(values.shape[1], dtype=bool)
        if self.center_types is not None:
            # columns of centre species absent from this structure are zero, and so are
            # their derivatives
            present = np.repeat(np.isin(self.center_types, species), sum(widths))
        for column in np.flatnonzero(present):
            grad = np.zeros_like(values)
            grad[:, column] = 1.0
            out[:, :, column] = self._pullback(system, expansions, widths, species, grad)[0]
        return out

    def feature_jacobian(self, structure) -> np.ndarray:
        """d x_i / d r_j of every environment's feature columns, (n_env, n_atoms, 3, n_columns).

        Per environment, unlike :meth:`feature_derivatives`: what kernel models need to be
        trained on forces (``AdditiveKernelRidge.fit(..., forces=, feature_jacobians=)``).
        Built forward from the full Jacobians of the expansions
        (``compute(..., gradients=["positions"])``), so memory grows as environments x atoms
        x coefficients: meant for training structures of up to a few hundred atoms.
        """
        systems = as_systems(structure)
        if len(systems) != 1:
            raise InputError(f"`structure` holds {len(systems)} structures; give one")
        system = systems[0]
        n_atoms = len(system)
        expansions, tangents = [], []
        for calculator in (self.lode, self.soap):
            if calculator is None:
                expansions.append(None)
                tangents.append(None)
                continue
            expansion = calculator.compute(system, gradients=["positions"])
            gradient = expansion.gradients["positions"]
            tangent = []
            for values in gradient.values:
                # (rows, 3, species, m, n) -> (centres, atoms x 3, species, m, n)
                dense = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
                dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
                tangent.append(dense.reshape(len(expansion), 3 * n_atoms, *values.shape[2:]))
            expansions.append(expansion)
            tangents.append(tangent)
        lode, soap = expansions
        blocks = []
        for block in self.features:
            if block == "nu1":
                blocks.append(lode_nu1_forward(lode, tangents[0]))
            elif block == "power_spectrum":
                blocks.append(power_spectrum_forward(lode, tangents[0]))
            elif block == "soap":
                blocks.append(power_spectrum_forward(soap, tangents[1]))
            else:
                blocks.append(power_spectrum_forward(soap, tangents[1], lode, tangents[0]))
        out = np.concatenate(blocks, axis=2)
        if self.center_types is not None:
            species = next(e for e in expansions if e is not None).samples[:, 2]
            out = by_center_type_forward(out, species, self.center_types)
        return out.reshape(out.shape[0], n_atoms, 3, out.shape[2])
