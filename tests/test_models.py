"""Models: scikit-learn contract, point-charge physics, sparse = full KRR, tensors, files."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import lodekit
from lodekit.errors import InputError
from lodekit.features import equivariant_product, lode_nu1, power_spectrum
from lodekit.models import (
    AdditiveKernelRidge,
    EquivariantKernelRidge,
    EquivariantRidge,
    StructureRidge,
    SymmetricTensorRegression,
    spherical_to_cartesian,
)
from lodekit.models import _common as models_common
from lodekit.persistence import ModelFileError, load_model, save_model
from lodekit.testing import random_rotation
from tests.helpers import ewald_energy, molecule, random_structure


@parametrize_with_checks(
    [
        AdditiveKernelRidge(alpha=1e-3),
        AdditiveKernelRidge(alpha=[1e-3, 1e-1], normalize=False, zeta=1),
        StructureRidge(alpha=1e-3),
        StructureRidge(alpha=[1e-4, 1e-2], baselines=False),
        StructureRidge(alpha=1e-3, standardize=True),
    ],
)
def test_sklearn_contract(estimator, check):
    check(estimator)


@parametrize_with_checks(
    [
        EquivariantRidge(o3_lambda=0, alpha=1e-3),
        EquivariantKernelRidge(o3_lambda=0, alpha=[1e-3, 1e-1], n_sparse=20),
    ]
)
def test_sklearn_contract_of_the_scalar_equivariant_models(estimator, check):
    """With o3_lambda = 0 the lambda-models take a 1-d y: every generic check applies."""
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [
        EquivariantRidge(o3_lambda=2),
        EquivariantKernelRidge(o3_lambda=2),
        SymmetricTensorRegression(n_scalar_features=2),
    ],
    ids=["lambda2", "lambda2-kernel", "tensor"],
)
def test_sklearn_checks_of_tensor_models_fail_only_for_tensor_targets(estimator):
    """Documented deviation: tensor models need (n, 5) or (n, 3, 3) targets and a matching
    column layout, which scikit-learn's generic checks, written for a 1-d y, never give.
    Every check that fails must fail on exactly that."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(estimator, on_fail=None)
    failures = [c for c in results if c["status"] == "failed"]
    passed = [c for c in results if c["status"] == "passed"]
    assert len(passed) > 10, "generic checks did not run"
    allowed = (
        "expected (n_structures, 5)",
        "not a multiple of",
        "expected (n, 3, 3)",
        "must leave room for the lambda = 2 block",
        # check_positive_only_tag_during_fit re-raises any error as "unexpected"; the
        # underlying error is again the 1-d y
        "raised InputError unexpectedly",
    )
    for failure in failures:
        message = repr(failure["exception"])
        assert any(text in message for text in allowed), (failure["check_name"], message)


def point_charge_boxes(n, seed):
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        side = rng.uniform(8.0, 11.0)
        atoms = random_structure(rng, np.eye(3) * side, ["Na"] * 8 + ["Cl"] * 8, min_distance=2.5)
        boxes.append(atoms)
    return boxes


def test_linear_lode_nu1_reproduces_ewald_energies_of_point_charges():
    """Sharp Gaussian charges, a basis narrower than the closest approach: E is linear in the
    l = 0 coefficients (mean-value property of the potential), Grisafi & Ceriotti Sec. II."""
    train, test = point_charge_boxes(10, 1), point_charge_boxes(8, 2)
    charges = {11: 1.0, 17: -1.0}

    def energies(frames):
        return np.array([ewald_energy(a, [charges[z] for z in a.numbers]) for a in frames])

    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.3, exponent=1, max_radial=1, max_angular=0, radius=1.0, accuracy=1e-7
    )

    def features(frames):
        f = lode_nu1(calculator.compute(frames)).by_center_type([11, 17])
        return f.values, f.samples[:, 0], f.samples[:, 2]

    x, groups, species = features(train)
    model = StructureRidge(alpha=1e-10, baselines=True).fit(x, energies(train), groups, species)
    xt, gt, st = features(test)
    truth = energies(test)
    error = np.sqrt(np.mean((model.predict(xt, gt, st) - truth) ** 2)) / truth.std()
    assert error < 0.01


def test_sparse_regression_with_all_environments_equals_full_kernel_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6))
    groups = np.repeat(np.arange(15), 4)
    y = rng.normal(size=15)
    alpha, zeta = 1e-3, 2
    model = AdditiveKernelRidge(zeta=zeta, alpha=alpha, baselines=False).fit(x, y, groups)

    # full kernel ridge on structures, written out here
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = np.zeros((15, 60))
    g[groups, np.arange(60)] = 1
    k = g @ (xn @ xn.T) ** zeta @ g.T
    weights = np.linalg.solve(k + alpha * np.eye(15), y)
    x_new = rng.normal(size=(12, 6))
    g_new = np.repeat(np.arange(3), 4)
    xn_new = x_new / np.linalg.norm(x_new, axis=1, keepdims=True)
    h = np.zeros((3, 12))
    h[g_new, np.arange(12)] = 1
    expected = h @ (xn_new @ xn.T) ** zeta @ g.T @ weights
    np.testing.assert_allclose(model.predict(x_new, g_new), expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.predict(x, groups), k @ weights, rtol=0, atol=1e-8)


def _farthest_points(x, n):
    """Farthest-point sampling written out: start at row 0, then each time the row farthest
    (Euclidean) from all rows chosen so far; sorted."""
    chosen = [0]
    distance = np.linalg.norm(x - x[0], axis=1)
    for _ in range(n - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(x - x[chosen[-1]], axis=1))
    return np.sort(chosen)


def _quadratic_structure_features(x, groups, n_structures):
    """Explicit feature map of (x · y)^2: vec(x x^T), summed over each structure's rows."""
    out = np.zeros((n_structures, x.shape[1] ** 2))
    np.add.at(out, groups, (x[:, :, None] * x[:, None, :]).reshape(len(x), -1))
    return out


def test_sparse_selection_and_cross_validation():
    """Unnormalised (x · y)^2 is the dot product of vec(x x^T): 40 sparse points span that
    10-dimensional space, so the sparse model is ridge regression in it with an unpenalised
    intercept (one species: the baseline is 5 b per structure), fitted here with
    scikit-learn's Ridge; alpha from 5-fold CV over structures, folds from the seeded
    permutation (random_state 0) cut in 5 consecutive parts."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    groups = np.repeat(np.arange(60), 5)
    y = np.bincount(groups, weights=x[:, 0] ** 2 + 0.5 * x[:, 0] * x[:, 1])
    alphas = [1e-6, 1e-3, 1.0]
    model = AdditiveKernelRidge(zeta=2, alpha=alphas, n_sparse=40, normalize=False)
    model.fit(x, y, groups)
    np.testing.assert_array_equal(model.sparse_index_, _farthest_points(x, 40))

    phi = _quadratic_structure_features(x, groups, 60)
    folds = np.array_split(np.random.default_rng(0).permutation(60), 5)
    errors = []
    for alpha in alphas:
        squared = 0.0
        for k, test in enumerate(folds):
            train = np.concatenate([fold for j, fold in enumerate(folds) if j != k])
            ridge = Ridge(alpha=alpha).fit(phi[train], y[train])
            squared += np.sum((ridge.predict(phi[test]) - y[test]) ** 2)
        errors.append(squared)
    assert sorted(errors)[0] < 1e-3 * sorted(errors)[1]  # a clear winner: the test is decisive
    assert model.alpha_ == alphas[int(np.argmin(errors))]

    ridge = Ridge(alpha=model.alpha_).fit(phi, y)
    x_new = rng.normal(size=(50, 4))
    g_new = np.repeat(np.arange(10), 5)
    for xs, gs, n in [(x, groups, 60), (x_new, g_new, 10)]:
        expected = ridge.predict(_quadratic_structure_features(xs, gs, n))
        np.testing.assert_allclose(
            model.predict(xs, gs), expected, rtol=0, atol=1e-9 * np.abs(expected).max()
        )


def test_combined_kernel_blocks():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
    y = rng.normal(size=20)
    both = AdditiveKernelRidge(feature_blocks=[3, 5], zeta=2, alpha=1e-2, baselines=False)
    both.fit(np.hstack([a, b]), y)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    k = (an @ an.T + bn @ bn.T) ** 2
    weights = np.linalg.solve(k + 1e-2 * np.eye(20), y)
    np.testing.assert_allclose(both.predict(np.hstack([a, b])), k @ weights, atol=1e-8)


def test_standardized_ridge_equals_ridge_on_standardized_columns():
    """standardize=True is ridge on (x - mean) / std of the training environments, written out
    here with an explicit normal-equation solve; it is blind to the units of each column."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(90, 4)) * [1e-3, 1.0, 50.0, 1.0] + [0.0, 3.0, -7.0, 1.0]
    groups = np.repeat(np.arange(30), 3)
    y = np.bincount(groups, weights=x[:, 0] * 800 + x[:, 2] / 40 + x[:, 1])
    y += rng.normal(scale=0.1, size=30)
    alpha = 0.5
    model = StructureRidge(alpha=alpha, standardize=True, baselines=False).fit(x, y, groups)

    z = (x - x.mean(axis=0)) / x.std(axis=0)
    g = np.zeros((30, 90))
    g[groups, np.arange(90)] = 1
    phi = g @ z
    w = np.linalg.solve(phi.T @ phi + alpha * np.eye(4), phi.T @ y)
    x_new = rng.normal(size=(12, 4))
    g_new = np.repeat(np.arange(4), 3)
    h = np.zeros((4, 12))
    h[g_new, np.arange(12)] = 1
    expected = h @ ((x_new - x.mean(axis=0)) / x.std(axis=0)) @ w
    np.testing.assert_allclose(model.predict(x_new, g_new), expected, rtol=1e-10, atol=1e-10)

    units = np.array([1e4, 1.0, 1e-3, 7.0])
    rescaled = StructureRidge(alpha=alpha, standardize=True, baselines=False)
    rescaled.fit(x * units, y, groups)
    np.testing.assert_allclose(
        rescaled.predict(x_new * units, g_new), expected, rtol=1e-9, atol=1e-9
    )
    plain = StructureRidge(alpha=alpha, baselines=False).fit(x * units, y, groups)
    assert not np.allclose(plain.predict(x_new * units, g_new), expected, atol=1e-3)


def test_standardized_linear_block_of_the_kernel_model():
    """k = (a·a')^2 of normalised a + z(b)·z(b') of standardised b: the linear block is
    standardised with the training statistics, the kernel block is left alone."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(24, 3)), rng.normal(size=(24, 2)) * [100.0, 0.01] + 5.0
    groups = np.repeat(np.arange(12), 2)
    y = rng.normal(size=12)
    alpha = 1e-2
    model = AdditiveKernelRidge(
        feature_blocks=[3, 2],
        linear_blocks=[1],
        standardize_linear=True,
        alpha=alpha,
        baselines=False,
    ).fit(np.hstack([a, b]), y, groups)
    np.testing.assert_array_equal(model.feature_mean_[:3], 0.0)
    np.testing.assert_array_equal(model.feature_scale_[:3], 1.0)

    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    zb = (b - b.mean(axis=0)) / b.std(axis=0)
    g = np.zeros((12, 24))
    g[groups, np.arange(24)] = 1
    k = g @ ((an @ an.T) ** 2 + zb @ zb.T) @ g.T
    weights = np.linalg.solve(k + alpha * np.eye(12), y)
    np.testing.assert_allclose(model.predict(np.hstack([a, b]), groups), k @ weights, atol=1e-8)

    # other units for the linear block: same predictions
    again = AdditiveKernelRidge(
        feature_blocks=[3, 2],
        linear_blocks=[1],
        standardize_linear=True,
        alpha=alpha,
        baselines=False,
    ).fit(np.hstack([a, b * [0.01, 300.0]]), y, groups)
    np.testing.assert_allclose(
        again.predict(np.hstack([a, b * [0.01, 300.0]]), groups), k @ weights, atol=1e-8
    )


def test_species_baselines_are_not_regularised():
    """A target made only of per-species constants is learned exactly at any alpha."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 4))
    groups = np.repeat(np.arange(20), 4)
    species = rng.choice([1, 6, 8], size=80)
    constants = {1: -13.6, 6: -1030.0, 8: -2040.0}
    y = np.bincount(groups, weights=[constants[s] for s in species])
    for model in (AdditiveKernelRidge(alpha=10.0), StructureRidge(alpha=10.0)):
        model.fit(x, y, groups, species)
        np.testing.assert_allclose(model.baseline_, [-13.6, -1030.0, -2040.0], atol=1e-8)
        np.testing.assert_allclose(model.predict(x, groups, species), y, atol=1e-7)


def test_tensor_predictions_rotate_with_the_structure():
    soap = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.4, max_radial=3, max_angular=2)
    rng = np.random.default_rng(3)
    frames = [molecule(np.random.default_rng(s), 8) for s in range(6)]

    def design(frames):
        expansion = soap.compute(frames)
        x0 = power_spectrum(expansion).values
        x2 = equivariant_product(expansion, o3_lambda=2).values
        return np.hstack([x0, x2.reshape(len(x2), -1)]), expansion.samples[:, 0], x0.shape[1]

    x, groups, n0 = design(frames)
    targets = rng.normal(size=(6, 3, 3))
    targets = targets + targets.transpose(0, 2, 1)
    model = SymmetricTensorRegression(n_scalar_features=n0, alpha=1e-4, alpha_lambda2=1e-4)
    model.fit(x, targets, groups)
    x_test, g_test, _ = design([molecule(np.random.default_rng(42), 8)])
    prediction = model.predict(x_test, g_test)[0]
    rotation = random_rotation(rng)
    rotated = molecule(np.random.default_rng(42), 8)
    rotated.positions = rotated.positions @ rotation.T
    x_rot, g_rot, _ = design([rotated])
    np.testing.assert_allclose(
        model.predict(x_rot, g_rot)[0], rotation @ prediction @ rotation.T, atol=1e-10
    )
    assert np.abs(prediction - prediction.T).max() < 1e-12


def test_model_files_round_trip_and_reject_damage(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=10)
    groups = np.repeat(np.arange(10), 4)
    species = rng.choice([1, 8], size=40)
    models = [
        AdditiveKernelRidge(n_sparse=12, alpha=1e-3, feature_blocks=[2, 3]).fit(
            x, y, groups, species
        ),
        StructureRidge(alpha=[1e-3, 1e-1]).fit(x, y, groups, species),
        StructureRidge(alpha=1e-3, standardize=True).fit(x * 40 + 3, y, groups, species),
        AdditiveKernelRidge(
            alpha=1e-3, feature_blocks=[2, 3], linear_blocks=[1], standardize_linear=True
        ).fit(x * 40 + 3, y, groups, species),
    ]
    for k, model in enumerate(models):
        path = save_model(tmp_path / f"m{k}.npz", model, metadata={"note": "test"})
        again = load_model(path)
        assert type(again) is type(model) and again.metadata_ == {"note": "test"}
        xk = x if k < 2 else x * 40 + 3
        np.testing.assert_array_equal(
            again.predict(xk, groups, species), model.predict(xk, groups, species)
        )
        np.testing.assert_array_equal(again.feature_scale_, model.feature_scale_)
    path = tmp_path / "m0.npz"
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(tmp_path / "cut.npz")
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["weights_"] = arrays["weights_"] * 1.001
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ModelFileError, match="checksum mismatch for 'weights_'"):
        load_model(tmp_path / "tampered.npz")
    del arrays["weights_"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ModelFileError, match="'weights_' is missing"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.npz")


def test_sizes_are_reported_before_computing():
    from lodekit.features import power_spectrum_size

    atoms = molecule(np.random.default_rng(0), 9)
    soap = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.4, max_radial=3, max_angular=2)
    expansion = soap.compute(atoms)
    for b, distinct in [(None, None), (None, False), (expansion, False)]:
        predicted = power_spectrum_size(expansion, b, distinct_pairs=distinct)
        actual = power_spectrum(expansion, b, distinct_pairs=distinct)
        assert predicted["n_features"] == actual.n_features
        assert predicted["bytes"] == actual.nbytes
    model = AdditiveKernelRidge(n_sparse=2000)
    sizes = model.memory_estimate(n_environments=100_000, n_structures=5_000, n_features=500)
    assert sizes["total"] < 8 * 100_000**2 / 100  # far from a dense environment kernel


def test_memory_estimate_is_what_fit_builds(monkeypatch):
    """The estimate against the arrays fit really builds, caught as fit makes them: the
    prepared features, K_MM, K_NM, the largest kernel block (5000 environments: a full block
    of 4096 rows and a partial one) and the aggregation matrix (CSC: its index pointer has one
    entry more than the estimate counts)."""
    import lodekit.models.kernel_ridge as kernel_ridge

    built = {"kernel": [], "aggregation": [], "prepared": [], "rows": []}

    def recorded(name, function):
        def wrapper(*args, **kwargs):
            out = function(*args, **kwargs)
            built[name].append(out)
            return out

        return wrapper

    cls = kernel_ridge.AdditiveKernelRidge
    monkeypatch.setattr(
        kernel_ridge, "polynomial_kernel", recorded("kernel", kernel_ridge.polynomial_kernel)
    )
    monkeypatch.setattr(
        kernel_ridge,
        "aggregation_matrix",
        recorded("aggregation", kernel_ridge.aggregation_matrix),
    )
    monkeypatch.setattr(cls, "_prepared", recorded("prepared", cls._prepared))
    monkeypatch.setattr(cls, "_kernel_rows", recorded("rows", cls._kernel_rows))
    n_env, n_structures, n_features, n_sparse = 5000, 1000, 4, 30
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n_env, n_features))
    groups = np.repeat(np.arange(n_structures), n_env // n_structures)
    AdditiveKernelRidge(n_sparse=n_sparse, alpha=1e-3).fit(x, rng.normal(size=n_structures), groups)
    sizes = AdditiveKernelRidge(n_sparse=n_sparse).memory_estimate(n_env, n_structures, n_features)

    (k_mm,) = [k for k in built["kernel"] if k.shape == (n_sparse, n_sparse)]
    blocks = [k for k in built["kernel"] if k.shape != (n_sparse, n_sparse)]
    assert sorted(len(block) for block in blocks) == [n_env - 4096, 4096]
    assert sizes["k_mm"] == k_mm.nbytes
    assert sizes["kernel_block"] == max(block.nbytes for block in blocks)
    assert sizes["k_nm"] == max(rows.nbytes for rows in built["rows"])
    assert sizes["normalised_features"] == max(xn.nbytes for xn in built["prepared"])
    stored = max(g.data.nbytes + g.indices.nbytes + g.indptr.nbytes for g in built["aggregation"])
    assert abs(sizes["aggregation"] - stored) <= 0.01 * stored
    assert sizes["total"] == sum(v for k, v in sizes.items() if k != "total")


@pytest.mark.parametrize(
    "model",
    [
        StructureRidge(alpha=1e-3, standardize=True, reduce="mean"),
        AdditiveKernelRidge(alpha=1e-3, zeta=3, feature_blocks=[3, 2]),
        AdditiveKernelRidge(
            alpha=1e-3,
            zeta=2,
            feature_blocks=[3, 2],
            linear_blocks=[1],
            standardize_linear=True,
            reduce="mean",
            n_sparse=15,
        ),
        AdditiveKernelRidge(alpha=1e-3, zeta=1, normalize=False),
    ],
)
def test_environment_gradient_matches_finite_differences(model):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 5)) + 0.5
    groups = np.repeat(np.arange(10), 4)
    species = rng.choice([1, 8], size=40)
    model.fit(x, rng.normal(size=10), groups, species)
    gradient = model.environment_gradient(x, groups, species)
    h = 1e-6
    for row, column in [(0, 0), (5, 3), (17, 4), (39, 1)]:
        shifted = []
        for sign in (1, -1):
            moved = x.copy()
            moved[row, column] += sign * h
            shifted.append(model.predict(moved, groups, species)[groups[row]])
        fd = (shifted[0] - shifted[1]) / (2 * h)
        assert gradient[row, column] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def _lambda_design(frames, calculator, o3_lambda=2):
    """[power spectrum | lambda-features flattened] of every environment, their structures,
    and the number of invariant columns."""
    expansion = calculator.compute(frames)
    x0 = power_spectrum(expansion).values
    x2 = equivariant_product(expansion, o3_lambda=o3_lambda).values
    return np.hstack([x0, x2.reshape(len(x2), -1)]), expansion.samples[:, 0], x0.shape[1]


# 7 entries per block: every environment is a block of its own, so the block-by-block
# normalisation and aggregation of the lambda-models run through many blocks
@pytest.mark.parametrize("block_entries", [None, 7])
def test_equivariant_kernel_ridge_is_the_dense_sa_gpr_written_out(block_entries, monkeypatch):
    """All environments sparse: the subset-of-regressors solution is kernel ridge regression
    with the structure kernel K_{A mu, B nu} = sum_{i in A, j in B} k^lambda_{mu nu}(i, j),
    built here entry by entry from its definition."""
    if block_entries is not None:
        monkeypatch.setattr(models_common, "BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(5)
    n_env, p, q, n_structures = 24, 4, 3, 8
    invariants = rng.normal(size=(n_env, p))
    lam = rng.normal(size=(n_env, 5, q))
    groups = np.repeat(np.arange(n_structures), 3)
    y = rng.normal(size=(n_structures, 5))
    x = np.hstack([invariants, lam.reshape(n_env, -1)])
    alpha, zeta = 1e-2, 3
    model = EquivariantKernelRidge(n_invariant_features=p, zeta=zeta, alpha=alpha).fit(x, y, groups)

    def normalised(i):
        t = lam[i]
        return t / np.sqrt(np.linalg.norm(t @ t.T)), invariants[i] / np.linalg.norm(invariants[i])

    def k(i, j):
        (ti, xi), (tj, xj) = normalised(i), normalised(j)
        return (ti @ tj.T) * (xi @ xj) ** (zeta - 1)

    big = np.zeros((n_structures * 5, n_structures * 5))
    for i in range(n_env):
        for j in range(n_env):
            a, b = groups[i], groups[j]
            big[5 * a : 5 * a + 5, 5 * b : 5 * b + 5] += k(i, j)
    weights = np.linalg.solve(big + alpha * np.eye(len(big)), y.ravel())
    np.testing.assert_allclose(model.predict(x, groups).ravel(), big @ weights, atol=1e-8)


@pytest.mark.parametrize("block_entries", [None, 7])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("normalize", [True, False])
def test_linear_lambda_model_is_the_ridge_solution_written_out(
    block_entries, reduce, normalize, monkeypatch
):
    """EquivariantRidge against its primal solution built by hand: rows (A, mu) of the design
    are the sum (or mean) over A of the (normalised) t_i[mu, :], w = (P^T P + alpha)^-1 P^T y."""
    if block_entries is not None:
        monkeypatch.setattr(models_common, "BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(8)
    n_structures, q = 9, 4
    groups = np.repeat(np.arange(n_structures), rng.integers(1, 5, size=n_structures))
    lam = rng.normal(size=(len(groups), 5, q)) * rng.uniform(0.5, 3.0, size=(len(groups), 1, 1))
    y = rng.normal(size=(n_structures, 5))
    alpha = 1e-2
    model = EquivariantRidge(alpha=alpha, reduce=reduce, normalize=normalize)
    model.fit(lam.reshape(len(lam), -1), y, groups)

    design = np.zeros((n_structures, 5, q))
    for i, a in enumerate(groups):
        t = lam[i] / np.sqrt(np.linalg.norm(lam[i] @ lam[i].T)) if normalize else lam[i]
        design[a] += t / (np.sum(groups == a) if reduce == "mean" else 1)
    phi = design.reshape(-1, q)
    weights = np.linalg.solve(phi.T @ phi + alpha * np.eye(q), phi.T @ y.ravel())
    np.testing.assert_allclose(model.coef_, weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        model.predict(lam.reshape(len(lam), -1), groups), design @ weights, atol=1e-10
    )


def test_equivariant_kernel_ridge_with_zeta_one_is_the_linear_lambda_model():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(30, 2 + 5 * 4))
    groups = np.repeat(np.arange(10), 3)
    y = rng.normal(size=(10, 5))
    kernel = EquivariantKernelRidge(n_invariant_features=2, zeta=1, alpha=1e-3).fit(x, y, groups)
    linear = EquivariantRidge(alpha=1e-3).fit(x[:, 2:], y, groups)
    x_new, g_new = rng.normal(size=(9, 22)), np.repeat(np.arange(3), 3)
    np.testing.assert_allclose(
        kernel.predict(x_new, g_new), linear.predict(x_new[:, 2:], g_new), atol=1e-9
    )


def test_non_linear_lambda_kernel_rotates_and_learns_what_the_linear_one_cannot():
    soap = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.4, max_radial=1, max_angular=2)
    frames = [molecule(np.random.default_rng(s), 6) for s in range(200)]
    x, groups, n0 = _lambda_design(frames, soap)
    # an equivariant target quadratic in the environments, outside the linear model's reach:
    # each atom's (normalised) lambda-features weighted by an invariant of the same atom
    rng = np.random.default_rng(7)
    p = rng.normal(size=n0)
    q = rng.normal(size=(x.shape[1] - n0) // 5)
    lam = x[:, n0:].reshape(len(x), 5, -1)
    norms = np.sqrt(np.linalg.norm(np.einsum("imq,inq->imn", lam, lam), axis=(1, 2)))
    lam = lam / np.where(norms > 0, norms, 1.0)[:, None, None]
    invariant = x[:, :n0] @ p / np.linalg.norm(x[:, :n0], axis=1)
    y = np.zeros((200, 5))
    np.add.at(y, groups, (lam @ q) * invariant[:, None])
    train, test = groups < 150, groups >= 150
    alphas = [1e-8, 1e-6, 1e-4, 1e-2]
    kernel = EquivariantKernelRidge(
        n_invariant_features=n0, zeta=2, alpha=alphas, n_sparse=400
    ).fit(x[train], y[:150], groups[train])
    linear = EquivariantRidge(alpha=alphas).fit(x[train, n0:], y[:150], groups[train])

    def error(prediction):
        return np.sqrt(np.mean((prediction - y[150:]) ** 2)) / y[150:].std()

    error_kernel = error(kernel.predict(x[test], groups[test] - 150))
    error_linear = error(linear.predict(x[test, n0:], groups[test] - 150))
    # measured: 0.13 against 0.35
    assert error_kernel < 0.5 * error_linear, (error_kernel, error_linear)

    # rotating a structure rotates the predicted (Cartesian) lambda = 2 tensor: R T R^T
    rotation = random_rotation(rng)
    one = molecule(np.random.default_rng(99), 8)
    rotated = one.copy()
    rotated.positions = rotated.positions @ rotation.T
    tensors = []
    for atoms in (one, rotated):
        xs, gs, _ = _lambda_design([atoms], soap)
        tensors.append(spherical_to_cartesian(np.zeros(1), kernel.predict(xs, gs))[0])
    np.testing.assert_allclose(tensors[1], rotation @ tensors[0] @ rotation.T, atol=1e-10)
    assert np.abs(tensors[0]).max() > 1e-3


def test_equivariant_kernel_ridge_rejects_bad_input_and_survives_a_file(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(12, 3 + 5 * 2))
    groups = np.repeat(np.arange(4), 3)
    y = rng.normal(size=(4, 5))
    with pytest.raises(InputError, match="`n_invariant_features` is 4 but X has n_features = 13"):
        EquivariantKernelRidge(n_invariant_features=4).fit(x, y, groups)
    with pytest.raises(InputError, match=r"`zeta` is 1\.5 but must be an integer >= 1"):
        EquivariantKernelRidge(n_invariant_features=3, zeta=1.5).fit(x, y, groups)
    with pytest.raises(InputError, match=r"`y` has shape \(4, 3\); expected \(n_structures, 5\)"):
        EquivariantKernelRidge(n_invariant_features=3).fit(x, y[:, :3], groups)
    with pytest.raises(InputError, match="`groups` names 4 structures but `y` has 3"):
        EquivariantKernelRidge(n_invariant_features=3).fit(x, y[:3], groups)
    model = EquivariantKernelRidge(n_invariant_features=3, n_sparse=5, alpha=[1e-3, 1e-1])
    model.fit(x, y, groups)
    again = load_model(save_model(tmp_path / "sagpr.npz", model))
    np.testing.assert_array_equal(again.predict(x, groups), model.predict(x, groups))


@pytest.mark.parametrize(
    "make, y",
    [
        (StructureRidge, np.arange(4.0)),
        (AdditiveKernelRidge, np.arange(4.0)),
        (lambda **kw: EquivariantRidge(o3_lambda=2, **kw), np.ones((4, 5))),
        (lambda **kw: EquivariantKernelRidge(n_invariant_features=3, **kw), np.ones((4, 5))),
    ],
    ids=["StructureRidge", "AdditiveKernelRidge", "EquivariantRidge", "EquivariantKernelRidge"],
)
def test_every_model_rejects_a_bad_reduce_or_alpha(make, y):
    # a misspelt reduce used to fall back to "sum" and a negative alpha to be used as given
    x = np.random.default_rng(9).normal(size=(12, 3 + 5 * 2))
    groups = np.repeat(np.arange(4), 3)
    with pytest.raises(InputError, match="`reduce` is 'avg' but must be 'sum' or 'mean'"):
        make(reduce="avg").fit(x, y, groups)
    for alpha in (-1.0, [1e-3, np.nan]):
        with pytest.raises(InputError, match=r"`alpha` is .* but must be non-negative"):
            make(alpha=alpha).fit(x, y, groups)


@pytest.mark.parametrize("n_sparse", [7, 40])
def test_force_row_contraction_is_the_einsum_in_chunks(n_sparse, monkeypatch):
    # issue 28: the force rows' einsum fell back to a slow loop once the sparse points
    # outnumbered the features; the chunked products must give the same sum, whatever the
    # chunk (here 1, 2 or all 5 environments at a time)
    from lodekit.models import kernel_ridge

    rng = np.random.default_rng(5)
    t, sparse = rng.normal(size=(5, 12, 9)), rng.normal(size=(n_sparse, 9))
    power = rng.normal(size=(5, n_sparse))
    expected = np.einsum("itf,mf,im->tm", t, sparse, power)
    for environments in (1, 2, 5):
        monkeypatch.setattr(kernel_ridge, "_TANGENT_CHUNK_BYTES", 8 * 12 * n_sparse * environments)
        got = kernel_ridge._contract_tangents(t, sparse, power)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", [(60, 12, 40, 200), (100, 8, 30, 500), (30, 20, 100, 100)])
def test_memory_estimate_bounds_a_fit_with_forces(shape):
    # issue 28: the estimate had no force term (219 MiB said, 2.4 GiB used). Against the peak
    # that tracemalloc (which sees numpy's buffers) records during the fit itself
    import tracemalloc

    n_structures, n_atoms, n_features, n_sparse = shape
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n_structures * n_atoms, n_features))
    groups = np.repeat(np.arange(n_structures), n_atoms)
    forces = [rng.normal(size=(n_atoms, 3)) for _ in range(n_structures)]
    jacobian = rng.normal(size=(n_atoms, n_atoms, 3, n_features))
    model = AdditiveKernelRidge(n_sparse=n_sparse, alpha=[1e-6, 1e-3, 1.0])
    estimate = model.memory_estimate(
        len(x),
        n_structures,
        n_features,
        n_force_components=3 * n_atoms * n_structures,
        jacobian_entries=jacobian.size,
    )
    tracemalloc.start()
    try:
        model.fit(
            x,
            rng.normal(size=n_structures),
            groups,
            forces=forces,
            feature_jacobians=lambda a: jacobian,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # an upper bound, and not a loose one (measured: 0.45-0.95 of it)
    assert 0.4 * estimate["total"] < peak <= estimate["total"]


def test_force_weight_search_is_k_fold_ridge_written_out():
    """Issue 28: several force weights are searched with alpha by K-fold CV over whole
    structures. Against the same search written out with numpy (ridge by normal equations,
    no baselines), on a linear model with noisy forces: every held-out energy and force RMSE,
    and the chosen pair (lowest sum of relative errors)."""
    from lodekit.models._common import kfold_indices

    rng = np.random.default_rng(8)
    n, n_atoms, n_features = 24, 5, 6
    x = rng.normal(size=(n * n_atoms, n_features))
    groups = np.repeat(np.arange(n), n_atoms)
    truth = rng.normal(size=n_features)
    derivatives = [rng.normal(size=(n_atoms, 3, n_features)) for _ in range(n)]
    energies = np.bincount(groups, weights=x @ truth) + 0.05 * rng.normal(size=n)
    forces = [-(d @ truth) + 0.5 * rng.normal(size=(n_atoms, 3)) for d in derivatives]
    alphas, weights = [1e-6, 1e-2, 1.0], [0.1, 1.0, 3.0]
    model = StructureRidge(alpha=alphas, baselines=False, cv=4).fit(
        x, energies, groups, forces=forces, feature_derivatives=derivatives, force_weight=weights
    )

    phi_e = np.stack([x[groups == a].sum(axis=0) for a in range(n)])
    phi_f = [-d.reshape(-1, n_features) for d in derivatives]
    e_err, f_err = np.zeros((3, 3)), np.zeros((3, 3))
    for w, weight in enumerate(weights):
        for k, alpha in enumerate(alphas):
            for train, test in kfold_indices(n, 4, 0):
                a = np.vstack([phi_e[train]] + [weight * phi_f[s] for s in train])
                b = np.concatenate([energies[train]] + [weight * forces[s].ravel() for s in train])
                c = np.linalg.solve(a.T @ a + alpha * np.eye(n_features), a.T @ b)
                e_err[w, k] += np.sum((phi_e[test] @ c - energies[test]) ** 2)
                f_err[w, k] += sum(np.sum((phi_f[s] @ c - forces[s].ravel()) ** 2) for s in test)
    e_rmse, f_rmse = np.sqrt(e_err / n), np.sqrt(f_err / (3 * n_atoms * n))
    np.testing.assert_allclose(model.cv_energy_rmse_, e_rmse, rtol=1e-8)
    np.testing.assert_allclose(model.cv_force_rmse_, f_rmse, rtol=1e-8)
    spread_f = np.sqrt(np.mean(np.concatenate([f.ravel() for f in forces]) ** 2))
    score = e_rmse / np.std(energies) + f_rmse / spread_f
    w, k = np.unravel_index(np.argmin(score), score.shape)
    assert (model.force_weight_, model.alpha_) == (weights[w], alphas[k])
    assert np.array_equal(model.cv_force_weights_, weights)
    with pytest.raises(InputError, match="`force_weight`"):
        StructureRidge(baselines=False).fit(
            x, energies, groups, forces=forces, feature_derivatives=derivatives, force_weight=[]
        )


def test_structure_weights_are_ridge_on_weighted_rows():
    # energies per atom (issue 28): weights 1 / n_atoms on the energy rows are ridge regression
    # on the weighted structure sums, against scikit-learn's Ridge on those rows
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(12)
    sizes = rng.integers(2, 30, size=40)
    groups = np.repeat(np.arange(40), sizes)
    x = rng.normal(size=(len(groups), 5))
    y = np.bincount(groups, weights=x @ rng.normal(size=5)) + rng.normal(size=40)
    weights = 1.0 / sizes
    model = StructureRidge(alpha=0.3, baselines=False).fit(x, y, groups, structure_weights=weights)
    sums = np.stack([x[groups == a].sum(axis=0) for a in range(40)])
    reference = Ridge(alpha=0.3, fit_intercept=False).fit(sums * weights[:, None], y * weights)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-10)
    plain = StructureRidge(alpha=0.3, baselines=False).fit(x, y, groups)
    assert np.abs(plain.coef_ - model.coef_).max() > 1e-3  # the weights do change the fit
    with pytest.raises(InputError, match="`structure_weights`"):
        StructureRidge().fit(x, y, groups, structure_weights=np.zeros(40))
