"""The registry of feature kinds: every kind's forward values against a written-out formula,
its Jacobian-vector product against finite differences, and its vector-Jacobian product
against the transpose of the JVP. Parametrised over FEATURE_KINDS, so a new kind is tested
(and must come with a reference formula and test options here)."""

import itertools

import numpy as np
import pytest

from lodekit.errors import InputError
from lodekit.expansion import Expansion
from lodekit.features import equivariant_product
from lodekit.features.kinds import FEATURE_KINDS, REQUIRED, zero_expansion

SPECIES = np.array([1, 6, 8])
N_CENTRES = 4

#: Options each kind is tested with (kinds with required options must appear here).
OPTIONS = {"equivariant": [{"o3_lambda": 2}, {"o3_lambda": 1, "o3_sigma": -1}]}


def _synthetic(rng, max_angular, n_radial, species=SPECIES) -> Expansion:
    """Random coefficients: the kinds are functions of the numbers, whatever made them."""
    samples = np.column_stack(
        [np.zeros(N_CENTRES), np.arange(N_CENTRES), rng.choice(species, N_CENTRES)]
    ).astype(np.int64)
    return Expansion(
        values=[
            rng.normal(size=(N_CENTRES, len(species), 2 * l + 1, n_radial))
            for l in range(max_angular + 1)
        ],
        samples=samples,
        neighbor_types=np.asarray(species),
    )


def _inputs(kind, rng):
    """One expansion per role (different radial sizes, same max_angular and centres)."""
    expansions = [_synthetic(rng, 2, 3 + i) for i in range(len(kind.roles))]
    for e in expansions[1:]:
        object.__setattr__(e, "samples", expansions[0].samples)
    return expansions


def _options(kind):
    cases = OPTIONS.get(kind.name, [{}])
    for options in cases:
        for key, default in kind.options.items():
            assert key in options or default is not REQUIRED, (
                f"kind {kind.name!r}: give test OPTIONS for its required option {key!r}"
            )
    return cases


# ---------------------------------------------------------------- written-out references
def _nu1_reference(expansions, **options):
    (e,) = expansions
    return np.array(
        [
            [
                e.values[0][c, a, 0, n]
                for a in range(len(e.neighbor_types))
                for n in range(e.n_radial)
            ]
            for c in range(len(e))
        ]
    )


def _pair_reference(a, b, distinct):
    """P = (-1)^l / sqrt(2l+1) sum_m A B, l slowest, then species pairs, n_1, n_2."""
    rows = []
    for c in range(len(a)):
        row = []
        for l in range(a.max_angular + 1):
            for i, j in itertools.product(range(len(a.neighbor_types)), repeat=2):
                ti, tj = a.neighbor_types[i], b.neighbor_types[j]
                if distinct and ti > tj:
                    continue
                scale = (
                    (-1) ** l / np.sqrt(2 * l + 1) * (np.sqrt(2) if distinct and ti != tj else 1)
                )
                for n1 in range(a.n_radial):
                    for n2 in range(b.n_radial):
                        total = sum(
                            a.values[l][c, i, m, n1] * b.values[l][c, j, m, n2]
                            for m in range(2 * l + 1)
                        )
                        row.append(scale * total)
        rows.append(row)
    return np.array(rows)


def _power_spectrum_reference(expansions, **options):
    (e,) = expansions
    return _pair_reference(e, e, distinct=True)


def _rho_x_v_reference(expansions, **options):
    return _pair_reference(*expansions, distinct=False)


def _equivariant_reference(expansions, *, o3_lambda, o3_sigma=1):
    # the library's product (tested against rotations in test_features), m slowest
    values = equivariant_product(*expansions, o3_lambda=o3_lambda, o3_sigma=o3_sigma).values
    return values.reshape(len(values), -1)


REFERENCES = {
    "nu1": _nu1_reference,
    "power_spectrum": _power_spectrum_reference,
    "rho_x_v": _rho_x_v_reference,
    "equivariant": _equivariant_reference,
}


@pytest.mark.parametrize("name", list(FEATURE_KINDS))
def test_forward_matches_the_written_out_formula(name):
    kind = FEATURE_KINDS[name]
    assert name in REFERENCES, f"kind {name!r} needs a reference formula in REFERENCES"
    rng = np.random.default_rng(1)
    for options in _options(kind):
        options = kind.check_options(options)
        expansions = _inputs(kind, rng)
        features = kind.columns(kind.forward(expansions, **options))
        expected = REFERENCES[name](expansions, **options)
        np.testing.assert_allclose(features.values, expected, rtol=1e-12, atol=1e-12)
        # properties of an expansion of zeros with the same layout: one row per column
        zeros = [zero_expansion(SPECIES, e.max_angular, e.n_radial) for e in expansions]
        properties, names = kind.properties(zeros, **options)
        assert properties.shape == (features.n_features, len(names))
        assert len(np.unique(properties, axis=0)) == features.n_features


def _shifted(kind, expansions, tangents, t, direction, options):
    """Columns of the expansions moved by t along tangent ``direction``."""
    moved = [
        Expansion(
            values=[v + t * d[:, direction] for v, d in zip(e.values, te, strict=True)],
            samples=e.samples,
            neighbor_types=e.neighbor_types,
        )
        for e, te in zip(expansions, tangents, strict=True)
    ]
    return kind.columns(kind.forward(moved, **options)).values


@pytest.mark.parametrize("name", list(FEATURE_KINDS))
def test_jvp_matches_finite_differences(name):
    kind = FEATURE_KINDS[name]
    rng = np.random.default_rng(2)
    for options in _options(kind):
        options = kind.check_options(options)
        expansions = _inputs(kind, rng)
        n_tangents = 2
        tangents = [
            [rng.normal(size=(N_CENTRES, n_tangents, *v.shape[1:])) for v in e.values]
            for e in expansions
        ]
        jvp = kind.jvp(expansions, tangents, **options)

        h = 1e-4
        for direction in range(n_tangents):
            # the kinds are at most bilinear: central differences are exact up to rounding
            fd = _shifted(kind, expansions, tangents, h, direction, options)
            fd = (fd - _shifted(kind, expansions, tangents, -h, direction, options)) / (2 * h)
            scale = np.abs(fd).max()
            np.testing.assert_allclose(jvp[:, direction], fd, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("name", list(FEATURE_KINDS))
def test_vjp_is_the_transpose_of_the_jvp(name):
    """<vjp(g), t> = <g, jvp(t)> for random g and t, summed over the roles."""
    kind = FEATURE_KINDS[name]
    rng = np.random.default_rng(3)
    for options in _options(kind):
        options = kind.check_options(options)
        expansions = _inputs(kind, rng)
        tangents = [
            [rng.normal(size=(N_CENTRES, 1, *v.shape[1:])) for v in e.values] for e in expansions
        ]
        jvp = kind.jvp(expansions, tangents, **options)[:, 0]
        grad = rng.normal(size=jvp.shape)
        upstream = kind.vjp(expansions, grad, **options)
        assert len(upstream) == len(kind.roles)
        left = sum(
            np.sum(u * t[:, 0])
            for up, te in zip(upstream, tangents, strict=True)
            for u, t in zip(up, te, strict=True)
        )
        assert left == pytest.approx(np.sum(grad * jvp), rel=1e-11)


def test_equivariant_options_are_checked():
    kind = FEATURE_KINDS["equivariant"]
    with pytest.raises(InputError, match="lacks 'o3_lambda'"):
        kind.check_options({})
    with pytest.raises(InputError, match="unknown option"):
        kind.check_options({"o3_lambda": 1, "lambda": 2})
    with pytest.raises(InputError, match="o3_sigma is 0; expected 1 or -1"):
        kind.check_options({"o3_lambda": 1, "o3_sigma": 0})
