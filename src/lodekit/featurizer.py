"""Feature recipes: a calculator and a feature kind, applied with a fixed species list.

A :class:`Featurizer` is what parallel featurisation ships to its workers and what a feature
store or a model file records: one JSON object that names the calculator, its
hyperparameters and the invariant built from the expansion::

    {"calculator": "lode_spherical_expansion", "smearing": 1.0, "max_radial": 6,
     "max_angular": 4, "radius": 5.0, "features": "power_spectrum"}

Why a fixed species list: an :class:`~lodekit.expansion.Expansion` has one neighbour channel
per species present in the structures of *one* ``compute`` call, so two chunks of a dataset
would otherwise get features of different widths. :meth:`Featurizer.compute` places every
channel at its position in the dataset's species list and leaves the channels of absent
species at zero, which is what the calculators give for a species with no atoms.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace

import numpy as np

from .errors import InputError, describe
from .expansion import Expansion, LodeSphericalExpansion, SphericalExpansion
from .features import Features, lode_nu1, power_spectrum
from .systems import as_systems

__all__ = ["CALCULATORS", "DEFAULT_HYPERS", "FEATURE_KINDS", "Featurizer"]

#: Calculators a recipe can name, by their ``"calculator"`` JSON name.
CALCULATORS = {
    LodeSphericalExpansion.name: LodeSphericalExpansion,
    SphericalExpansion.name: SphericalExpansion,
}

#: Invariants a recipe can build from the expansion.
#:
#: - ``"nu1"``: the l = 0 coefficients (:func:`lodekit.features.lode_nu1`), n_species x
#:   (max_radial + 1) columns; with LODE, a linear model in them is a point-charge model.
#: - ``"power_spectrum"``: :func:`lodekit.features.power_spectrum` of the expansion with
#:   itself, distinct species pairs (SOAP for ``spherical_expansion``, LODE nu = 2 "V x V"
#:   for ``lode_spherical_expansion``).
FEATURE_KINDS = ("nu1", "power_spectrum")

#: Used when no hyperparameters are given: featomic-sized LODE (1/r field, 1 Å smearing, 7
#: radial x 5 angular channels in a 5 Å basis) and its power spectrum, the general-purpose
#: rotational invariant (``"nu1"`` only uses l = 0).
DEFAULT_HYPERS = {
    "calculator": "lode_spherical_expansion",
    "smearing": 1.0,
    "max_radial": 6,
    "max_angular": 4,
    "radius": 5.0,
    "features": "power_spectrum",
}


class Featurizer:
    """Per-environment invariant features of structures, with dataset-wide columns.

    Parameters
    ----------
    calculator : LodeSphericalExpansion or SphericalExpansion
    features : {"nu1", "power_spectrum"}
        The invariant computed from the expansion (see :data:`FEATURE_KINDS`).
    """

    def __init__(self, calculator, features: str = "power_spectrum"):
        if not isinstance(calculator, tuple(CALCULATORS.values())):
            raise InputError(
                f"`calculator` is {describe(calculator)}; expected a LodeSphericalExpansion or "
                "a SphericalExpansion"
            )
        if features not in FEATURE_KINDS:
            raise InputError(
                f"`features` is {describe(features)} but must be one of {list(FEATURE_KINDS)}"
            )
        self.calculator = calculator
        self.features = features

    @classmethod
    def from_hypers(cls, hypers=None, *, name: str = "hypers") -> Featurizer:
        """Build a recipe from a dict (or JSON text) as described in the module docstring.

        Parameters
        ----------
        hypers : dict, str or None
            ``"calculator"`` (default ``"lode_spherical_expansion"``), ``"features"`` (default
            ``"power_spectrum"``) and the calculator's hyperparameters (featomic names; the
            ones without a default are required). None gives :data:`DEFAULT_HYPERS`.
        name : str
            How error messages refer to ``hypers`` (the command line passes ``--hypers``).
        """
        if hypers is None:
            hypers = DEFAULT_HYPERS
        if isinstance(hypers, str):
            try:
                hypers = json.loads(hypers)
            except json.JSONDecodeError as err:
                raise InputError(f"`{name}` is not valid JSON: {err}") from None
        if not isinstance(hypers, dict):
            raise InputError(f"`{name}` holds {describe(hypers)}; expected a JSON object")
        data = dict(hypers)
        calculator = data.pop("calculator", LodeSphericalExpansion.name)
        if calculator not in CALCULATORS:
            raise InputError(
                f"`{name}` has calculator {describe(calculator)}; expected one of "
                f"{list(CALCULATORS)}"
            )
        features = data.pop("features", "power_spectrum")
        if features not in FEATURE_KINDS:
            raise InputError(
                f"`{name}` has features {describe(features)}; expected one of {list(FEATURE_KINDS)}"
            )
        cls_ = CALCULATORS[calculator]
        parameters = inspect.signature(cls_.__init__).parameters
        allowed = [p for p in parameters if p != "self"]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise InputError(
                f"`{name}` has unknown key(s) {unknown}; {calculator} takes {allowed}, plus "
                "'calculator' and 'features'"
            )
        required = [p for p in allowed if parameters[p].default is inspect.Parameter.empty]
        missing = [p for p in required if p not in data]
        if missing:
            raise InputError(f"`{name}` lacks {missing}, required by {calculator}")
        try:
            instance = cls_(**data)
        except InputError as err:
            raise InputError(f"`{name}`: {err}") from None
        return cls(instance, features)

    def hypers(self) -> dict:
        """The full recipe (every calculator hyperparameter, defaults included) as a dict."""
        return {
            "calculator": self.calculator.name,
            **self.calculator.get_hypers(),
            "features": self.features,
        }

    def to_json(self) -> str:
        return json.dumps(self.hypers())

    def __repr__(self) -> str:
        return f"Featurizer({self.calculator!r}, features={self.features!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Featurizer) and self.hypers() == other.hypers()

    __hash__ = None

    # ------------------------------------------------------------------------------------
    def _invariant(self, expansion: Expansion) -> Features:
        if self.features == "nu1":
            return lode_nu1(expansion)
        return power_spectrum(expansion)

    def properties(self, species) -> tuple[np.ndarray, tuple]:
        """Property rows (n_features, k) and their names for this species list.

        Computed by applying the invariant to a one-row expansion of zeros, so that the
        columns are by construction those of :meth:`compute`.
        """
        species = as_species(species)
        n_radial = self.calculator.max_radial + 1
        zeros = Expansion(
            values=[
                np.zeros((1, len(species), 2 * l + 1, n_radial))
                for l in range(self.calculator.max_angular + 1)
            ],
            samples=np.zeros((1, 3), dtype=np.int64),
            neighbor_types=species,
        )
        features = self._invariant(zeros)
        return features.properties, tuple(features.property_names)

    def compute(self, structures, species, *, first_system: int = 0, n_threads=None) -> Features:
        """Features of every atom of ``structures``, columns set by ``species``.

        Parameters
        ----------
        structures : ase.Atoms, lodekit.System, or a list of them
        species : sequence of int
            Atomic numbers of the neighbour channels, sorted, a superset of the species
            present (e.g. all species of the dataset).
        first_system : int
            Added to the ``system`` sample column: the index of ``structures[0]`` in the
            dataset.
        n_threads : int, optional
            Passed to the calculator's ``compute``.

        Returns
        -------
        Features
            values (n_atoms, n_features), float64, in the units of the expansion
            coefficients (products of them for the power spectrum); samples (system, atom,
            center_type); metadata ``{"kind", "hypers", "species"}``.
        """
        species = as_species(species)
        systems = as_systems(structures)
        present = np.unique(np.concatenate([s.numbers for s in systems]))
        extra = np.setdiff1d(present, species)
        if len(extra):
            raise InputError(
                f"`structures` contain species {extra.tolist()} that are not in `species` "
                f"{species.tolist()}"
            )
        expansion = self.calculator.compute(systems, n_threads=n_threads)
        features = self._invariant(_with_species(expansion, species))
        samples = features.samples.copy()
        samples[:, 0] += first_system
        return replace(
            features,
            samples=samples,
            metadata={
                "kind": self.features,
                "hypers": self.hypers(),
                "species": species.tolist(),
            },
        )


def as_species(species) -> np.ndarray:
    """``species`` checked as a non-empty, sorted list of distinct atomic numbers (int64)."""
    array = np.asarray(species)
    if (
        array.ndim != 1
        or len(array) == 0
        or not np.issubdtype(array.dtype, np.integer)
        or np.any(np.diff(array) <= 0)
        or array.min() < 1
    ):
        raise InputError(
            f"`species` is {describe(species)}; expected a non-empty, sorted list of distinct "
            "atomic numbers"
        )
    return array.astype(np.int64)


def _with_species(expansion: Expansion, species: np.ndarray) -> Expansion:
    """The same expansion with one channel per entry of ``species`` (zeros where absent)."""
    if np.array_equal(expansion.neighbor_types, species):
        return expansion
    where = np.searchsorted(species, expansion.neighbor_types)
    values = []
    for block in expansion.values:
        out = np.zeros((block.shape[0], len(species), *block.shape[2:]))
        out[:, where] = block
        values.append(out)
    has_neighbors = None
    if expansion.has_neighbors is not None:
        has_neighbors = np.zeros((len(expansion), len(species)), dtype=bool)
        has_neighbors[:, where] = expansion.has_neighbors
    return replace(expansion, values=values, neighbor_types=species, has_neighbors=has_neighbors)
