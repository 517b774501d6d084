"""The second workflow template (import map and model, DeepRes local resolution, local filter,
per-residue resolution) runs each of its protocols once, headless and as Scipion's template
runner would schedule it (see ``test_workflow_runs.py`` for why both are counted).

The map is the bundled example; the model is a small protein centred on the copy low-passed
at 4 Å. Without a map of their own, the local filter and the per-residue protocols read the
DeepRes run's map and resolution map in place (and keep its colour scale).
"""
import csv
import os
from pathlib import Path

import gemmi
import numpy as np
import pytest

from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import RESIDUE_FILES, ReportSummary
from deepres_plugin.core.pipeline import LocalFilterOptions, run_localfilter
from deepres_plugin.protocols import ProtDeepResLocalFilter
from deepres_plugin.protocols.files import INPUT_MAP
from deepres_plugin.protocols.protocol_local_filter import BFACTOR_GIVEN
from deepres_plugin.tests.test_workflow_runs import assert_each_ran_once, assert_scheduled_once
from deepres_plugin.workflow import LOCAL_FILTER_TEMPLATE, load_template, run_template

DATA = Path(__file__).resolve().parent / "data"
TEMPLATE_CLASSES = ["ProtImportVolumes", "ProtImportPdb", "ProtDeepResLocalResolution", "ProtDeepResLocalFilter",
                    "ProtDeepResModelResolution"]
PROTEIN = "BM5_1GL1_l_u.pdb.gz"
FOUR_A_REGION = 1                    # example_regions.mrc.gz: the copy low-passed at 4 Å


@pytest.fixture
def template_values(tmp_path, monkeypatch):
    """The example map as float32 MRC and a model centred on its 4 Å copy (1 Å/px, origin 0)."""
    monkeypatch.chdir(tmp_path)
    volume, geometry = read_map(DATA / "example_map.mrc")
    write_map(str(tmp_path / "map.mrc"), volume, geometry)
    regions = read_map(DATA / "example_regions.mrc.gz")[0]
    centre_xyz = np.argwhere(regions == FOUR_A_REGION).mean(axis=0)[::-1] * geometry.voxel_size
    structure = gemmi.read_structure(str(DATA / PROTEIN))
    positions = np.array([atom.pos.tolist() for residue in structure[0][0] for atom in residue])
    structure[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(centre_xyz - positions.mean(0)))))
    structure.write_pdb(str(tmp_path / "model.pdb"))
    return {"map": str(tmp_path / "map.mrc"), "sampling": "1.0", "x": "0.0", "y": "0.0", "z": "0.0",
            "model": str(tmp_path / "model.pdb")}


def test_second_template_runs_each_protocol_once(template_values):
    project, protocols = run_template(template_values, project_name="deepres_localfilter_template",
                                      template=LOCAL_FILTER_TEMPLATE)
    assert [type(protocol).__name__ for protocol in protocols] == TEMPLATE_CLASSES
    assert_each_ran_once(project, protocols)
    _, _, deepres, localfilter, residues = protocols

    # the local filter read the DeepRes run's map and resolution map in place, with its colour scale
    folder = deepres.getOutputFile()
    assert os.path.samefile(localfilter.getMapPath(), deepres._getExtraPath(INPUT_MAP))
    assert os.path.samefile(localfilter.getResolutionPath(), deepres.resolution_Volume.getFileName())
    summary = localfilter.getFilterSummary()
    assert summary.colour_range == ReportSummary.read(folder).colour_range
    assert summary.bfactor_source == "estimated" and summary.bfactor < 0
    reference = run_localfilter(deepres._getExtraPath(INPUT_MAP), deepres.getResolutionFile(), "core_localfilter",
                                LocalFilterOptions(auto_bfactor=True))
    filtered = read_map(localfilter.outputVolume.getFileName())[0]
    expected = read_map(reference.filtered_map_path("core_localfilter"))[0]
    np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-6 * float(np.abs(expected).max()))
    assert localfilter.outputVolume.getDim() == deepres.resolution_Volume.getDim() == (120, 60, 72)
    # a given B that amplifies the finest local resolution (the run's report) beyond sense: refused before a run
    tooSharp = project.newProtocol(ProtDeepResLocalFilter, bfactorChoice=BFACTOR_GIVEN, bfactor=-5000.0)
    tooSharp.inputResolution.set(deepres)
    tooSharp.inputResolution.setExtended("resolution_Volume")
    errors = tooSharp.validate()
    assert len(errors) == 1 and "the most negative B allowed here" in errors[0], errors

    # the model carries each residue's median (the table's) in its B-factor column
    with open(residues.getOutputFile(RESIDUE_FILES["csv"])) as handle:
        medians = {(row["chain"], int(row["number"])): float(row["median_A"] or 0) for row in csv.DictReader(handle)}
    model = gemmi.read_structure(residues.outputAtomStruct.getFileName())[0]
    bfactors = {(chain.name, residue.seqid.num): residue[0].b_iso for chain in model for residue in chain}
    assert bfactors.keys() == medians.keys()
    assert max(abs(bfactors[key] - medians[key]) for key in medians) < 0.01
    assert 3.0 < residues.medianResolution.get() < 6.0                      # the 4 Å copy
    assert residues.outputAtomStruct.getVolume() is not None


def test_scipion_schedules_each_template_protocol_once(template_values):
    """Runs Scipion's own scheduling script on the new project, recording what it schedules."""
    project = load_template(template_values, project_name="deepres_localfilter_scheduled_once",
                            template=LOCAL_FILTER_TEMPLATE)
    assert_scheduled_once(project, TEMPLATE_CLASSES)
