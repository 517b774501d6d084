"""Maps simulated from atomic models: position, filtering, scaling, atom selection."""
import gemmi
import numpy as np
import pytest

from deepres_plugin.core.errors import ParameterError, StructureError
from deepres_plugin.core.filters import RAISED_COSINE_WIDTH
from deepres_plugin.core.simulate import AtomSelection, atom_positions, model_density, read_model, simulate_map

PROTEIN = "BM5_1PPE_l_u.pdb.gz"
RNA_WITH_WATERS = "NA_377D.pdb.gz"


def density_centre_xyz(volume, geometry):
    """Centre of mass of a map in the model's frame (A), using the MRC origin."""
    weights = volume.astype(np.float64).ravel()
    index = np.indices(volume.shape).reshape(3, -1)
    centre_zyx = (index * weights).sum(axis=1) / weights.sum() * geometry.voxel_size
    return centre_zyx[::-1] + np.array(geometry.origin)


@pytest.mark.parametrize("name", [PROTEIN, RNA_WITH_WATERS])
@pytest.mark.parametrize("voxel_size", [1.0, 0.5])
def test_centre_of_mass_of_the_map_is_the_models(data_dir, name, voxel_size):
    model = read_model(data_dir / name)
    expected = np.array(model.calculate_center_of_mass().tolist())
    simulated = model_density(model, voxel_size)
    np.testing.assert_allclose(density_centre_xyz(simulated.density, simulated.geometry), expected, atol=0.15)


def test_box_is_padded_and_the_model_centred(data_dir):
    model = read_model(data_dir / PROTEIN)
    extent = np.ptp(atom_positions(model), axis=0)
    simulated = model_density(model, 1.0, padding=10.0)
    shape_xyz = np.array(simulated.density.shape[::-1])
    assert np.all(shape_xyz >= extent + 20.0)
    low, high = simulated.atoms_zyx.min(axis=0), simulated.atoms_zyx.max(axis=0)
    np.testing.assert_allclose((low + high) / 2, (np.array(simulated.density.shape) // 2) * 1.0)


def test_simulated_map_is_lowpassed_and_scaled(data_dir):
    voxel_size, resolution = 1.0, 4.0
    _, volume = simulate_map(data_dir / PROTEIN, voxel_size, resolution)
    assert volume.max() == pytest.approx(1.0)
    spectrum = np.abs(np.fft.rfftn(volume))
    fz, fy, fx = np.meshgrid(*[np.fft.fftfreq(n) for n in volume.shape[:2]], np.fft.rfftfreq(volume.shape[2]),
                             indexing="ij")
    digital = np.sqrt(fz ** 2 + fy ** 2 + fx ** 2)
    beyond = digital > voxel_size / resolution + RAISED_COSINE_WIDTH
    assert spectrum[beyond].max() < 1e-5 * spectrum.max()
    assert spectrum[digital < voxel_size / resolution].max() > 0


def test_noise_sd_is_relative_to_the_unit_peak(data_dir):
    simulated, volume = simulate_map(data_dir / PROTEIN, 1.0, 6.0, noise_sd=0.1, seed=3)
    solvent = ~simulated.atom_mask(10.0)
    clean = simulate_map(data_dir / PROTEIN, 1.0, 6.0)[1]
    assert (volume - clean)[solvent].std() == pytest.approx(0.1, rel=0.05)


def test_atom_bfactors_are_ignored_unless_asked_for(data_dir, tmp_path):
    structure = gemmi.read_structure(str(data_dir / PROTEIN))
    for residue in structure[0][0]:
        for atom in residue:
            atom.b_iso = 80.0
    structure.write_pdb(str(tmp_path / "blurred.pdb"))
    plain = model_density(read_model(data_dir / PROTEIN), 1.0).density
    ignored = model_density(read_model(tmp_path / "blurred.pdb"), 1.0).density
    kept = model_density(read_model(tmp_path / "blurred.pdb"), 1.0, use_atom_bfactors=True).density
    np.testing.assert_allclose(ignored, plain, atol=1e-4 * plain.max())
    assert kept.max() < 0.5 * plain.max()


def test_waters_are_removed_unless_kept(data_dir):
    without = read_model(data_dir / RNA_WITH_WATERS)
    with_waters = read_model(data_dir / RNA_WITH_WATERS, AtomSelection(keep_waters=True))
    waters = sum(1 for chain in with_waters for residue in chain if residue.is_water())
    assert waters == 85
    assert with_waters.count_atom_sites() - without.count_atom_sites() == waters
    assert not any(residue.is_water() for chain in without for residue in chain)


def test_mmcif_gives_the_same_map_as_pdb(data_dir, tmp_path):
    structure = gemmi.read_structure(str(data_dir / PROTEIN))
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(tmp_path / "model.cif"))
    from_pdb = model_density(read_model(data_dir / PROTEIN), 1.0).density
    from_cif = model_density(read_model(tmp_path / "model.cif"), 1.0).density
    np.testing.assert_allclose(from_cif, from_pdb, atol=1e-5 * from_pdb.max())


def test_unreadable_or_empty_models_are_errors(tmp_path):
    (tmp_path / "junk.pdb").write_text("HELLO WORLD\n")
    with pytest.raises(StructureError):
        read_model(tmp_path / "junk.pdb")
    with pytest.raises(StructureError, match="no such file"):
        read_model(tmp_path / "absent.pdb")


def test_resolution_finer_than_nyquist_is_refused_before_any_work(data_dir):
    with pytest.raises(ParameterError, match="Nyquist"):
        simulate_map(data_dir / PROTEIN, 1.0, resolution=1.5)
