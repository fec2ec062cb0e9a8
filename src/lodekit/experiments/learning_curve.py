"""Learning curves: features once per model, fits on growing training sets, one test set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..features.recipe import Recipe

__all__ = ["ModelSpec", "percent_rmse", "recipe_featurize", "run_learning_curves"]


@dataclass
class ModelSpec:
    """One model of an experiment.

    featurize : frames -> (X (n_env, n_features), groups (n_env,), species (n_env,))
    make_model : () -> a lodekit estimator taking (X, y, groups, species)
    recipe : the Recipe ``featurize`` computes (see :meth:`from_recipe`)
    """

    name: str
    label: str
    featurize: Callable
    make_model: Callable
    recipe: Recipe | None = None

    @classmethod
    def from_recipe(cls, name: str, label: str, recipe: Recipe, make_model) -> ModelSpec:
        """A model whose features are those of ``recipe``."""
        return cls(name, label, recipe_featurize(recipe), make_model, recipe)


def recipe_featurize(recipe: Recipe) -> Callable:
    """frames -> (X, groups, species) of :meth:`Recipe.compute` (species: those present)."""

    def featurize(frames):
        features = recipe.compute(frames)
        return features.values, features.samples[:, 0], features.samples[:, 2]

    return featurize


def percent_rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(100 * np.sqrt(np.mean((prediction - truth) ** 2)) / np.std(truth))


def _subset(x, groups, species, structures):
    """Rows of the given structures, with groups renumbered 0..len(structures)-1."""
    position = np.full(groups.max() + 1, -1)
    position[structures] = np.arange(len(structures))
    rows = position[groups] >= 0
    return x[rows], position[groups[rows]], species[rows]


def used_frames(test, train_sets):
    """The frames a learning curve uses, and the splits as positions among them.

    Featurising only these frames saves time and memory when a data set holds more frames than
    the splits need (e.g. quick modes). Returns (used, test, train_sets): ``used`` the sorted
    frame indices of ``test`` and of every training set, the other two the same splits
    counted within ``used`` (order kept).
    """
    used = np.union1d(test, np.concatenate(list(train_sets.values())))
    return (
        used,
        np.searchsorted(used, test),
        {n: np.searchsorted(used, train) for n, train in train_sets.items()},
    )


def run_learning_curves(
    specs,
    frames,
    targets,
    train_sets,
    test,
    *,
    progress=None,
    keep=(),
    cv_groups=None,
    transform=None,
):
    """% RMSE of every model for every training set.

    ``train_sets`` maps a training-set size (the x axis: structures, dimers...) to structure
    indices. ``transform(values, structures)``, when given, maps model outputs to the
    reported quantity before the error is measured (e.g. a polarizability back to a
    dielectric constant). Returns (metrics[model][size], predictions[model] on ``test`` for
    the largest training set, for the models named in ``keep``).
    """
    metrics, predictions = {}, {}
    targets = np.asarray(targets)
    bar = progress(total=len(specs) * len(train_sets)) if progress else None
    for spec in specs:
        if bar:
            bar.set_postfix_str(f"featurising {spec.name}")
        x, groups, species = spec.featurize(frames)
        metrics[spec.name] = {}
        x_test, g_test, s_test = _subset(x, groups, species, test)
        for n, train in sorted(train_sets.items()):
            x_tr, g_tr, s_tr = _subset(x, groups, species, train)
            model = spec.make_model()
            if cv_groups is None:
                model.fit(x_tr, targets[train], g_tr, s_tr)
            else:
                model.fit(x_tr, targets[train], g_tr, s_tr, cv_groups=cv_groups[train])
            prediction = model.predict(x_test, g_test, s_test)
            truth = targets[test]
            if transform is not None:
                prediction, truth = transform(prediction, test), transform(truth, test)
            metrics[spec.name][n] = percent_rmse(prediction, truth)
            if spec.name in keep:
                predictions[spec.name] = prediction
            if bar:
                bar.set_postfix_str(f"{spec.name} n={n}: {metrics[spec.name][n]:.3g} %")
                bar.update()
        del x
    if bar:
        bar.close()
    return metrics, predictions
