"""The options that say where a command's tasks run (``deepres dataset``, ``deepres predict``
over many maps): ``--workers``, ``--scheduler``, ``--jobqueue``. See deepres_plugin/core/cluster.py.
"""
from __future__ import annotations

import argparse

from ..core.cluster import JOBQUEUE_SYSTEMS, ClusterOptions
from .options import POSITIVE_INT


def add_cluster_args(parser: argparse.ArgumentParser, task: str) -> None:
    """Add the three options; ``task`` names one task in the help (``structure``, ``map``)."""
    group = parser.add_argument_group("where the work runs (Dask; one task per %s)" % task)
    group.add_argument("--workers", type=POSITIVE_INT, default=1,
                       help="worker processes of a local Dask cluster, one thread each (default 1: "
                            "no cluster, this process); with --jobqueue, workers asked of the batch system")
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
