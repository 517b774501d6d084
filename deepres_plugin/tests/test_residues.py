"""`deepres residues`: per-residue local resolution of a model placed on the map, checked on
synthetic models whose chains sit in regions of known resolution; outputs and bad inputs."""
import csv
import gzip
import json

import gemmi
import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.mrc import MapGeometry, write_map
from deepres_plugin.core.outputs import RESIDUE_FILES, ResiduesSummary
from deepres_plugin.core.pipeline import run_report
from deepres_plugin.core.report import chimerax_script
from deepres_plugin.core.residues import (
    ATTRIBUTE,
    INSIDE,
    NO_ESTIMATE_CELL,
    OUTSIDE_MAP,
    OUTSIDE_REGION,
    palette_and_key,
    placement_warnings,
    residue_percentiles,
    residue_table,
    sample_at_atoms,
)

#: The map: 1.5 A/px, first voxel at (10, 20, -5) A, 40 x 40 x 60 voxels (z, y, x).
GEOMETRY = MapGeometry(1.5, origin=(10.0, 20.0, -5.0))
SHAPE = (40, 40, 60)
#: Two regions of known resolution, side by side along x (voxel ranges), 0 elsewhere.
REGIONS = {"A": (3.5, slice(5, 30)), "B": (7.25, slice(30, 55))}
ATOM_NAMES = ("N", "CA", "C", "O", "CB")


def xyz(voxel_x: float, voxel_y: float, voxel_z: float) -> tuple[float, float, float]:
    """Position (A) of a point given in voxel coordinates of the test map."""
    origin = np.array(GEOMETRY.origin)
    return tuple(origin + GEOMETRY.voxel_size * np.array([voxel_x, voxel_y, voxel_z]))


def write_model(path, chains: dict, bfactors: dict | None = None) -> None:
    """A model file (PDB, mmCIF, .gz too) of ``chains``: name -> list of residues, each a list
    of atom positions (A); residue i of a chain is numbered i + 1, name ALA, B-factor from
    ``bfactors[name][i]`` (default 20)."""
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    for name, residues in chains.items():
        chain = gemmi.Chain(name)
        for i, atoms in enumerate(residues):
            residue = gemmi.Residue()
            residue.name, residue.seqid = "ALA", gemmi.SeqId(i + 1, " ")
            for atom_name, position in zip(ATOM_NAMES, atoms):
                atom = gemmi.Atom()
                atom.name, atom.element, atom.pos, atom.occ = atom_name, gemmi.Element("C"), gemmi.Position(*position), 1.0
                atom.b_iso = bfactors[name][i] if bfactors else 20.0
                residue.add_atom(atom)
            chain.add_residue(residue)
        model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    text = structure.make_mmcif_document().as_string() if ".cif" in str(path) else structure.make_pdb_string()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def random_residues(rng, count: int, x_range: tuple[float, float]) -> list:
    """Residues of 5 atoms at random places inside the regions' y/z span and ``x_range`` (voxels)."""
    return [[xyz(rng.uniform(*x_range), rng.uniform(7, 33), rng.uniform(7, 33)) for _ in ATOM_NAMES]
            for _ in range(count)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The resolution map and its density map; chain A in the 3.5 A region, B in the 7.25 A
    region, C with one atom outside the box and one in the box but outside the region."""
    folder = tmp_path_factory.mktemp("residues")
    resolution = np.zeros(SHAPE, np.float32)
    for value, x in REGIONS.values():
        resolution[5:35, 5:35, x] = value
    write_map(folder / "resolution.mrc", resolution, GEOMETRY)
    write_map(folder / "map.mrc", (resolution > 0).astype(np.float32)
              + np.random.default_rng(1).normal(0, 0.1, SHAPE).astype(np.float32), GEOMETRY)
    rng = np.random.default_rng(7)
    chains = {"A": random_residues(rng, 20, (7, 28)), "B": random_residues(rng, 15, (32, 53)),
              "C": [[xyz(70, 10, 10)], [xyz(2, 2, 2), xyz(10, 10, 10)]]}
    write_model(folder / "model.pdb", chains)
    return folder


def test_every_residue_reads_its_regions_value_and_outside_atoms_are_counted(case, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["residues", str(case / "resolution.mrc"), str(case / "model.pdb"), "--map",
                     str(case / "map.mrc"), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / RESIDUE_FILES["csv"]).open()))
    assert [row["chain"] for row in rows] == ["A"] * 20 + ["B"] * 15 + ["C"] * 2
    for row in rows[:35]:
        expected = REGIONS[row["chain"]][0]
        assert (float(row["median_A"]), float(row["p20_A"]), float(row["p80_A"])) == (expected,) * 3, row
        assert (row["atoms"], row["atoms_outside"]) == ("5", "0")
    assert [(row["atoms"], row["atoms_outside"], row["median_A"]) for row in rows[35:]] == [("0", "1", ""),
                                                                                             ("1", "1", "3.500")]
    summary = ResiduesSummary.read(out)                    # what the Scipion layer reads
    a, b, c = (summary.chain(name) for name in "ABC")
    assert (a.median, a.residues, a.residues_estimated, a.atoms) == (3.5, 20, 20, 100)
    assert (b.median, b.percentile_20, b.percentile_80) == (7.25, 7.25, 7.25)
    assert (c.residues, c.residues_estimated, c.atoms, c.atoms_outside_map, c.atoms_outside_region) == (2, 1, 1, 1, 1)
    assert (summary.atoms_outside_map, summary.atoms_outside_region, summary.residues_estimated) == (1, 1, 36)
    assert summary.median == 3.5 and summary.bfactor_correlation is None
    assert summary.colour_range == (3.5, 7.25) and summary.palette == "jet"


def test_model_is_written_with_the_resolution_in_the_bfactor_column(case, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["residues", str(case / "resolution.mrc"), str(case / "model.pdb"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == set(RESIDUE_FILES.values())
    for name in (RESIDUE_FILES["model_cif"], RESIDUE_FILES["model_pdb"]):
        model = gemmi.read_structure(str(out / name))[0]
        assert model.count_atom_sites() == 20 * 5 + 15 * 5 + 3
        assert {atom.b_iso for residue in model["A"] for atom in residue} == {3.5}
        assert {atom.b_iso for residue in model["B"] for atom in residue} == {7.25}
        assert [atom.b_iso for atom in model["C"][0]] == [0.0] and model["C"][1][0].b_iso == 3.5


def test_chimerax_files_use_the_map_scripts_palette_and_key(case, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["residues", str(case / "resolution.mrc"), str(case / "model.pdb"), "--map",
                     str(case / "map.mrc"), "--palette", "viridis", "--out", str(out)]) == 0
    defattr = (out / RESIDUE_FILES["defattr"]).read_text().splitlines()
    assert f"attribute: {ATTRIBUTE}" in defattr and "recipient: residues" in defattr
    assert "\t/A:1\t3.500" in defattr and "\t/B:15\t7.250" in defattr and "\t/C:2\t3.500" in defattr
    assert not any(line.startswith("\t/C:1\t") for line in defattr)          # no estimate, no value
    script = (out / RESIDUE_FILES["chimerax"]).read_text()
    map_script = chimerax_script("m.mrc", "r.mrc", GEOMETRY, 3.5, 7.25, 0.5, "viridis")  # the map's own script
    colours, key = palette_and_key(3.5, 7.25, "viridis")
    assert f"palette {colours}" in map_script and f"key {key} pos" in map_script
    assert f"color byattribute r:{ATTRIBUTE} #1 palette {colours} noValueColor gray" in script
    assert f"key {key} pos" in script
    opened = [json.loads(line.split(" ", 1)[1].split(" format")[0]) for line in script.splitlines()
              if line.startswith("open ")]
    assert [(out / name).resolve() for name in opened] == [out / RESIDUE_FILES["model_cif"],
                                                           out / RESIDUE_FILES["defattr"], case / "map.mrc"]


def test_colours_follow_the_resolution_maps_report(case, tmp_path):
    """A resolution map in a report folder: the model gets that report's colour scale."""
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "resolution.mrc").write_bytes((case / "resolution.mrc").read_bytes())
    run_report(folder / "resolution.mrc", case / "map.mrc", folder, palette="viridis", range_min=2.5, range_max=13.0)
    out = tmp_path / "out"
    assert cli.main(["residues", str(folder / "resolution.mrc"), str(case / "model.pdb"), "--out", str(out)]) == 0
    summary = ResiduesSummary.read(out)
    assert summary.colour_range == (2.5, 13.0) and summary.palette == "viridis"


def test_sampling_is_trilinear_in_the_maps_frame():
    """A resolution map linear in x, y and z is read exactly anywhere inside (trilinear
    interpolation is exact for linear functions); the ramp fixes the axis order and origin."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in SHAPE), indexing="ij")
    ramp = (2.0 + 0.1 * x + 0.05 * y + 0.02 * z).astype(np.float32)
    rng = np.random.default_rng(2)
    voxels = rng.uniform([0, 0, 0], [SHAPE[2] - 1, SHAPE[1] - 1, SHAPE[0] - 1], size=(500, 3))   # x, y, z
    positions = np.array([xyz(*v) for v in voxels])
    values, status = sample_at_atoms(ramp, GEOMETRY, positions)
    assert (status == INSIDE).all()
    np.testing.assert_allclose(values, 2.0 + 0.1 * voxels[:, 0] + 0.05 * voxels[:, 1] + 0.02 * voxels[:, 2],
                               rtol=1e-5)
    # voxels without an estimate do not drag the value towards 0; atoms beyond the box are outside
    ramp[:, :, 30:] = 0
    edge = np.array([xyz(29.4, 10, 10), xyz(29.6, 10, 10), xyz(60.0, 10, 10), xyz(-0.6, 10, 10)])
    values, status = sample_at_atoms(ramp, GEOMETRY, edge)
    assert list(status) == [INSIDE, OUTSIDE_REGION, OUTSIDE_MAP, OUTSIDE_MAP]
    assert values[0] == pytest.approx(2.0 + 0.1 * 29 + 0.05 * 10 + 0.02 * 10) and np.isnan(values[1:]).all()


def test_residue_percentiles_are_numpys():
    rng = np.random.default_rng(3)
    residue = np.sort(rng.integers(0, 50, 800))
    values = rng.uniform(2, 9, 800)
    values[rng.random(800) < 0.2] = np.nan
    counts, table = residue_percentiles(values, residue, 52)
    for i in range(52):
        mine = values[(residue == i) & ~np.isnan(values)]
        assert counts[i] == mine.size
        if mine.size:
            np.testing.assert_allclose(table[i], np.percentile(mine, [50, 20, 80]))
        else:
            assert np.isnan(table[i]).all()


def test_bfactor_comparison_ranks_residues(tmp_path):
    """Residues along a resolution gradient, B-factors rising with it: rank correlation 1;
    a gz mmCIF model with an insertion code on the way."""
    resolution = np.broadcast_to(np.linspace(3.0, 9.0, SHAPE[2], dtype=np.float32), SHAPE).copy()
    write_map(tmp_path / "resolution.mrc", resolution, GEOMETRY)
    residues = [[xyz(x, 20, 20)] for x in np.linspace(3, 55, 12)]
    write_model(tmp_path / "model.cif.gz", {"A": residues}, {"A": list(np.linspace(30, 80, 12))})
    out = tmp_path / "out"
    assert cli.main(["residues", str(tmp_path / "resolution.mrc"), str(tmp_path / "model.cif.gz"),
                     "--compare-bfactors", "--out", str(out)]) == 0
    summary = ResiduesSummary.read(out)
    assert summary.bfactor_correlation == pytest.approx(1.0)
    assert summary.fields["bfactor_comparison"]["residues"] == 12
    rows = list(csv.DictReader((out / RESIDUE_FILES["csv"]).open()))
    assert float(rows[0]["bfactor_mean"]) == 30.0 and float(rows[-1]["bfactor_mean"]) == 80.0
    headers, cells = residue_table(out / RESIDUE_FILES["csv"])            # the viewer's table
    assert headers[-1] == "Mean B-factor (Å²)" and cells[0][-1] == "30.0"


def test_the_residue_table_for_people_has_units_and_rounded_cells(tmp_path):
    """What the viewer's table shows: headers with units, resolutions to 0.01 Å, '-' for a
    residue without an estimate (the CSV keeps 0.001 Å and leaves the cell empty)."""
    table = tmp_path / RESIDUE_FILES["csv"]
    table.write_text("chain,number,icode,name,atoms,atoms_outside,median_A,p20_A,p80_A\n"
                     "A,1,,ALA,5,0,3.500,3.412,3.587\nA,2,B,GLY,0,4,,,\n")
    headers, rows = residue_table(table)
    assert headers == ["Chain", "Number", "Ins. code", "Residue", "Atoms sampled", "Atoms not sampled",
                       "Median (Å)", "Percentile 20 (Å)", "Percentile 80 (Å)"]
    assert rows == [("A", "1", "", "ALA", "5", "0", "3.50", "3.41", "3.59"),
                    ("A", "2", "B", "GLY", "0", "4", NO_ESTIMATE_CELL, NO_ESTIMATE_CELL, NO_ESTIMATE_CELL)]


def test_insertion_codes_reach_the_table_and_the_attribute_file(case, tmp_path):
    text = (case / "model.pdb").read_text().splitlines()
    # residue A 2 becomes A 1A (PDB columns 23-27: number and insertion code)
    text = [line[:22] + "   1A" + line[27:] if line.startswith("ATOM") and line[21] == "A" and line[22:26].strip() == "2"
            else line for line in text]
    (tmp_path / "model.pdb").write_text("\n".join(text) + "\n")
    out = tmp_path / "out"
    assert cli.main(["residues", str(case / "resolution.mrc"), str(tmp_path / "model.pdb"), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / RESIDUE_FILES["csv"]).open()))
    assert (rows[1]["number"], rows[1]["icode"]) == ("1", "A")
    assert "\t/A:1A\t3.500" in (out / RESIDUE_FILES["defattr"]).read_text()


@pytest.fixture(scope="module")
def bad(case, tmp_path_factory):
    """Inputs a user gets wrong: a model beside the map, a file that is not a model, a map on
    another grid."""
    folder = tmp_path_factory.mktemp("bad")
    write_model(folder / "elsewhere.pdb", {"A": [[(500.0, 500.0, 500.0), (505.0, 500.0, 500.0)]]})
    write_model(folder / "in_box_no_region.pdb", {"A": [[xyz(1, 1, 1)]]})
    (folder / "model.xyz").write_text((case / "model.pdb").read_text())
    (folder / "broken.pdb.gz").write_bytes(b"not gzip")
    write_map(folder / "other_grid.mrc", np.zeros((40, 40, 58), np.float32), GEOMETRY)
    return folder


@pytest.mark.parametrize("model, extra, message", [
    ("{bad}/elsewhere.pdb", [], "lies inside"),
    ("{bad}/in_box_no_region.pdb", [], "has a local resolution"),
    ("{bad}/model.xyz", [], "is not an atomic model"),
    ("{bad}/broken.pdb.gz", [], "damaged or truncated .gz"),
    ("{case}/model.pdb", ["--map", "{bad}/other_grid.mrc"], "lie on different grids"),
    ("{case}/model.pdb", ["--map", "{bad}/model.xyz"], "is not a readable MRC/CCP4 map"),
    ("{case}/model.pdb", ["--palette", "no-such-palette"], "unknown palette"),
])
def test_bad_inputs_give_one_line_and_leave_nothing(case, bad, tmp_path, capsys, model, extra, message):
    out = tmp_path / "out"
    argv = ["residues", str(case / "resolution.mrc"), model, "--out", str(out), *extra]
    status = cli.main([a.format(case=case, bad=bad) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and "\n" not in err and err.startswith("deepres") and message in err, err
    assert not out.exists()


def test_a_model_that_pdb_cannot_hold_is_written_as_mmcif_only(case, tmp_path):
    rng = np.random.default_rng(4)
    write_model(tmp_path / "model.cif", {"LONG": random_residues(rng, 3, (7, 28))})
    out = tmp_path / "out"
    (out).mkdir()
    (out / RESIDUE_FILES["model_pdb"]).write_text("an earlier run's model\n")
    assert cli.main(["residues", str(case / "resolution.mrc"), str(tmp_path / "model.cif"), "--out", str(out)]) == 0
    assert not (out / RESIDUE_FILES["model_pdb"]).exists()
    assert ResiduesSummary.read(out).fields["files"]["model_pdb"] is None
    model = gemmi.read_structure(str(out / RESIDUE_FILES["model_cif"]))[0]
    assert {atom.b_iso for residue in model["LONG"] for atom in residue} == {3.5}


def test_a_model_mostly_off_the_estimate_is_questioned():
    """GroEL's crystal structure, not fitted, on EMD-1997's resolution map: 30 % of its atoms
    on voxels with an estimate. A fitted model with its flexible tail outside is not."""
    status = np.array([INSIDE] * 30 + [OUTSIDE_MAP] * 10 + [OUTSIDE_REGION] * 60)
    assert placement_warnings(status, "1oel.pdb") == [
        "only 30 % of the atoms of 1oel.pdb lie where the resolution map has an estimate (10 outside the map's box, "
        "60 on voxels without one): is the model fitted to this map, in the map's frame (origin)?"]
    assert placement_warnings(np.array([INSIDE] * 70 + [OUTSIDE_REGION] * 30), "fitted.pdb") == []
