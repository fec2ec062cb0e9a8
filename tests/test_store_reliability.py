"""Feature stores under concurrent runs, kills and Ctrl-C (`lodekit featurize` in subprocesses).

Every run is compared with a serial run of the same command (``assert_same_store``). The
subprocesses import lodekit first and then wait for a gate file, so that concurrent runs
really start together; a run is signalled as soon as its first chunk exists (polled), never
after a fixed sleep.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import pytest

import lodekit
from lodekit.batch import StoreError, featurize
from lodekit.cli import main
from tests.conftest import mixed_boxes, store_recipe
from tests.helpers import assert_same_store

#: Structures of the dataset, one per chunk: a run lasts a few seconds, long enough to be
#: caught running once its first chunk exists.
N_STRUCTURES = 32

#: Generous limit (s) on any wait: a run, the first chunk, the end of orphaned workers.
TIMEOUT = 90

# A run started from a shell's background job (`pytest &`, `nohup ... &`) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C could not be tested.
# The launcher restores what a terminal gives a foreground command.
_LAUNCH = """
import pathlib, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import lodekit.batch, lodekit.features
from lodekit.cli import main
gate = pathlib.Path(sys.argv[1])
while not gate.exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """(structure file, recipe file, store of a serial run of both)."""
    folder = tmp_path_factory.mktemp("serial")
    structures = folder / "boxes.extxyz"
    ase.io.write(structures, mixed_boxes(N_STRUCTURES, seed=27))
    recipe = folder / "recipe.json"
    recipe.write_text(json.dumps(store_recipe()))
    reference = folder / "reference"
    featurize(str(structures), reference, store_recipe(), chunk_size=1, n_workers=1, progress=False)
    return structures, recipe, reference


def _argv(serial, out, workers=1):
    structures, recipe, _ = serial
    return [
        "featurize",
        str(structures),
        "--out",
        str(out),
        "--recipe",
        str(recipe),
        "--chunk-size",
        "1",
        "--workers",
        str(workers),
        "--quiet",
    ]


def _start(argv, gate, **options):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    source = str(Path(lodekit.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, str(gate), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def _finish(process):
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"run did not finish in {TIMEOUT} s; stderr: {err}")
    return process.returncode, out, err


def _wait_for_first_chunk(store: Path, process) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        chunks = store / "chunks"
        if chunks.is_dir() and any(p.name.isdigit() for p in chunks.iterdir()):
            return
        if process.poll() is not None:
            pytest.fail(f"run ended before its first chunk: {process.communicate()}")
        time.sleep(0.01)
    pytest.fail(f"no chunk after {TIMEOUT} s")


#: Tries of a concurrency test: on a loaded machine a run may start only once another has
#: finished (then it finds the store complete and exits 0, rightly); such a try is repeated.
ATTEMPTS = 3


def _concurrent_runs(serial, out, n, folder, prepare):
    """Results (code, stdout, stderr) of ``n`` runs started together into ``out`` after
    ``prepare(out)``, from the first try in which at least two of them overlapped."""
    for attempt in range(ATTEMPTS):
        shutil.rmtree(out, ignore_errors=True)
        prepare(out)
        gate = folder / f"gate-{attempt}"
        processes = [_start(_argv(serial, out), gate) for _ in range(n)]
        gate.touch()
        results = [_finish(p) for p in processes]
        _check_one_writer(results, out)
        if any(code == 2 for code, _, _ in results):
            return results
    pytest.fail(f"no two runs overlapped in {ATTEMPTS} tries: {results}")


def _check_one_writer(results, out):
    """Runs that found the lock taken exit 2 with one line naming the holder; the others
    (one writer, and those that came after it) exit 0 with the store complete."""
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 2} and 0 in codes, results
    for code, out_text, err in results:
        if code == 0:
            assert f"{N_STRUCTURES}/{N_STRUCTURES} chunks" in out_text
            continue
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"`--out` {str(out)!r} is being written by another run (pid " in lines[0]
        assert "Traceback" not in err


def test_concurrent_runs_into_a_new_store_one_writes(tmp_path, serial):
    out = tmp_path / "store"
    _concurrent_runs(serial, out, 2, tmp_path, prepare=lambda out: None)
    assert_same_store(out, serial[2])
    # nothing else beside it: no half-built store of the run that lost
    assert {"store", "store.lock"} == {p.name for p in tmp_path.iterdir()} - {
        f"gate-{i}" for i in range(ATTEMPTS)
    }


def _stopped_after_two_chunks(reference):
    def prepare(out):
        shutil.copytree(reference, out)
        for chunk in sorted((out / "chunks").iterdir())[2:]:
            if chunk.name.isdigit():
                shutil.rmtree(chunk)

    return prepare


@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_concurrent_resumes_of_a_store_one_writes(tmp_path, serial, n):
    out = tmp_path / "store"
    _concurrent_runs(serial, out, n, tmp_path, _stopped_after_two_chunks(serial[2]))
    assert_same_store(out, serial[2])


def test_lock_names_its_holder_and_is_released(tmp_path, serial):
    from lodekit.batch.store import run_lock

    out = tmp_path / "store"
    structures = str(serial[0])
    with run_lock(out), pytest.raises(StoreError, match=rf"another run \(pid {os.getpid()}\)"):
        featurize(structures, out, store_recipe(), chunk_size=1, n_workers=1, progress=False)
    assert not out.exists()
    featurize(structures, out, store_recipe(), chunk_size=1, n_workers=1, progress=False)
    assert_same_store(out, serial[2])


def _descendants(pid: int) -> list[int]:
    """Pids of all processes descended from ``pid`` (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [], [pid]
        while frontier:
            children = [c for c, p in parents.items() if p in frontier]
            found += children
            frontier = children
        return found
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped by its new parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_kill_9_leaves_no_worker_behind(tmp_path, serial):
    out = tmp_path / "store"
    gate = tmp_path / "gate"
    gate.touch()
    process = _start(_argv(serial, out, workers=2), gate)
    children = []
    try:
        _wait_for_first_chunk(out, process)
        children = _descendants(process.pid)
        assert process.poll() is None, "the run finished before it could be killed"
        assert len(children) >= 2  # two workers (and multiprocessing's resource tracker)
        process.kill()
        process.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in children if _alive(pid)]
        assert not survivors, f"children of the killed run still alive: {survivors}"
    finally:
        for pid in children:  # only the processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.communicate()
    # the next run takes over (the lock died with its holder) and completes the store
    assert main(_argv(serial, out)) == 0
    assert_same_store(out, serial[2])


def test_ctrl_c_prints_one_line_and_the_run_resumes(tmp_path, serial):
    # on a fast machine a run may write all its chunks between the poll that sees the first
    # one and the signal: it then rightly exits 0 with a complete store, and the try is repeated
    for attempt in range(ATTEMPTS):
        out = tmp_path / f"store-{attempt}"
        gate = tmp_path / "gate"
        gate.touch()
        # a session of its own: Ctrl-C signals the whole group (the run and its workers), not
        # pytest
        process = _start(_argv(serial, out, workers=2), gate, start_new_session=True)
        _wait_for_first_chunk(out, process)
        os.killpg(process.pid, signal.SIGINT)
        code, _, err = _finish(process)
        if code != 0:
            break
        assert_same_store(out, serial[2])
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert "rerun the same command to resume" in lines[0]
    assert not (out / ".incomplete").exists()
    assert main(_argv(serial, out)) == 0
    assert_same_store(out, serial[2])


def test_rerun_recomputes_a_corrupted_chunk(tmp_path, serial):
    out = tmp_path / "store"
    shutil.copytree(serial[2], out)
    chunk = sorted(p for p in (out / "chunks").iterdir() if p.name.isdigit())[3]
    data = [p for p in (chunk / "values").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert data, "no array file found in the chunk"
    raw = bytearray(data[0].read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data[0].write_bytes(bytes(raw))
    gate = tmp_path / "gate"
    gate.touch()
    code, out_text, err = _finish(_start(_argv(serial, out), gate))
    assert code == 0, err
    assert f"{N_STRUCTURES}/{N_STRUCTURES} chunks" in out_text
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "1 finished chunk(s)" in lines[0] and "recomputed: 3 " in lines[0]
    assert_same_store(out, serial[2])
