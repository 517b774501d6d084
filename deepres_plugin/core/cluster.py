"""Where the work that scales out runs: one task per structure (``deepres dataset``) or per
map (``deepres predict`` over many maps), on Dask.

Three places, chosen by :class:`ClusterOptions`:

* this process, when one worker is asked for (or one task is left) and no scheduler: no
  cluster at all, the tasks run one after the other (what the commands always did with one
  worker);
* a local cluster (``dask.distributed.LocalCluster``) of ``workers`` processes with one
  thread each, started here and closed at the end: worker processes, not threads, so that
  NumPy's FFTs and TensorFlow do not fight over the GIL, and one thread each so that a
  worker holds one task's memory at a time; ``workers="auto"`` (the commands' default)
  sizes it to the machine: one process per CPU this process may use, at most one per task;
* an existing cluster (``scheduler``: its address, ``tcp://host:8786``, or the JSON file
  that ``dask scheduler --scheduler-file`` writes), or workers started as batch jobs by
  dask-jobqueue (``jobqueue``: ``slurm``, ``pbs``, ...; queue, account, cores and memory
  per job come from the Dask configuration, ``~/.config/dask/jobqueue.yaml``). Their
  workers must see the same files under the same paths (a shared file system): tasks
  carry absolute paths and write their outputs themselves.

Results come back as tasks finish, with a progress bar of the tasks done and the estimated
time left. Nothing here depends on where a task ran: every task's output is a function of
its inputs only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import ParameterError
from .progress import logging_above, progress_bar

logger = logging.getLogger(__name__)
#: The logger the command line gives a handler (the package's).
PACKAGE_LOGGER = __name__.split(".")[0]

#: Batch systems dask-jobqueue starts workers on: ``--jobqueue`` name -> dask_jobqueue class.
JOBQUEUE_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
#: ``workers`` that sizes a local cluster to the machine (:func:`available_cpus`, at most one per task).
AUTO_WORKERS = "auto"
#: How long to wait for an existing scheduler to answer (s).
SCHEDULER_TIMEOUT_S = 30.0
#: TensorFlow reads its thread-pool sizes from these variables when it starts.
TF_THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
#: Set in the workers of a local cluster so that they can share a GPU.
TF_GPU_GROWTH_VARIABLE = "TF_FORCE_GPU_ALLOW_GROWTH"
#: glibc's trim threshold, which distributed sets in its workers by default (see :func:`local_cluster`).
MALLOC_TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Where tasks run (see the module docstring).

    Attributes:
        workers: worker processes of the local cluster (:data:`AUTO_WORKERS`: one per CPU
            this process may use, at most one per task; see :meth:`sized`), or workers
            asked of the batch system with ``jobqueue``; ignored with ``scheduler`` (the
            cluster has its own).
        scheduler: address or scheduler file of an existing Dask cluster.
        jobqueue: batch system (a key of :data:`JOBQUEUE_SYSTEMS`) to start workers on.
    """

    workers: int | str = 1
    scheduler: str | None = None
    jobqueue: str | None = None

    def validate(self) -> None:
        """Raises ParameterError: fewer than one worker, an unknown batch system, both a
        scheduler and a batch system, or a batch system without a number of workers."""
        if self.workers == AUTO_WORKERS:
            if self.jobqueue is not None:
                raise ParameterError(f"say how many workers to ask of {self.jobqueue} (--workers N): "
                                     f"'{AUTO_WORKERS}' sizes a local cluster to this machine", option="--workers")
        elif not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ParameterError(f"workers must be a whole number of at least 1 or '{AUTO_WORKERS}', not "
                                 f"{self.workers!r}", option="--workers")
        if self.jobqueue is not None and self.jobqueue not in JOBQUEUE_SYSTEMS:
            raise ParameterError(f"unknown batch system {self.jobqueue!r}; choose one of "
                                 f"{', '.join(JOBQUEUE_SYSTEMS)}", option="--jobqueue")
        if self.scheduler and self.jobqueue:
            raise ParameterError("give either an existing scheduler or a batch system, not both")

    @property
    def local(self) -> bool:
        """No scheduler and no batch system: this process or a local cluster."""
        return not self.scheduler and not self.jobqueue

    @property
    def in_process(self) -> bool:
        """One worker, no scheduler, no batch system: the tasks run in this process."""
        return self.workers == 1 and self.local

    def sized(self, tasks: int, cpus: int | None = None) -> ClusterOptions:
        """These options with :data:`AUTO_WORKERS` made a number for ``tasks`` tasks: the
        CPUs this process may use (``cpus``: :func:`available_cpus`), at most one worker per
        task, at least one (one worker: this process)."""
        if self.workers != AUTO_WORKERS or not self.local:
            return self
        return dataclasses.replace(self, workers=max(1, min(cpus or available_cpus(), tasks)))

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask cluster at {self.scheduler}"
        if self.jobqueue:
            return f"{self.workers} {self.jobqueue} workers (dask-jobqueue)"
        if self.in_process:
            return "this process"
        if self.workers == AUTO_WORKERS:
            return "a local cluster of one process per CPU"
        return f"a local cluster of {self.workers} processes"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity: a batch job's or a container's share), at
    least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                     # not on Linux
        return os.cpu_count() or 1


def local_worker_threads(workers: int, cpus: int | None = None) -> int:
    """Threads each of ``workers`` processes on this machine may use for its numerical
    libraries (TensorFlow's pools): the CPUs shared out, at least 1."""
    return max(1, (cpus or available_cpus()) // workers)


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` processes, one thread each, without a dashboard
    (no port to clash with).

    Each worker's TensorFlow gets its share of the CPUs (:func:`local_worker_threads`) and
    takes GPU memory as it needs it (:data:`TF_GPU_GROWTH_VARIABLE`; by default each would
    take the whole GPU at start and the second worker would find none); OpenMP, MKL and
    OpenBLAS get one thread (distributed's default). Distributed's
    ``MALLOC_TRIM_THRESHOLD_`` is not set: it turns off glibc's adaptive mmap threshold, so
    that every large array is a fresh mmap, and made a structure 1.6 times slower to
    generate (2.96 s -> 4.74 s for six wide structures). The nannies write their variables
    into this process's environment too; it is restored, so that programs started from
    here later get the usual threads.
    """
    import dask
    from distributed import LocalCluster

    threads = str(local_worker_threads(workers))
    saved = dict(os.environ)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM_VARIABLE}": None}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                env={**{name: threads for name in TF_THREAD_VARIABLES}, TF_GPU_GROWTH_VARIABLE: "true"})
    finally:
        os.environ.clear()
        os.environ.update(saved)


def jobqueue_cluster(system: str, workers: int | None = None):
    """A dask-jobqueue cluster on the batch system ``system``; with ``workers``, scaled to
    that many workers (jobs are submitted as the cluster starts them).

    Queue, account, cores, processes, memory, walltime and job directives come from the
    Dask configuration (``jobqueue.<system>.*``, e.g. ``~/.config/dask/jobqueue.yaml``);
    ``cluster.job_script()`` shows the script each job runs.

    Raises:
        ParameterError: an unknown system, or a configuration without cores or memory.
    """
    ClusterOptions(jobqueue=system).validate()
    import dask_jobqueue

    cluster_class = getattr(dask_jobqueue, JOBQUEUE_SYSTEMS[system])
    try:
        cluster = cluster_class()
    except ValueError as exc:       # no cores/memory in the configuration
        raise ParameterError(f"dask-jobqueue cannot start {system} jobs ({' '.join(str(exc).split())}); "
                             f"set jobqueue.{system}.cores and .memory in the Dask configuration") from None
    if workers:
        cluster.scale(n=workers)
    return cluster


def connect(scheduler: str, timeout_s: float | None = None):
    """A client of the existing cluster whose scheduler is at ``scheduler`` (an address, or
    the JSON file its scheduler wrote with ``--scheduler-file``).

    Raises:
        ParameterError: nothing answers there within ``timeout_s`` (default
            :data:`SCHEDULER_TIMEOUT_S`).
    """
    from distributed import Client

    timeout_s = timeout_s or SCHEDULER_TIMEOUT_S
    as_file = scheduler.endswith(".json") and "://" not in scheduler
    if as_file and not Path(scheduler).is_file():
        raise ParameterError(f"no Dask scheduler file {scheduler}", option="--scheduler")
    try:
        if as_file:
            return Client(scheduler_file=scheduler, timeout=timeout_s)
        return Client(scheduler, timeout=timeout_s)
    except (OSError, ValueError, TypeError) as exc:     # unreachable, timed out, malformed address
        raise ParameterError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})", option="--scheduler") from None


@contextlib.contextmanager
def dask_client(options: ClusterOptions) -> Iterator[Any]:
    """A ``distributed.Client`` for ``options`` (not for :attr:`ClusterOptions.in_process`);
    a cluster started here is closed, its processes ended, when the block ends."""
    options.validate()
    from distributed import Client

    if options.scheduler:
        with connect(options.scheduler) as client:
            yield client
        return
    if options.jobqueue:
        cluster = jobqueue_cluster(options.jobqueue, options.workers)
    else:
        cluster = local_cluster(options.workers)
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def connected(options: ClusterOptions, client: Any = None) -> Iterator[Any]:
    """``client`` if given; else, with a scheduler, a client of that cluster, connected now so
    that an unreachable scheduler fails before any work or output; else None (a cluster, if
    any, is started when there are tasks, :func:`map_tasks`)."""
    options.validate()
    if client is not None or not options.scheduler:
        yield client
        return
    with dask_client(options) as own:
        yield own


def map_tasks(function: Callable[[Any], Any], tasks: Sequence[Any], keys: Sequence[str], options: ClusterOptions,
              progress: bool = False, description: str = "", unit: str = "task", done_before: int = 0,
              client: Any = None, on_error: Callable[[Any, BaseException], Any] | None = None) -> Iterator[Any]:
    """Run ``function`` on every task where ``options`` say; yield the results as they finish.

    Use inside ``contextlib.closing`` (or exhaust it): closing it cancels what is left and
    closes a cluster started here.

    Args:
        function: a module-level function (it is pickled to the workers).
        tasks: its arguments, one per task.
        keys: a unique name per task (Dask's task keys, shown on its dashboard).
        progress: show a progress bar (tasks done, estimated time left) on stderr.
        done_before: tasks already done by an earlier run, counted in the bar.
        client: a ``distributed.Client`` to use instead of starting anything.
        on_error: turns (task, exception) into a result when a task fails on a cluster
            (its worker died, it could not be sent); without it the exception is raised.

    Raises:
        whatever a task raises that it does not turn into a result.
    """
    options = options.sized(len(tasks))
    total = done_before + len(tasks)
    with progress_bar(total=total, initial=done_before, unit=unit, desc=description, enabled=progress,
                      smoothing=0.1) as bar, logging_above(bar, [logging.getLogger(PACKAGE_LOGGER)]):
        # a local cluster for one task would only add its start-up
        if client is None and (options.in_process or len(tasks) == 0 or (options.local and len(tasks) == 1)):
            for task in tasks:
                result = function(task)
                bar.update()
                yield result
            return
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(options))
            yield from _dask_results(client, function, tasks, keys, bar, on_error)


def _dask_results(client, function, tasks, keys, bar, on_error) -> Iterator[Any]:
    from distributed import as_completed

    futures = {client.submit(function, task, key=key, pure=False): task for task, key in zip(tasks, keys)}
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:         # noqa: BLE001 - handed to on_error, or raised
                if on_error is None:
                    raise
                result = on_error(futures[future], exc)
            future.release()                 # drop the result from the workers' memory now
            bar.update()
            yield result
    finally:
        client.cancel(list(futures))
