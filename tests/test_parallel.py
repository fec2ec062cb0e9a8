"""Parallel featurisation: local processes, a real Dask cluster, and a real kill midway."""

import json
import os
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np
import pytest
from distributed import Client, LocalCluster

from lodekit.batch import FeatureStore, featurize, load_features
from lodekit.cli import main
from lodekit.errors import InputError
from lodekit.features import Recipe
from tests.conftest import mixed_boxes, store_recipe, water64
from tests.helpers import assert_same_store

RECIPE = store_recipe(max_angular=2)


@pytest.fixture(scope="module")
def dataset():
    return mixed_boxes(9, seed=11)


@pytest.fixture(scope="module")
def serial_store(dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "s"
    featurize(dataset, path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    return path


def test_serial_store_matches_one_compute_call(dataset, serial_store):
    features = load_features(serial_store)
    reference = Recipe.from_dict(RECIPE).compute(dataset, [1, 6, 7, 8])
    np.testing.assert_array_equal(features.samples, reference.samples)
    scale = np.abs(reference.values).max()
    np.testing.assert_allclose(features.values, reference.values, rtol=0, atol=1e-12 * scale)


def test_process_pool_gives_the_serial_store(dataset, serial_store, tmp_path):
    featurize(dataset, tmp_path / "s", RECIPE, chunk_size=2, n_workers=2, progress=False)
    # every executor runs the same chunk function with one BLAS thread
    assert_same_store(tmp_path / "s", serial_store)


def test_dask_local_cluster_gives_the_serial_store(dataset, serial_store, tmp_path):
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        assert len(client.nthreads()) == 2
        store = featurize(dataset, tmp_path / "s", RECIPE, chunk_size=2, client=client)
        with pytest.raises(InputError, match="give one of them"):
            featurize(dataset, tmp_path / "t", RECIPE, client=client, n_workers=2)
        # the command line, through the scheduler's address
        ase.io.write(tmp_path / "d.extxyz", dataset)
        (tmp_path / "h.json").write_text(json.dumps(RECIPE))
        argv = ["featurize", str(tmp_path / "d.extxyz"), "--recipe", str(tmp_path / "h.json")]
        argv += ["--chunk-size", "4", "--quiet", "--out"]
        assert main([*argv, str(tmp_path / "cli"), "--scheduler", cluster.scheduler_address]) == 0
    assert store.complete
    assert_same_store(tmp_path / "s", serial_store)
    assert main([*argv, str(tmp_path / "cli-serial"), "--workers", "1"]) == 0
    assert_same_store(tmp_path / "cli", tmp_path / "cli-serial")


def water_frames(n, seed):
    """``n`` rattled copies of the shipped 192-atom water box."""
    rng = np.random.default_rng(seed)
    water = water64()
    frames = []
    for _ in range(n):
        atoms = water.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def listing(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def test_killed_run_resumes_to_the_identical_store(tmp_path):
    structures = tmp_path / "water.extxyz"
    ase.io.write(structures, water_frames(12, seed=3))
    hypers = tmp_path / "h.json"
    hypers.write_text(json.dumps(RECIPE))
    store = tmp_path / "store"
    argv = [
        "featurize",
        str(structures),
        "--out",
        str(store),
        "--recipe",
        str(hypers),
        "--chunk-size",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "lodekit", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(name.isdigit() for name in listing(store / "chunks")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no chunk finished in 120 s"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)  # no clean-up code of the run gets to run
        process.wait(timeout=30)
    finally:
        if process.poll() is None:  # pragma: no cover - only if the test itself failed
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    finished = FeatureStore(store).finished_chunks()
    assert 1 <= len(finished) < 12, "the run was not killed midway"

    assert main(argv) == 0  # rerun: computes the rest only
    reference = tmp_path / "reference"
    assert main([*argv[:3], str(reference), *argv[4:]]) == 0  # uninterrupted run
    assert_same_store(store, reference)
    features = load_features(store)
    expected = np.column_stack([np.repeat(np.arange(12), 192), np.tile(np.arange(192), 12)])
    np.testing.assert_array_equal(features.samples[:, :2], expected)  # none lost, none twice


def test_spherical_harmonics_stay_on_one_openmp_thread_beside_torch():
    """sphericart parallelises each call with OpenMP, which for the few thousand vectors of a
    call costs far more than the work. With torch imported first (vesin imports it), torch's
    libgomp is in the global symbol scope and sphericart's parallel regions run on it: the
    thread count must be set there too. A team of more than one thread would start new OS
    threads at the first call; none may appear."""
    pytest.importorskip("torch")
    script = (
        "import os, torch, numpy as np\n"
        "from lodekit.basis.spherical_harmonics import real_spherical_harmonics\n"
        "count = lambda: len(os.listdir(f'/proc/{os.getpid()}/task'))\n"
        "before = count()\n"
        "real_spherical_harmonics(np.random.default_rng(0).normal(size=(4000, 3)), 6)\n"
        "print(before, count())\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="4")  # a team of four unless the call is limited
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    before, after = map(int, out.stdout.split())
    assert after == before, out.stdout
