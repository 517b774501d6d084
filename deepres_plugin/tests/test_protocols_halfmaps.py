"""Scipion end to end for the half-map protocols: synthetic half maps are imported (as a
volume with half maps, and as two volumes), then local FSC and the B-factor sweep are run
and checked against the core, with their viewers' figures and _validate. Runs with pytest
(conftest sets up a private Scipion) or with
`scipion tests deepres_plugin.tests.test_protocols_halfmaps`."""
import json
import os
import shutil
import tempfile

import numpy as np
from pwem.protocols import ProtImportMask, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin.core.filters import lowpass_filter
from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.protocols import ProtDeepResBfactorSweep, ProtDeepResLocalFsc
from deepres_plugin.protocols.base_half_maps import HALVES_FROM_VOLUME, HALVES_TWO_VOLUMES, METHOD_WINDOW
from deepres_plugin.tests.units import bare_units

SIZE = 48
SIGNAL_RESOLUTION = 5.0     # A: the signal is a random field low-passed here (1 A/px)
NOISE_SD = 0.5              # per half, the signal having SD 1
ORIGIN = (10.0, -5.0, 3.0)  # set on the import of the map with half maps


def synthetic_half_maps(seed=20130826):
    """Two halves: the same low-passed, normalised random field plus independent noise."""
    rng = np.random.default_rng(seed)
    signal = lowpass_filter(rng.standard_normal((SIZE,) * 3).astype(np.float32), 1.0, SIGNAL_RESOLUTION)
    signal = (signal - signal.mean()) / signal.std()
    halves = [(signal + rng.normal(0.0, NOISE_SD, signal.shape)).astype(np.float32) for _ in range(2)]
    mask = np.zeros(signal.shape, np.float32)
    mask[12:36, 12:36, 12:36] = 1
    return halves, mask


class TestDeepResHalfMapProtocols(BaseTest):
    """Local FSC and B-factor sweep on 48^3 synthetic half maps at 1 A/px."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-halfmaps-")
        (half1, half2), mask = synthetic_half_maps()
        cls.half1File, cls.half2File, cls.maskFile, cls.mapFile = (
            os.path.join(cls.folder, name) for name in ("half1.mrc", "half2.mrc", "mask.mrc", "average.mrc"))
        # float32 copies: Xmipp's MRC reader (used by the importers) refuses float16
        for path, data in ((cls.half1File, half1), (cls.half2File, half2), (cls.maskFile, mask),
                           (cls.mapFile, (half1 + half2) / 2)):
            write_map(path, data.astype(np.float32), 1.0)
        x, y, z = ORIGIN
        cls.importWithHalves = cls.newProtocol(ProtImportVolumes, objLabel="map with half maps",
                                               filesPath=cls.mapFile, samplingRate=1.0, setOrigCoord=True,
                                               x=x, y=y, z=z, setHalfMaps=True, half1map=cls.half1File,
                                               half2map=cls.half2File)
        cls.launchProtocol(cls.importWithHalves)
        cls.importHalf1 = cls.newProtocol(ProtImportVolumes, objLabel="half 1", filesPath=cls.half1File,
                                          samplingRate=1.0)
        cls.launchProtocol(cls.importHalf1)
        cls.importHalf2 = cls.newProtocol(ProtImportVolumes, objLabel="half 2", filesPath=cls.half2File,
                                          samplingRate=1.0)
        cls.launchProtocol(cls.importHalf2)
        cls.importMask = cls.newProtocol(ProtImportMask, maskPath=cls.maskFile, samplingRate=1.0)
        cls.launchProtocol(cls.importMask)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _newProt(self, protClass, source, half2=None, **kwargs):
        """A protocol on the map with half maps (HALVES_FROM_VOLUME) or on the two imported
        halves (``half2`` replaces the second one), with the mask."""
        prot = self.newProtocol(protClass, halvesSource=source, **kwargs)
        if source == HALVES_FROM_VOLUME:
            prot.inputVolume.set(self.importWithHalves)
            prot.inputVolume.setExtended("outputVolume")
        else:
            prot.inputHalf1.set(self.importHalf1)
            prot.inputHalf1.setExtended("outputVolume")
            prot.inputHalf2.set(half2 or self.importHalf2)
            prot.inputHalf2.setExtended("outputVolume")
        prot.inputMask.set(self.importMask)
        prot.inputMask.setExtended("outputMask")
        return prot

    def test_local_fsc_from_a_map_with_half_maps_and_viewer(self):
        from deepres_plugin.core.pipeline import LocalFscOptions, run_local_fsc

        source = self.importWithHalves.outputVolume
        self.assertTrue(source.hasHalfMaps())
        prot = self._newProt(ProtDeepResLocalFsc, HALVES_FROM_VOLUME, objLabel="local FSC, map with halves")
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        output = prot.resolution_Volume
        self.assertTrue(os.path.exists(output.getFileName()))
        self.assertEqual(output.getDim(), (SIZE,) * 3)
        self.assertAlmostEqual(output.getSamplingRate(), 1.0)
        self.assertEqual(output.getShiftsFromOrigin(), source.getShiftsFromOrigin())
        # a 5 A low-pass (zero at 4.35 A): the band-pass estimate reads between the filter's zero
        # and 10 % above the filter (measured MEDIAN_5A)
        self.assertTrue(4.35 <= prot.medianResolution.get() < 5.5, prot.medianResolution.get())
        # the same numbers as the core on the original files (Scipion stores 15 significant digits)
        reference = run_local_fsc(self.half1File, self.half2File, os.path.join(self.folder, "core_localfsc"),
                                  LocalFscOptions(mask=self.maskFile, sampling=1.0)).to_dict()
        self.assertAlmostEqual(prot.medianResolution.get(), reference["median_A"], places=12)
        self.assertAlmostEqual(prot.globalFscResolution.get(), reference["global_fsc_resolution_A"], places=12)
        self.assertEqual(prot.localMethod.get(), reference["localfsc_description"])
        self.assertEqual(reference["localfsc_method"], "bands")
        self.assertEqual(json.load(open(prot.getOutputFile("summary.json")))["median_A"], reference["median_A"])
        np.testing.assert_array_equal(read_map(output.getFileName())[0],
                                      read_map(os.path.join(self.folder, "core_localfsc", RESOLUTION_FILE))[0])
        self.assertIn("Median local FSC resolution", prot.summary()[0])
        self.assertIn("band-passed halves", prot.summary()[0])
        self.assertEqual(prot._citations(), ["RamirezAportela2019"])
        self.assertNotIn("Cardone2013", "".join(prot.methods()))
        self.assertIn(f"The mask was {prot.getObjectTag('inputMask')}.", "".join(prot.methods()))
        self._checkLocalFscViewer(prot)

    def _savePlot(self, prot, views, name):
        png = prot._getExtraPath(f"{name}.png")
        views[0].figure.savefig(png)
        self.assertGreater(os.path.getsize(png), 5000)

    def _checkLocalFscViewer(self, prot):
        from deepres_plugin.viewers import DeepResLocalFscViewer

        viewer = DeepResLocalFscViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        handlers = viewer._getVisualizeDict()
        for name in ("doShowHistogram", "doShowSlices", "doShowFsc"):
            self._savePlot(prot, handlers[name](), name)
        self.assertIsNotNone(handlers["doShowChimera"]()[0])
        script = open(prot.getOutputFile("deepres_viewer.cxc")).read()
        self.assertIn("voxelSize 1 origin -10,5,-3", script)
        self.assertIn(f'open "{RESOLUTION_FILE}"', script)
        self.assertIn("average_map.mrc", script)

    def test_local_fsc_from_two_volumes(self):
        prot = self._newProt(ProtDeepResLocalFsc, HALVES_TWO_VOLUMES, objLabel="local FSC, two volumes",
                             threshold=1, method=METHOD_WINDOW, window=16.0, stride=3)
        self.launchProtocol(prot)
        summary = json.load(open(prot.getOutputFile("summary.json")))
        self.assertEqual((summary["threshold"], summary["window_A"], summary["stride_voxels"]), (0.5, 16.0, 3))
        self.assertEqual(prot._citations(), ["RamirezAportela2019", "Cardone2013"])
        self.assertIn("Cardone2013", "".join(prot.methods()))
        self.assertIn("16.0 \u00c5 window", prot.summary()[0])
        self.assertEqual(prot.resolution_Volume.getDim(), (SIZE,) * 3)
        self.assertAlmostEqual(prot.medianResolution.get(), summary["median_A"], places=12)
        self.assertTrue(3.0 < prot.medianResolution.get() < 8.0, prot.medianResolution.get())

    def test_bfactor_sweep_and_viewer(self):
        prot = self._newProt(ProtDeepResBfactorSweep, HALVES_TWO_VOLUMES, objLabel="B-factor sweep",
                             bfactors="-100:0:50")
        prot.useGpu.set(False)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        summary = prot.getSweepSummary()
        bfactor = prot.recommendedBfactor.get()
        self.assertIn(bfactor, (-100.0, -50.0, 0.0))
        self.assertEqual(bfactor, summary.recommended_bfactor)
        self.assertEqual([row.bfactor for row in summary.rows], [-100.0, -50.0, 0.0])
        self.assertEqual(summary.recommended.verdict, prot.recommendedVerdict.get())
        sharpened = prot.outputVolume
        self.assertTrue(os.path.exists(sharpened.getFileName()))
        self.assertEqual(sharpened.getDim(), (SIZE,) * 3)
        self.assertAlmostEqual(sharpened.getSamplingRate(), 1.0)
        self.assertEqual(sharpened.recommendedBfactor.get(), bfactor)
        self.assertTrue(sharpened.hasHalfMaps())
        self.assertTrue(os.path.exists(prot.resolution_Volume.getFileName()))
        self.assertEqual(prot.resolution_Volume.getDim(), (SIZE,) * 3)
        self.assertIn(f"Recommended B-factor {bfactor:g} Å²", prot.summary()[0])
        self.assertIn(f"{bfactor:g} Å² was chosen", "".join(prot.methods()))
        self.assertIn(f"The mask was {prot.getObjectTag('inputMask')}.", "".join(prot.methods()))
        self.assertEqual(bare_units(open(prot.getLogPaths()[0]).read()), [])    # the core's lines too: "B = -50 Å²"
        self._checkSweepViewer(prot)

    def _checkSweepViewer(self, prot):
        from deepres_plugin.viewers import DeepResBfactorSweepViewer

        viewer = DeepResBfactorSweepViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        handlers = viewer._getVisualizeDict()
        for name in ("doShowSweep", "doShowLocalFscHistogram", "doShowDeepResHistogram", "doShowSlices",
                     "doShowFsc"):
            self._savePlot(prot, handlers[name](), name)
        table = handlers["doShowTable"]()[0].getFileList()[0]
        self.assertTrue(open(table).readline().startswith("bfactor_A2,"))
        self.assertIsNotNone(handlers["doShowChimera"]()[0])
        script = open(prot.getOutputFile("deepres", "deepres_viewer.cxc")).read()
        self.assertIn(f'open "{RESOLUTION_FILE}"', script)
        self.assertIn("sharpened_map.mrc", script)

    def test_validate(self):
        small = np.zeros((40, 40, 40), np.float32)
        small[10:30, 10:30, 10:30] = 1
        path = os.path.join(self.folder, "small_half.mrc")
        write_map(path, small, 1.0)
        importSmall = self.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=1.0)
        self.launchProtocol(importSmall)
        for protClass in (ProtDeepResLocalFsc, ProtDeepResBfactorSweep):
            errors = self._newProt(protClass, HALVES_TWO_VOLUMES, half2=importSmall).validate()
            self.assertTrue(any(e.startswith("The second half map (40 x 40 x 40 voxels") and "lie on different grids" in e
                                for e in errors), errors)
        # halves placed apart (the core refuses half-map files whose headers say so, too)
        moved = self.newProtocol(ProtImportVolumes, filesPath=self.half2File, samplingRate=1.0, setOrigCoord=True,
                                 x=10.0, y=0.0, z=0.0)
        self.launchProtocol(moved)
        errors = self._newProt(ProtDeepResLocalFsc, HALVES_TWO_VOLUMES, half2=moved).validate()
        self.assertTrue(any(e.startswith("The second half map and the first have different origins") for e in errors),
                        errors)
        noHalves = self.newProtocol(ProtDeepResLocalFsc, halvesSource=HALVES_FROM_VOLUME)
        noHalves.inputVolume.set(importSmall)
        noHalves.inputVolume.setExtended("outputVolume")
        self.assertTrue(any("no (or not two) half maps" in e for e in noHalves.validate()))
        badSweep = self._newProt(ProtDeepResBfactorSweep, HALVES_FROM_VOLUME, bfactors="-200:0:-20",
                                 method=METHOD_WINDOW, window=5.0)
        errors = badSweep.validate()
        self.assertTrue(any("the step must go from start towards stop" in e for e in errors), errors)
        self.assertTrue(any("Window" in e and "at least 12 voxels" in e for e in errors), errors)
        # a window larger than the map is refused before the run
        tooLarge = self._newProt(ProtDeepResLocalFsc, HALVES_TWO_VOLUMES, method=METHOD_WINDOW, window=500.0)
        self.assertTrue(any("larger than the map" in e for e in tooLarge.validate()), tooLarge.validate())
        self.assertEqual(bare_units(" ".join(tooLarge.validate())), [])          # "window 500 Å", not "500 A"
        # the window belongs to the moving-window method: the band method ignores it
        self.assertEqual(self._newProt(ProtDeepResLocalFsc, HALVES_TWO_VOLUMES, window=500.0).validate(), [])

    def test_scipion_lists_the_protocols_and_viewers(self):
        import pyworkflow as pw
        from pyworkflow.viewer import DESKTOP_TKINTER

        from deepres_plugin.viewers import DeepResBfactorSweepViewer, DeepResLocalFscViewer

        domain = pw.Config.getDomain()
        protocols = domain.getProtocols()
        self.assertIs(protocols["ProtDeepResLocalFsc"], ProtDeepResLocalFsc)
        self.assertIs(protocols["ProtDeepResBfactorSweep"], ProtDeepResBfactorSweep)
        self.assertNotIn("ProtDeepResHalfMapsBase", protocols)
        self.assertIn(DeepResLocalFscViewer, domain.findViewers(ProtDeepResLocalFsc(), DESKTOP_TKINTER))
        self.assertIn(DeepResBfactorSweepViewer, domain.findViewers(ProtDeepResBfactorSweep(), DESKTOP_TKINTER))
