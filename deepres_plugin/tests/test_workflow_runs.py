"""The workflow template runs each of its protocols once, both headless
(``deepres_plugin.workflow.run_template``) and as Scipion's template runner would schedule it.

``scipion template`` schedules a new project with pyworkflow's ``project/scripts/schedule.py``.
That script schedules the sub-workflow of every protocol that has no inputs, so a protocol fed by
two of them gets two schedulers, and both launch it in the same folder. The template therefore
chains the mask import to the map import (the mask takes the map's sampling), and DeepRes is
reached from one import only.
"""
import collections
import os
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest
import pyworkflow as pw
from pyworkflow.project import Project

from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.workflow import load_template, run_template

DATA = Path(__file__).resolve().parent / "data"
PROTOCOL_START = "Protocol starts"   # logged to run.stdout by each process that runs the protocol
TEMPLATE_CLASSES = ["ProtImportVolumes", "ProtImportMask", "ProtDeepResLocalResolution"]


@pytest.fixture
def template_values(tmp_path, monkeypatch):
    """The example map and mask as float32 MRC, as ``workflow.main`` writes them. The runner
    moves into the project folder; monkeypatch restores the working directory afterwards."""
    monkeypatch.chdir(tmp_path)
    volume, geometry = read_map(DATA / "example_map.mrc")
    write_map(str(tmp_path / "map.mrc"), volume, geometry)
    mask, _ = read_map(DATA / "example_mask.mrc.gz")
    write_map(str(tmp_path / "mask.mrc"), mask, geometry)
    return {"map": str(tmp_path / "map.mrc"), "mask": str(tmp_path / "mask.mrc"), "sampling": "1.0"}


def test_run_template_runs_each_protocol_once(template_values):
    project, protocols = run_template(template_values, project_name="deepres_template_runs_once")
    assert [type(protocol).__name__ for protocol in protocols] == TEMPLATE_CLASSES
    assert_each_ran_once(project, protocols)
    volume, mask = protocols[0].outputVolume, protocols[1].outputMask
    assert mask.getSamplingRate() == volume.getSamplingRate() == 1.0


def test_scipion_schedules_each_template_protocol_once(template_values):
    """Runs Scipion's own scheduling script on the new project, recording what it schedules."""
    project = load_template(template_values, project_name="deepres_template_scheduled_once")
    assert_scheduled_once(project, TEMPLATE_CLASSES)


def assert_each_ran_once(project, protocols):
    """Every protocol finished, started once (one "Protocol starts" in its run.stdout) and
    went through no scheduler (no schedule log)."""
    for protocol in protocols:
        stdout_log, _, schedule_log = (project.getPath(path) for path in protocol.getLogPaths())
        with open(stdout_log) as log:
            starts = log.read().count(PROTOCOL_START)
        assert protocol.isFinished(), protocol.getRunName()
        assert starts == 1, f"{protocol.getRunName()} started {starts} times"
        assert not os.path.exists(schedule_log), f"{protocol.getRunName()} went through a scheduler"


def assert_scheduled_once(project, classes):
    """Scipion's own scheduling script, run on ``project`` with its scheduling recorded,
    schedules each of its runs (of ``classes``) exactly once."""
    script = os.path.join(os.path.dirname(pw.__file__), "project", "scripts", "schedule.py")
    scheduled = collections.Counter()

    def record(project, protocol, **kwargs):
        scheduled[protocol.getObjId()] += 1

    with mock.patch.object(Project, "scheduleProtocol", record), \
            mock.patch.object(sys, "argv", [script, project.getShortName()]):
        runpy.run_path(script, run_name="__main__")
    runs = {run.getObjId(): run.getClassName() for run in project.getRuns()}
    assert sorted(runs.values()) == sorted(classes)
    assert {runs[protId]: count for protId, count in scheduled.items()} == dict.fromkeys(classes, 1)
