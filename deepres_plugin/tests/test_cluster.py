"""Scale-out on Dask: a real local cluster of worker processes makes the same shards, byte for
byte, as one process; resume, failures, scheduler and batch-system configuration."""
import argparse
import contextlib
import json
import os
import shutil

import dask
import dask_jobqueue  # noqa: F401 - its configuration defaults must be loaded before dask.config.set
import numpy as np
import pytest
from distributed import Client

from deepres_plugin import cli
from deepres_plugin.commands.cluster_options import add_cluster_args, worker_count
from deepres_plugin.core import cluster as cl
from deepres_plugin.core import dataset as ds
from deepres_plugin.core.cluster import local_cluster
from deepres_plugin.core.errors import ParameterError

SMALL = dict(labels_per_structure=3, boxes_per_label=10)
STRUCTURES = ("BM5_1GL1_l_u.pdb.gz", "BM5_1PPE_l_b-matched.pdb.gz", "BM5_1PPE_l_u.pdb.gz")


@pytest.fixture(scope="module")
def structures(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("structures")
    for name in STRUCTURES:
        shutil.copy(data_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def client():
    """The commands' local cluster of two worker processes (one thread each, no dashboard); closed,
    its processes ended, after the module."""
    with local_cluster(2) as cluster, Client(cluster) as dask_client:
        yield dask_client


def shard_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted((folder / ds.SHARD_DIR).iterdir())}


def test_two_worker_processes_make_byte_identical_shards(structures, tmp_path):
    """The command with --workers 2 starts a local cluster of processes; its shards equal, byte
    for byte, those made in this process, and each equals the structure's examples."""
    config = ds.DatasetConfig("wide", **SMALL)
    one = ds.generate_dataset(structures, tmp_path / "one", config, workers=1, progress=False)
    status = cli.main(["dataset", str(structures), "--range", "wide", "--out", str(tmp_path / "two"),
                       "--workers", "2", "--labels-per-structure", "3", "--boxes-per-label", "10", "--no-progress"])
    assert status == cli.EXIT_OK
    two = json.loads((tmp_path / "two" / ds.MANIFEST_FILE).read_text())
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert len(shard_bytes(tmp_path / "one")) == 3
    assert two["timing"]["cluster"] == "a local cluster of 2 processes" and one["timing"]["cluster"] == "this process"
    without_time = [{k: v for k, v in entry.items() if k != "seconds"} for entry in one["structures"]]
    assert [{k: v for k, v in entry.items() if k != "seconds"} for entry in two["structures"]] == without_time
    assert all(entry["seconds"] > 0 for entry in two["structures"])
    examples = ds.structure_examples(structures / STRUCTURES[0], config)
    with np.load(tmp_path / "two" / ds.SHARD_DIR / "BM5_1GL1_l_u.npz") as shard:
        assert sorted(shard.files) == sorted(examples)
        for key in examples:
            np.testing.assert_array_equal(shard[key], examples[key])


def test_shard_bytes_do_not_depend_on_when_they_were_written(tmp_path, rng):
    arrays = {"boxes": rng.standard_normal((2, 3)).astype(np.float16), "lowpass": np.array(["cosine:0.02"])}
    ds.write_shard(tmp_path / "a.npz", arrays)
    (tmp_path / "a.npz").rename(tmp_path / "first.npz")
    ds.write_shard(tmp_path / "a.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "first.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as loaded:
        np.testing.assert_array_equal(loaded["boxes"], arrays["boxes"])
        assert loaded["lowpass"][0] == "cosine:0.02"


def test_interrupted_run_resumes_on_a_cluster(structures, tmp_path, client):
    config = ds.DatasetConfig("wide", **SMALL)
    out = tmp_path / "data"
    ds.generate_dataset(structures, out, config, progress=False, client=client)
    reference = shard_bytes(out)
    kept = out / ds.SHARD_DIR / "BM5_1GL1_l_u.npz"
    kept_mtime = kept.stat().st_mtime_ns
    (out / ds.SHARD_DIR / "BM5_1PPE_l_u.npz").unlink()
    manifest = ds.generate_dataset(structures, out, config, progress=False, client=client)
    assert manifest["timing"]["structures_this_run"] == 1
    assert kept.stat().st_mtime_ns == kept_mtime
    assert shard_bytes(out) == reference
    # the times of the structures made by the first run come from its manifest
    assert all(entry["seconds"] > 0 for entry in manifest["structures"])


def square_or_fail(value: int) -> int:
    if value == 3:
        raise RuntimeError("three")
    return value * value


def test_map_tasks_yields_every_result_and_hands_failures_to_on_error(client):
    results = cl.map_tasks(square_or_fail, [1, 2, 3, 4], ["a", "b", "c", "d"], cl.ClusterOptions(), client=client,
                           on_error=lambda task, exc: f"{task}: {exc}")
    with contextlib.closing(results):
        assert sorted(map(str, results)) == ["1", "16", "3: three", "4"]
    with pytest.raises(RuntimeError, match="three"):
        list(cl.map_tasks(square_or_fail, [3], ["e"], cl.ClusterOptions(), client=client))
    in_process = cl.map_tasks(square_or_fail, [1, 2], ["f", "g"], cl.ClusterOptions())
    assert list(in_process) == [1, 4]


@pytest.mark.parametrize("options, message", [
    (cl.ClusterOptions(workers=0), "at least 1"),
    (cl.ClusterOptions(jobqueue="cobalt"), "unknown batch system 'cobalt'; choose one of slurm, pbs, sge, lsf"),
    (cl.ClusterOptions(scheduler="tcp://head:8786", jobqueue="slurm"), "not both"),
    (cl.ClusterOptions(workers="auto", jobqueue="slurm"), r"say how many workers to ask of slurm \(--workers N\)"),
    (cl.ClusterOptions(workers="many"), "whole number of at least 1 or 'auto', not 'many'"),
])
def test_bad_cluster_options_are_refused(options, message):
    with pytest.raises(ParameterError, match=message):
        options.validate()


def test_where_tasks_run():
    assert cl.ClusterOptions().in_process and cl.ClusterOptions().describe() == "this process"
    assert not cl.ClusterOptions(workers=2).in_process
    assert not cl.ClusterOptions(scheduler="tcp://head:8786").in_process
    assert cl.ClusterOptions(workers=4, jobqueue="pbs").describe() == "4 pbs workers (dask-jobqueue)"
    assert [cl.local_worker_threads(w, cpus=2) for w in (1, 2, 3)] == [2, 1, 1]
    assert cl.local_worker_threads(4, cpus=16) == 4


def test_auto_workers_are_one_per_cpu_and_at_most_one_per_task():
    auto = cl.ClusterOptions(workers=cl.AUTO_WORKERS)
    assert not auto.in_process and auto.describe() == "a local cluster of one process per CPU"
    assert [auto.sized(tasks, cpus=2).workers for tasks in (0, 1, 2, 50)] == [1, 1, 2, 2]
    assert auto.sized(1, cpus=2).in_process and auto.sized(50, cpus=16).workers == 16
    assert auto.sized(50).workers == len(os.sched_getaffinity(0)) == cl.available_cpus()
    given = cl.ClusterOptions(workers=3)
    assert given.sized(1, cpus=2) is given                     # a number asked for is kept
    remote = cl.ClusterOptions(workers=cl.AUTO_WORKERS, scheduler="tcp://head:8786")
    assert remote.sized(50, cpus=2) is remote                  # the cluster has its own workers


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("3", 3)])
def test_workers_option_takes_a_number_or_auto(text, expected):
    parser = argparse.ArgumentParser()
    add_cluster_args(parser, "map")
    assert parser.parse_args([]).workers == cl.AUTO_WORKERS                 # the commands' default
    assert parser.parse_args(["--workers", text]).workers == expected
    with pytest.raises(argparse.ArgumentTypeError, match=r"'lots' is not a whole number \(or 'auto'\)"):
        worker_count("lots")


def test_unreachable_scheduler_is_one_line_error(structures, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cl, "SCHEDULER_TIMEOUT_S", 0.5)
    status = cli.main(["dataset", str(structures), "--range", "wide", "--out", str(tmp_path / "data"),
                       "--scheduler", "tcp://127.0.0.1:9", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and err.count("\n") == 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and err.endswith("(--scheduler)")
    assert not (tmp_path / "data").exists()                          # refused before anything is written
    status = cli.main(["dataset", str(structures), "--range", "wide", "--out", str(tmp_path / "data"),
                       "--scheduler", str(tmp_path / "absent.json"), "--no-progress"])
    assert status == cli.EXIT_ERROR and "no Dask scheduler file" in capsys.readouterr().err


@pytest.mark.parametrize("system, directives", [
    ("slurm", ["#SBATCH -p short", "#SBATCH -A cryoem", "#SBATCH --cpus-per-task=4", "#SBATCH -t 02:00:00"]),
    ("pbs", ["#PBS -q short", "#PBS -A cryoem", "#PBS -l walltime=02:00:00"]),
])
def test_batch_system_jobs_follow_the_dask_configuration(system, directives):
    settings = {"cores": 4, "processes": 4, "memory": "16GB", "queue": "short", "account": "cryoem",
                "walltime": "02:00:00", "scheduler-options": {"dashboard_address": ":0"}}
    with dask.config.set({f"jobqueue.{system}.{key}": value for key, value in settings.items()}):
        with cl.jobqueue_cluster(system) as cluster:
            script = cluster.job_script()
    for directive in directives:
        assert directive in script
    assert "--nthreads 1" in script and "--nworkers 4" in script      # four one-thread workers per job
    with dask.config.set({f"jobqueue.{system}.cores": None}):
        with pytest.raises(ParameterError, match=f"set jobqueue.{system}.cores and .memory"):
            cl.jobqueue_cluster(system)
