"""The registry of feature kinds: how features are built from expansions, and differentiated.

A feature kind turns one or more expansions of the same centres (its *roles*, e.g. the
density and the potential of rho x V) into per-environment features, and knows its two
derivative passes: the Jacobian-vector product (tangents of the expansions -> tangents of
the features, :mod:`lodekit.features.jvp`) and the vector-Jacobian product (gradient with
respect to the features -> gradient with respect to every expansion's coefficients,
:mod:`lodekit.features.vjp`).

Recipes (:mod:`lodekit.features.recipe`), feature stores, the interatomic potential, the
command line and the experiments all name kinds by their key in :data:`FEATURE_KINDS`; the
tests of forward values, JVP and VJP are parametrised over it. Adding a kind is a subclass of
:class:`FeatureKind` and one line in :data:`FEATURE_KINDS`.

Column layout: :meth:`FeatureKind.columns` gives the features as a 2-D matrix
(n_centres, n_columns); a lambda-equivariant (n_centres, 2 lambda + 1, n_features) is
flattened with m slowest. :meth:`~FeatureKind.jvp` and :meth:`~FeatureKind.vjp` work in
that column layout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from ..errors import InputError, describe
from ..expansion import Expansion
from .equivariants import equivariant_product
from .invariants import lode_nu1, power_spectrum
from .jvp import equivariant_product_forward, lode_nu1_forward, power_spectrum_forward
from .result import Features
from .sparse_jvp import (
    equivariant_product_rows,
    lode_nu1_rows,
    merge_rows,
    power_spectrum_rows,
)
from .vjp import equivariant_product_backward, lode_nu1_backward, power_spectrum_backward

__all__ = [
    "FEATURE_KINDS",
    "REQUIRED",
    "Equivariant",
    "FeatureKind",
    "Nu1",
    "PowerSpectrum",
    "RhoXV",
    "zero_expansion",
]

#: Marks an option without a default.
REQUIRED = object()


class FeatureKind:
    """One way of building features from expansions (subclass it to add a kind).

    Class attributes
    ----------------
    name : str
        Key in :data:`FEATURE_KINDS` and the ``"kind"`` of a recipe block.
    roles : tuple of str
        The expansions the kind takes, in order; a recipe block gives one calculator per role.
    role_calculators : dict
        Role -> the calculator name it must be (absent: any calculator).
    options : dict
        Option name -> default (``REQUIRED`` for options without a default).
    """

    name: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ("expansion",)
    role_calculators: ClassVar[dict] = {}
    options: ClassVar[dict] = {}

    # ---------------------------------------------------------------- options
    def check_options(self, options: dict, calculators=(), where: str = "options") -> dict:
        """``options`` with defaults filled in; :class:`InputError` for unknown or missing
        ones. ``calculators`` (one per role) let a kind check options against them."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InputError(
                f"`{where}` has unknown option(s) {unknown} for kind {self.name!r}; it takes "
                f"{sorted(self.options)}"
            )
        out = {}
        for key, default in self.options.items():
            if key not in options and default is REQUIRED:
                raise InputError(f"`{where}` lacks {key!r}, required by kind {self.name!r}")
            out[key] = options.get(key, default)
        return out

    # ---------------------------------------------------------------- passes
    def forward(self, expansions, **options) -> Features:
        """Features of the expansions (one per role, same centres), as the kind's own
        function returns them (invariants 2-D, equivariants 3-D)."""
        raise NotImplementedError

    def jvp(self, expansions, tangents, **options) -> np.ndarray:
        """Tangents of the columns, (n_centres, n_tangents, n_columns), from the tangents of
        the expansions (per role a list per l of (n_centres, n_tangents, n_species, 2l+1,
        n_radial))."""
        raise NotImplementedError

    def sparse_jvp(self, expansions, tangents, **options) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the position Jacobian of the columns (:mod:`lodekit.features.sparse_jvp`)
        from every role's :class:`~lodekit.features.sparse_jvp.RowTangent`: keys (n_rows, 2)
        (centre, atom) and values (n_rows, 3, n_columns).

        This default goes through :meth:`jvp` with tangents dense over the atoms of the rows
        (a kind without its own sparse pass still works); the built-in kinds override it.
        """
        n_atoms = 1 + max(int(t.keys[:, 1].max(initial=-1)) for t in tangents)
        dense = []
        for expansion, tangent in zip(expansions, tangents, strict=True):
            per_l = []
            for values in tangent.values:
                out = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
                out[tangent.keys[:, 0], tangent.keys[:, 1]] = values
                per_l.append(out.reshape(len(expansion), 3 * n_atoms, *values.shape[2:]))
            dense.append(per_l)
        columns = self.jvp(expansions, dense, **options)
        columns = columns.reshape(len(columns), n_atoms, 3, -1)
        keys = merge_rows([(t.keys, np.zeros((len(t), 1))) for t in tangents])[0]
        return keys, columns[keys[:, 0], keys[:, 1]]

    def vjp(self, expansions, grad, **options) -> list[list[np.ndarray]]:
        """dE/dc of every role's expansion (per role a list per l, shapes of its values) from
        ``grad`` = dE/d(columns), (n_centres, n_columns)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- layout
    def columns(self, features: Features) -> Features:
        """The features as (n_centres, n_columns) with one property row per column."""
        return features

    def properties(self, expansions, **options) -> tuple[np.ndarray, tuple]:
        """Property rows (n_columns, k) and their names, for expansions of this layout
        (e.g. :func:`zero_expansion`)."""
        features = self.columns(self.forward(expansions, **options))
        return features.properties, tuple(features.property_names)

    def __repr__(self) -> str:
        return f"<feature kind {self.name!r}: roles {list(self.roles)}>"


class Nu1(FeatureKind):
    """The l = 0 coefficients (:func:`~lodekit.features.lode_nu1`): n_species x n_radial
    columns; with LODE, a linear model in them is a point-charge model."""

    name = "nu1"

    def forward(self, expansions, **options) -> Features:
        (expansion,) = expansions
        return lode_nu1(expansion)

    def jvp(self, expansions, tangents, **options) -> np.ndarray:
        (expansion,), (tangent,) = expansions, tangents
        return lode_nu1_forward(expansion, tangent)

    def sparse_jvp(self, expansions, tangents, **options):
        (expansion,), (tangent,) = expansions, tangents
        return lode_nu1_rows(expansion, tangent)

    def vjp(self, expansions, grad, **options):
        (expansion,) = expansions
        return [lode_nu1_backward(expansion, grad)]


class PowerSpectrum(FeatureKind):
    """An expansion with itself (:func:`~lodekit.features.power_spectrum` (a)), distinct
    species pairs: SOAP rho x rho for a density expansion, LODE nu = 2 V x V for LODE."""

    name = "power_spectrum"

    def forward(self, expansions, **options) -> Features:
        (expansion,) = expansions
        return power_spectrum(expansion)

    def jvp(self, expansions, tangents, **options) -> np.ndarray:
        (expansion,), (tangent,) = expansions, tangents
        return power_spectrum_forward(expansion, tangent)

    def sparse_jvp(self, expansions, tangents, **options):
        (expansion,), (tangent,) = expansions, tangents
        return power_spectrum_rows(expansion, tangent)

    def vjp(self, expansions, grad, **options):
        (expansion,) = expansions
        return [power_spectrum_backward(grad, expansion)[0]]


class RhoXV(FeatureKind):
    """The multi-scale rho x V: :func:`~lodekit.features.power_spectrum` (density,
    potential), all ordered species pairs."""

    name = "rho_x_v"
    roles = ("density", "potential")
    role_calculators: ClassVar[dict] = {
        "density": "spherical_expansion",
        "potential": "lode_spherical_expansion",
    }

    def forward(self, expansions, **options) -> Features:
        density, potential = expansions
        return power_spectrum(density, potential)

    def jvp(self, expansions, tangents, **options) -> np.ndarray:
        (density, potential), (t_density, t_potential) = expansions, tangents
        return power_spectrum_forward(density, t_density, potential, t_potential)

    def sparse_jvp(self, expansions, tangents, **options):
        (density, potential), (t_density, t_potential) = expansions, tangents
        return power_spectrum_rows(density, t_density, potential, t_potential)

    def vjp(self, expansions, grad, **options):
        density, potential = expansions
        return list(power_spectrum_backward(grad, density, potential))


class Equivariant(FeatureKind):
    """The lambda-equivariant product (:func:`~lodekit.features.equivariant_product` (first,
    second)) of order ``o3_lambda`` and parity ``o3_sigma``; columns (m, l_1, l_2, ...) with m
    slowest. The same calculator in both roles gives the product of an expansion with
    itself."""

    name = "equivariant"
    roles = ("first", "second")
    options: ClassVar[dict] = {"o3_lambda": REQUIRED, "o3_sigma": 1}

    def check_options(self, options: dict, calculators=(), where: str = "options") -> dict:
        out = super().check_options(options, calculators, where)
        top = sum(getattr(c, "max_angular", 0) for c in calculators)
        value = out["o3_lambda"]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"`{where}` o3_lambda is {describe(value)}; expected an integer")
        if calculators and not 0 <= value <= top:
            raise InputError(
                f"`{where}` o3_lambda is {value} but must be between 0 and {top} (the sum of "
                "the two calculators' max_angular)"
            )
        if out["o3_sigma"] not in (1, -1) or isinstance(out["o3_sigma"], bool):
            raise InputError(f"`{where}` o3_sigma is {describe(out['o3_sigma'])}; expected 1 or -1")
        return {"o3_lambda": int(value), "o3_sigma": int(out["o3_sigma"])}

    def forward(self, expansions, *, o3_lambda, o3_sigma=1) -> Features:
        first, second = expansions
        return equivariant_product(first, second, o3_lambda=o3_lambda, o3_sigma=o3_sigma)

    def jvp(self, expansions, tangents, *, o3_lambda, o3_sigma=1) -> np.ndarray:
        (first, second), (t_first, t_second) = expansions, tangents
        out = equivariant_product_forward(
            first, t_first, second, t_second, o3_lambda=o3_lambda, o3_sigma=o3_sigma
        )
        return out.reshape(out.shape[0], out.shape[1], -1)

    def sparse_jvp(self, expansions, tangents, *, o3_lambda, o3_sigma=1):
        (first, second), (t_first, t_second) = expansions, tangents
        return equivariant_product_rows(
            first, t_first, second, t_second, o3_lambda=o3_lambda, o3_sigma=o3_sigma
        )

    def vjp(self, expansions, grad, *, o3_lambda, o3_sigma=1):
        first, second = expansions
        grad = np.asarray(grad, dtype=np.float64)
        grad = grad.reshape(len(grad), 2 * o3_lambda + 1, -1)
        return list(
            equivariant_product_backward(
                grad, first, second, o3_lambda=o3_lambda, o3_sigma=o3_sigma
            )
        )

    def columns(self, features: Features) -> Features:
        n_m = 2 * features.o3_lambda + 1
        mu = np.arange(-features.o3_lambda, features.o3_lambda + 1)
        properties = np.column_stack(
            [np.repeat(mu, len(features.properties)), np.tile(features.properties, (n_m, 1))]
        )
        return replace(
            features,
            values=features.values.reshape(len(features), -1),
            properties=properties.astype(np.int64),
            property_names=("o3_mu", *features.property_names),
        )


#: Every feature kind, by name.
FEATURE_KINDS: dict[str, FeatureKind] = {
    kind.name: kind for kind in (Nu1(), PowerSpectrum(), RhoXV(), Equivariant())
}


def zero_expansion(species, max_angular: int, n_radial: int) -> Expansion:
    """A one-centre expansion of zeros with these channels: the layout of an expansion
    without its numbers, from which a kind's properties follow."""
    species = np.asarray(species, dtype=np.int64)
    return Expansion(
        values=[np.zeros((1, len(species), 2 * l + 1, n_radial)) for l in range(max_angular + 1)],
        samples=np.zeros((1, 3), dtype=np.int64),
        neighbor_types=species,
    )
