"""Scipion end to end: import the example map and its mask, run DeepRes, check the output,
the viewer's figures and ChimeraX script, and _validate. Runs with pytest (conftest sets up
a private Scipion) or with `scipion tests deepres_plugin.tests.test_protocols`."""
import os
import shutil
import tempfile

import numpy as np
from pwem.protocols import ProtImportMask, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin import constants
from deepres_plugin.core.filters import apply_bfactor
from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import MASK_FILE, RESOLUTION_FILE
from deepres_plugin.protocols import ProtDeepResBfactorSweep, ProtDeepResLocalResolution
from deepres_plugin.protocols.files import VIEWER_SCRIPT
from deepres_plugin.tests.units import bare_units

DATA = os.path.join(os.path.dirname(__file__), "data")
EXAMPLE_RESOLUTIONS = {1: 4.0, 2: 8.0}
#: Blurs the example map (B 40 Å²) to one the core calls unsharpened (above 100 Å²).
BLUR_BFACTOR = 150.0


def import_small_mask(test, folder, sampling):
    """A 40^3 mask (a 20^3 cube) written in ``folder`` and imported in ``test``'s project: a
    mask on another grid than the example maps'."""
    small = np.zeros((40, 40, 40), np.float32)
    small[10:30, 10:30, 10:30] = 1
    path = os.path.join(folder, "small_mask.mrc")
    write_map(path, small, sampling)
    importSmall = test.newProtocol(ProtImportMask, maskPath=path, samplingRate=sampling)
    test.launchProtocol(importSmall)
    return importSmall


class TestDeepResLocalResolution(BaseTest):
    """The example map: two copies of a protein low-passed at 4 and 8 A (1 A/px)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-protocol-")
        cls.mapFile = os.path.join(cls.folder, "example_map.mrc")
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        write_map(cls.mapFile, volume, geometry)      # float32: Xmipp's MRC writer refuses float16
        cls.maskFile = os.path.join(cls.folder, "example_mask.mrc")
        mask, _ = read_map(os.path.join(DATA, "example_mask.mrc.gz"))
        write_map(cls.maskFile, mask, geometry)
        cls.regions = read_map(os.path.join(DATA, "example_regions.mrc.gz"))[0].astype(int)
        cls.importVolume = cls.newProtocol(ProtImportVolumes, filesPath=cls.mapFile, samplingRate=1.0,
                                           setOrigCoord=True, x=10.0, y=-5.0, z=3.0)
        cls.launchProtocol(cls.importVolume)
        cls.importMask = cls.newProtocol(ProtImportMask, maskPath=cls.maskFile, samplingRate=1.0)
        cls.launchProtocol(cls.importMask)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _run(self, label, withMask=True):
        prot = self.newProtocol(ProtDeepResLocalResolution, objLabel=label)
        prot.inputVolume.set(self.importVolume)
        prot.inputVolume.setExtended("outputVolume")
        if withMask:
            prot.inputMask.set(self.importMask)
            prot.inputMask.setExtended("outputMask")
        self.launchProtocol(prot)
        return prot

    def test_local_resolution_with_mask_and_viewer(self):
        prot = self._run("deepres with mask")
        output = prot.resolution_Volume
        source = self.importVolume.outputVolume
        self.assertEqual(output.getDim(), source.getDim())
        self.assertAlmostEqual(output.getSamplingRate(), 1.0)
        self.assertEqual(output.getShiftsFromOrigin(), source.getShiftsFromOrigin())
        resolution = read_map(output.getFileName())[0]
        estimated = resolution > 0                   # the mask where the map shows density
        self.assertGreater(estimated[self.regions > 0].mean(), 0.9)
        medians = {label: float(np.median(resolution[(self.regions == label) & estimated]))
                   for label in EXAMPLE_RESOLUTIONS}
        self.assertLess(medians[1], medians[2])
        for label, truth in EXAMPLE_RESOLUTIONS.items():
            self.assertLess(abs(medians[label] - truth), 1.0, medians)
        self.assertAlmostEqual(prot.medianResolution.get(), float(np.median(resolution[estimated])), 4)
        mask = read_map(self.maskFile)[0] > 0.5              # the mask's voxels without an estimate, in words
        leftOut = int(np.count_nonzero(mask & ~estimated))
        self.assertGreater(leftOut, 0)
        self.assertIn(f"{leftOut} of {int(mask.sum())} mask voxels", " ".join(prot.summary()))
        summary = prot.summary()[0]
        self.assertIn("Median local resolution", summary)
        for text in (f"{prot.medianResolution.get():.2f} Å", f"{prot.percentile20.get():.2f}", "deepres-wide", " s."):
            self.assertIn(text, summary)
        self.assertEqual(prot._citations(), ["RamirezAportela2019"])
        methods = "".join(prot.methods())
        self.assertIn("RamirezAportela2019", methods)
        self.assertIn(f"{prot.medianResolution.get():.2f} Å", methods)
        self.assertEqual(bare_units(methods + " ".join(prot.summary())), [])
        self.assertIn(f"The mask was {prot.getObjectTag('inputMask')}.", methods)
        # the run log carries the figures of the run (Scipion's run.stdout)
        log = open(prot.getLogPaths()[0]).read()
        for text in ("DeepRes local resolution: median", "Network: deepres-wide", "Å/px", "Time:"):
            self.assertIn(text, log)
        self.assertEqual(log.count(f"{leftOut} of {int(mask.sum())} mask voxels"), 1, log)   # the core's line, once
        # the protocol's own script places the map where Scipion does, as the viewer's does
        self.assertIn("origin -10,5,-3", open(prot.getOutputFile("chimerax.cxc")).read())
        self.assertEqual(prot.getClassLabel(), "deepres - estimate local resolution")
        self._check_viewer(prot)

    def _check_viewer(self, prot):
        from deepres_plugin.viewers import DeepResViewer

        viewer = DeepResViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        handlers = viewer._getVisualizeDict()
        for name in ("doShowHistogram", "doShowSlices"):
            plotter = handlers[name]()[0]
            png = prot._getExtraPath(f"{name}.png")
            plotter.figure.savefig(png)
            self.assertGreater(os.path.getsize(png), 5000)
        view = handlers["doShowChimera"]()[0]
        script = open(prot.getOutputFile(VIEWER_SCRIPT)).read()
        self.assertIn("voxelSize 1 origin -10,5,-3", script)
        self.assertIn(f'open "{RESOLUTION_FILE}"', script)
        self.assertIn("input_map.mrc", script)
        self.assertIsNotNone(view)
        from pyworkflow.viewer import MessageView

        if isinstance(view, MessageView):                      # no ChimeraX here: a message, not nothing
            self.assertIn(VIEWER_SCRIPT, view.getMessage())
            self.assertTrue(os.path.isabs(view.getMessage().splitlines()[-1]), view.getMessage())
        # the colour scale starts at the report's range: the wide network's, clamped at Nyquist
        self.assertEqual((viewer.lowest.get(), viewer.highest.get()), (2.5, 13.0))

    def test_viewer_colour_scale_follows_the_network_range(self):
        from deepres_plugin.viewers import DeepResViewer

        prot = self.newProtocol(ProtDeepResLocalResolution, resolutionRange=constants.RANGE_HIGH)
        prot.inputVolume.set(self.importVolume)
        prot.inputVolume.setExtended("outputVolume")
        viewer = DeepResViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        self.assertEqual((viewer.lowest.get(), viewer.highest.get()), (1.5, 6.0))

    def test_automatic_mask(self):
        prot = self._run("deepres automatic mask", withMask=False)
        resolution = read_map(prot.resolution_Volume.getFileName())[0]
        self.assertTrue(os.path.exists(prot.getOutputFile(MASK_FILE)))
        mask = prot.outputMask                                     # registered for other protocols
        self.assertEqual(mask.getFileName(), prot.getOutputFile(MASK_FILE))
        self.assertEqual(mask.getShiftsFromOrigin(), self.importVolume.outputVolume.getShiftsFromOrigin())
        self.assertGreater(np.count_nonzero(resolution), 0.5 * np.count_nonzero(self.regions))
        self.assertLess(float(np.median(resolution[self.regions == 1])), float(np.median(resolution[self.regions == 2])))
        self.assertIn("The mask was made automatically from the map, low-passed at 8 Å (Gaussian) and thresholded "
                      "at Otsu's level", " ".join(prot.methods()))

    def test_an_unsharpened_map_warns_once_and_names_the_protocol(self):
        """The example map blurred by B = +150 Å² (it measures 189 Å², unsharpened above 100 Å²):
        the Summary sends a Scipion user to the B-factor sweep protocol and says it needs the half
        maps (it named the command `deepres bfactor-sweep`), and the run log has the warning once
        (the core logged it, then the protocol logged the summary's warnings again)."""
        blurred = os.path.join(self.folder, "blurred_map.mrc")
        volume, geometry = read_map(self.mapFile)
        write_map(blurred, apply_bfactor(volume, 1.0, BLUR_BFACTOR), geometry)
        importBlurred = self.newProtocol(ProtImportVolumes, filesPath=blurred, samplingRate=1.0)
        self.launchProtocol(importBlurred)
        prot = self.newProtocol(ProtDeepResLocalResolution, objLabel="deepres unsharpened",
                                resolutionRange=constants.RANGE_WIDE)
        prot.inputVolume.set(importBlurred)
        prot.inputVolume.setExtended("outputVolume")
        self.launchProtocol(prot)
        summary = "\n".join(prot.summary())
        self.assertIn("Warning: the map looks unsharpened", summary)
        self.assertIn(f"check with the '{ProtDeepResBfactorSweep.getClassLabel()}' protocol (it needs the map's two "
                      "half maps)", summary)
        self.assertNotIn("deepres bfactor-sweep", summary)
        self.assertEqual(bare_units(summary), [])
        log = open(prot.getLogPaths()[0]).read()
        self.assertEqual(log.count("the map looks unsharpened"), 1, log)

    def test_validate_rejects_a_mask_of_another_size(self):
        importSmall = import_small_mask(self, self.folder, 1.0)
        prot = self.newProtocol(ProtDeepResLocalResolution)
        prot.inputVolume.set(self.importVolume)
        prot.inputVolume.setExtended("outputVolume")
        prot.inputMask.set(importSmall)
        prot.inputMask.setExtended("outputMask")
        errors = prot.validate()
        self.assertTrue(any(e.startswith("The mask (") and "lie on different grids" in e for e in errors), errors)

    def test_validate_refuses_the_voxel_sizes_the_command_refuses(self):
        implausible = self.newProtocol(ProtImportVolumes, filesPath=self.mapFile, samplingRate=500.0)
        self.launchProtocol(implausible)
        prot = self.newProtocol(ProtDeepResLocalResolution)
        prot.inputVolume.set(implausible)
        prot.inputVolume.setExtended("outputVolume")
        self.assertIn("The map has voxel size 500 Å/px, outside the plausible 0.1-100 Å/px; give the real pixel size "
                      "(the sampling rate of its import).", prot.validate())

    def test_warnings_question_a_sampling_rate_far_from_the_header(self):
        """EMD-5168's case: a header of 1.742 Å/px imported at 5 Å/px. An ordinary map (and no
        mask) gives no warning."""
        prot = self.newProtocol(ProtDeepResLocalResolution)
        prot.inputVolume.set(self.importVolume)
        prot.inputVolume.setExtended("outputVolume")
        self.assertEqual(prot.warnings(), [])
        mistyped = os.path.join(self.folder, "header_1.742.mrc")
        write_map(mistyped, read_map(self.mapFile)[0], 1.742)
        importMistyped = self.newProtocol(ProtImportVolumes, filesPath=mistyped, samplingRate=5.0)
        self.launchProtocol(importMistyped)
        prot.inputVolume.set(importMistyped)
        prot.inputVolume.setExtended("outputVolume")
        self.assertEqual(prot.warnings(), [
            "The voxel size used for import_header_1.742.mrc, 5 Å/px, differs from its header's, 1.742 Å/px, by 187 %: "
            "resolutions scale with it; check the pixel size (the import's sampling rate is the one used)."])


class TestDeepResTrain(BaseTest):
    """Train on two tiny structures for one epoch; the local-resolution protocol accepts the network."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-train-")
        for name in ("BM5_1PPE_l_u.pdb.gz", "BM5_1GL1_l_u.pdb.gz"):
            shutil.copy(os.path.join(DATA, name), cls.folder)
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        cls.mapFile = os.path.join(cls.folder, "example_map.mrc")
        write_map(cls.mapFile, volume, geometry)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def test_train_then_use_the_network(self):
        from deepres_plugin import constants
        from deepres_plugin.protocols import ProtDeepResTrain
        from deepres_plugin.protocols.protocol_train import SOURCE_FOLDER

        train = self.newProtocol(ProtDeepResTrain, source=SOURCE_FOLDER, structuresFolder=self.folder, epochs=1,
                                 labelsPerStructure=4, boxesPerLabel=50)
        self.launchProtocol(train)
        self.assertTrue(os.path.exists(train.outputModel.getFileName()))
        self.assertIn("validation MAE", train.summary()[0])
        importVolume = self.newProtocol(ProtImportVolumes, filesPath=self.mapFile, samplingRate=1.0)
        self.launchProtocol(importVolume)
        prot = self.newProtocol(ProtDeepResLocalResolution, modelChoice=constants.MODEL_TRAINED)
        prot.inputVolume.set(importVolume)
        prot.inputVolume.setExtended("outputVolume")
        prot.trainedModel.set(train)
        prot.trainedModel.setExtended("outputModel")
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        self.assertEqual(prot.resolution_Volume.getDim(), importVolume.outputVolume.getDim())
        wrong = self.newProtocol(ProtDeepResLocalResolution, modelChoice=constants.MODEL_TRAINED,
                                 resolutionRange=constants.RANGE_HIGH)
        wrong.inputVolume.set(importVolume)
        wrong.inputVolume.setExtended("outputVolume")
        wrong.trainedModel.set(train)
        wrong.trainedModel.setExtended("outputModel")
        self.assertTrue(any("'wide' network" in e for e in wrong.validate()))
        negative = self.newProtocol(ProtDeepResTrain, source=SOURCE_FOLDER, structuresFolder=self.folder, seed=-1)
        self.assertEqual(negative.validate(), ["The seed must be a whole number from 0 to 4294967295, got -1."])


class TestDeepResTemplate(BaseTest):
    """The workflow template is listed by the plugin and runs headless to a finished run."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-template-")
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        write_map(os.path.join(cls.folder, "map.mrc"), volume, geometry)
        mask, _ = read_map(os.path.join(DATA, "example_mask.mrc.gz"))
        write_map(os.path.join(cls.folder, "mask.mrc"), mask, geometry)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def test_template_is_listed_and_runs(self):
        import pyworkflow as pw

        from deepres_plugin.workflow import run_template

        plugin = pw.Config.getDomain().getPlugin("deepres_plugin")
        self.assertEqual(sorted(t.name for t in plugin.Plugin().getTemplates()),
                         ["deepres_local_filter", "deepres_local_resolution"])
        cwd = os.getcwd()
        try:
            project, protocols = run_template({"map": os.path.join(self.folder, "map.mrc"),
                                               "mask": os.path.join(self.folder, "mask.mrc"), "sampling": "1.0"},
                                              project_name="deepres_template_test")
            deepres = protocols[-1]
            self.assertIsInstance(deepres, ProtDeepResLocalResolution)
            self.assertTrue(deepres.isFinished())
            self.assertEqual(deepres.resolution_Volume.getDim(), (120, 60, 72))   # paths relative to the project
            self.assertTrue(4.0 < deepres.medianResolution.get() < 8.0)
        finally:
            os.chdir(cwd)
