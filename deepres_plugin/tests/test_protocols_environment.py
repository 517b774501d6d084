"""Every protocol in a Scipion environment without TensorFlow or Dask: every computation step
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
import subprocess
import sys
import sysconfig
import tempfile
import unittest

import numpy as np
from pwem.protocols import ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin.core.mrc import MapGeometry, read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.residues import EVERY_ATOM, model_residues
from deepres_plugin.core.simulate import read_model
from deepres_plugin.plugin import PYTHON_VAR
from deepres_plugin.protocols import (
    ProtDeepResBfactorSweep,
    ProtDeepResLocalFilter,
    ProtDeepResLocalFsc,
    ProtDeepResLocalResolution,
    ProtDeepResModelResolution,
    ProtDeepResTrain,
)
from deepres_plugin.protocols.base_half_maps import HALVES_FROM_VOLUME
from deepres_plugin.protocols.protocol_train import SOURCE_FOLDER
from deepres_plugin.tests.test_protocols_halfmaps import synthetic_half_maps

DATA = os.path.join(os.path.dirname(__file__), "data")
#: Two small structures: the per-residue model, and the training set.
STRUCTURES = ("BM5_1PPE_l_u.pdb.gz", "BM5_1GL1_l_u.pdb.gz")
#: The per-residue resolution map: this value (Å) over the model's box (1.5 Å/px, 6 Å margin).
RESIDUE_RESOLUTION, RESIDUE_SAMPLING, RESIDUE_MARGIN_A = 5.0, 1.5, 6.0
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
    """Local resolution, local filter, local FSC, B-factor sweep, per-residue resolution and
    training with the computation in its own environment."""

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
        cls.structures = os.path.join(cls.folder, "structures")
        os.makedirs(cls.structures)
        for name in STRUCTURES:
            shutil.copy(os.path.join(DATA, name), cls.structures)
        positions = model_residues(read_model(os.path.join(DATA, STRUCTURES[0]), EVERY_ATOM)).positions
        cls.first = np.floor(positions.min(axis=0) - RESIDUE_MARGIN_A)
        shape_xyz = np.ceil((positions.max(axis=0) + RESIDUE_MARGIN_A - cls.first) / RESIDUE_SAMPLING).astype(int)
        cls.residueMap = os.path.join(cls.folder, "residue_resolution.mrc")
        write_map(cls.residueMap, np.full(tuple(shape_xyz[::-1]), RESIDUE_RESOLUTION, np.float32),
                  MapGeometry(RESIDUE_SAMPLING, origin=tuple(cls.first)))

    @classmethod
    def tearDownClass(cls):
        os.environ.clear()
        os.environ.update(cls.environ)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _import(self, path, sampling=1.0, **kwargs):
        prot = self.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=sampling, **kwargs)
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

        # the per-residue resolution of a model on a resolution map of one value
        x, y, z = (-v for v in self.first)                     # the import's origin fields: minus the first voxel
        residueMap = self._import(self.residueMap, RESIDUE_SAMPLING, setOrigCoord=True, x=x, y=y, z=z)
        model = self.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                                 pdbFile=os.path.join(self.structures, STRUCTURES[0]))
        self.launchProtocol(model)
        residues = self.newProtocol(ProtDeepResModelResolution)
        residues.inputStructure.set(model)
        residues.inputStructure.setExtended("outputPdb")
        residues.inputResolution.set(residueMap)
        residues.inputResolution.setExtended("outputVolume")
        residues = self._launch(residues)
        self.assertAlmostEqual(residues.medianResolution.get(), RESIDUE_RESOLUTION, places=4)

        # training: dataset and network
        train = self.newProtocol(ProtDeepResTrain, source=SOURCE_FOLDER, structuresFolder=self.structures, epochs=1,
                                 labelsPerStructure=4, boxesPerLabel=50)
        train = self._launch(train)
        self.assertTrue(os.path.exists(train.outputModel.getFileName()))


def separate_environment(folder):
    """A virtual environment of its own for the computation, as ``scipion3 installb deepres``
    makes one: ``python -m venv``, then this plugin installed into it by pip from the source
    tree (a copy of its own, not this checkout). Its dependencies (TensorFlow, Dask) come from
    this test's environment through a ``.pth`` file rather than a download. Returns its
    Python, or raises ``unittest.SkipTest`` naming why it cannot be built here."""
    source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(source, "pyproject.toml")):
        raise unittest.SkipTest("the plugin is not installed from a source tree: nothing to install a copy from")
    venv = os.path.join(folder, "venv")
    python = os.path.join(venv, "bin", "python")
    result = subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], capture_output=True, text=True)
    if result.returncode:
        raise unittest.SkipTest(f"cannot make a virtual environment here: {result.stderr.strip()[-300:]}")
    ours = sysconfig.get_paths()["purelib"]
    theirs = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(theirs, "_deepres_test_dependencies.pth"), "w") as handle:
        handle.write(ours + "\n")
    result = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", source], capture_output=True,
                            text=True, cwd=folder)
    if result.returncode:       # pip builds the package with setuptools from the package index
        raise unittest.SkipTest(f"cannot install the plugin into a new environment here: "
                                f"{result.stderr.strip().splitlines()[-1:]}")
    return python, os.path.join(theirs, "deepres_plugin")


class TestDeepResInASeparateEnvironment(BaseTest):
    """A Scipion environment without TensorFlow runs the local resolution through a real
    virtual environment of the computation's own (``DEEPRES_PYTHON``), with the plugin
    installed there by pip; Scipion's ``PYTHONPATH`` is not passed on to it."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-venv-")
        cls.environ = dict(os.environ)
        try:
            cls.python, cls.installed = separate_environment(cls.folder)
        except unittest.SkipTest:
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [poisoned_path(os.path.join(cls.folder, "poison"))] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        os.environ[PYTHON_VAR] = cls.python
        cls.mapFile = os.path.join(cls.folder, "example_map.mrc")
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        write_map(cls.mapFile, volume, geometry)

    @classmethod
    def tearDownClass(cls):
        os.environ.clear()
        os.environ.update(cls.environ)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def test_local_resolution_runs_in_the_separate_environment(self):
        where = subprocess.run([self.python, "-c", "import deepres_plugin; print(deepres_plugin.__file__)"],
                               capture_output=True, text=True, cwd=self.folder).stdout.strip()
        self.assertEqual(os.path.dirname(where), self.installed)          # the copy pip installed there
        importMap = self.newProtocol(ProtImportVolumes, filesPath=self.mapFile, samplingRate=1.0)
        self.launchProtocol(importMap)
        prediction = self.newProtocol(ProtDeepResLocalResolution)
        prediction.inputVolume.set(importMap)
        prediction.inputVolume.setExtended("outputVolume")
        self.proj.launchProtocol(prediction, wait=True)
        prediction = self.proj.getProtocol(prediction.getObjId())
        log = open(prediction.getLogPaths()[0]).read()
        self.assertTrue(prediction.isFinished(), f"{prediction.getErrorMessage()}\n{log[-3000:]}")
        self.assertIn(f"{self.python} -m deepres_plugin.cli", log)
        resolution = read_map(prediction.getOutputFile(RESOLUTION_FILE))[0]
        self.assertAlmostEqual(prediction.medianResolution.get(), float(np.median(resolution[resolution > 0])),
                               places=4)
