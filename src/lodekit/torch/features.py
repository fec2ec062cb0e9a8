"""Feature kinds as ``torch.autograd.Function``\\ s: coefficient tensors -> feature columns.

Forward: the kind's own numpy code (:data:`lodekit.features.kinds.FEATURE_KINDS`), columns as
:meth:`~lodekit.features.kinds.FeatureKind.columns` lays them out (the columns of a recipe
block without a centre split). Backward: the kind's :meth:`~FeatureKind.vjp`. Coefficients
are in the layout of :func:`lodekit.torch.expansion` (n_centres, n_species, (L+1)^2, n_radial).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..errors import InputError, describe
from ..expansion import Expansion
from ..features.kinds import FEATURE_KINDS
from ._tensors import as_numpy, check_coefficients, checked_species

__all__ = ["features", "nu1", "power_spectrum", "rho_x_v"]


def _as_expansion(values: np.ndarray, species: np.ndarray) -> Expansion:
    """An :class:`Expansion` of the numbers a kind reads: per-l values and the channels.

    The samples are placeholders (every row (0, 0, 0)): the kinds use them as metadata and
    to check that two expansions have the same number of centres."""
    n_lm = values.shape[2]
    top = math.isqrt(n_lm) - 1
    return Expansion(
        values=[values[:, :, l * l : (l + 1) ** 2] for l in range(top + 1)],
        samples=np.zeros((values.shape[0], 3), dtype=np.int64),
        neighbor_types=species,
    )


class _Kind(torch.autograd.Function):
    """Columns (n_centres, n_columns) of a feature kind; see :func:`features`."""

    @staticmethod
    def forward(ctx, kind, options, species, *coefficients):
        expansions = [
            _as_expansion(as_numpy(c), s) for c, s in zip(coefficients, species, strict=True)
        ]
        columns = kind.columns(kind.forward(expansions, **options)).values
        # saved as tensors, not as the numpy views above: autograd then refuses a backward
        # pass after the coefficients were changed in place
        ctx.save_for_backward(*coefficients)
        ctx.kind, ctx.options, ctx.species = kind, options, species
        return torch.from_numpy(np.ascontiguousarray(columns)).to(coefficients[0].device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        wanted = ctx.needs_input_grad[3:]
        out = [None, None, None]
        if not any(wanted):
            return (*out, *[None] * len(wanted))
        expansions = [
            _as_expansion(as_numpy(c), s)
            for c, s in zip(ctx.saved_tensors, ctx.species, strict=True)
        ]
        parts = ctx.kind.vjp(expansions, as_numpy(grad), **ctx.options)
        for part, want in zip(parts, wanted, strict=True):
            if not want or part is None:
                out.append(None)
                continue
            out.append(torch.from_numpy(np.concatenate(part, axis=2)).to(grad.device))
        return tuple(out)


def features(kind, *coefficients, species=None, **options) -> torch.Tensor:
    """Feature columns of any registered kind, differentiable with respect to every input.

    Parameters
    ----------
    kind : str
        A key of :data:`lodekit.features.kinds.FEATURE_KINDS` ("nu1", "power_spectrum",
        "rho_x_v", "equivariant").
    *coefficients : torch.Tensor
        One coefficient tensor per role of the kind (e.g. density, then potential), each
        (n_centres, n_species, (max_angular + 1)^2, n_radial), float64, same centres.
    species : sequence of int, optional
        Atomic numbers of the channels (the same for every input); they name the columns and
        decide which channel pairs are alike. Default 1, 2, ... (alike iff same channel).
    **options
        The kind's options (e.g. ``o3_lambda`` of "equivariant").

    Returns
    -------
    torch.Tensor, float64, shape (n_centres, n_columns)
        The kind's columns, equal to those of a recipe block of this kind without a centre
        split.

    Notes
    -----
    The backward pass is the kind's vector-Jacobian product; differentiating it again
    raises ``RuntimeError``.
    """
    if kind not in FEATURE_KINDS:
        raise InputError(f"`kind` is {describe(kind)}; expected one of {sorted(FEATURE_KINDS)}")
    feature_kind = FEATURE_KINDS[kind]
    if len(coefficients) != len(feature_kind.roles):
        raise InputError(
            f"kind {kind!r} takes {len(feature_kind.roles)} coefficient tensor(s) "
            f"({', '.join(feature_kind.roles)}), got {len(coefficients)}"
        )
    for role, value in zip(feature_kind.roles, coefficients, strict=True):
        check_coefficients(role, value)
    options = feature_kind.check_options(options)
    channels = []
    for role, value in zip(feature_kind.roles, coefficients, strict=True):
        if species is None:
            channels.append(np.arange(1, value.shape[1] + 1, dtype=np.int64))
            continue
        channel = checked_species(species)
        if len(channel) != value.shape[1]:
            raise InputError(
                f"`species` has {len(channel)} entries but `{role}` has {value.shape[1]} "
                "species channels (axis 1)"
            )
        channels.append(channel)
    return _Kind.apply(feature_kind, options, tuple(channels), *coefficients)


def nu1(coefficients, *, species=None) -> torch.Tensor:
    """The l = 0 coefficients (:func:`lodekit.features.lode_nu1`), shape (n_centres,
    n_species x n_radial).

    See :func:`features` for the arguments and the derivatives."""
    return features("nu1", coefficients, species=species)


def power_spectrum(coefficients, *, species=None) -> torch.Tensor:
    """The power spectrum of an expansion with itself, distinct species pairs
    (:func:`lodekit.features.power_spectrum`); columns (l, s_1, n_1, s_2, n_2), n_2 fastest.

    See :func:`features` for the arguments and the derivatives."""
    return features("power_spectrum", coefficients, species=species)


def rho_x_v(density, potential, *, species=None) -> torch.Tensor:
    """The multi-scale rho x V: the power spectrum of a density expansion and a LODE
    expansion of the same centres, all ordered species pairs.

    See :func:`features` for the arguments and the derivatives."""
    return features("rho_x_v", density, potential, species=species)
