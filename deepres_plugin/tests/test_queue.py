"""The local-resolution protocol through a host's queue, as Scipion runs any protocol there;
``deepres dataset`` on Slurm jobs that dask-jobqueue submits.

A single-node Slurm cluster (Debian's slurm-wlm: munged, slurmctld, slurmd) is started in a
temporary folder with its own key, ports and state; a new project gets a hosts.conf whose
queue submits with sbatch (:data:`HOSTS_CONF`), and the protocol runs a set of three maps
with "use queue" on and three Scipion threads inside the job. The job must have run in
Slurm and the outputs must equal the core's predictions. Skipped, with the reason, where
Slurm is not installed (`apt-get install slurm-wlm`, as root) or cannot be started here;
tests never install system packages.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pwem.protocols import ProtImportVolumes
from pyworkflow.project import Manager

from deepres_plugin.core import dataset as ds
from deepres_plugin.core.mrc import read_map
from deepres_plugin.protocols import ProtDeepResLocalResolution
from deepres_plugin.protocols.protocol_local_resolution import ITEM_MEDIAN
from deepres_plugin.tests.test_cluster import SMALL, STRUCTURES, shard_bytes
from deepres_plugin.tests.test_protocols_sets import (
    LOWPASS,
    MAP_PATTERN,
    SAMPLING,
    assert_finished,
    core_predictions,
    launch_and_wait,
    write_set_maps,
)

#: Slurm's daemons and clients, and munge's daemon (the daemons live in sbin).
SLURM_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")
SBIN_FOLDERS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
INSTALL_HINT = "`apt-get install slurm-wlm` as root (Debian/Ubuntu)"
#: The test cluster's one partition: the queue of the hosts.conf.
PARTITION = "deepres"
#: CPUs the node declares (more than this machine may have: the job asks for one per Scipion thread).
NODE_CPUS = 8
#: Seconds for the node to come up, and for the queued run to end.
START_LIMIT = 30
QUEUE_RUN_LIMIT = 110
JOB_END_LIMIT = 30
#: Slurm job states before the job has ended.
ACTIVE_JOB_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
THREADS = 3

#: The hosts.conf of the test project: Scipion's localhost with a Slurm queue (pyworkflow's
#: HostConfig reads %_( as %( ). The job runs the protocol; its threads run the steps.
HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SLURM
MANDATORY = 0
SUBMIT_COMMAND = sbatch %_(JOB_SCRIPT)s
CANCEL_COMMAND = scancel %_(JOB_ID)s
CHECK_COMMAND = squeue -h -j %_(JOB_ID)s
SUBMIT_TEMPLATE = #!/bin/bash
    #SBATCH --job-name=%_(JOB_NAME)s
    #SBATCH --partition=%_(JOB_QUEUE)s
    #SBATCH --ntasks=1
    #SBATCH --cpus-per-task=%_(JOB_THREADS)d
    #SBATCH --time=%_(JOB_TIME)s
    #SBATCH --output=%_(JOB_LOGS)s.out
    #SBATCH --error=%_(JOB_LOGS)s.err
    echo "slurm job $SLURM_JOB_ID on $(hostname)"
    %_(JOB_COMMAND)s
QUEUES = {"deepres": [["JOB_TIME", "10", "Time (minutes)", "Wall-clock limit of the job, in minutes"]]}
"""


class SlurmStartError(RuntimeError):
    """The cluster did not come up (the message ends with the daemons' last log lines)."""


def slurm_programs():
    """The paths of :data:`SLURM_PROGRAMS`; skips the test when one is missing."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_FOLDERS])
    found = {name: shutil.which(name, path=path) for name in SLURM_PROGRAMS}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        pytest.skip(f"slurm-wlm not installed (no {', '.join(missing)}): the queue test needs a Slurm "
                    f"scheduler; {INSTALL_HINT}")
    return found


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlurmCluster:
    """munged, slurmctld and slurmd for one node, everything under ``folder`` (key, sockets,
    state, logs, pid files); only the daemons started here are stopped, by their pid files."""

    def __init__(self, folder, programs):
        self.folder = Path(folder)
        self.programs = programs
        self.conf = str(self.folder / "slurm.conf")
        self.pidFiles = []

    def _path(self, *names):
        return str(self.folder.joinpath(*names))

    def _run(self, *command):
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
        if result.returncode:
            raise SlurmStartError(f"{' '.join(command)} exited {result.returncode}: "
                                  f"{(result.stderr or result.stdout).strip()[-500:]}{self._logTails()}")
        return result.stdout

    def _logTails(self):
        tails = []
        for log in sorted(self.folder.glob("*.log")):
            lines = log.read_text(errors="replace").strip().splitlines()[-3:]
            tails.append(f"\n{log.name}: " + " | ".join(lines))
        return "".join(tails)

    def start(self):
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        host = socket.gethostname().split(".")[0]
        munge = self.folder / "munge"
        munge.mkdir(mode=0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.pidFiles.append(self._path("munge", "munged.pid"))
        self._run(self.programs["munged"], "--force", f"--key-file={key}", f"--socket={munge / 'munge.socket'}",
                  f"--pid-file={self.pidFiles[-1]}", f"--log-file={self._path('munged.log')}",
                  f"--seed-file={munge / 'munged.seed'}")
        for folder in ("state", "spool"):
            (self.folder / folder).mkdir()
        Path(self.conf).write_text(f"""ClusterName=deeprestest
SlurmctldHost={host}(127.0.0.1)
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge / 'munge.socket'}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={self._path('state')}
SlurmdSpoolDir={self._path('spool')}
SlurmctldPidFile={self._path('slurmctld.pid')}
SlurmdPidFile={self._path('slurmd.pid')}
SlurmctldLogFile={self._path('slurmctld.log')}
SlurmdLogFile={self._path('slurmd.log')}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        self.pidFiles.append(self._path("slurmctld.pid"))
        self._run(self.programs["slurmctld"], "-f", self.conf)
        self.pidFiles.append(self._path("slurmd.pid"))
        self._run(self.programs["slurmd"], "-f", self.conf)
        deadline = time.monotonic() + START_LIMIT
        state = ""
        while time.monotonic() < deadline:
            state = subprocess.run([self.programs["sinfo"], "-h", "-N", "-o", "%T"], capture_output=True, text=True,
                                   env={**os.environ, "SLURM_CONF": self.conf}, timeout=20).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise SlurmStartError(f"the node is '{state or 'unknown'}' after {START_LIMIT} s{self._logTails()}")

    def stop(self):
        """SIGTERM to the daemons started here, each by its pid file; wait up to 10 s for them."""
        pids = []
        for pidFile in reversed(self.pidFiles):
            try:
                pid = int(Path(pidFile).read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except (OSError, ValueError, IndexError):
                continue
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.1)

    def jobState(self, jobId, limit=JOB_END_LIMIT):
        """``JobState``, ``ExitCode`` and ``StdOut`` of a job from scontrol (which keeps ended
        jobs for MinJobAge s), once the job has ended or after ``limit`` s (the protocol is
        finished a moment before its process, and so the job, ends)."""
        deadline = time.monotonic() + limit
        while True:
            text = self._run(self.programs["scontrol"], "show", "job", str(jobId))
            fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
            if fields.get("JobState") not in ACTIVE_JOB_STATES or time.monotonic() > deadline:
                return fields.get("JobState"), fields.get("ExitCode"), fields.get("StdOut")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node Slurm cluster, SLURM_CONF pointing at it while the tests run."""
    programs = slurm_programs()
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), programs)
    started = time.monotonic()
    try:
        cluster.start()
    except (SlurmStartError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.skip(f"slurm-wlm is installed but a single-node cluster cannot be started here: {exc}")
    cluster.startSeconds = time.monotonic() - started
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", cluster.conf)        # sbatch, squeue, scancel here and in the job
        yield cluster
    cluster.stop()


def test_set_runs_through_the_slurm_queue(slurm, tmp_path, monkeypatch):
    hosts = tmp_path / "hosts.conf"
    hosts.write_text(HOSTS_CONF)
    project = Manager().createProject(f"deepres_queue_{os.getpid()}", hostsConf=str(hosts))
    monkeypatch.chdir(project.path)          # Scipion submits from the project folder (relative job paths)
    mapsFolder = tmp_path / "maps"
    mapsFolder.mkdir()
    maps, _ = write_set_maps(str(mapsFolder))
    importSet = project.newProtocol(ProtImportVolumes, filesPath=str(mapsFolder), filesPattern=MAP_PATTERN,
                                    samplingRate=SAMPLING)
    project.launchProtocol(importSet, wait=True)
    assert_finished(importSet)

    prot = project.newProtocol(ProtDeepResLocalResolution, objLabel="deepres set through slurm",
                               numberOfThreads=THREADS, useGpu=False)
    prot.inputVolume.set(importSet)
    prot.inputVolume.setExtended("outputVolumes")
    prot._useQueue.set(True)                 # what the form's "Use a queue engine?" sets
    prot.setQueueParams([PARTITION, {"JOB_TIME": "10"}])
    started = time.monotonic()
    prot = launch_and_wait(project, prot, QUEUE_RUN_LIMIT)
    seconds = time.monotonic() - started
    assert_finished(prot)
    assert prot.useQueueForProtocol()

    # the whole protocol ran as one Slurm job, with its threads inside
    jobId = int(prot.getJobIds()[0])
    state, exitCode, stdout = slurm.jobState(jobId)
    assert (state, exitCode) == ("COMPLETED", "0:0"), (state, exitCode)
    assert f"slurm job {jobId} on" in Path(stdout).read_text()
    log = Path(prot.getLogPaths()[0]).read_text()
    for text in ("Executing through the queue system", f"Scipion threads: {THREADS}",
                 "Map 3: DeepRes local resolution: median"):
        assert text in log, text
    # and its outputs are the core's
    output = prot.resolution_SetOfVolumes
    assert output.getSize() == len(LOWPASS)
    expected = core_predictions(maps, str(tmp_path))
    for item, (summary, resolution) in zip(output.iterItems(orderBy="id"), expected):
        assert getattr(item, ITEM_MEDIAN).get() == pytest.approx(summary.median, abs=1e-4)
        np.testing.assert_allclose(read_map(item.getFileName())[0], resolution, atol=1e-5)
    print(f"Slurm started in {slurm.startSeconds:.1f} s; queued run of {len(LOWPASS)} maps: {seconds:.1f} s")


#: The Dask configuration of the jobqueue test: one single-core worker per job in the test
#: partition; the node declares no memory, so the job asks for none (--mem skipped).
JOBQUEUE_SETTINGS = {"cores": 1, "processes": 1, "memory": "2GB", "queue": PARTITION, "walltime": "00:10:00",
                     "job-directives-skip": ["--mem"], "scheduler-options": {"dashboard_address": ":0"}}
JOBQUEUE_STRUCTURES = STRUCTURES[:2]
#: Seconds for the whole command (a worker that never starts must fail the test, not hang it).
JOBQUEUE_RUN_LIMIT = 120


def slurmJobNames(slurm):
    """Names of the jobs Slurm knows (running, or ended less than MinJobAge ago)."""
    text = slurm._run(slurm.programs["scontrol"], "show", "job", "--oneliner")
    return [item.split("=", 1)[1] for line in text.splitlines() for item in line.split() if item.startswith("JobName=")]


def test_dataset_runs_on_slurm_jobs_started_by_dask_jobqueue(slurm, data_dir, tmp_path):
    """`deepres dataset --jobqueue slurm`: dask-jobqueue submits the worker as a Slurm job, the
    structures are simulated there, and the shards equal, byte for byte, those made here. The
    command runs as a user runs it, in its own process, with the Dask configuration in a
    folder named by DASK_CONFIG."""
    structures = tmp_path / "structures"
    structures.mkdir()
    for name in JOBQUEUE_STRUCTURES:
        shutil.copy(data_dir / name, structures / name)
    config = ds.DatasetConfig("wide", **SMALL)
    ds.generate_dataset(structures, tmp_path / "here", config, workers=1, progress=False)
    daskConfig = tmp_path / "dask"
    daskConfig.mkdir()
    settings = {**JOBQUEUE_SETTINGS, "log-directory": str(tmp_path / "worker_logs")}
    (daskConfig / "jobqueue.yaml").write_text(json.dumps({"jobqueue": {"slurm": settings}}))  # JSON is YAML
    before = slurmJobNames(slurm)
    command = [sys.executable, "-m", "deepres_plugin.cli", "dataset", str(structures), "--range", "wide",
               "--out", str(tmp_path / "slurm"), "--jobqueue", "slurm", "--workers", "1",
               "--labels-per-structure", str(SMALL["labels_per_structure"]),
               "--boxes-per-label", str(SMALL["boxes_per_label"]), "--no-progress"]
    result = subprocess.run(command, env={**os.environ, "DASK_CONFIG": str(daskConfig)}, capture_output=True,
                            text=True, timeout=JOBQUEUE_RUN_LIMIT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(slurmJobNames(slurm)) > len(before) and "dask-worker" in slurmJobNames(slurm)
    manifest = json.loads((tmp_path / "slurm" / ds.MANIFEST_FILE).read_text())
    assert manifest["timing"]["cluster"] == "1 slurm workers (dask-jobqueue)"
    assert shard_bytes(tmp_path / "slurm") == shard_bytes(tmp_path / "here")
    assert len(shard_bytes(tmp_path / "here")) == len(JOBQUEUE_STRUCTURES)
