"""`deepres localfilter`: the map low-passed to its local resolution, checked against global
low-passes of the project's filter; the command's outputs and its bad inputs."""
import json

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.diagnostics import measure_map
from deepres_plugin.core.filters import RAISED_COSINE_WIDTH, apply_bfactor, lowpass_filter
from deepres_plugin.core.localfilter import BANK_STEP, bank_position, bank_resolutions, local_lowpass
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map
from deepres_plugin.core.outputs import LOCALFILTER_FILES, LocalFilterSummary
from deepres_plugin.core.report import palette_stops

SHAPE = (40, 44, 64)                 # z, y, x: the two halves split along x
BOUNDARY = SHAPE[2] // 2
#: Away from the boundary: further than the 8 A filter's reach matters (voxels).
MARGIN = 10


def relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2) / np.mean(b.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def noise():
    """White noise: the worst case for a low-pass (all of its power up to Nyquist)."""
    return np.random.default_rng(15).standard_normal(SHAPE).astype(np.float32)


def test_a_constant_resolution_map_gives_exactly_the_global_lowpass(noise):
    resolution = np.full(SHAPE, 4.2, np.float32)
    result = local_lowpass(noise, resolution, 1.1)
    assert result.bank == (pytest.approx(4.2),)
    expected = lowpass_filter(noise, 1.1, 4.2)
    np.testing.assert_allclose(result.filtered, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    sharpened = local_lowpass(noise, resolution, 1.1, bfactor=-80.0)        # sharpened first, then low-passed
    expected = apply_bfactor(noise, 1.1, -80.0, 4.2)
    np.testing.assert_allclose(sharpened.filtered, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_two_halves_at_3_and_8_A_equal_the_globally_filtered_halves(noise):
    """The map's halves are a smooth density low-passed at 3 and 8 A plus white noise; the
    resolution map is exact. Away from the boundary each half of the output equals the map
    low-passed globally at its resolution (within 1 % RMS), and the noise above the local
    resolution is gone."""
    rng = np.random.default_rng(3)
    signal = lowpass_filter(rng.standard_normal(SHAPE).astype(np.float32), 1.0, 2.5)
    volume = np.where(np.arange(SHAPE[2]) < BOUNDARY, lowpass_filter(signal, 1.0, 3.0),
                      lowpass_filter(signal, 1.0, 8.0)) + 0.3 * noise
    resolution = np.where(np.arange(SHAPE[2]) < BOUNDARY, 3.0, 8.0).astype(np.float32) * np.ones(SHAPE, np.float32)
    result = local_lowpass(volume, resolution, 1.0)
    assert result.bank[0] == 3.0 and result.bank[-1] == 8.0
    left, right = np.s_[:, :, MARGIN:BOUNDARY - MARGIN], np.s_[:, :, BOUNDARY + MARGIN:-MARGIN]
    assert relative_rms(result.filtered[left], lowpass_filter(volume, 1.0, 3.0)[left]) < 0.01
    assert relative_rms(result.filtered[right], lowpass_filter(volume, 1.0, 8.0)[right]) < 0.01
    # against the map without noise: the noise beyond 8 A is removed on the right, not on the left
    clean = np.where(np.arange(SHAPE[2]) < BOUNDARY, lowpass_filter(signal, 1.0, 3.0), lowpass_filter(signal, 1.0, 8.0))
    assert relative_rms(result.filtered[right], clean[right]) < 0.5 * relative_rms(volume[right], clean[right])


def test_a_resolution_between_two_members_is_within_the_documented_error(noise):
    """Half a step between two members at 3 A, on white noise (the worst case): the module
    docstring's 1.1 % RMS from the low-pass at the exact resolution."""
    bank = bank_resolutions(3.0, 8.0, 1.0)
    middle = 1.0 / ((1.0 / bank[2] + 1.0 / bank[3]) / 2)
    resolution = np.full(SHAPE, 8.0, np.float32)
    resolution[:, :, :BOUNDARY] = 3.0
    resolution[:, :, 12:22] = middle
    result = local_lowpass(noise, resolution, 1.0)
    assert result.bank == pytest.approx(tuple(bank))
    error = relative_rms(result.filtered[:, :, 12:22], lowpass_filter(noise, 1.0, middle)[:, :, 12:22])
    assert 0.008 < error < 0.0125


def test_bank_is_equally_spaced_in_frequency_with_exact_ends():
    bank = bank_resolutions(2.5, 13.0, 1.0)
    steps = np.diff(1.0 / bank)
    assert (bank[0], bank[-1]) == (2.5, 13.0)
    np.testing.assert_allclose(steps, steps[0])
    assert -steps[0] <= BANK_STEP == RAISED_COSINE_WIDTH / 4
    assert len(bank) == int(np.ceil((1 / 2.5 - 1 / 13.0) / BANK_STEP)) + 1 == 66
    assert len(bank_resolutions(6.0, 6.0, 1.0)) == 1
    np.testing.assert_allclose(bank_position(bank, bank, 1.0), np.arange(len(bank)), atol=1e-4)
    assert bank_position(np.array([1 / ((1 / bank[4] + 1 / bank[5]) / 2)]), bank, 1.0)[0] == pytest.approx(4.5)


def test_voxels_without_a_resolution_take_the_coarsest_lowpass(noise):
    resolution = np.zeros(SHAPE, np.float32)
    resolution[10:30, 10:34, 10:50] = np.linspace(3.0, 6.0, 40, dtype=np.float32)
    result = local_lowpass(noise, resolution, 1.0)
    outside = resolution == 0
    np.testing.assert_allclose(result.filtered[outside], lowpass_filter(noise, 1.0, 6.0)[outside], rtol=0, atol=1e-5)
    region = np.zeros(SHAPE, bool)
    region[10:30, 10:34, 10:30] = True                       # a mask: the rest is filtered as outside
    masked = local_lowpass(noise, resolution, 1.0, region=region)
    assert masked.bank[-1] == pytest.approx(resolution[region].max())
    np.testing.assert_allclose(masked.filtered[~region], lowpass_filter(noise, 1.0, masked.bank[-1])[~region],
                               rtol=0, atol=1e-5)


# --- the command -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case(tmp_path_factory, noise):
    """A map and an exact two-region resolution map with an unusual geometry, a mask, and
    resolution maps on other grids."""
    folder = tmp_path_factory.mktemp("localfilter")
    geometry = MapGeometry(1.25, origin=(12.0, -4.5, 30.25))
    volume = lowpass_filter(noise, 1.25, 3.0)
    resolution = np.zeros(SHAPE, np.float32)
    resolution[5:35, 5:39, 5:32] = 3.2
    resolution[5:35, 5:39, 32:59] = 7.5
    mask = np.zeros(SHAPE, np.float32)
    mask[5:35, 5:39, 5:45] = 1
    write_map(folder / "map.mrc", volume, geometry)
    write_map(folder / "resolution.mrc", resolution, geometry)
    write_map(folder / "mask.mrc", mask, geometry)
    write_map(folder / "other_shape.mrc", resolution[:, :, :-2], geometry)
    write_map(folder / "other_voxel.mrc", resolution, geometry.with_voxel_size(1.5))
    write_map(folder / "other_place.mrc", resolution, MapGeometry(1.25, origin=(40.0, -4.5, 30.25)))
    write_map(folder / "zeros.mrc", np.zeros(SHAPE, np.float32), geometry)
    (folder / "notes.txt").write_text("not a map\n")
    return folder


def test_command_writes_the_filtered_map_on_the_input_grid(case, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["localfilter", str(case / "map.mrc"), str(case / "resolution.mrc"), "--bfactor", "-40",
                     "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == set(LOCALFILTER_FILES.values())
    filtered, geometry = read_map(out / LOCALFILTER_FILES["map"])
    volume, map_geometry = read_map(case / "map.mrc")
    resolution = read_map(case / "resolution.mrc")[0]
    assert geometry == map_geometry and filtered.shape == volume.shape
    expected = local_lowpass(volume, resolution, 1.25, bfactor=-40.0).filtered
    np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    summary = LocalFilterSummary.read(out)                 # what the Scipion layer reads
    assert summary.bank_resolutions[0] == pytest.approx(3.2) and summary.bank_resolutions[-1] == pytest.approx(7.5)
    assert (summary.bfactor, summary.bfactor_source, summary.map_bfactor) == (-40.0, "given", None)
    assert summary.voxels == int(np.count_nonzero(resolution))
    assert summary.colour_range == pytest.approx((3.2, 7.5)) and summary.palette == "jet"
    assert summary.filtered_map_path(out).endswith(LOCALFILTER_FILES["map"])
    script = (out / LOCALFILTER_FILES["chimerax"]).read_text()
    opened = [json.loads(line.split(" ", 1)[1].rsplit(" format", 1)[0])
              for line in script.splitlines() if line.startswith("open ")]
    assert [(out / name).resolve() for name in opened] == [out / LOCALFILTER_FILES["map"], case / "resolution.mrc",
                                                           case / "map.mrc"]
    assert "voxelSize 1.25 origin 12,-4.5,30.25" in script and "color sample #1 map #2" in script
    assert f"palette 3.2,{palette_stops('jet', 3.2, 7.5)[0][1]}" in script


def test_command_with_a_mask_filters_the_rest_at_the_coarsest_resolution(case, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["localfilter", str(case / "map.mrc"), str(case / "resolution.mrc"), "--mask",
                     str(case / "mask.mrc"), "--out", str(out)]) == 0
    filtered = read_map(out / LOCALFILTER_FILES["map"])[0]
    volume = read_map(case / "map.mrc")[0]
    mask = read_map(case / "mask.mrc")[0] > 0.5
    outside = ~(mask & (read_map(case / "resolution.mrc")[0] > 0))
    np.testing.assert_allclose(filtered[outside], lowpass_filter(volume, 1.25, 7.5)[outside], rtol=0, atol=1e-5)
    assert json.loads((out / "summary.json").read_text())["mask"] == str((case / "mask.mrc").resolve())


def test_auto_bfactor_sharpens_by_minus_the_maps_guinier_bfactor(data_dir, tmp_path):
    from deepres_plugin.core.simulate import simulate_map

    simulated, volume = simulate_map(data_dir / "BM5_1PPE_l_u.pdb.gz", 1.0, 4.0, bfactor=120.0, noise_sd=0.02, seed=1)
    mask = simulated.atom_mask()
    resolution = np.where(mask, 4.0, 0.0).astype(np.float32)
    write_map(tmp_path / "map.mrc", volume, simulated.geometry)
    write_map(tmp_path / "resolution.mrc", resolution, simulated.geometry)
    assert cli.main(["localfilter", str(tmp_path / "map.mrc"), str(tmp_path / "resolution.mrc"), "--auto-bfactor",
                     "--out", str(tmp_path / "out")]) == 0
    summary = LocalFilterSummary.read(tmp_path / "out")
    measured = measure_map(read_map(tmp_path / "map.mrc")[0], 1.0, mask).bfactor
    assert summary.bfactor_source == "estimated" and summary.map_bfactor == pytest.approx(measured)
    assert summary.bfactor == pytest.approx(-measured) and 100 < measured < 200   # 120 applied, ~35 intrinsic
    filtered = read_map(tmp_path / "out" / LOCALFILTER_FILES["map"])[0]
    expected = apply_bfactor(read_map(tmp_path / "map.mrc")[0], 1.0, -measured, 4.0)   # one resolution: global
    np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("resolution, extra, message", [
    ("other_shape.mrc", [], "lie on different grids"),
    ("other_voxel.mrc", [], "lie on different grids"),
    ("other_place.mrc", [], "lie on different grids"),
    ("notes.txt", [], "is not a readable MRC/CCP4 map"),
    ("zeros.mrc", [], "has no positive local resolution"),
    ("resolution.mrc", ["--bfactor=-1000"], "multiplies the map by exp"),
    ("resolution.mrc", ["--bfactor", "-50", "--auto-bfactor"], "not allowed with argument"),
    ("resolution.mrc", ["--palette", "no-such-palette"], "unknown palette"),
])
def test_bad_inputs_give_one_line_and_leave_nothing(case, tmp_path, capsys, resolution, extra, message):
    out = tmp_path / "out"
    status = cli.main(["localfilter", str(case / "map.mrc"), str(case / resolution), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and "\n" not in err and err.startswith("deepres") and message in err, err
    assert not out.exists()
