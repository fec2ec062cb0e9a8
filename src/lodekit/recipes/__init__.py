"""Recipes shipped with lodekit: the feature recipes of the paper's models, and the presets of
``lodekit train``.

``lodekit reproduce`` builds every model of the three experiments from these files
(``paper/<experiment>/<model>.json``); copy one as a starting point for ``lodekit featurize
--recipe FILE``. :func:`paper_recipe_path` says where a file is installed.

Potential presets (``potentials/<name>.json``, :func:`potential_preset`): a SOAP baseline and
SOAP + LODE nu = 1 for molecules, periodic ionic and periodic aqueous systems. A block whose
``center_types`` is ``"species"`` is split by every centre species of the training set, filled
in when the preset is used.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..features.recipe import Recipe

__all__ = [
    "paper_recipe",
    "paper_recipe_path",
    "paper_recipes",
    "potential_preset",
    "potential_presets",
]


def _folder():
    return resources.files(__name__) / "paper"


def paper_recipes() -> dict[str, list[str]]:
    """Experiment -> names of its shipped recipes (sorted)."""
    return {
        folder.name: sorted(
            p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json")
        )
        for folder in sorted(_folder().iterdir(), key=lambda f: f.name)
        if folder.is_dir() and not folder.name.startswith("_")
    }


def paper_recipe_path(experiment: str, model: str) -> Path:
    """The installed JSON file of ``model`` of ``experiment`` (e.g. "dimers", "soap_lode1")."""
    known = paper_recipes()
    if experiment not in known or model not in known[experiment]:
        raise InputError(
            f"`model` {experiment}/{model} is not a shipped recipe; choose one of "
            f"{[f'{e}/{m}' for e, names in known.items() for m in names]}"
        )
    return Path(str(_folder() / experiment / f"{model}.json"))


def paper_recipe(experiment: str, model: str) -> Recipe:
    """The :class:`~lodekit.features.recipe.Recipe` of a shipped paper model."""
    return Recipe.load(paper_recipe_path(experiment, model))


def potential_presets() -> dict[str, str]:
    """Name -> description of every preset of ``lodekit train``."""
    folder = resources.files(__name__) / "potentials"
    out = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".json"):
            out[path.name[: -len(".json")]] = json.loads(path.read_text())["description"]
    return out


def potential_preset(name: str, species) -> Recipe:
    """The recipe of preset ``name`` for a training set of these ``species`` (sorted atomic
    numbers): blocks marked ``"center_types": "species"`` are split by them."""
    known = potential_presets()
    if name not in known:
        raise InputError(f"`preset` {name!r} is not a preset; choose one of {sorted(known)}")
    path = resources.files(__name__) / "potentials" / f"{name}.json"
    data = json.loads(path.read_text())
    for block in data["blocks"]:
        if block.get("center_types") == "species":
            block["center_types"] = [int(z) for z in species]
    return Recipe.from_dict(data, name=f"preset {name}")
