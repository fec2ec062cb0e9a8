"""Recipes: which features to compute, as one JSON object of feature blocks.

A recipe is what a feature store, a model file, the interatomic potential, the command line
and the experiments record and rebuild their features from::

    {"blocks": [
        {"kind": "power_spectrum",
         "expansion": {"calculator": "spherical_expansion", "cutoff": 3.0, "smearing": 0.3,
                       "max_radial": 3, "max_angular": 3}},
        {"kind": "nu1", "center_types": [11, 17],
         "expansion": {"calculator": "lode_spherical_expansion", "smearing": 1.0,
                       "max_radial": 3, "max_angular": 0, "radius": 3.0}}
    ]}

Every block names a kind of :data:`~lodekit.features.kinds.FEATURE_KINDS`, one calculator
(a name of :data:`lodekit.expansion.registry.CALCULATORS` and its hyperparameters) per role
of the kind, the kind's options (e.g. ``o3_lambda``) and optionally ``center_types``: the
block's columns are then split into one copy per centre species
(:meth:`~lodekit.features.Features.by_center_type`), the others of the recipe are not. The
columns of a recipe are those of its blocks, in order; blocks sharing a calculator (same
name and hyperparameters) share its expansion, computed once.

Why a fixed species list: an expansion has one neighbour channel per species present in the
structures of *one* ``compute`` call, so two chunks of a dataset would otherwise get features
of different widths. :meth:`Recipe.compute` places every channel at its position in the given
species list and leaves the channels of absent species at zero, which is what the
calculators give for a species with no atoms.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError, describe
from ..expansion import Expansion
from ..expansion.registry import CALCULATORS
from ..systems import as_systems
from .channels import channel_places
from .kinds import FEATURE_KINDS, FeatureKind, zero_expansion
from .result import Features

__all__ = ["DEFAULT_RECIPE", "Block", "Expanded", "Recipe", "as_species"]

#: Used when no recipe is given: featomic-sized LODE (1/r field, 1 Å smearing, 7 radial x 5
#: angular channels in a 5 Å basis) and its power spectrum, the general-purpose rotational
#: invariant (``"nu1"`` only uses l = 0).
DEFAULT_RECIPE = {
    "blocks": [
        {
            "kind": "power_spectrum",
            "expansion": {
                "calculator": "lode_spherical_expansion",
                "smearing": 1.0,
                "max_radial": 6,
                "max_angular": 4,
                "radius": 5.0,
            },
        }
    ]
}


@dataclass(frozen=True, eq=False)
class Block:
    """One feature block: a kind, its calculators (one per role), options, centre split.

    Attributes
    ----------
    kind : FeatureKind
    calculators : tuple
        One calculator instance per ``kind.roles``.
    options : dict
        The kind's options, defaults filled in.
    center_types : tuple of int or None
        Split the block's columns by centre species (sorted atomic numbers).
    """

    kind: FeatureKind
    calculators: tuple
    options: dict
    center_types: tuple | None = None

    def to_dict(self) -> dict:
        out = {"kind": self.kind.name}
        for role, calculator in zip(self.kind.roles, self.calculators, strict=True):
            out[role] = _calculator_dict(calculator)
        out.update(self.options)
        if self.center_types is not None:
            out["center_types"] = list(self.center_types)
        return out


@dataclass(frozen=True, eq=False)
class Expanded:
    """The expansions of a recipe's distinct calculators for some structures.

    Attributes
    ----------
    systems : list of System
    species : ndarray of int64
        The neighbour channels of every expansion below.
    expansions : list of Expansion
        One per :attr:`Recipe.calculators`, channels ``species``.
    neighbor_types : list of ndarray
        The channels each calculator itself returned (a subset of ``species``): where the
        upstream gradients of :meth:`Recipe.vjp` go.
    exponents : list of (ndarray or None), or None
        The exponent of each of those channels, for a LODE calculator with several exponents
        (whose channels are (exponent, species) pairs, widened to ``species`` per exponent);
        None entries (or None) for the others.
    calculator_systems : list of (list of System), or None
        Per calculator, the Systems it expanded (see :meth:`systems_of`).
    """

    systems: list
    species: np.ndarray
    expansions: list
    neighbor_types: list
    exponents: list | None = None
    calculator_systems: list | None = None

    def systems_of(self, index: int) -> list:
        """The Systems calculator ``index`` expanded: :attr:`systems`, or with the per-atom
        weights its ``weights`` option names."""
        if self.calculator_systems is None:
            return self.systems
        return self.calculator_systems[index]

    def own_exponents(self) -> list:
        """:attr:`exponents`, one entry per calculator."""
        return self.exponents or [None] * len(self.neighbor_types)


class Recipe:
    """Per-environment features of structures from blocks of feature kinds.

    Parameters
    ----------
    blocks : sequence of Block
        Build them from JSON with :meth:`from_dict` / :meth:`from_json` / :meth:`load`.
    description : str, optional
        Free text kept with the recipe.
    """

    def __init__(self, blocks, description: str | None = None):
        blocks = tuple(blocks)
        if not blocks or not all(isinstance(b, Block) for b in blocks):
            raise InputError(f"`blocks` is {describe(blocks)}; expected a non-empty list of Block")
        self.blocks = blocks
        self.description = description
        self._widths: dict = {}
        keys, self.calculators, self._uses = {}, [], []
        for block in blocks:
            uses = []
            for calculator in block.calculators:
                key = calculator.to_json()
                if key not in keys:
                    keys[key] = len(self.calculators)
                    self.calculators.append(calculator)
                uses.append(keys[key])
            self._uses.append(tuple(uses))

    # ---------------------------------------------------------------- JSON
    @classmethod
    def from_dict(cls, data, *, name: str = "recipe") -> Recipe:
        """Build a recipe from its JSON object (see the module docstring).

        Unknown keys, unknown kinds or calculators, missing required hyperparameters and
        invalid values raise one :class:`InputError` naming the key, the value and the rule;
        ``name`` is how messages call ``data`` (the command line passes ``--recipe FILE``).
        """
        if not isinstance(data, dict):
            raise InputError(f"`{name}` holds {describe(data)}; expected a JSON object")
        unknown = sorted(set(data) - {"blocks", "description"})
        if unknown or "blocks" not in data:
            raise InputError(
                f"`{name}` has key(s) {sorted(data)}; a recipe is "
                '{"blocks": [{"kind": ..., ...}, ...]} with an optional "description"'
            )
        blocks = data["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise InputError(f"`{name}.blocks` is {describe(blocks)}; expected a non-empty list")
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise InputError(f"`{name}.description` is {describe(description)}; expected text")
        parsed = [_block(block, f"{name}.blocks[{i}]") for i, block in enumerate(blocks)]
        return cls(parsed, description)

    @classmethod
    def from_json(cls, text: str, *, name: str = "recipe") -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"`{name}` is not valid JSON: {err}") from None
        return cls.from_dict(data, name=name)

    @classmethod
    def load(cls, path) -> Recipe:
        """The recipe of a JSON file (messages name the file)."""
        name = f"recipe file {str(path)!r}"
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise InputError(f"`{name}` cannot be read: {err.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"`{name}` is not a text (JSON) file") from None
        return cls.from_json(text, name=name)

    @classmethod
    def coerce(cls, recipe=None, *, name: str = "recipe") -> Recipe:
        """``recipe`` as a Recipe: a Recipe, its dict or JSON text, or None (the default)."""
        if recipe is None:
            return cls.from_dict(DEFAULT_RECIPE)
        if isinstance(recipe, Recipe):
            return recipe
        if isinstance(recipe, str):
            return cls.from_json(recipe, name=name)
        return cls.from_dict(recipe, name=name)

    def to_dict(self) -> dict:
        """The full recipe (every hyperparameter, defaults included); round-trips."""
        out = {"blocks": [block.to_dict() for block in self.blocks]}
        if self.description is not None:
            out["description"] = self.description
        return out

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self) -> str:
        kinds = ", ".join(block.kind.name for block in self.blocks)
        return f"Recipe([{kinds}], {len(self.calculators)} calculator(s))"

    @property
    def weight_arrays(self) -> tuple:
        """The ase per-atom arrays the calculators' ``weights`` options name (sorted,
        distinct; empty when no calculator is weighted): what every ase structure given to
        :meth:`compute` must carry, and what a feature store fingerprints with it."""
        names = {getattr(c, "weights", None) for c in self.calculators}
        return tuple(sorted(n for n in names if n is not None))

    # ---------------------------------------------------------------- layout
    def _block_properties(self, index: int, species) -> Features:
        block = self.blocks[index]
        zeros = [_zero_channels(c, species) for c in block.calculators]
        features = block.kind.columns(block.kind.forward(zeros, **block.options))
        if block.center_types is not None:
            samples = np.array([[0, 0, block.center_types[0]]], dtype=np.int64)
            features = replace(features, samples=samples).by_center_type(block.center_types)
        return features

    def widths(self, species) -> list[int]:
        """Columns of every block for this species list."""
        species = as_species(species)
        key = tuple(species.tolist())
        # asked once per backward pass (a potential's force evaluation): remembered
        if key not in self._widths:
            self._widths[key] = [
                self._block_properties(i, species).n_features for i in range(len(self.blocks))
            ]
        return list(self._widths[key])

    def properties(self, species) -> tuple[np.ndarray, tuple]:
        """Property rows (n_columns, k) and their names for this species list.

        One block: the kind's own properties (with a leading ``center_type`` when split).
        Several: a leading ``block`` column (the block's index), then the union of the
        blocks' property names, -1 where a block has no such property.
        """
        species = as_species(species)
        blocks = [self._block_properties(i, species) for i in range(len(self.blocks))]
        if len(blocks) == 1:
            return blocks[0].properties, tuple(blocks[0].property_names)
        names = []
        for features in blocks:
            names += [n for n in features.property_names if n not in names]
        rows = []
        for index, features in enumerate(blocks):
            out = np.full((features.n_features, 1 + len(names)), -1, dtype=np.int64)
            out[:, 0] = index
            for column, n in enumerate(features.property_names):
                out[:, 1 + names.index(n)] = features.properties[:, column]
            rows.append(out)
        return np.concatenate(rows), ("block", *names)

    # ---------------------------------------------------------------- forward
    def expand(self, structures, species=None, *, gradients=None, n_threads=None) -> Expanded:
        """Expansions of every distinct calculator, channels placed by ``species``.

        Parameters
        ----------
        structures : ase.Atoms, lodekit.System, or a list of them
        species : sequence of int, optional
            Sorted atomic numbers of the neighbour channels, a superset of the species
            present (default: those present).
        gradients : list of str, optional
            Passed to the calculators' ``compute`` (e.g. ``["positions"]``).
        n_threads : int, optional
            Passed to the calculators' ``compute``.
        """
        systems = as_systems(structures)
        present = np.unique(np.concatenate([s.numbers for s in systems])).astype(np.int64)
        species = present if species is None else as_species(species)
        extra = np.setdiff1d(present, species)
        if len(extra):
            raise InputError(
                f"`structures` contain species {extra.tolist()} that are not in `species` "
                f"{species.tolist()}"
            )
        expansions, types, exponents, inputs = [], [], [], []
        for calculator in self.calculators:
            options = {"n_threads": n_threads}
            if gradients:
                options["gradients"] = gradients
            # a calculator that reads per-atom weights from an ase array gets its own Systems
            # (a System keeps its own weights)
            weights = getattr(calculator, "weights", None)
            own = systems if weights is None else as_systems(structures, weights=weights)
            expansion = calculator.compute(own, **options)
            types.append(expansion.neighbor_types)
            exponents.append(expansion.exponents)
            expansions.append(_with_species(expansion, species))
            inputs.append(own)
        return Expanded(systems, species, expansions, types, exponents, inputs)

    def _inputs(self, index: int, expanded: Expanded) -> list[Expansion]:
        return [expanded.expansions[i] for i in self._uses[index]]

    def forward(self, expanded: Expanded) -> Features:
        """Features (n_centres, n_columns) of expansions from :meth:`expand`: the blocks'
        columns concatenated in order; samples (system, atom, center_type)."""
        values = []
        samples = expanded.expansions[0].samples
        for index, block in enumerate(self.blocks):
            features = block.kind.forward(self._inputs(index, expanded), **block.options)
            features = block.kind.columns(features)
            if block.center_types is not None:
                _check_centers(samples[:, 2], block.center_types, index)
                features = features.by_center_type(block.center_types)
            values.append(features)
        properties, names = self.properties(expanded.species)
        return Features(
            values=values[0].values if len(values) == 1 else np.hstack([f.values for f in values]),
            samples=samples.copy(),
            properties=properties,
            property_names=names,
            metadata={"recipe": self.to_dict(), "species": expanded.species.tolist()},
        )

    def compute(self, structures, species=None, *, first_system: int = 0, n_threads=None):
        """Features of every atom of ``structures``, columns set by ``species``.

        Parameters
        ----------
        structures : ase.Atoms, lodekit.System, or a list of them
        species : sequence of int, optional
            Atomic numbers of the neighbour channels, sorted, a superset of the species
            present (e.g. all species of the dataset); default: the species present.
        first_system : int
            Added to the ``system`` sample column: the index of ``structures[0]`` in the
            dataset.
        n_threads : int, optional
            Passed to the calculators' ``compute``.

        Returns
        -------
        Features
            values (n_atoms, n_columns), float64, in the units of the expansion coefficients
            (products of them for the products); samples (system, atom, center_type);
            metadata ``{"recipe", "species"}``.
        """
        features = self.forward(self.expand(structures, species, n_threads=n_threads))
        if first_system:
            samples = features.samples.copy()
            samples[:, 0] += first_system
            features = replace(features, samples=samples)
        return features

    # ---------------------------------------------------------------- derivatives
    def _split(self, columns: np.ndarray, widths: list[int]):
        start = 0
        for width in widths:
            yield columns[..., start : start + width]
            start += width

    def vjp(self, expanded: Expanded, grad) -> list[list[np.ndarray] | None]:
        """dE/dc of every distinct calculator's expansion from dE/d(columns).

        Parameters
        ----------
        grad : ndarray, shape (n_centres, n_columns)

        Returns
        -------
        list, one per :attr:`calculators`: per l, arrays (n_centres, n_species, 2l+1, n_radial)
        with the calculator's own channels (``expanded.neighbor_types``), ready for its
        ``vector_jacobian_product``; None for a calculator no column depends on.
        """
        from .vjp import by_center_type_backward

        grad = np.asarray(grad, dtype=np.float64)
        center = expanded.expansions[0].samples[:, 2]
        widths = self.widths(expanded.species)
        if grad.shape != (len(center), sum(widths)):
            raise InputError(
                f"`grad` has shape {grad.shape}; expected ({len(center)}, {sum(widths)})"
            )
        upstream = [None] * len(self.calculators)
        for index, g in enumerate(self._split(grad, widths)):
            block = self.blocks[index]
            if block.center_types is not None:
                n = g.shape[1] // len(block.center_types)
                g = by_center_type_backward(g, center, block.center_types, n)
            inputs = self._inputs(index, expanded)
            parts = block.kind.vjp(inputs, g, **block.options)
            for which, part in zip(self._uses[index], parts, strict=True):
                if upstream[which] is None:
                    upstream[which] = [p.copy() for p in part]
                else:
                    upstream[which] = [u + p for u, p in zip(upstream[which], part, strict=True)]
        return [
            None if up is None else _own_channels(up, expanded.species, types, exponents)
            for up, types, exponents in zip(
                upstream, expanded.neighbor_types, expanded.own_exponents(), strict=True
            )
        ]

    def jvp(self, expanded: Expanded, tangents) -> np.ndarray:
        """Tangents of the columns from tangents of every distinct calculator's expansion.

        Parameters
        ----------
        tangents : list, one per :attr:`calculators`
            Per l, (n_centres, n_tangents, n_own_species, 2l+1, n_radial), the calculator's
            own channels (``expanded.neighbor_types``).

        Returns
        -------
        ndarray, shape (n_centres, n_tangents, n_columns)
        """
        from .jvp import by_center_type_forward

        padded = [
            _tangent_with_species(t, types, expanded.species, exponents)
            for t, types, exponents in zip(
                tangents, expanded.neighbor_types, expanded.own_exponents(), strict=True
            )
        ]
        center = expanded.expansions[0].samples[:, 2]
        out = []
        for index, block in enumerate(self.blocks):
            inputs = self._inputs(index, expanded)
            tangent = block.kind.jvp(
                inputs, [padded[i] for i in self._uses[index]], **block.options
            )
            if block.center_types is not None:
                tangent = by_center_type_forward(tangent, center, block.center_types)
            out.append(tangent)
        return np.concatenate(out, axis=2)

    def sparse_jvp(self, expanded: Expanded) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the position Jacobian of the columns: the chain rule on the expansions'
        sparse Jacobians (:mod:`lodekit.features.sparse_jvp`), per block on the rows of the
        expansions it uses, then side by side on the union of the rows.

        ``expanded`` must come from :meth:`expand` with ``gradients`` including
        ``"positions"``.

        Returns
        -------
        keys : ndarray of int64, shape (n_rows, 2)
            (centre row, atom) pairs with a possibly non-zero derivative, distinct.
        values : ndarray, shape (n_rows, 3, n_columns)
            d x[centre, column] / d r[atom, xyz] (column units per Å).
        """
        from .sparse_jvp import by_center_type_rows, place_columns, row_tangent

        tangents = [
            row_tangent(expansion, expanded.species, own, exponents)
            for expansion, own, exponents in zip(
                expanded.expansions,
                expanded.neighbor_types,
                expanded.own_exponents(),
                strict=True,
            )
        ]
        center = expanded.expansions[0].samples[:, 2]
        parts = []
        for index, block in enumerate(self.blocks):
            inputs = self._inputs(index, expanded)
            keys, values = block.kind.sparse_jvp(
                inputs, [tangents[i] for i in self._uses[index]], **block.options
            )
            if block.center_types is not None:
                values = by_center_type_rows(values, center[keys[:, 0]], block.center_types)
            parts.append((keys, values))
        return place_columns(parts, [values.shape[2] for _, values in parts])

    def live_columns(self, species, center_species) -> np.ndarray:
        """Columns that can be non-zero for centres of ``center_species`` (bool, n_columns):
        the split blocks' copies of absent centre species are zero, and so are their
        derivatives."""
        live = []
        for index, width in enumerate(self.widths(species)):
            types = self.blocks[index].center_types
            if types is None:
                live.append(np.ones(width, dtype=bool))
            else:
                live.append(np.repeat(np.isin(types, center_species), width // len(types)))
        return np.concatenate(live)


# -------------------------------------------------------------------- parsing
def _block(data, where: str) -> Block:
    if not isinstance(data, dict):
        raise InputError(f"`{where}` is {describe(data)}; expected a JSON object")
    kind_name = data.get("kind")
    if kind_name not in FEATURE_KINDS:
        raise InputError(
            f"`{where}.kind` is {describe(kind_name)}; expected one of {list(FEATURE_KINDS)}"
        )
    kind = FEATURE_KINDS[kind_name]
    allowed = {"kind", "center_types", *kind.roles, *kind.options}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(
            f"`{where}` has unknown key(s) {unknown}; kind {kind_name!r} takes {sorted(allowed)}"
        )
    calculators = []
    for role in kind.roles:
        if role not in data:
            raise InputError(
                f"`{where}` lacks {role!r}: kind {kind_name!r} needs a calculator for each of "
                f"{list(kind.roles)}"
            )
        calculator = _calculator(data[role], f"{where}.{role}")
        required = kind.role_calculators.get(role)
        if required is not None and calculator.name != required:
            raise InputError(
                f"`{where}.{role}.calculator` is {calculator.name!r}; kind {kind_name!r} needs "
                f"{required!r} there"
            )
        calculators.append(calculator)
    options = {k: data[k] for k in kind.options if k in data}
    options = kind.check_options(options, calculators, where)
    center_types = None
    if "center_types" in data:
        center_types = tuple(
            as_species(data["center_types"], name=f"{where}.center_types").tolist()
        )
    return Block(kind, tuple(calculators), options, center_types)


def _calculator(data, where: str):
    """A calculator of :data:`CALCULATORS` from ``{"calculator": name, **hypers}``; its
    hyperparameters are whatever its constructor takes."""
    if not isinstance(data, dict):
        raise InputError(
            f"`{where}` is {describe(data)}; expected a JSON object with a 'calculator' name and "
            "its hyperparameters"
        )
    data = dict(data)
    name = data.pop("calculator", None)
    if name not in CALCULATORS:
        raise InputError(
            f"`{where}.calculator` is {describe(name)}; expected one of {list(CALCULATORS)}"
        )
    cls = CALCULATORS[name]
    parameters = inspect.signature(cls.__init__).parameters
    allowed = [
        p
        for p, parameter in parameters.items()
        if p != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InputError(f"`{where}` has unknown key(s) {unknown}; {name} takes {allowed}")
    missing = [
        p for p in allowed if parameters[p].default is inspect.Parameter.empty and p not in data
    ]
    if missing:
        raise InputError(f"`{where}` lacks {missing}, required by {name}")
    try:
        return cls(**data)
    except InputError as err:
        raise InputError(f"`{where}`: {err}") from None
    except TypeError as err:
        raise InputError(f"`{where}`: {err}") from None


def _calculator_dict(calculator) -> dict:
    return {"calculator": calculator.name, **calculator.get_hypers()}


# -------------------------------------------------------------------- species channels
def as_species(species, *, name: str = "species") -> np.ndarray:
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
            f"`{name}` is {describe(species)}; expected a non-empty, sorted list of distinct "
            "atomic numbers"
        )
    return array.astype(np.int64)


def _check_centers(centers: np.ndarray, center_types, index: int) -> None:
    outside = np.setdiff1d(centers, center_types)
    if len(outside):
        raise InputError(
            f"`structures` have centre species {outside.tolist()} outside the center_types "
            f"{list(center_types)} of recipe block {index}"
        )


def _zero_channels(calculator, species) -> Expansion:
    """:func:`zero_expansion` with ``calculator``'s channels for ``species``."""
    labels = getattr(calculator, "_channel_labels", None)
    types, exponents = (species, None) if labels is None else labels(np.asarray(species))
    zeros = zero_expansion(types, calculator.max_angular, calculator.max_radial + 1)
    return zeros if exponents is None else replace(zeros, exponents=exponents)


def _with_species(expansion: Expansion, species: np.ndarray) -> Expansion:
    """The same expansion with one channel per entry of ``species`` (per exponent and entry,
    for several LODE exponents; zeros where absent)."""
    where, n_channels = channel_places(species, expansion.neighbor_types, expansion.exponents)
    if where is None:
        return expansion
    exponents = None
    if expansion.exponents is not None:
        order = np.array(list(dict.fromkeys(expansion.exponents.tolist())), dtype=np.int64)
        exponents = np.repeat(order, len(species))
        species = np.tile(species, len(order))
    values = []
    for block in expansion.values:
        out = np.zeros((block.shape[0], n_channels, *block.shape[2:]))
        out[:, where] = block
        values.append(out)
    has_neighbors = None
    if expansion.has_neighbors is not None:
        has_neighbors = np.zeros((len(expansion), n_channels), dtype=bool)
        has_neighbors[:, where] = expansion.has_neighbors
    return replace(
        expansion,
        values=values,
        neighbor_types=species,
        has_neighbors=has_neighbors,
        exponents=exponents,
    )


def _tangent_with_species(tangent, types, species, exponents=None) -> list[np.ndarray]:
    """Per-l tangents (n, t, len(types), 2l+1, n_radial) widened to the ``species`` channels."""
    where, n_channels = channel_places(species, types, exponents)
    if where is None:
        return tangent
    out = []
    for t in tangent:
        wide = np.zeros((t.shape[0], t.shape[1], n_channels, *t.shape[3:]))
        wide[:, :, where] = t
        out.append(wide)
    return out


def _own_channels(upstream, species, types, exponents=None) -> list[np.ndarray]:
    """Per-l gradients with the ``species`` channels cut to the calculator's own ``types``."""
    where, _ = channel_places(species, types, exponents)
    if where is None:
        return upstream
    return [u[:, where] for u in upstream]
