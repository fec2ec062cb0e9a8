"""The periodic LODE coefficients in torch operations, on the device of the input tensors.

:func:`lodekit.torch.expansion` uses this path for a bulk LODE structure whose tensors are
on a device other than the CPU (``kspace="auto"``), or anywhere with ``kspace="torch"``. It
computes the same numbers as the numpy calculator (math.md §4.1):

    c[i, a, lm, n] = sum_{0<|k|<k_c} F_k[lm, n] {Re | Im}[exp(i k·r_i) conj(rho_a(k))]
                     + delta_l0 (k = 0 term) + delta_l0 delta_{a, channel(i)} (centre term)

with rho_a(k) = sum_{j in a} w_j exp(i k·r_j) and F_k = (8 pi / V) s_l Y_lm(k̂) ĝ_p(k) I_nl(k)
(:class:`~lodekit.expansion.kspace.layout.KspaceLayout`: parity signs, half sphere).

What runs where
---------------
On the CPU, in numpy, on every call: a copy of the positions, cell and weights to build the
:class:`~lodekit.System` (its checks), the calculator's plan and work limits, the channels.
On the CPU once per cell, kept for the next call with the same cell (the frames of a
constant-volume trajectory) and copied to the device once: the Miller indices of the
k-vectors and the cell-only tables Y_lm(k̂) ĝ_p I_nl (times V / 8 pi: the volume is applied
on the device) and, when the cell needs a gradient, their k-derivatives.

On the device, in torch: k = 2 pi hkl H^-T and V = |det H| from the cell tensor, the phases
cos and sin of k·r_j, the structure factors A_a = sum_j w_j cos, B_a = sum_j w_j sin, the
contraction with F (four matrix products of cos and sin (atoms, n_k) with A_a F and B_a F
(n_k, channels x lm x n), one per parity and phase), the k = 0 term (∝ the channels' total
weights / V) and the centre term (∝ each centre's weight). Gradients with respect to
positions and weights are torch autograd through these operations; the cell gradient adds,
through k, the derivative of the tables, which a small ``autograd.Function`` supplies from
the numpy tables of dY/dk and d(ĝ I)/dk.

Scope: a :class:`~lodekit.LodeSphericalExpansion` with one exponent, a bulk structure (all
three axes periodic) and a plan that sums k-space directly ("kspace" with the "direct"
backend: a ``k_cutoff``, or an ``accuracy`` that the planner meets without range
separation). Range-separated plans, the NUFFT backend, slabs, molecules, several exponents
and SOAP keep the numpy path (:func:`plan_torch_kspace` says why); forcing this path on
them is an :class:`~lodekit.errors.InputError`.

Memory: the phases, the products A_a F and B_a F and their autograd copies hold about
(4 n_atoms + 4 n_species x (L+1)^2 x n_radial) x n_k doubles; there is no chunking over k.

Derivatives: first derivatives with respect to positions, cell and weights. Second
derivatives with respect to positions and weights at a fixed cell (``create_graph=True``, e.g.
training on forces) are torch autograd too and are checked by gradgradcheck
(tests/test_torch_kspace.py); a second derivative through the cell raises ``RuntimeError``
(the tables' derivative Function is once differentiable).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..expansion import LodeSphericalExpansion
from ..expansion.kspace.layout import KspaceLayout
from ..systems import System

__all__ = ["lode_coefficients", "plan_torch_kspace"]


def _terms(calculator, system: System):
    """The calculator's :class:`~lodekit.expansion.lode.PeriodicTerms` of ``system`` (a bulk
    structure, one exponent): its plan, k-space problem, k = 0 and centre terms."""
    return calculator._periodic_terms(system)


def plan_torch_kspace(calculator, system: System):
    """(terms, refusal): the calculator's PeriodicTerms of ``system`` and None when the torch
    k-space path can compute it, else None and why not (a phrase that completes
    "... but ...")."""
    if not isinstance(calculator, LodeSphericalExpansion):
        return None, (
            f"the calculator is a {type(calculator).__name__}: only a LodeSphericalExpansion "
            "has a k-space sum"
        )
    if calculator.exponents is not None:
        return None, (
            f"the calculator has several exponents {list(calculator.exponents)}: the torch "
            "k-space path takes one"
        )
    if not system.periodic:
        return None, (
            f"the structure is a {system.boundary} (pbc {list(system.pbc)}): the torch "
            "k-space path takes bulk structures (pbc=True)"
        )
    terms = _terms(calculator, system)
    plan = terms.plan
    if plan.method != "kspace":
        return None, (
            f"the structure's plan is {plan.method!r} (smearing {calculator.smearing}, "
            f"accuracy {calculator.accuracy}): the torch k-space path takes a direct k-space "
            "sum without range separation (give a k_cutoff, or a larger smearing)"
        )
    if plan.kspace_method != "direct":
        return None, (
            f"the structure's k-space method is {plan.kspace_method!r}: the torch k-space path "
            "computes the direct sum (give kspace_method='direct' to the calculator)"
        )
    return terms, None


class _Tables:
    """The cell-only tables of one cell on one device (module docstring).

    Attributes
    ----------
    hkl : Tensor (n_k, 3), float64
        Miller indices in the basis of the given cell.
    unit_factor : Tensor (n_k, lm sorted by parity, n)
        F V / (8 pi): signed Y_lm(k̂) ĝ_p(k) I_nl(k).
    parts : dict of Tensor or None
        ``ylm``, ``d_ylm`` (n_k, 3, lm), ``radial``, ``d_radial``, ``unit`` (of
        :meth:`KspaceLayout.factor_parts`, V / 8 pi included): the derivative of
        ``unit_factor`` with respect to k. None when not asked for; empty without k-vectors.
    """

    def __init__(self, hkl, unit_factor, parts):
        self.hkl, self.unit_factor, self.parts = hkl, unit_factor, parts


#: Cells (with hyperparameters and device) whose tables are kept: the most recently used.
_KEPT_CELLS = 4
_KEPT: OrderedDict = OrderedDict()
_KEPT_LOCK = threading.Lock()


def _cell_tables(terms, cell: np.ndarray, device, with_derivative: bool) -> _Tables:
    """The :class:`_Tables` of ``cell`` (the given one, not the reduced cell of
    ``terms.problem``), built in numpy and copied to ``device``; kept between calls."""
    problem = terms.problem
    key = (
        cell.tobytes(),
        problem.k_cutoff,
        problem.smearing,
        problem.exponent,
        problem.max_angular,
        problem.basis,  # held here, so its id cannot be reused
        str(device),
    )
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
        if kept is not None and (kept.parts is not None or not with_derivative):
            _KEPT.move_to_end(key)
            return kept
    # the k-vectors are a property of the lattice: those of the reduced cell, written in
    # the Miller indices of the given one (k·h_i = 2 pi n_i)
    kvec = problem.kvectors() @ (2.0 * np.pi * np.linalg.inv(problem.cell).T)
    hkl = np.rint(kvec @ cell.T / (2.0 * np.pi))
    layout = KspaceLayout(
        cell, problem.basis, problem.max_angular, problem.smearing, problem.exponent
    )
    scale = layout.volume / (8.0 * np.pi)
    parts = None
    if not len(hkl):  # a cell too small for any k-vector within the cutoff
        unit_factor, parts = np.zeros((0, problem.n_lm, problem.n_radial)), {}
    elif with_derivative:
        numpy_parts = layout.factor_parts(hkl)
        unit_factor = (numpy_parts["ylm"] * scale)[:, :, None] * numpy_parts["radial"]
        parts = {
            "ylm": numpy_parts["ylm"] * scale,
            "d_ylm": numpy_parts["d_ylm"] * scale,
            "radial": numpy_parts["radial"],
            "d_radial": numpy_parts["d_radial"],
            "unit": numpy_parts["unit"],
        }
        parts = {name: torch.from_numpy(value).to(device) for name, value in parts.items()}
    else:
        unit_factor = layout.factor(hkl)[1] * scale
    tables = _Tables(
        torch.from_numpy(hkl).to(device), torch.from_numpy(unit_factor).to(device), parts
    )
    with _KEPT_LOCK:
        _KEPT[key] = tables
        _KEPT.move_to_end(key)
        while len(_KEPT) > _KEPT_CELLS:
            _KEPT.popitem(last=False)
    return tables


class _UnitFactor(torch.autograd.Function):
    """F V / (8 pi) (n_k, lm, n) as a function of the k-vectors (n_k, 3): the forward pass
    returns the kept table (computed from the same cell), the backward pass contracts with
    dF/dk = dY/dk x R + k̂ Y x dR/d|k|."""

    @staticmethod
    def forward(ctx, kvec, tables):
        ctx.tables = tables
        # a new tensor: autograd would attach this call's graph to the kept table itself
        return tables.unit_factor.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        parts = ctx.tables.parts
        by_ylm = (grad * parts["radial"]).sum(dim=2)  # (n_k, lm)
        by_radial = (grad * parts["d_radial"]).sum(dim=2)  # (n_k, lm)
        grad_k = torch.einsum("kbl,kl->kb", parts["d_ylm"], by_ylm)
        grad_k = grad_k + parts["unit"] * (parts["ylm"] * by_radial).sum(dim=1, keepdim=True)
        return grad_k, None


def lode_coefficients(calculator, system: System, positions, cell, weights, terms=None):
    """The coefficients of every atom of a bulk structure, in torch on ``positions.device``.

    Parameters
    ----------
    calculator : LodeSphericalExpansion
        One exponent; :func:`plan_torch_kspace` must accept ``system``.
    system : System
        The structure, built from the values of the tensors (plan, channels, tables).
    positions : Tensor, float64, shape (n_atoms, 3)
        Å; the same values as ``system.positions``.
    cell : Tensor, float64, shape (3, 3)
        Lattice vectors as rows, Å.
    weights : Tensor, float64, shape (n_atoms,), or None
        Per-atom weights (None: all 1).
    terms : PeriodicTerms, optional
        The calculator's terms of ``system``, if already built.

    Returns
    -------
    coefficients : Tensor, float64, shape (n_atoms, n_channels, (max_angular + 1)^2, n_radial)
        The calculator's channels, lm in the order l^2 + l + m: ``compute(system).values``
        concatenated along axis 2.
    labels : ndarray of int, shape (n_channels,)
        ``Expansion.neighbor_types`` of those channels.
    """
    if terms is None:
        terms = _terms(calculator, system)
    problem, channels = terms.problem, terms.channels
    device = positions.device
    n_atoms, n_species = len(system), channels.count
    n_lm, n_rad = problem.n_lm, problem.n_radial
    tables = _cell_tables(terms, system.cell, device, with_derivative=cell.requires_grad)
    n_k = len(tables.hkl)

    recip = 2.0 * torch.pi * torch.linalg.inv(cell).T
    volume = torch.abs(torch.linalg.det(cell))
    kvec = tables.hkl @ recip
    if cell.requires_grad and n_k:
        unit_factor = _UnitFactor.apply(kvec, tables)
    else:
        unit_factor = tables.unit_factor
    factor = unit_factor * (8.0 * torch.pi / volume)

    species = torch.from_numpy(channels.index).to(device)
    one_hot = torch.nn.functional.one_hot(species, n_species).to(torch.float64)  # (atoms, a)
    weighted = one_hot if weights is None else one_hot * weights[:, None]

    layout = KspaceLayout(
        system.cell, problem.basis, problem.max_angular, problem.smearing, problem.exponent
    )
    n_even = layout.n_even
    n_odd = n_lm - n_even
    if n_k:
        theta = positions @ kvec.T  # k·r_j, (atoms, n_k)
        cos, sin = torch.cos(theta), torch.sin(theta)
        a_part = (weighted.T @ cos).T[:, :, None, None]  # sum_j w_j cos(k·r_j), (n_k, a, 1, 1)
        b_part = (weighted.T @ sin).T[:, :, None, None]
        f_even, f_odd = factor[:, None, :n_even], factor[:, None, n_even:]
        # Forming Re and Im of exp(i k·r_i) conj(rho_a) per (atom, channel, k) first would
        # halve the multiply-adds, but its elementwise passes cost more than they save (one
        # CPU thread, 1536 atoms x 6974 k-vectors: 945 ms against 584 ms).
        # even l take Re[exp(i k·r_i) conj(rho_a)] = cos_i A + sin_i B, odd l its Im
        # sin_i A - cos_i B
        even = cos @ (a_part * f_even).reshape(n_k, -1) + sin @ (b_part * f_even).reshape(n_k, -1)
        odd = sin @ (a_part * f_odd).reshape(n_k, -1) - cos @ (b_part * f_odd).reshape(n_k, -1)
    else:
        even = positions.new_zeros((n_atoms, n_species * n_even * n_rad))
        odd = positions.new_zeros((n_atoms, n_species * n_odd * n_rad))
    sorted_lm = torch.cat(
        [
            even.reshape(n_atoms, n_species, n_even, n_rad),
            odd.reshape(n_atoms, n_species, n_odd, n_rad),
        ],
        dim=2,
    )
    order = torch.from_numpy(np.argsort(layout.parity)).to(device)
    coefficients = sorted_lm[:, :, order]

    # l = 0 terms: the k = 0 term (channel totals of the weights, ∝ 1/V) and each centre's
    # own field in its own channel (times its weight)
    at_zero = torch.from_numpy(terms.centre_term).to(device)[None, None, :] * weighted[:, :, None]
    if terms.k_zero_unit is not None:
        totals = weighted.sum(dim=0)  # (a,)
        per_volume = torch.from_numpy(terms.k_zero_unit * problem.volume).to(device)
        at_zero = at_zero + (totals[:, None] * per_volume[None, :] / volume)[None]
    l_zero = torch.zeros((1, 1, n_lm, 1), dtype=torch.float64, device=device)
    l_zero[0, 0, 0, 0] = 1.0
    coefficients = coefficients + at_zero[:, :, None, :] * l_zero
    return coefficients, terms.labels
