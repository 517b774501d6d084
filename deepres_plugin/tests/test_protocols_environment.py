"""The protocols in a Scipion environment without TensorFlow or Dask: every computation step
runs ``deepres`` as a process of its own with the computation's Python (DEEPRES_PYTHON).

The protocol processes get a ``PYTHONPATH`` whose ``tensorflow``, ``keras``, ``dask`` and
``distributed`` packages refuse to be imported, as in an environment where they are not
installed; the computation's Python is a wrapper that drops that path and runs this
environment's Python. A protocol process that imported any of them would fail its run.
Runs with pytest (conftest sets up a private Scipion).
"""
import os
import shutil
import stat
import sys
import tempfile

import numpy as np
from pwem.protocols import ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.plugin import PYTHON_VAR
from deepres_plugin.protocols import (
    ProtDeepResBfactorSweep,
    ProtDeepResLocalFilter,
    ProtDeepResLocalFsc,
    ProtDeepResLocalResolution,
)
from deepres_plugin.protocols.base_half_maps import HALVES_FROM_VOLUME
from deepres_plugin.tests.test_protocols_halfmaps import synthetic_half_maps

DATA = os.path.join(os.path.dirname(__file__), "data")
#: What the computation needs and the Scipion side must not import.
COMPUTATION_PACKAGES = ("tensorflow", "keras", "dask", "distributed")


def poisoned_path(folder):
    """A folder of packages that raise ImportError when imported (``COMPUTATION_PACKAGES``)."""
    for name in COMPUTATION_PACKAGES:
        os.makedirs(os.path.join(folder, name))
        with open(os.path.join(folder, name, "__init__.py"), "w") as handle:
            handle.write(f"raise ImportError('{name} imported in the Scipion protocol process')\n")
    return folder


def computation_python(path):
    """A wrapper that runs this environment's Python without the poisoned path."""
    with open(path, "w") as handle:
        handle.write(f"#!/bin/sh\nunset PYTHONPATH\nexec {sys.executable} \"$@\"\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


class TestDeepResWithoutTensorFlow(BaseTest):
    """Local resolution, local filter, local FSC and B-factor sweep with the computation in
    its own environment."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-environment-")
        cls.environ = dict(os.environ)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [poisoned_path(os.path.join(cls.folder, "poison"))] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        os.environ[PYTHON_VAR] = computation_python(os.path.join(cls.folder, "compute-python"))
        cls.mapFile = os.path.join(cls.folder, "example_map.mrc")
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        write_map(cls.mapFile, volume, geometry)
        (half1, half2), _ = synthetic_half_maps()
        cls.halves = [os.path.join(cls.folder, f"half{i}.mrc") for i in (1, 2)]
        for path, data in zip(cls.halves, (half1, half2)):
            write_map(path, data.astype(np.float32), 1.0)
        cls.averageFile = os.path.join(cls.folder, "average.mrc")
        write_map(cls.averageFile, ((half1 + half2) / 2).astype(np.float32), 1.0)

    @classmethod
    def tearDownClass(cls):
        os.environ.clear()
        os.environ.update(cls.environ)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _import(self, path, **kwargs):
        prot = self.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=1.0, **kwargs)
        self.launchProtocol(prot)
        return prot

    def _launch(self, prot):
        self.proj.launchProtocol(prot, wait=True)
        prot = self.proj.getProtocol(prot.getObjId())
        log = open(prot.getLogPaths()[0]).read()
        self.assertTrue(prot.isFinished(), f"{prot.getErrorMessage()}\n{log[-3000:]}")
        self.assertIn(f"{os.environ[PYTHON_VAR]} -m deepres_plugin.cli", log)   # the computation's Python
        return prot

    def test_every_computation_runs_in_its_own_environment(self):
        importMap = self._import(self.mapFile)
        prediction = self.newProtocol(ProtDeepResLocalResolution)
        prediction.inputVolume.set(importMap)
        prediction.inputVolume.setExtended("outputVolume")
        prediction = self._launch(prediction)
        resolution = read_map(prediction.getOutputFile(RESOLUTION_FILE))[0]
        self.assertGreater(np.count_nonzero(resolution), 10000)
        self.assertAlmostEqual(prediction.medianResolution.get(), float(np.median(resolution[resolution > 0])),
                               places=4)

        localFilter = self.newProtocol(ProtDeepResLocalFilter)
        localFilter.inputResolution.set(prediction)
        localFilter.inputResolution.setExtended("resolution_Volume")
        localFilter = self._launch(localFilter)
        self.assertTrue(os.path.exists(localFilter.outputVolume.getFileName()))

        importHalves = self._import(self.averageFile, setHalfMaps=True, half1map=self.halves[0],
                                    half2map=self.halves[1])
        for protClass in (ProtDeepResLocalFsc, ProtDeepResBfactorSweep):
            prot = self.newProtocol(protClass, halvesSource=HALVES_FROM_VOLUME)
            prot.inputVolume.set(importHalves)
            prot.inputVolume.setExtended("outputVolume")
            prot = self._launch(prot)
            self.assertTrue(os.path.exists(prot.resolution_Volume.getFileName()))
