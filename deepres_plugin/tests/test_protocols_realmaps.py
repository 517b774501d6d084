"""Scipion end to end on real maps as users import them: a map saved by UCSF Chimera (space
group 0) runs and reports its condition; maps that no range can read are refused by
``_validate`` with the core's one-line message."""
import json
import unittest

import mrcfile
from pwem.protocols import ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from deepres_plugin.protocols import ProtDeepResLocalResolution
from deepres_plugin.tests.real_maps import PANEL, shared_data_dir

BY_ENTRY = {m.entry: m for m in PANEL}
CHIMERA_MAP = BY_ENTRY["EMD-2566"]


@unittest.skipIf(not shared_data_dir().is_dir(), f"no shared data at {shared_data_dir()}")
class TestDeepResRealMaps(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def _import(self, real_map):
        with mrcfile.open(real_map.path, header_only=True, permissive=True) as mrc:
            sampling = float(mrc.voxel_size.x)                          # as a user types it from the header
        prot = self.newProtocol(ProtImportVolumes, filesPath=str(real_map.path), samplingRate=sampling,
                                objLabel=f"import {real_map.entry}")
        self.launchProtocol(prot)
        return prot

    def _deepres(self, imported, label):
        prot = self.newProtocol(ProtDeepResLocalResolution, objLabel=label)
        prot.inputVolume.set(imported)
        prot.inputVolume.setExtended("outputVolume")
        return prot

    def test_chimera_saved_map_runs_and_reports_its_condition(self):
        imported = self._import(CHIMERA_MAP)
        prot = self._deepres(imported, "deepres chimera map")
        self.launchProtocol(prot)
        output = prot.resolution_Volume
        self.assertEqual(output.getDim(), imported.outputVolume.getDim())
        self.assertAlmostEqual(output.getSamplingRate(), imported.outputVolume.getSamplingRate())
        with open(prot.getOutputFile("summary.json")) as handle:
            summary = json.load(handle)
        self.assertAlmostEqual(prot.mapBfactor.get(), summary["map_condition"]["bfactor_A2"])
        self.assertEqual(prot.solventState.get(), summary["map_condition"]["solvent"])
        text = "\n".join(prot.summary())
        self.assertIn("Map B-factor", text)
        self.assertIn("Å²", text)
        self.assertLess(abs(prot.medianResolution.get() / CHIMERA_MAP.reported - 1), 0.5)

    def test_voxel_coarser_than_any_range_is_refused_by_validate(self):
        coarse = BY_ENTRY["EMD-3197"]
        prot = self._deepres(self._import(coarse), "deepres coarse map")
        errors = prot.validate()
        self.assertTrue(any(coarse.refusal in e for e in errors), errors)

    def test_anisotropic_file_is_refused_by_validate(self):
        crystal = BY_ENTRY["EMD-3001"]
        prot = self._deepres(self._import(crystal), "deepres anisotropic map")
        errors = prot.validate()
        self.assertTrue(any(crystal.refusal in e for e in errors), errors)
