"""Local FSC from half maps: known answers on synthetic halves, invariance to a global
B-factor, the command's outputs and its refusals."""
import json

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.errors import MaskError, ParameterError
from deepres_plugin.core.filters import RAISED_COSINE_WIDTH, apply_bfactor, lowpass_filter
from deepres_plugin.core.localfsc import crossing_resolution, local_fsc_map, whiten, window_box
from deepres_plugin.core.mrc import read_map, write_map

FINE_A, COARSE_A = 4.0, 8.0
WINDOW_A = 32.0


def filter_zero(resolution: float) -> float:
    """Resolution (A, at 1 A/px) where the raised-cosine low-pass reaches 0."""
    return 1.0 / (1.0 / resolution + RAISED_COSINE_WIDTH)


def two_region_halves(rng, noise=3.0):
    """One random signal, low-passed at 4 A on one side of the box and at 8 A on the other
    (a smooth periodic blend between them), plus independent white noise in each half.

    Returns the halves and the masks of the two regions' cores (at least 16 voxels, half a
    window, from the blend)."""
    shape = (32, 32, 96)
    base = rng.standard_normal(shape).astype(np.float32)
    fine, coarse = (lowpass_filter(base, 1.0, r) for r in (FINE_A, COARSE_A))
    x = np.arange(shape[2])
    distance = np.abs((x - 48 + 48) % 96 - 48)                     # from x = 48, periodic
    blend = np.clip((24 - distance) / 6 + 0.5, 0, 1)[None, None, :].astype(np.float32)
    signal = fine / fine.std() * (1 - blend) + coarse / coarse.std() * blend
    halves = [signal + noise * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    core = np.zeros(shape, bool)
    core[8:24, 8:24, :] = True
    return halves, core & (distance >= 40)[None, None, :], core & (distance <= 8)[None, None, :]


@pytest.fixture(scope="module")
def regions():
    return two_region_halves(np.random.default_rng(2013))


def test_regions_come_out_ordered_near_their_filters(regions):
    (half1, half2), fine, coarse = regions
    result = local_fsc_map(half1, half2, 1.0, fine | coarse, WINDOW_A, stride=2)
    fine_median, coarse_median = np.median(result.resolution[fine]), np.median(result.resolution[coarse])
    # the filters pass up to 4 and 8 A and reach zero at 3.70 and 6.90 A; the window's frequency
    # spread moves a steep drop to finer values (see core/localfsc.py): measured 3.51 and 5.62 A
    assert 0.85 * filter_zero(FINE_A) < fine_median <= FINE_A
    assert 0.75 * filter_zero(COARSE_A) < coarse_median <= COARSE_A
    assert coarse_median - fine_median > 1.5
    assert result.box == 32 and result.window == 32.0 and not result.resolution[~(fine | coarse)].any()


@pytest.mark.parametrize("bfactor", [-100.0, 50.0])
def test_a_global_bfactor_does_not_change_the_result(regions, bfactor):
    (half1, half2), fine, coarse = regions
    mask = fine | coarse
    before = local_fsc_map(half1, half2, 1.0, mask, WINDOW_A, stride=2).resolution
    after = local_fsc_map(apply_bfactor(half1, 1.0, bfactor), apply_bfactor(half2, 1.0, bfactor), 1.0, mask,
                          WINDOW_A, stride=2).resolution
    for region in (fine, coarse):
        assert abs(np.median(after[region]) - np.median(before[region])) < 0.1


def test_stride_interpolates_the_every_voxel_answer(regions):
    (half1, half2), fine, coarse = regions
    mask = fine | coarse
    every = local_fsc_map(half1, half2, 1.0, mask, 24.0, stride=1)
    coarse_grid = local_fsc_map(half1, half2, 1.0, mask, 24.0, stride=3)
    assert coarse_grid.positions < every.positions / 10
    for region in (fine, coarse):
        assert abs(np.median(coarse_grid.resolution[region]) - np.median(every.resolution[region])) < 0.1


def test_whitening_keeps_the_global_fsc_and_flattens_the_noise(rng):
    from deepres_plugin.core.fsc import fsc_curve

    signal = lowpass_filter(rng.standard_normal((40, 40, 40)).astype(np.float32), 1.0, 5.0)
    half1, half2 = (apply_bfactor(signal + 0.1 * rng.standard_normal(signal.shape).astype(np.float32), 1.0, 60.0)
                    for _ in range(2))
    white1, white2 = whiten(half1, half2)
    np.testing.assert_allclose(fsc_curve(white1, white2, 1.0)[1], fsc_curve(half1, half2, 1.0)[1], atol=1e-4)
    difference = np.abs(np.fft.rfftn(white1 - white2)) ** 2
    shells = np.rint(np.sqrt(sum(np.meshgrid(*(np.fft.fftfreq(40) ** 2,) * 2, np.fft.rfftfreq(40) ** 2,
                                             indexing="ij"))) * 40).astype(int)
    per_shell = np.bincount(shells.ravel(), difference.ravel()) / np.bincount(shells.ravel())
    np.testing.assert_allclose(per_shell[1:20], 1.0, rtol=1e-3)       # white noise of unit power per coefficient


def test_crossing_is_interpolated_between_shells():
    # shells 1..4 of a 20-voxel box at 2 A/px: 40, 20, 13.3, 10 A
    fsc = np.array([[0.9, 0.5, 0.1, 0.0],      # crosses 0.143 between shells 2 and 3
                    [0.1, 0.0, 0.0, 0.0],      # already below in shell 1: the window diameter
                    [0.9, 0.8, 0.7, 0.6]])     # never falls: Nyquist
    values = crossing_resolution(fsc, 20, 2.0, 0.143)
    step = (0.5 - 0.143) / 0.4
    assert values[0] == pytest.approx(40.0 / (2 + step))
    assert values[1] == pytest.approx(40.0) and values[2] == pytest.approx(4.0)


def test_bad_parameters_are_refused(rng):
    half = rng.standard_normal((16, 16, 16)).astype(np.float32)
    mask = np.ones(half.shape, bool)
    with pytest.raises(ParameterError, match="at least 12 voxels"):
        window_box(8.0, 1.0)
    with pytest.raises(ParameterError, match="stride"):
        local_fsc_map(half, half + 1, 1.0, mask, 12.0, stride=7)
    with pytest.raises(ParameterError, match="threshold"):
        local_fsc_map(half, half + 1, 1.0, mask, 12.0, threshold=1.5)
    with pytest.raises(MaskError, match="empty"):
        local_fsc_map(half, half + 1, 1.0, np.zeros(half.shape, bool), 12.0)
    assert window_box(13.0, 1.0) == 14 and window_box(24.0, 1.5) == 16


def test_localfsc_command_writes_the_predict_outputs(regions, tmp_path):
    (half1, half2), fine, coarse = regions
    write_map(tmp_path / "h1.mrc", half1, 1.0)
    write_map(tmp_path / "h2.mrc", half2, 1.0)
    write_map(tmp_path / "mask.mrc", (fine | coarse).astype(np.float32), 1.0)
    out = tmp_path / "out"
    assert cli.main(["localfsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--mask",
                     str(tmp_path / "mask.mrc"), "--window", "32", "--stride", "2", "--out", str(out),
                     "--no-progress"]) == 0
    for name in ("resolution.mrc", "average_map.mrc", "summary.json", "histogram.png", "histogram.csv",
                 "slices.png", "chimerax.cxc", "chimera.cmd", "fsc.csv", "fsc.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    resolution, geometry = read_map(out / "resolution.mrc")
    direct = local_fsc_map(half1, half2, 1.0, fine | coarse, 32.0, stride=2).resolution
    np.testing.assert_allclose(resolution, direct, atol=1e-5)
    assert summary["median"] == pytest.approx(float(np.median(direct[fine | coarse])), abs=1e-4)
    assert summary["window_A"] == 32.0 and summary["stride_voxels"] == 2 and geometry.voxel_size == 1.0
    average, _ = read_map(out / "average_map.mrc")
    np.testing.assert_allclose(average, (half1 + half2) / 2, atol=1e-5)
    assert "average_map.mrc" in (out / "chimerax.cxc").read_text()


def test_bad_half_maps_give_one_line_errors_and_no_output(rng, tmp_path, capsys):
    half = rng.standard_normal((24, 24, 24)).astype(np.float32)
    write_map(tmp_path / "a.mrc", half, 1.0)
    write_map(tmp_path / "same.mrc", half, 1.0)
    write_map(tmp_path / "b.mrc", half + rng.standard_normal(half.shape).astype(np.float32), 1.0)
    write_map(tmp_path / "small.mrc", half[:20], 1.0)
    write_map(tmp_path / "pixel.mrc", half + 1, 1.3)
    write_map(tmp_path / "empty.mrc", np.zeros_like(half), 1.0)
    cases = [("small.mrc", [], "differ in shape"), ("pixel.mrc", [], "differ in voxel size"),
             ("same.mrc", [], "identical"), ("b.mrc", ["--mask", str(tmp_path / "empty.mrc")], "empty")]
    for command in ("localfsc", "bfactor-sweep"):
        for i, (other, extra, message) in enumerate(cases):
            out = tmp_path / f"out_{command}_{i}"
            status = cli.main([command, str(tmp_path / "a.mrc"), str(tmp_path / other), *extra, "--out", str(out)])
            err = capsys.readouterr().err.strip()
            assert status == 1 and message in err and len(err.splitlines()) == 1, err
            assert not out.exists()
