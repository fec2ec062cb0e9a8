"""Featurisation of many structures: chunks computed in parallel, written to a store.

:func:`featurize` splits a dataset into chunks of consecutive structures and computes the
features of each chunk (:meth:`lodekit.features.Recipe.compute`) on one of three
executors:

- ``n_workers=1``: in this process, structures of a chunk on threads (``n_threads``);
- ``n_workers > 1`` (the default when there are several cores and chunks): a local pool of
  worker processes (``spawn``, so that no thread state is forked);
- ``client=``: a ``dask.distributed`` client, one task per chunk, on any cluster.

Who writes: always this process, the only writer of the store (on a few threads, so that
compressing and flushing one chunk overlaps with receiving the next). Workers receive the
structures of their chunk (validated :class:`~lodekit.systems.System` copies) and return
arrays, so they need neither the input files nor the store: no shared filesystem is assumed,
and no two processes ever write the same store. At most ``2 x workers`` chunks are being
computed and ``2 x WRITER_THREADS`` waiting to be written, which bounds the memory of this
process whatever the size of the dataset.

Every chunk is computed by the same function with the same species list whatever the
executor, so serial, process-pool and Dask runs give the same numbers; the chunk a structure
belongs to depends only on ``chunk_size``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np

from .. import _validation as check
from ..errors import InputError, describe
from ..features.recipe import Recipe, as_species
from .dataset import StructureSource
from .store import FeatureStore, run_lock

__all__ = ["DEFAULT_CHUNK_SIZE", "compute_chunks", "dataset_species", "featurize"]

#: Structures per chunk when neither the caller nor an existing store says otherwise.
DEFAULT_CHUNK_SIZE = 16

#: Threads of the writing process that compress, checksum and fsync finished chunks.
WRITER_THREADS = 4

#: Seconds between two checks by a worker process that its parent is still alive.
PARENT_POLL_SECONDS = 0.5

_log = logging.getLogger(__name__)


def featurize(
    structures,
    store,
    recipe=None,
    *,
    species=None,
    chunk_size: int | None = None,
    n_workers: int | None = None,
    n_threads: int | None = None,
    client=None,
    progress: bool = True,
) -> FeatureStore:
    """Compute the features of a dataset into a resumable feature store.

    Running it again on the same store computes only the chunks that are missing (after a
    crash, a kill or an interrupted run) or that fail verification (every finished chunk is
    read and checked against its sealed record and digests; those recomputed are logged as
    one warning of the ``lodekit.batch.featurize`` logger); sound chunks are never recomputed.

    One run at a time writes a store: the run holds :func:`~lodekit.batch.store.run_lock`
    (``<store>.lock`` beside it, released by the kernel when the run ends or is killed) from
    before the store is created until its last chunk is written; a concurrent run raises
    :class:`StoreError` naming the holder's pid. Local worker processes exit when this
    process dies, and ignore SIGINT: Ctrl-C raises ``KeyboardInterrupt`` here only, after
    the pool is stopped and the chunks being written are finished.

    Parameters
    ----------
    structures : path, list of paths, ase.Atoms, list of structures, or StructureSource
        The dataset: ASE-readable files (all frames, in order) or structures in memory.
    store : str or path-like
        The store directory; created if absent. An existing store must have been written
        with the same recipe, species, structures and chunk size, else :class:`StoreError`.
    recipe : Recipe, dict, JSON str or None
        The features (see :mod:`lodekit.features.recipe`); None uses ``DEFAULT_RECIPE``.
    species : sequence of int, optional
        Neighbour-channel species (a superset of those present). Default: the species
        present in the dataset (or those of the existing store).
    chunk_size : int, optional
        Structures per chunk. Default: that of the existing store, else 16.
    n_workers : int, optional
        Local worker processes (1: compute in this process). Default: the usable cores, at
        most one per chunk to compute. Not with ``client``.
    n_threads : int, optional
        Threads over the structures of one chunk. Default: in this process, the
        ``OMP_NUM_THREADS`` or number of cores; in a local pool, cores / workers; on Dask,
        the workers' ``OMP_NUM_THREADS`` (1 with dask's default nanny settings).
    client : distributed.Client, optional
        Compute one task per chunk on this Dask cluster.
    progress : bool
        Show a progress bar over chunks (tqdm, on stderr).

    Returns
    -------
    FeatureStore
        The complete store; read it with :meth:`FeatureStore.load`.
    """
    recipe = Recipe.coerce(recipe)
    if chunk_size is not None:
        chunk_size = check.int_in_range("chunk_size", chunk_size, 1)
    _check_executor(n_workers, n_threads, client)
    source = structures
    if not isinstance(source, StructureSource):
        source = StructureSource.scan(structures, weights=recipe.weight_arrays)
    # the weight arrays the recipe reads are checked in every frame and fingerprinted in the
    # store's inputs, so that a store is never resumed on other weights
    source = source.for_weights(recipe.weight_arrays)
    # the run lock comes first: it also guards the creation of a new store
    with run_lock(store):
        target, species = _open_store(store, recipe, source, species, chunk_size)
        with target.writer():
            todo = _chunks_to_compute(target)
            results = compute_chunks(
                source,
                recipe,
                species,
                chunk_size=target.chunk_size,
                chunks=todo,
                n_workers=n_workers,
                n_threads=n_threads,
                client=client,
            )
            _write_all(target, results, _progress_bar(target, len(todo), progress))
    return target


def _chunks_to_compute(target: FeatureStore) -> list[int]:
    """The missing chunks and the finished ones that fail verification (damaged on disk
    since they were written), which are recomputed and replaced; the latter are logged."""
    damaged = target.damaged_chunks()
    if damaged:
        first = next(iter(damaged.values()))
        _log.warning(
            "%d finished chunk(s) of %r fail verification and are recomputed: %s%s",
            len(damaged),
            str(target.path),
            ", ".join(str(i) for i in damaged),
            f" (first: {first})",
        )
    return sorted(set(target.missing_chunks()) | set(damaged))


def _open_store(store, recipe: Recipe, source: StructureSource, species, chunk_size):
    """The store to write (created, or an existing one checked against this run) and the
    species list of the run."""
    existing = _existing_store(store)
    if existing is not None:
        from .._version import __version__

        # what the store holds must be checked before anything is derived from it
        existing.check_matches(
            lodekit_version=__version__, recipe=recipe.to_dict(), inputs=source.records
        )
        if species is None:
            species = existing.species
    species = dataset_species(source, species)
    if existing is not None:
        existing.check_matches(species=species.tolist())
        if chunk_size is not None:
            existing.check_matches(chunk_size=chunk_size)
        return existing, species
    properties, names = recipe.properties(species)
    target = FeatureStore.create(
        store,
        recipe=recipe.to_dict(),
        species=species.tolist(),
        inputs=source.records,
        n_atoms=source.n_atoms,
        chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
        properties=properties,
        property_names=names,
    )
    return target, species


def _progress_bar(target: FeatureStore, n_todo: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=target.n_chunks,
        initial=target.n_chunks - n_todo,
        unit="chunk",
        desc="featurize",
        disable=not progress,
    )


def _write_all(target: FeatureStore, results, bar) -> None:
    """Write chunks as they arrive, on a few threads of this process.

    Compression, checksums and fsync release the GIL, and each chunk is written and renamed
    into place on its own, so writes of different chunks overlap safely; this process stays
    the only writer of the store. At most ``2 x WRITER_THREADS`` chunks wait in memory.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    def finish(done) -> None:
        for future in done:
            future.result()  # a failed write stops the run (finished chunks stay)
            bar.update()

    with bar, ThreadPoolExecutor(WRITER_THREADS) as writers:
        pending: set = set()
        try:
            for index, values, samples in results:
                pending.add(writers.submit(target.write_chunk, index, values, samples))
                if len(pending) >= 2 * WRITER_THREADS:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    finish(done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                finish(done)
        finally:
            results.close()  # stop the executors if a write failed


def dataset_species(source: StructureSource, species=None) -> np.ndarray:
    """The neighbour-channel species: ``species`` (checked to cover the dataset) or those
    present in ``source``.

    Returns
    -------
    ndarray of int64, sorted
    """
    if species is None:
        return source.species
    array = as_species(species)
    extra = np.setdiff1d(source.species, array)
    if len(extra):
        raise InputError(
            f"`species` is {array.tolist()} but the structures also contain {extra.tolist()}"
        )
    return array.astype(np.int64)


def compute_chunks(
    source: StructureSource,
    recipe: Recipe,
    species,
    *,
    chunk_size: int,
    chunks=None,
    n_workers: int | None = None,
    n_threads: int | None = None,
    client=None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Features of chunks of ``source``, yielded as they complete (in any order).

    Parameters
    ----------
    chunks : sequence of int, optional
        Which chunks to compute (default: all).
    Other parameters as in :func:`featurize`.

    Yields
    ------
    (index, values, samples)
        Chunk index, values (n_rows, n_features) and samples (n_rows, 3) of
        :meth:`Recipe.compute` with the system index counted in the whole dataset.
    """
    chunk_size = check.int_in_range("chunk_size", chunk_size, 1)
    _check_executor(n_workers, n_threads, client)
    # frames must carry the arrays the calculators' `weights` options name, to the workers
    source = source.for_weights(recipe.weight_arrays)
    n_chunks = -(-source.n_structures // chunk_size)
    chunks = list(range(n_chunks)) if chunks is None else sorted(set(chunks))
    if not chunks:
        return
    recipe = recipe.to_json()
    species = [int(z) for z in species]
    if client is not None:
        yield from _run_dask(client, _tasks(source, chunks, chunk_size), recipe, species, n_threads)
        return
    cores = _usable_cores()
    if n_workers is None:
        n_workers = min(cores, len(chunks))
    if n_workers == 1:
        yield from _run_here(_tasks(source, chunks, chunk_size), recipe, species, n_threads)
        return
    if n_threads is None:
        n_threads = max(1, cores // n_workers)
    yield from _run_pool(n_workers, _tasks(source, chunks, chunk_size), recipe, species, n_threads)


# -------------------------------------------------------------------- executors
def _check_executor(n_workers, n_threads, client) -> None:
    if n_workers is not None:
        check.int_in_range("n_workers", n_workers, 1)
    if n_threads is not None:
        check.int_in_range("n_threads", n_threads, 1)
    if client is not None:
        if not callable(getattr(client, "submit", None)):
            raise InputError(f"`client` is {describe(client)}; expected a dask.distributed Client")
        if n_workers is not None:
            raise InputError(
                f"`n_workers` is {n_workers} and `client` is given: the cluster's workers do "
                "the work, give one of them"
            )


def _existing_store(path) -> FeatureStore | None:
    from pathlib import Path

    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    return FeatureStore(path)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _tasks(source: StructureSource, chunks: list[int], chunk_size: int):
    """(chunk, first system index, systems) of the wanted chunks, reading ``source`` once."""
    wanted = set(chunks)
    n = source.n_structures
    last = max(chunks)

    class _Wanted:  # membership of a structure in a wanted chunk, without a set of indices
        def __contains__(self, index):
            return index // chunk_size in wanted

    systems: list = []
    for index, system in source.systems(wanted=_Wanted()):
        chunk = index // chunk_size
        if chunk not in wanted:
            if chunk > last:
                return  # nothing more to compute: stop reading the files
            continue
        systems.append(system)
        if index == min((chunk + 1) * chunk_size, n) - 1:
            yield chunk, chunk * chunk_size, systems
            systems = []


def _run_here(tasks, recipe: str, species: list, n_threads):
    from threadpoolctl import threadpool_limits

    for chunk, first, systems in tasks:
        # one BLAS thread, as in the workers of the other executors: the BLAS thread count
        # changes the last bits of the results, and every executor must give the same numbers
        with threadpool_limits(1):
            result = _compute_chunk(chunk, first, systems, recipe, species, n_threads, False)
        yield result


def _run_pool(n_workers: int, tasks, recipe: str, species: list, n_threads: int):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: a fresh interpreter per worker, since forking a process that runs threads
    # (tqdm's monitor, thread pools) can deadlock
    pool = ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
        initargs=(os.getpid(),),
    )
    pending: set = set()
    try:
        for task in tasks:
            with _sigint_blocked():  # a worker may be started here: it inherits the mask
                future = pool.submit(_compute_chunk, *task, recipe, species, n_threads)
            pending.add(future)
            if len(pending) >= 2 * n_workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread: processes started meanwhile keep it blocked for good.

    Ctrl-C reaches every process of the terminal's group; only this one must react (stop
    the pool, keep the finished chunks), not each worker with its own traceback. A SIGINT
    arriving meanwhile stays pending and is delivered when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _watch_parent(parent: int) -> None:
    """Worker start-up: exit as soon as the process ``parent`` is gone.

    A killed parent (``kill -9``) cannot stop its pool, and idle workers would wait for
    tasks forever; a daemon thread polls the parent pid instead (portable, unlike
    ``PR_SET_PDEATHSIG``, which also fires when the spawning *thread* ends).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # in case the mask was not inherited

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="lodekit-parent-watch", daemon=True).start()


def _run_dask(client, tasks, recipe: str, species: list, n_threads):
    from distributed import as_completed

    window = 2 * max(1, sum(client.nthreads().values()))
    running = as_completed()
    submitted = []
    tasks = iter(tasks)

    def submit() -> bool:
        task = next(tasks, None)
        if task is None:
            return False
        future = client.submit(_compute_chunk, *task, recipe, species, n_threads, pure=False)
        submitted.append(future)
        running.add(future)
        return True

    try:
        for _ in range(window):
            if not submit():
                break
        for future in running:
            yield future.result()
            submit()
    finally:
        # on an error (or the caller stopping early) leave nothing running on the cluster
        client.cancel([f for f in submitted if not f.done()])


_local = threading.local()

#: Whether this worker process has set BLAS to one thread.
_BLAS_PINNED = False


def _recipe(recipe: str) -> Recipe:
    """The Recipe of the JSON ``recipe``, built once per worker thread: calculators keep
    tables (splines, k-vectors) between calls, and a thread never shares one with another."""
    cache = getattr(_local, "recipes", None)
    if cache is None:
        cache = _local.recipes = {}
    if recipe not in cache:
        cache[recipe] = Recipe.from_json(recipe)
    return cache[recipe]


def _compute_chunk(
    chunk: int, first: int, systems, recipe: str, species, n_threads, worker: bool = True
):
    """The unit of work, run by every executor: (chunk, values, samples).

    In a worker process (``worker``), BLAS is set to one thread for the rest of the
    process's life (the cores go to worker processes and chunk threads, and results must
    not depend on the executor); dask's nanny already does so through OMP_NUM_THREADS.
    """
    global _BLAS_PINNED
    if worker and not _BLAS_PINNED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _BLAS_PINNED = True
    features = _recipe(recipe).compute(systems, species, first_system=first, n_threads=n_threads)
    return chunk, features.values, features.samples
