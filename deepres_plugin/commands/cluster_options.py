"""The options that say where a command's tasks run (``deepres dataset``, ``deepres predict``
over many maps): ``--workers``, ``--scheduler``, ``--jobqueue``. See deepres_plugin/core/cluster.py.
"""
from __future__ import annotations

import argparse

from ..core.cluster import AUTO_WORKERS, JOBQUEUE_SYSTEMS, ClusterOptions
from .options import POSITIVE_INT


def worker_count(text: str) -> int | str:
    """``--workers``: a whole number of at least 1, or ``auto``."""
    if text == AUTO_WORKERS:
        return AUTO_WORKERS
    try:
        return POSITIVE_INT(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or '{AUTO_WORKERS}')") from None


def add_cluster_args(parser: argparse.ArgumentParser, task: str) -> None:
    """Add the three options; ``task`` names one task in the help (``structure``, ``map``)."""
    group = parser.add_argument_group("where the work runs (Dask; one task per %s)" % task)
    group.add_argument("--workers", type=worker_count, default=AUTO_WORKERS,
                       help=f"worker processes of a local Dask cluster, one thread each (default {AUTO_WORKERS}: one "
                            f"per CPU this process may use, at most one per {task}; 1: no cluster, this process); "
                            "with --jobqueue, the workers asked of the batch system")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster: its scheduler's address (tcp://host:8786) or "
                            "scheduler file (.json); its workers must see the same paths")
    group.add_argument("--jobqueue", choices=sorted(JOBQUEUE_SYSTEMS),
                       help="start the workers as batch jobs with dask-jobqueue (queue, cores, memory from "
                            "the Dask configuration, jobqueue.<system> in ~/.config/dask/jobqueue.yaml)")


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The :class:`ClusterOptions` of parsed arguments (checked)."""
    options = ClusterOptions(workers=args.workers, scheduler=args.scheduler, jobqueue=args.jobqueue)
    options.validate()
    return options
