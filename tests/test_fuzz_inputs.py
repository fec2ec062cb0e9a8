"""Property-based fuzzing of the calculators' inputs (issue 27).

Contract: every input gives either finite coefficients (and gradients) or one
:class:`~lodekit.errors.InputError` whose message names the argument (a `quoted` name); never
another exception, never unbounded work. Work is bounded by the estimate, not by wall clock:
each case runs under small :func:`~lodekit.expansion.limits.work_limits`, so that anything
expensive must be refused by the guards before it starts.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lodekit import LodeSphericalExpansion, SphericalExpansion, System
from lodekit.errors import InputError
from lodekit.expansion.limits import work_limits

# small enough that every accepted case takes well under a second
LIMITS = dict(max_kvectors=2e4, max_seconds=0.5, max_pairs=2e4, max_jacobian_bytes=2e7)

NAN, INF = math.nan, math.inf
BAD_REALS = [0.0, -1.0, NAN, INF, -INF, True, "1", None]

# unimodular integer transforms: a skewed basis of the same lattice
SKEWS = [
    np.eye(3),
    np.array([[1, 0, 0], [13, 1, 0], [-17, 29, 1]]),
    np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]),
]


CELLS = {
    "cubic": 6.0 * np.eye(3),
    "large": 11.0 * np.eye(3),
    "small": 3.0 * np.eye(3),
    "triclinic": 6.0 * np.eye(3) + 1.5 * np.triu(np.ones((3, 3)), 1),
    "skewed": np.array([[1, 0, 0], [13, 1, 0], [-17, 29, 1]]) @ (6.0 * np.eye(3)),
    "sheared": np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]) @ (6.0 * np.eye(3)),
    "singular": np.array([[6.0, 0, 0], [0, 6.0, 0], [6.0, 6.0, 0]]),
    "tiny": 1e-6 * np.eye(3),
    "huge": 1e200 * np.eye(3),
    "wide": 1e5 * np.eye(3),
    "thin": np.diag([6.0, 6.0, 0.05]),
    "nan": np.full((3, 3), NAN),
    "infinite": np.diag([1.0, INF, 1.0]),
    "2x2": np.eye(2),
    "text": "cubic",
}

# corruptions of a valid structure: (what, function of (structure dict, drawn value))
STRUCTURE_CHANGES = {
    "cell": st.sampled_from(sorted(CELLS)),
    "pbc": st.sampled_from([False, (True, False, True), (True, True, True), "yes", None]),
    "n_atoms": st.sampled_from([0, 1, 2]),
    "coordinate": st.sampled_from([NAN, INF, -INF, 1e300, -1e12, 1e-300]),
    "overlap": st.sampled_from([0.0, 1e-6, 1e-3]),
    "number": st.sampled_from([0, -1, 119, 10**9, "X", 1.5, True, "O"]),
}


@st.composite
def structures(draw):
    n_atoms = draw(st.integers(1, 5))
    frac = np.random.default_rng(draw(st.integers(0, 1000))).random((n_atoms, 3))
    out = dict(
        positions=frac @ (6.0 * np.eye(3)),
        types=list(draw(st.lists(st.sampled_from([1, 8, 6]), min_size=n_atoms, max_size=n_atoms))),
        cell=CELLS["cubic"],
        pbc=True,
    )
    changes = draw(st.lists(st.sampled_from(sorted(STRUCTURE_CHANGES)), max_size=2, unique=True))
    for change in changes:
        value = draw(STRUCTURE_CHANGES[change])
        if change == "cell":
            out["cell"] = CELLS[value]
        elif change == "pbc":
            out["pbc"] = value
        elif change == "n_atoms":
            out["positions"] = out["positions"][:value]
            out["types"] = out["types"][:value]
        elif change == "coordinate" and len(out["positions"]):
            out["positions"] = out["positions"].copy()
            out["positions"][-1, draw(st.integers(0, 2))] = value
        elif change == "overlap" and len(out["positions"]) >= 2:
            out["positions"] = out["positions"].copy()
            out["positions"][1] = out["positions"][0] + value
        elif change == "number" and len(out["types"]):
            out["types"][-1] = value
    return out


@st.composite
def hypers(draw, base, options):
    """``base`` with up to three entries replaced by values of ``options`` (good or bad)."""
    out = dict(base)
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)):
        out[name] = draw(st.sampled_from(options[name]))
    return out


BAD_REALS = [0.0, -1.0, NAN, INF, -INF, True, "1", None]

LODE_HYPERS = hypers(
    dict(smearing=1.0, max_radial=3, max_angular=2, radius=4.0),
    dict(
        smearing=[0.5, 0.3, 0.02, 1e-8, 1e3, *BAD_REALS],
        max_radial=[0, 1, 12, 19, 20, 31, -1, 2.5, True, np.int64(2)],
        max_angular=[0, 1, 6, 31, -1, True],
        radius=[0.1, 1e3, *BAD_REALS],
        exponent=[0, 1, 2, 6, 7, -1, 1.0, True],
        center_atom_weight=[0.0, -2.0, *BAD_REALS[1:]],
        k_cutoff=[3.0, 20.0, 200.0, 1e9, *BAD_REALS[:-1]],
        accuracy=[1e-6, 1e-14, 0.1, 0.5, 1e-15, *BAD_REALS[:-1]],
        kspace_method=["auto", "direct", "nufft", "fft", 3],
        radial_basis=["gto", "monomials", "x"],
    ),
)


def _soap_hypers(radial_bases):
    return hypers(
        dict(cutoff=4.0, smearing=0.3, max_radial=3, max_angular=2),
        dict(
            cutoff=[1.0, 1e-3, 30.0, 1e6, *BAD_REALS],
            smearing=[1e-6, 50.0, *BAD_REALS],
            max_radial=[0, 12, 19, 20, 30, 31, -1, True],
            max_angular=[0, 6, 30, 31, -1],
            cutoff_function=["shifted_cosine", "step", "x"],
            cutoff_width=[1e-3, 1e3, *BAD_REALS],
            center_atom_weight=[0.0, *BAD_REALS[1:]],
            spline_accuracy=[None, 1e-13, 1e-2, 1.0, 0.0, NAN],
            radial_basis=radial_bases,
        ),
    )


# the monomial SOAP tables take seconds to build even for valid inputs: slow suite only
SOAP_HYPERS = _soap_hypers(["gto", "x"])
ALL_SOAP_HYPERS = _soap_hypers(["gto", "monomials", "x"])

SELECTIONS = st.sampled_from([None, [0], [0, 1], [-1], [100], [0, 0], "all", [0.5], []])
GRADIENTS = st.sampled_from([None, None, ["positions"], ["positions", "strain"], ["x"]])


OUTCOMES = {"ok": 0, "error": 0}


def _check(calculator_class, hypers, structure, selected, gradients) -> str:
    """'ok' or 'error' when the contract holds; raises (failing the test) otherwise."""
    try:
        with work_limits(**LIMITS):
            calculator = calculator_class(**hypers)
            system = System(**structure)
            result = calculator.compute(system, selected_atoms=selected, gradients=gradients)
    except InputError as error:
        message = str(error)
        assert message.count("`") >= 2, f"message names no argument: {message}"
        OUTCOMES["error"] += 1
        return "error"
    for block in result.values:
        assert np.isfinite(block).all()
    for gradient in result.gradients.values():
        for block in gradient.values:
            assert np.isfinite(block).all()
    OUTCOMES["ok"] += 1
    return "ok"


FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


@FAST
@given(hypers=LODE_HYPERS, structure=structures(), selected=SELECTIONS, gradients=GRADIENTS)
def test_lode_inputs_give_a_result_or_a_clear_error(hypers, structure, selected, gradients):
    _check(LodeSphericalExpansion, hypers, structure, selected, gradients)


@FAST
@given(hypers=SOAP_HYPERS, structure=structures(), selected=SELECTIONS, gradients=GRADIENTS)
def test_soap_inputs_give_a_result_or_a_clear_error(hypers, structure, selected, gradients):
    _check(SphericalExpansion, hypers, structure, selected, gradients)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lode=st.booleans(),
    lode_hypers=LODE_HYPERS,
    soap_hypers=ALL_SOAP_HYPERS,
    structure=structures(),
    selected=SELECTIONS,
    gradients=GRADIENTS,
)
def test_many_inputs_give_a_result_or_a_clear_error(
    lode, lode_hypers, soap_hypers, structure, selected, gradients
):
    if lode:
        _check(LodeSphericalExpansion, lode_hypers, structure, selected, gradients)
    else:
        _check(SphericalExpansion, soap_hypers, structure, selected, gradients)
