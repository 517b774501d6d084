"""Scipion end to end for a set of maps: three small maps made from the example map are
imported as a SetOfVolumes and the local-resolution protocol runs one prediction step per
map, in parallel threads. Each resolution map of the output set must equal what the core
(:func:`deepres_plugin.core.pipeline.run_predict`) gives on that map alone, with an
automatic mask per map and with one mask shared by all. Runs with pytest (conftest sets up
a private Scipion) or with `scipion tests deepres_plugin.tests.test_protocols_sets`."""
import os
import shutil
import tempfile
import time

import numpy as np
from pwem.protocols import ProtImportMask, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin.core.filters import lowpass_filter
from deepres_plugin.core.mapscale import unit_scale
from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.signal import select_signal
from deepres_plugin.protocols import ProtDeepResLocalResolution
from deepres_plugin.protocols.files import VIEWER_SCRIPT, protocol_volume_dir
from deepres_plugin.protocols.protocol_local_resolution import (
    ITEM_FIGURES,
    ITEM_MEDIAN,
    ITEM_NETWORK,
    ITEM_VOXELS,
)
from deepres_plugin.tests.test_protocols import import_small_mask

DATA = os.path.join(os.path.dirname(__file__), "data")
#: The maps of the set: the example map's copy low-passed at 4 Å (1 Å/px), as it is and
#: low-passed further at these resolutions (Å), so that the three medians differ.
LOWPASS = (None, 6.0, 9.0)
#: That copy's half of the example map (x < 60): 72 x 60 x 60 voxels.
CROP = np.s_[:, :, :60]
SAMPLING = 1.0
ORIGIN = (10.0, -5.0, 3.0)
MAP_PATTERN = "map_*.mrc"
THREADS = 3                 # Scipion's threads: the main one and two running steps
#: Seconds a DeepRes run may take here before it counts as hung (each takes a few).
RUN_LIMIT = 120


def write_set_maps(folder):
    """The maps of the set (``map_1.mrc`` ...) and their mask (``mask.mrc``) in ``folder``, as
    float32 MRC (Xmipp's MRC reader, used by the importers, refuses float16). Returns the
    maps' paths and the mask's."""
    volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
    mask = read_map(os.path.join(DATA, "example_mask.mrc.gz"))[0][CROP]
    volume = volume[CROP]
    paths = []
    for index, resolution in enumerate(LOWPASS, start=1):
        data = volume if resolution is None else lowpass_filter(volume, SAMPLING, resolution)
        paths.append(os.path.join(folder, MAP_PATTERN.replace("*", str(index))))
        write_map(paths[-1], np.ascontiguousarray(data, np.float32), SAMPLING)
    maskPath = os.path.join(folder, "mask.mrc")
    write_map(maskPath, np.ascontiguousarray(mask, np.float32), SAMPLING)
    return paths, maskPath


def core_predictions(maps, folder, mask=None):
    """The core's summary and resolution map of each map alone (CPU, shipped networks, range auto as the protocol)."""
    from deepres_plugin.core.pipeline import PredictOptions, run_predict

    results = []
    for index, path in enumerate(maps, start=1):
        out = os.path.join(folder, f"core_{'mask' if mask else 'auto'}_{index}")
        summary = run_predict(path, out, PredictOptions(mask=mask, sampling=SAMPLING, device="cpu"))
        results.append((summary, read_map(os.path.join(out, RESOLUTION_FILE))[0]))
    return results


def launch_and_wait(project, prot, limit=RUN_LIMIT):
    """Launch ``prot`` and return it (as the project now has it) once it is no longer active:
    a run that hangs fails the test with the end of its log instead of hanging the tests (a
    thread that never ends once hung the executor after the last step). Through a queue,
    ``launchProtocol`` returns once the job is submitted; the loop then follows the job."""
    project.launchProtocol(prot)
    deadline = time.monotonic() + limit
    while True:
        project.getRuns(refresh=True)
        current = project.getProtocol(prot.getObjId(), fromRuns=True)
        if not current.isActive():
            return current
        if time.monotonic() > deadline:
            tail = "\n".join(current.getLogsLastLines(20))
            project.stopProtocol(current)
            raise AssertionError(f"{current.getRunName()} still {current.getStatus()} after {limit} s:\n{tail}")
        time.sleep(0.5)


def assert_finished(prot):
    assert prot.isFinished(), (f"{prot.getRunName()}: {prot.getStatus()} ({prot.getErrorMessage()})\n"
                               + "\n".join(prot.getLogsLastLines(30)))


def import_set(test, folder):
    """Import the maps of ``folder`` as a SetOfVolumes (with :data:`ORIGIN`)."""
    x, y, z = ORIGIN
    prot = test.newProtocol(ProtImportVolumes, objLabel="three maps", filesPath=folder, filesPattern=MAP_PATTERN,
                            samplingRate=SAMPLING, setOrigCoord=True, x=x, y=y, z=z)
    test.launchProtocol(prot)
    return prot


class TestDeepResLocalResolutionSet(BaseTest):
    """A SetOfVolumes of three 72 x 60 x 60 maps at 1 Å/px."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-set-")
        cls.maps, cls.maskFile = write_set_maps(cls.folder)
        cls.importSet = import_set(cls, cls.folder)
        cls.importMask = cls.newProtocol(ProtImportMask, maskPath=cls.maskFile, samplingRate=SAMPLING)
        cls.launchProtocol(cls.importMask)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _run(self, label, withMask=False, threads=THREADS):
        prot = self.newProtocol(ProtDeepResLocalResolution, objLabel=label, numberOfThreads=threads, useGpu=False)
        prot.inputVolume.set(self.importSet)
        prot.inputVolume.setExtended("outputVolumes")
        if withMask:
            prot.inputMask.set(self.importMask)
            prot.inputMask.setExtended("outputMask")
        self.assertEqual(prot.validate(), [])
        prot = launch_and_wait(self.proj, prot)
        assert_finished(prot)
        return prot

    def _checkAgainstCore(self, prot, expected):
        """The output set against the core's predictions of each map alone."""
        inputs = [volume.clone() for volume in self.importSet.outputVolumes.iterItems(orderBy="id")]
        output = prot.resolution_SetOfVolumes
        self.assertEqual(output.getSize(), len(LOWPASS))
        self.assertAlmostEqual(output.getSamplingRate(), SAMPLING)
        items = [item.clone() for item in output.iterItems(orderBy="id")]
        medians = []
        for item, source, (summary, resolution) in zip(items, inputs, expected):
            self.assertEqual(item.getObjId(), source.getObjId())
            self.assertEqual(item.getDim(), source.getDim())
            self.assertAlmostEqual(item.getSamplingRate(), source.getSamplingRate())
            self.assertEqual(item.getShiftsFromOrigin(), source.getShiftsFromOrigin())
            self.assertEqual(item.getObjLabel(), prot.volumeName(source))
            self.assertEqual(item.getFileName(), prot.getVolumeOutputFile(source.getObjId(), RESOLUTION_FILE))
            np.testing.assert_allclose(read_map(item.getFileName())[0], resolution, atol=1e-5)
            for attribute, field in ITEM_FIGURES.items():
                self.assertAlmostEqual(getattr(item, attribute).get(), getattr(summary, field), 4, attribute)
            self.assertEqual(getattr(item, ITEM_VOXELS).get(), summary.voxels)
            self.assertEqual(getattr(item, ITEM_NETWORK).get(), summary.network)
            medians.append(getattr(item, ITEM_MEDIAN).get())
        self.assertEqual(medians, sorted(medians))           # low-passed further, coarser
        self.assertGreater(medians[-1] - medians[0], 1.0, medians)
        return items, medians

    def test_set_in_parallel_threads_with_automatic_masks(self):
        prot = self._run("deepres set, automatic masks")
        expected = core_predictions(self.maps, self.folder)
        items, medians = self._checkAgainstCore(prot, expected)
        self.assertFalse(hasattr(prot, "outputMask"))        # a single map's output only
        for item in items:                                   # each map's automatic mask, in its run folder
            self.assertTrue(os.path.exists(prot.getVolumeOutputFile(item.getObjId(), "mask.mrc")))
            self.assertEqual(os.path.basename(os.path.dirname(os.path.dirname(item.getFileName()))),
                             protocol_volume_dir(item.getObjId()))
        # the prediction steps ran at once (two step threads beside the main one)
        predictions = [step for step in prot.loadSteps() if step.funcName.get() == "predictVolumeStep"]
        self.assertEqual(len(predictions), len(LOWPASS))
        first, second = sorted(predictions, key=lambda step: step.initTime.datetime())[:2]
        self.assertLess(second.initTime.datetime(), first.endTime.datetime())
        # summary, methods and run log carry each map's figures in Å
        summary = "\n".join(prot.summary())
        for item, median in zip(items, medians):
            self.assertIn(f"Map {item.getObjId()} ({item.getObjLabel()}): {median:.2f} Å", summary)
        # range auto: the unfiltered map reads fine enough for the high network, the others wide
        self.assertIn("3 maps, network chosen for each map", summary)
        self.assertEqual([line.rsplit(", ", 1)[-1] for line in summary.split("\n")[1:]],
                         ["deepres-high 2.0.", "deepres-wide 1.1.", "deepres-wide 1.1."])
        methods = "".join(prot.methods())
        self.assertIn("each of the 3 maps", methods)
        self.assertIn(f"{medians[0]:.2f} Å ({items[0].getObjLabel()}), {medians[1]:.2f} Å", methods)
        self.assertIn("RamirezAportela2019", methods)
        log = open(prot.getLogPaths()[0]).read()
        self.assertIn("Scipion threads: 3", log)
        for item in items:
            self.assertIn(f"Map {item.getObjId()}: DeepRes local resolution: median", log)
        self._checkViewer(prot, items)

    def _checkViewer(self, prot, items):
        """The viewer shows the chosen map of the set, placed where Scipion puts it."""
        from deepres_plugin.viewers import DeepResViewer

        viewer = DeepResViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        self.assertEqual(len(viewer.getDefinition().getParam("volumeIndex").choices), len(items))
        viewer.volumeIndex.set(2)
        handlers = viewer._getVisualizeDict()
        plotter = handlers["doShowHistogram"]()[0]
        self.assertIn(f"median {getattr(items[2], ITEM_MEDIAN).get():.2f} Å", plotter.figure.axes[0].get_title())
        handlers["doShowSlices"]()
        handlers["doShowChimera"]()
        script = open(prot.getVolumeOutputFile(items[2].getObjId(), VIEWER_SCRIPT)).read()
        self.assertIn("origin -10,5,-3", script)

    def test_set_with_one_mask_for_all_maps(self):
        prot = self._run("deepres set, one mask", withMask=True, threads=len(LOWPASS) + 1)   # all at once
        expected = core_predictions(self.maps, self.folder, mask=self.maskFile)
        items, _ = self._checkAgainstCore(prot, expected)
        mask = read_map(self.maskFile)[0] > 0.5
        for item, path in zip(items, self.maps):             # each map estimated where it shows density in the mask
            volume, geometry = read_map(path)
            estimated = select_signal(unit_scale(volume), geometry.voxel_size, mask).estimated
            self.assertEqual(getattr(item, ITEM_VOXELS).get(), int(np.count_nonzero(estimated)))
            self.assertTrue(np.array_equal(read_map(item.getFileName())[0] > 0, estimated))
        self.assertFalse(hasattr(prot, "outputMask"))

    def test_single_map_with_threads(self):
        """A single map keeps its chain of steps and outputs with threads (the executor is then
        the threaded one, which once hung after the last step)."""
        prot = self.newProtocol(ProtDeepResLocalResolution, objLabel="deepres single map, threads",
                                numberOfThreads=ProtDeepResLocalResolution.MIN_PARALLEL_THREADS, useGpu=False)
        prot.inputVolume.set(self.importSet)
        prot.inputVolume.setExtended("outputVolumes.1")            # the set's first map
        prot = launch_and_wait(self.proj, prot)
        assert_finished(prot)
        summary, resolution = core_predictions(self.maps[:1], self.folder)[0]
        np.testing.assert_allclose(read_map(prot.resolution_Volume.getFileName())[0], resolution, atol=1e-5)
        self.assertAlmostEqual(prot.medianResolution.get(), summary.median, 4)
        self.assertTrue(hasattr(prot, "outputMask"))

    def test_validate_checks_every_map(self):
        importSmall = import_small_mask(self, self.folder, SAMPLING)
        prot = self.newProtocol(ProtDeepResLocalResolution)
        prot.inputVolume.set(self.importSet)
        prot.inputVolume.setExtended("outputVolumes")
        prot.inputMask.set(importSmall)
        prot.inputMask.setExtended("outputMask")
        errors = prot.validate()
        for index in range(1, len(LOWPASS) + 1):
            self.assertTrue(any(e.startswith(f"Map {index} (") and "lie on different grids" in e for e in errors), errors)
        prot.inputMask.set(None)
        self.assertEqual(prot.warnings(), [])             # no mask is an ordinary choice: nothing to confirm


def test_compute_device_gives_each_step_its_gpus_and_keeps_a_queue_jobs(monkeypatch):
    """A computation step's process sees the GPUs Scipion's executor gave the step (a list that
    repeats a GPU, "0 0 1", gives 0 and 1), none with the GPU off; in a queue job, the GPUs
    the queue gave the job (the environment as it is), not the form's ids. Nothing is set in
    the protocol's own environment."""
    from types import SimpleNamespace

    from pyworkflow.object import Boolean

    from deepres_plugin.protocols.base import computeDevice

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    local = SimpleNamespace(useGpu=Boolean(True), getGpuList=lambda: [0, 0, 1], useQueue=lambda: False)
    assert computeDevice(local) == (["--device", "auto"], ["0", "1"])
    local._stepsExecutor = SimpleNamespace(getGpuList=lambda: [1])      # a step of a set: its own slot
    assert computeDevice(local) == (["--device", "auto"], ["1"])
    off = SimpleNamespace(useGpu=Boolean(False), getGpuList=lambda: [0], useQueue=lambda: False)
    assert computeDevice(off) == (["--device", "cpu"], [])
    queued = SimpleNamespace(useGpu=Boolean(True), getGpuList=lambda: [1], useQueue=lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")                  # what Slurm gave the job
    assert computeDevice(queued) == (["--device", "auto"], None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")                       # a job given no GPU: the form's
    assert computeDevice(queued) == (["--device", "auto"], ["1"])
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
