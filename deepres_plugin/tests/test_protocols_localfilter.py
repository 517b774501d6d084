"""Scipion end to end for the protocols that use a local-resolution map: the local filter on
the example map with its exact two-region resolution map (checked against the core on the
same files), the per-residue resolution of a small model on a resolution map of known
values (its B-factors against the table), their viewers' figures and ChimeraX messages, and
the bad inputs (another grid, another origin, an unknown model file, a model away from the
map, a model outside the estimated region). Runs with pytest (conftest sets up a private
Scipion) or with `scipion tests deepres_plugin.tests.test_protocols_localfilter`."""
import csv
import gzip
import os
import shutil
import tempfile

import gemmi
import numpy as np
from pwem.protocols import ProtImportMask, ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.viewer import MessageView

from deepres_plugin.core.mrc import MapGeometry, read_header_geometry, read_map, write_map
from deepres_plugin.core.outputs import LOCALFILTER_FILES, RESIDUE_FILES, SUMMARY_FILE
from deepres_plugin.core.pipeline import LocalFilterOptions, run_localfilter
from deepres_plugin.protocols import ProtDeepResLocalFilter, ProtDeepResModelResolution
from deepres_plugin.protocols.protocol_local_filter import BFACTOR_GIVEN
from deepres_plugin.tests.units import bare_units

DATA = os.path.join(os.path.dirname(__file__), "data")
#: The example map's regions (1: the copy low-passed at 4 Å, 2: at 8 Å) as an exact resolution map.
EXAMPLE_RESOLUTIONS = {1: 4.0, 2: 8.0}
FIRST_VOXEL = (10.0, -5.0, 3.0)     # Å: where the imports place the maps' first voxel
SHARPENING_B = -30.0
TOO_SHARP_B = -2000.0      # Å²: exp(2000 / (4 x 4²)) = exp(31) at the finest 4 Å, beyond the limit exp(20)
PROTEIN = "BM5_1GL1_l_u.pdb.gz"
#: The per-residue resolution map: 1.5 Å/px, this value where x < the model's median x, that one beyond.
RESIDUE_SAMPLING = 1.5
RESIDUE_VALUES = (3.5, 7.0)
PADDING_A = 6.0


def importOrigin(first):
    """The import form's x, y, z that place a map's first voxel at ``first`` (Å): minus it
    (Scipion's origin shifts are minus the form's values, and are the first voxel's position)."""
    return tuple(-v for v in first)


def importVolume(test, path, sampling, first=None, label=None):
    """Import a map with its first voxel at ``first`` (Å), or at Scipion's default origin."""
    kwargs = dict(setOrigCoord=True, **dict(zip("xyz", importOrigin(first)))) if first else {}
    prot = test.newProtocol(ProtImportVolumes, objLabel=label or os.path.basename(path), filesPath=path,
                            samplingRate=sampling, **kwargs)
    test.launchProtocol(prot)
    return prot


def importModel(test, path):
    prot = test.newProtocol(ProtImportPdb, objLabel=os.path.basename(path),
                            inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=path)
    test.launchProtocol(prot)
    return prot


def colourBarOverlaps(plotter):
    """The titles of the image panels whose axes overlap the colour bar's, once the figure is
    laid out as Scipion's plotter lays it out before showing it."""
    plotter.tightLayout()
    figure = plotter.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    panels = [axes for axes in figure.axes if axes.images]
    bars = [axes for axes in figure.axes if not axes.images]       # a colour bar draws no image
    assert len(bars) == 1, figure.axes
    bar = bars[0].get_window_extent(renderer)
    return [axes.get_title() for axes in panels if axes.get_window_extent(renderer).overlaps(bar)]


def messageScript(view):
    """The script a ChimeraX-missing message names (its last line), checked to be absolute:
    Scipion's paths are relative to the project folder, where a user's shell is not."""
    shown = view.getMessage().splitlines()[-1]
    assert os.path.isabs(shown), shown
    return shown


def point(pointer, prot, name):
    pointer.set(prot)
    pointer.setExtended(name)


class TestDeepResLocalFilter(BaseTest):
    """The example map (120 x 60 x 72 at 1 Å/px) filtered to its exact local resolution."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-localfilter-")
        volume, geometry = read_map(os.path.join(DATA, "example_map.mrc"))
        regions = read_map(os.path.join(DATA, "example_regions.mrc.gz"))[0].astype(int)
        resolution = np.zeros(volume.shape, np.float32)
        for label, value in EXAMPLE_RESOLUTIONS.items():
            resolution[regions == label] = value
        small = np.zeros((40, 40, 40), np.float32)
        small[10:30, 10:30, 10:30] = 1
        cls.files = {}
        for name, data in (("map", volume), ("resolution", resolution), ("small", small),
                           ("mask", (regions == 1).astype(np.float32))):
            cls.files[name] = os.path.join(cls.folder, f"{name}.mrc")
            write_map(cls.files[name], data, geometry)    # float32: Xmipp's MRC reader refuses float16
        cls.importMap = importVolume(cls, cls.files["map"], 1.0, FIRST_VOXEL, "map")
        cls.importResolution = importVolume(cls, cls.files["resolution"], 1.0, FIRST_VOXEL, "exact resolution")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _newFilter(self, resolution=None, volume=None, **kwargs):
        prot = self.newProtocol(ProtDeepResLocalFilter, **kwargs)
        point(prot.inputResolution, resolution or self.importResolution, "outputVolume")
        if volume is not False:
            point(prot.inputVolume, volume or self.importMap, "outputVolume")
        return prot

    def test_local_filter_equals_the_core_and_viewer(self):
        prot = self._newFilter(objLabel="local filter, B given", bfactorChoice=BFACTOR_GIVEN, bfactor=SHARPENING_B)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        output, source = prot.outputVolume, self.importMap.outputVolume
        self.assertEqual(output.getDim(), source.getDim())
        self.assertAlmostEqual(output.getSamplingRate(), 1.0)
        self.assertEqual(output.getShiftsFromOrigin(), source.getShiftsFromOrigin())
        filtered, geometry = read_map(output.getFileName())
        self.assertEqual(geometry.first_voxel_xyz(), FIRST_VOXEL)      # the file is placed as imported
        reference = run_localfilter(self.files["map"], self.files["resolution"], os.path.join(self.folder, "core"),
                                    LocalFilterOptions(bfactor=SHARPENING_B))
        expected = read_map(reference.filtered_map_path(os.path.join(self.folder, "core")))[0]
        np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-6 * float(np.abs(expected).max()))
        self.assertGreater(float(np.abs(filtered - read_map(self.files["map"])[0]).max()), 0.01)   # it did filter
        self.assertEqual((prot.finestResolution.get(), prot.coarsestResolution.get()), (4.0, 8.0))
        self.assertEqual(prot.bankMembers.get(), len(reference.bank_resolutions))
        self.assertEqual((prot.appliedBfactor.get(), prot.bfactorSource.get()), (SHARPENING_B, "given"))
        self.assertEqual(output.appliedBfactor.get(), SHARPENING_B)
        self.assertEqual(prot.filteredVoxels.get(), reference.voxels)
        summary = " ".join(prot.summary())
        for text in ("4.00-8.00 Å", f"{reference.voxels} voxels", "B = -30.0 Å² (given)"):
            self.assertIn(text, summary)
        methods = "".join(prot.methods())
        self.assertIn("-30 Å²", methods)
        self.assertIn("RamirezAportela2019", methods)
        self.assertIn("the voxels with a local resolution (no mask was given)", methods)
        self.assertEqual(bare_units(summary + methods), [])
        self.assertEqual(prot._citations(), ["RamirezAportela2019"])
        log = open(prot.getLogPaths()[0]).read()
        self.assertIn("Local filter: ", log)
        self.assertIn("Sharpened first with B = -30.0 Å², given.", log)
        self.assertEqual(prot.getClassLabel(), "deepres - filter to local resolution")
        self._checkViewer(prot)

    def _checkViewer(self, prot):
        from deepres_plugin.viewers import DeepResLocalFilterViewer

        viewer = DeepResLocalFilterViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        handlers = viewer._getVisualizeDict()
        for name in ("doShowSlices", "doShowFigure"):
            png = prot._getExtraPath(f"{name}.png")
            handlers[name]()[0].figure.savefig(png)
            self.assertGreater(os.path.getsize(png), 20000)
        self.assertEqual(colourBarOverlaps(handlers["doShowSlices"]()[0]), [])
        viewer.sliceNumber.set(500)
        self.assertIn("outside the map", handlers["doShowSlices"]()[0].getMessage())
        view = handlers["doShowChimera"]()[0]
        script = prot.getOutputFile(LOCALFILTER_FILES["chimerax"])
        self.assertIn("origin 10,-5,3", open(script).read())
        if isinstance(view, MessageView):                  # no ChimeraX here: a message naming the script
            self.assertEqual(messageScript(view), os.path.join(self.proj.getPath(), script))

    def test_a_refused_sharpening_says_why_in_angstrom(self):
        """B = -2000 Å² at the finest 4 Å would amplify the map by exp(31): the command refuses it
        (beyond its B-factor range), and the Summary's error reads in Å² (it read "-2000 A^2 ...
        at 4.00 A")."""
        prot = self._newFilter(objLabel="local filter, B too sharp", bfactorChoice=BFACTOR_GIVEN,
                               bfactor=TOO_SHARP_B)
        self.assertEqual(prot.validate(), [])     # an imported resolution map: its finest value is known at the run
        self.proj.launchProtocol(prot, wait=True)
        prot = self.proj.getProtocol(prot.getObjId())
        self.assertTrue(prot.isFailed())
        summary = "\n".join(prot.summary())
        self.assertIn(f"argument --bfactor: must be at least -1000 Å², got {TOO_SHARP_B:g}", summary)
        self.assertEqual(bare_units(summary), [])

    def test_mask_and_bad_grids(self):
        importMask = self.newProtocol(ProtImportMask, maskPath=self.files["mask"], samplingRate=1.0)
        self.launchProtocol(importMask)
        prot = self._newFilter(objLabel="local filter, mask")
        point(prot.inputMask, importMask, "outputMask")
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        self.assertEqual((prot.finestResolution.get(), prot.coarsestResolution.get()), (4.0, 4.0))   # the mask's region
        self.assertIn("input_mask.mrc", open(prot.getOutputFile(SUMMARY_FILE)).read())
        self.assertIn(f"the voxels of the mask {prot.getObjectTag('inputMask')}", " ".join(prot.methods()))

        shifts = self.importMap.outputVolume.getShiftsFromOrigin()
        small = importVolume(self, self.files["small"], 1.0, label="small map")
        moved = importVolume(self, self.files["resolution"], 1.0, label="resolution, default origin")
        coarse = importVolume(self, self.files["resolution"], 2.0, FIRST_VOXEL, "resolution, 2 Å/px")
        importSmallMask = self.newProtocol(ProtImportMask, maskPath=self.files["small"], samplingRate=1.0)
        self.launchProtocol(importSmallMask)
        cases = [(self._newFilter(resolution=small), "lie on different grids; compute the local resolution"),
                 (self._newFilter(resolution=coarse), "voxels of 2 Å) and the map"),
                 (self._newFilter(resolution=moved), "different origins in Scipion (shifts -60, -30, -36 and "
                                                     f"{', '.join(f'{v:g}' for v in shifts)} Å)"),
                 (self._newFilter(volume=False), "Choose the map: the local resolution map is not the output"),
                 (self._newFilter(volume=self.importResolution),
                  "looks like a local-resolution map, not a density map (every voxel is 0 or between 4.00 and "
                  "8.00 Å); give the density map the resolution map was computed for, or leave Map empty")]
        masked = self._newFilter()
        point(masked.inputMask, importSmallMask, "outputMask")
        cases.append((masked, "The mask (40 x 40 x 40 voxels of 1 Å) and the map"))
        for prot, message in cases:
            errors = prot.validate()
            self.assertEqual(len(errors), 1, errors)
            self.assertIn(message, errors[0])
            self.assertNotIn("\n", errors[0])


def writeModel(path, model):
    """A gemmi model written as PDB (gzipped when ``path`` ends with .gz)."""
    structure = gemmi.Structure()
    structure.add_model(model)
    structure.setup_entities()
    text = structure.make_pdb_string()
    with (gzip.open(path, "wt") if path.endswith(".gz") else open(path, "w")) as handle:
        handle.write(text)


class TestDeepResModelResolution(BaseTest):
    """A small protein on a resolution map of 3.5 Å below its median x and 7 Å above."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = tempfile.mkdtemp(prefix="deepres-residues-")
        model = gemmi.read_structure(os.path.join(DATA, PROTEIN))[0]
        positions = np.array([atom.pos.tolist() for chain in model for residue in chain for atom in residue])
        first = np.floor(positions.min(axis=0) - PADDING_A)
        shape_xyz = np.ceil((positions.max(axis=0) + PADDING_A - first) / RESIDUE_SAMPLING).astype(int)
        cls.splitX = float(np.median(positions[:, 0]))
        x = first[0] + RESIDUE_SAMPLING * np.arange(shape_xyz[0])
        resolution = np.where(x < cls.splitX, *RESIDUE_VALUES).astype(np.float32)
        resolution = np.broadcast_to(resolution, tuple(shape_xyz[::-1])).copy()
        geometry = MapGeometry(RESIDUE_SAMPLING, origin=tuple(first))
        cls.files = {"model": os.path.join(cls.folder, PROTEIN), "far": os.path.join(cls.folder, "far.pdb"),
                     "text": os.path.join(cls.folder, "model.txt")}
        shutil.copy(os.path.join(DATA, PROTEIN), cls.files["model"])
        shutil.copy(os.path.join(DATA, PROTEIN), cls.files["text"])
        far = gemmi.read_structure(os.path.join(DATA, PROTEIN))[0]
        far.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(500.0, 0.0, 0.0)))
        writeModel(cls.files["far"], far)
        empty = np.zeros_like(resolution)
        empty[:3, :3, :3] = RESIDUE_VALUES[0]           # an estimate only in a corner, away from every atom
        for name, data in (("resolution", resolution), ("corner", empty)):
            cls.files[name] = os.path.join(cls.folder, f"{name}.mrc")
            write_map(cls.files[name], data, geometry)
        cls.importResolution = importVolume(cls, cls.files["resolution"], RESIDUE_SAMPLING, tuple(first), "split")
        cls.importCorner = importVolume(cls, cls.files["corner"], RESIDUE_SAMPLING, tuple(first), "corner")
        cls.importModel = importModel(cls, cls.files["model"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def _newResidues(self, model=None, resolution=None, **kwargs):
        prot = self.newProtocol(ProtDeepResModelResolution, **kwargs)
        point(prot.inputStructure, model or self.importModel, "outputPdb")
        point(prot.inputResolution, resolution or self.importResolution, "outputVolume")
        return prot

    def test_model_resolution_and_viewer(self):
        prot = self._newResidues(objLabel="per residue", compareBfactors=True)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        output = prot.outputAtomStruct
        self.assertEqual(output.getFileName(), prot.getOutputFile(RESIDUE_FILES["model_cif"]))
        with open(prot.getOutputFile(RESIDUE_FILES["csv"])) as handle:
            rows = {(row["chain"], int(row["number"]), row["icode"]): row for row in csv.DictReader(handle)}
        structure = gemmi.read_structure(output.getFileName())
        original = gemmi.read_structure(self.files["model"])[0]
        residues = [(chain.name, residue.seqid.num, residue.seqid.icode.strip()) for chain in original
                    for residue in chain if not residue.is_water()]
        self.assertEqual(sorted(rows), sorted(residues))
        inside = {RESIDUE_VALUES[0]: 0, RESIDUE_VALUES[1]: 0}
        for chain in structure[0]:
            for residue in chain:
                row = rows[(chain.name, residue.seqid.num, residue.seqid.icode.strip())]
                median = float(row["median_A"]) if row["median_A"] else 0.0
                for atom in residue:           # the B-factor column holds the residue's median
                    self.assertAlmostEqual(atom.b_iso, median, places=2)
                xs = [atom.pos.x for atom in residue if atom.element.name != "H"]
                # a residue on one side of the split (beyond a voxel's interpolation) reads that side's value
                if max(xs) < self.splitX - RESIDUE_SAMPLING:
                    self.assertAlmostEqual(median, RESIDUE_VALUES[0], places=3)
                    inside[RESIDUE_VALUES[0]] += 1
                elif min(xs) > self.splitX + RESIDUE_SAMPLING:
                    self.assertAlmostEqual(median, RESIDUE_VALUES[1], places=3)
                    inside[RESIDUE_VALUES[1]] += 1
        self.assertGreaterEqual(min(inside.values()), 5, inside)     # 7 and 11 of its 35 residues
        self.assertEqual(prot.residueCount.get(), len(residues))
        self.assertEqual(prot.residuesEstimated.get(), len(residues))
        self.assertEqual(prot.atomsOutsideMap.get() + prot.atomsOutsideRegion.get(), 0)
        self.assertTrue(RESIDUE_VALUES[0] <= prot.medianResolution.get() <= RESIDUE_VALUES[1])
        self.assertEqual(output.medianResolution.get(), prot.medianResolution.get())
        summary = prot.summary()
        self.assertIn(f"Median per-residue resolution {prot.medianResolution.get():.2f} Å", summary[0])
        self.assertTrue(any(line.startswith("Chain ") for line in summary), summary)
        self.assertIn("deepres_resolution", "".join(prot.methods()))
        self.assertEqual(prot.getClassLabel(), "deepres - per-residue resolution")
        self._checkViewer(prot)

    def _checkViewer(self, prot):
        from deepres_plugin.viewers import DeepResModelResolutionViewer

        viewer = DeepResModelResolutionViewer(project=prot.getProject(), protocol=prot)
        viewer.setProtocol(prot)
        handlers = viewer._getVisualizeDict()
        png = prot._getExtraPath("doShowPlot.png")
        handlers["doShowPlot"]()[0].figure.savefig(png)
        self.assertGreater(os.path.getsize(png), 10000)
        table = handlers["doShowTable"]()[0]                 # a table window, not the CSV's text
        self.assertEqual(table.headers[:4], ["Chain", "Number", "Ins. code", "Residue"])
        self.assertIn("Median (Å)", table.headers)
        self.assertEqual(len(table.rows), prot.residueCount.get())
        median = table.rows[0][table.headers.index("Median (Å)")]
        self.assertRegex(median, r"^\d+\.\d\d$")                       # 0.01 Å, not the CSV's 0.001
        self.assertIn(os.path.join(self.proj.getPath(), prot.getOutputFile(RESIDUE_FILES["csv"])), table.message)
        view = handlers["doShowChimera"]()[0]
        script = prot.getOutputFile(RESIDUE_FILES["chimerax"])
        self.assertIn("color byattribute r:deepres_resolution", open(script).read())
        if isinstance(view, MessageView):
            self.assertEqual(messageScript(view), os.path.join(self.proj.getPath(), script))

    def test_bad_models_and_grids(self):
        importFar = importModel(self, self.files["far"])
        importText = importModel(self, self.files["text"])
        importOther = importVolume(self, os.path.join(DATA, "example_map.mrc"), 1.0, label="other map")
        onOtherMap = self._newResidues()
        point(onOtherMap.inputVolume, importOther, "outputVolume")
        lostOrigin = importVolume(self, self.files["resolution"], RESIDUE_SAMPLING, label="split, 'Set origin: No'")
        first = ", ".join(f"{v:g}" for v in read_header_geometry(self.files["resolution"]).first_voxel_xyz())
        cases = [(self._newResidues(model=importFar), "the map may have lost its origin: a map imported with 'Set "
                                                      "origin: No' ignores its header's origin"),
                 (self._newResidues(resolution=lostOrigin),
                  f"place the model on the map first. The map's file (import_resolution.mrc) places its first voxel "
                  f"at ({first}) Å, where the model fits: the import did not keep the header's origin ('Set origin: "
                  "No'); import the map again with the origin from the header."),
                 (self._newResidues(model=importText), "is not an atomic model: expected one of .pdb"),
                 (onOtherMap, "lie on different grids")]
        for prot, message in cases:
            errors = prot.validate()
            self.assertEqual(len(errors), 1, errors)
            self.assertIn(message, errors[0])
            self.assertNotIn("\n", errors[0])
        # in the box, but nowhere with an estimate: refused by the run in one line, nothing written
        prot = self._newResidues(resolution=self.importCorner, objLabel="outside the estimated region")
        self.assertEqual(prot.validate(), [])
        self.proj.launchProtocol(prot, wait=True)
        prot = self.proj.getProtocol(prot.getObjId())
        self.assertTrue(prot.isFailed())
        self.assertIn("lies where", prot.getErrorMessage())
        self.assertNotIn("\n", prot.getErrorMessage())
        self.assertFalse(os.path.exists(prot.getOutputFile()))
        self.assertFalse(prot.hasAttribute("outputAtomStruct"))


def test_scipion_lists_the_protocols_and_viewers():
    import pyworkflow as pw
    from pyworkflow.viewer import DESKTOP_TKINTER

    from deepres_plugin.viewers import DeepResLocalFilterViewer, DeepResModelResolutionViewer

    domain = pw.Config.getDomain()
    protocols = domain.getProtocols()
    assert protocols["ProtDeepResLocalFilter"] is ProtDeepResLocalFilter
    assert protocols["ProtDeepResModelResolution"] is ProtDeepResModelResolution
    assert "ProtDeepResResolutionMapBase" not in protocols
    assert ProtDeepResLocalFilter.getClassLabel() == "deepres - filter to local resolution"
    assert ProtDeepResModelResolution.getClassLabel() == "deepres - per-residue resolution"
    assert DeepResLocalFilterViewer in domain.findViewers(ProtDeepResLocalFilter(), DESKTOP_TKINTER)
    assert DeepResModelResolutionViewer in domain.findViewers(ProtDeepResModelResolution(), DESKTOP_TKINTER)


def test_the_form_offers_no_more_threads_than_cpus():
    """A 2-CPU machine is offered 2 threads (the form said 4 on any machine); a large one 4."""
    from unittest import mock

    from deepres_plugin.protocols.protocol_local_filter import MAX_DEFAULT_THREADS

    for cpus, offered in ((2, 2), (1, 1), (64, MAX_DEFAULT_THREADS)):
        with mock.patch("deepres_plugin.protocols.protocol_local_filter.available_cpus", return_value=cpus):
            assert ProtDeepResLocalFilter().numberOfThreads.get() == offered
