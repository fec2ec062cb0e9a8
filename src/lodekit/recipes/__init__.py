"""Recipes shipped with lodekit: the feature recipes of the paper's models.

``lodekit reproduce`` builds every model of the three experiments from these files
(``paper/<experiment>/<model>.json``); copy one as a starting point for ``lodekit featurize
--recipe FILE``. :func:`paper_recipe_path` says where a file is installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..features.recipe import Recipe

__all__ = ["paper_recipe", "paper_recipe_path", "paper_recipes"]


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
