"""Execution backends: where the cells of a sweep run when they leave the main process.

A backend receives a picklable job (what every worker needs to rebuild the sweep's cells, sent
once per worker) and the keys of the cells to run, calls `work(job, key)` for each key in some
worker, and yields the records as they complete. `LocalPool` uses a process pool on this machine;
`RayBackend` a Ray cluster (or a local Ray instance). Records do not depend on the backend:
episodes are a pure function of seed and index, and method randomness comes from
`benchmark.sampling.method_rng`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from benchmark.core.errors import BenchmarkError

Work = Callable[[Any, str], dict[str, Any]]
BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'fewshot-bench[ray]' (or: pip install 'ray>=2.9')"


class BackendError(BenchmarkError):
    """A backend that cannot be used (not installed, unreachable cluster)."""


class Backend(Protocol):
    """Runs `work(job, key)` for every key and yields the records as they complete."""

    workers: int

    def run(self, work: Work, job: Any, keys: Sequence[str]) -> Iterator[dict[str, Any]]: ...


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """torch threads for each of `workers` processes, so that workers x threads <= CPUs."""
    return max(1, available_cpus() // max(1, workers))


_JOB: Any = None  # the job of the pool this worker process belongs to


def _receive_job(job: Any, threads: int) -> None:
    """Pool initializer: keep the job, use `threads` torch threads, exit with the parent."""
    global _JOB
    _JOB = job
    import torch

    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group: the parent stops the workers (`LocalPool.run`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (killed before it could shut the pool down),
    instead of waiting forever for cells."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _pool_call(work: Work, key: str) -> dict[str, Any]:
    return work(_JOB, key)


class LocalPool:
    """A pool of `workers` fresh (spawned) processes on this machine.

    Processes are spawned rather than forked: forking a parent whose torch thread pools already
    ran can hang the child.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, work: Work, job: Any, keys: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Submit every key, yield each record when its cell completes."""
        self.workers = min(self.workers, len(keys))
        context = multiprocessing.get_context("spawn")
        threads = threads_per_worker(self.workers)
        with (
            interrupted_once(),
            ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_receive_job, initargs=(job, threads)
            ) as pool,
        ):
            pending: set[Future[dict[str, Any]]] = {
                pool.submit(_pool_call, work, key) for key in keys
            }
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            except BrokenProcessPool as error:
                raise BackendError(
                    f"a worker process died (killed, or out of memory?): {error}. The records of "
                    "finished cells are stored; rerun the same command to resume"
                ) from error
            except BaseException:  # Ctrl-C, or the caller stopped: do not wait for the cells
                _stop_workers(pool)
                raise
            finally:
                for future in pending:
                    future.cancel()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the workers now and cancel the queued cells, so that leaving the pool does not wait
    for the cells they are running (their records are not stored; a rerun makes them)."""
    workers = list(getattr(pool, "_processes", {}).values())  # no public handle before 3.14
    for process in workers:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _interrupt_once(signum: int, frame: object) -> None:
    """SIGINT while a pool runs: raise KeyboardInterrupt once and ignore every later Ctrl-C, so
    that a second one, however soon, cannot cut short stopping the workers (the process would
    then wait for their cells at exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupted_once() -> Iterator[None]:
    """Inside: `_interrupt_once` handles SIGINT (main thread only; elsewhere unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ray_call(work: Work, job: Any, key: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # a task holds one CPU
    return work(job, key)


class RayBackend:
    """Cells as Ray tasks of one CPU each: on the cluster at `address`, or, without one, on a
    Ray instance started here for the sweep (and stopped after it). A Ray instance that is
    already initialised in this process is used as it is."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise BackendError(
                f"--backend ray needs Ray, which is not installed: {RAY_INSTALL}"
            ) from None
        self._ray = ray
        self.address = address
        self.workers = workers or available_cpus()

    def run(self, work: Work, job: Any, keys: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Submit every key as a task, yield each record when its task completes."""
        ray = self._ray
        started = not ray.is_initialized()
        if started:
            self._start()
        pending: list[Any] = []
        try:
            self.workers = int(ray.cluster_resources().get("CPU", self.workers))
            remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
            shared = ray.put(job)
            pending = [remote.remote(work, shared, key) for key in keys]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield from ray.get(done)
        except ray.exceptions.RayError as error:
            raise BackendError(
                f"a Ray task failed outside its cell: {str(error).strip().splitlines()[-1]}. The "
                "records of finished cells are stored; rerun the same command to resume"
            ) from error
        finally:
            for ref in pending:
                ray.cancel(ref)
            if started:
                ray.shutdown()

    def _start(self) -> None:
        ray = self._ray
        try:
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False)
        except (ConnectionError, RuntimeError) as error:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise BackendError(f"cannot start or reach {where}: {error}") from error


def make_backend(name: str, workers: int, address: str | None = None) -> Backend:
    """The backend called `name` with `workers` processes (Ray: its cluster's CPUs)."""
    if name == "ray":
        return RayBackend(address, workers)
    if name == "local":
        return LocalPool(workers)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
