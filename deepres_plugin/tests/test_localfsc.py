"""Local resolution from half maps: known answers on synthetic halves for both estimators
(band-pass local correlation, moving-window FSC), invariance to a global B-factor, the
global FSC and the information limit, the command's outputs and its refusals."""
import json

import numpy as np
import pytest
import scipy.fft

from deepres_plugin import cli
from deepres_plugin.core.errors import MaskError, ParameterError
from deepres_plugin.core.filters import apply_bfactor, lowpass_filter, lowpass_zero_frequency
from deepres_plugin.core.fsc import fsc_curve, fsc_mask_weights, fsc_resolution, global_fsc, information_limit
from deepres_plugin.core.localfsc import (
    StreamingCrossing,
    band_correlation_map,
    band_edges,
    crop_box,
    crossing_resolution,
    default_window,
    domain_cells,
    local_fsc_map,
    local_resolution_map,
    sustained_crossing,
    whiten,
    window_box,
)
from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.pipeline import LocalFscOptions, run_local_fsc

FINE_A, COARSE_A = 4.0, 8.0
WINDOW_A = 32.0
#: coarsest band of the band method: its window SD (1.5 wavelengths) is a quarter of the box
WINDOW_SD_FACTOR = 1.5 * 4


def filter_zero(resolution: float) -> float:
    """Resolution (A, at 1 A/px) where the raised-cosine low-pass reaches 0."""
    return 1.0 / lowpass_zero_frequency(resolution, 1.0)


def two_region_halves(rng, noise=3.0, shape=(32, 32, 96), core_voxels=8):
    """One random signal, low-passed at 4 A on one side of the box and at 8 A on the other
    (a smooth periodic blend between them, along x), plus independent white noise in each half.

    Returns the halves and the masks of the two regions' cores (the middle half of the box
    across, ``core_voxels`` either side of each region's centre along x)."""
    base = rng.standard_normal(shape).astype(np.float32)
    fine, coarse = (lowpass_filter(base, 1.0, r) for r in (FINE_A, COARSE_A))
    n = shape[2]
    x = np.arange(n)
    distance = np.abs((x - n // 2 + n // 2) % n - n // 2)              # from x = n / 2, periodic
    blend = np.clip((n // 4 - distance) / 6 + 0.5, 0, 1)[None, None, :].astype(np.float32)
    signal = fine / fine.std() * (1 - blend) + coarse / coarse.std() * blend
    halves = [signal + noise * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    core = np.zeros(shape, bool)
    core[shape[0] // 4:3 * shape[0] // 4, shape[1] // 4:3 * shape[1] // 4, :] = True
    return (halves, core & (distance >= n // 2 - core_voxels)[None, None, :],
            core & (distance <= core_voxels)[None, None, :])


@pytest.fixture(scope="module")
def regions():
    return two_region_halves(np.random.default_rng(2013))


@pytest.fixture(scope="module")
def wide_regions():
    """The two regions in a box large enough for the band method's 8 A windows."""
    return two_region_halves(np.random.default_rng(2013), shape=(64, 64, 192), core_voxels=24)


def test_band_method_reads_each_region_at_its_filter(wide_regions):
    (half1, half2), fine, coarse = wide_regions
    result = band_correlation_map(half1, half2, 1.0, fine | coarse, stride=2)
    medians = [float(np.median(result.resolution[region])) for region in (fine, coarse)]
    # measured 4.11 and 7.61 A: within 10 % of the filters, never finer than their zeros
    for median, resolution in zip(medians, (FINE_A, COARSE_A)):
        assert filter_zero(resolution) <= median <= 1.1 * resolution, medians
    assert result.method == "bands" and result.box is None and not result.resolution[~(fine | coarse)].any()
    assert result.domains == 1                   # three pieces of mask, but no solvent between them
    assert result.coarsest == pytest.approx(64 / WINDOW_SD_FACTOR) and result.finest < 2.6
    assert result.resolution[fine | coarse].min() >= result.finest - 1e-4
    assert result.resolution[fine | coarse].max() <= result.coarsest + 1e-4


@pytest.fixture(scope="module")
def band_reference(wide_regions):
    """The band method on the wide regions as they are (once for every B-factor)."""
    (half1, half2), fine, coarse = wide_regions
    return band_correlation_map(half1, half2, 1.0, fine | coarse).resolution


@pytest.mark.parametrize("bfactor", [-100.0, 50.0])
def test_a_global_bfactor_does_not_move_the_band_method(wide_regions, band_reference, bfactor):
    (half1, half2), fine, coarse = wide_regions
    mask = fine | coarse
    before = band_reference
    after = band_correlation_map(apply_bfactor(half1, 1.0, bfactor), apply_bfactor(half2, 1.0, bfactor), 1.0,
                                 mask).resolution
    for region in (fine, coarse):                                     # measured: at most 0.0013 A
        assert abs(np.median(after[region]) - np.median(before[region])) <= 0.01


def test_band_method_stride_interpolates_the_every_voxel_answer(wide_regions):
    (half1, half2), fine, coarse = wide_regions
    mask = fine | coarse
    every = band_correlation_map(half1, half2, 1.0, mask, stride=1)
    sparse = band_correlation_map(half1, half2, 1.0, mask, stride=3)
    assert sparse.positions < every.positions / 10
    for region in (fine, coarse):
        assert abs(np.median(sparse.resolution[region]) - np.median(every.resolution[region])) < 0.1


def two_domain_halves(rng, shape=(40, 40, 80), radius=9, gap=8, noise=1.0):
    """Two balls of ``radius`` voxels, ``gap`` voxels of solvent apart along x, each holding
    random density low-passed at 4 and at 8 A (after it was cut to its ball, so neither has
    any signal beyond its filter), unit SD each, plus white noise of SD ``noise`` per half.

    Returns the halves and the balls."""
    z, y, x = np.indices(shape)
    centre = np.array(shape) // 2
    offset = radius + gap / 2
    balls = [(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2] - side * offset) ** 2 <= radius ** 2
             for side in (-1, 1)]
    parts = [lowpass_filter(rng.standard_normal(shape).astype(np.float32) * ball, 1.0, resolution)
             for ball, resolution in zip(balls, (FINE_A, COARSE_A))]
    signal = sum(part / part[ball].std() for part, ball in zip(parts, balls)).astype(np.float32)
    return [signal + noise * rng.standard_normal(shape).astype(np.float32) for _ in range(2)], balls


@pytest.mark.parametrize("seed", [0, 1])
def test_domains_keep_a_coarse_domain_from_its_fine_neighbour(seed):
    halves, (fine, coarse) = two_domain_halves(np.random.default_rng(seed))
    mask = fine | coarse
    apart = band_correlation_map(*halves, 1.0, mask)
    together = band_correlation_map(*halves, 1.0, mask, domains=False)
    assert apart.domains == 2 and together.domains == 1 and apart.summary()["domains"] == 2
    # measured (seeds 0, 1): apart 4.07 / 6.67 and 4.02 / 6.45 A; together 8 A reads 4.84 and 4.59 A
    assert abs(np.median(apart.resolution[fine]) / FINE_A - 1) <= 0.1
    assert 0.9 * filter_zero(COARSE_A) <= np.median(apart.resolution[coarse]) <= 1.1 * COARSE_A
    assert np.median(together.resolution[coarse]) < 0.9 * filter_zero(COARSE_A)
    assert not apart.resolution[~mask].any() and apart.resolution[mask].min() > 0


def test_domain_cells_part_masks_at_narrow_necks_and_keep_islands_with_a_domain():
    shape = (32, 32, 64)
    z, y, x = np.indices(shape)
    balls = [(z - 16) ** 2 + (y - 16) ** 2 + (x - 16 - 32 * side) ** 2 <= 8 ** 2 for side in (0, 1)]
    neck = (z == 16) & (y == 16) & (x >= 16) & (x <= 48)                     # one voxel thick
    island = (abs(z - 4) <= 1) & (abs(y - 4) <= 1) & (abs(x - 60) <= 1)     # 27 A^3: no domain
    cells, count = domain_cells(balls[0] | balls[1] | neck | island, 1.0)
    assert count == 2 and cells.shape == shape and set(np.unique(cells)) == {0, 1}
    assert len(np.unique(cells[balls[0]])) == 1 and len(np.unique(cells[balls[1]])) == 1
    assert cells[balls[0]][0] != cells[balls[1]][0]
    assert np.all(cells[island] == cells[balls[1]][0])                      # the nearer ball's
    assert np.all(cells[:, :, :31] == cells[balls[0]][0]) and np.all(cells[:, :, 33:] == cells[balls[1]][0])
    assert domain_cells(balls[0] | island, 1.0) == (None, 1)


def test_crop_box_is_the_mask_box_and_a_margin_within_the_map():
    mask = np.zeros((200, 100, 120), bool)
    mask[90:110, 2:10, 50:61] = True
    box = crop_box(mask, 1.0, margin=12.0)
    for axis, (low, high) in enumerate(((90, 110), (2, 10), (50, 61))):
        start, stop = box[axis].start, box[axis].stop
        assert 0 <= start <= low - min(12, low) and stop >= min(high + 12, mask.shape[axis])
        assert stop <= mask.shape[axis] and stop - start == scipy.fft.next_fast_len(stop - start, real=True)


def test_sustained_crossing():
    edges = np.exp(np.log(0.1) + np.log(1.04) * np.arange(8))              # 1/A
    correlations = np.array([
        [0.9, 0.8, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0],     # crosses between bands 2 and 3 and stays below
        [0.9, 0.1, 0.5, 0.6, 0.0, 0.0, 0.0, 0.0],     # a dip of one band is not the limit
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],     # below from the first band
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5],     # never below
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1]],    # below only in the last band: it counts
        dtype=np.float32).T
    values = sustained_crossing(correlations, edges, 0.143)
    step = (0.5 - 0.143) / 0.4
    assert values[0] == pytest.approx(1 / (edges[2] * 1.04 ** step), rel=1e-5)
    assert values[1] == pytest.approx(1 / (edges[3] * 1.04 ** ((0.6 - 0.143) / 0.6)), rel=1e-5)
    assert values[2] == pytest.approx(1 / edges[0]) and values[3] == pytest.approx(1 / edges[-1])
    assert values[4] == pytest.approx(1 / (edges[6] * 1.04 ** ((0.9 - 0.143) / 0.8)), rel=1e-5)
    streamed = StreamingCrossing(correlations.shape[1], 0.143)
    for band in correlations:                        # band by band, keeping the last four bands only
        streamed.add(band)
    np.testing.assert_array_equal(streamed.resolution(edges), values)
    assert not streamed.done                         # the last two columns have no run of three


def test_streaming_crossing_is_the_sustained_crossing_of_all_bands():
    rng = np.random.default_rng(5)
    correlations = np.sort(rng.random((30, 500)), axis=0)[::-1].astype(np.float32)
    correlations[rng.random(correlations.shape) < 0.2] = 0.1                # one- and two-band dips
    edges = np.exp(np.log(0.05) + np.log(1.04) * np.arange(30))
    streamed = StreamingCrossing(500, 0.143)
    for band in correlations:
        streamed.add(band)
    np.testing.assert_array_equal(streamed.resolution(edges), sustained_crossing(correlations, edges, 0.143))


def test_global_fsc_does_not_collapse_when_both_halves_are_sharpened(wide_regions):
    (half1, half2), fine, coarse = wide_regions
    mask = fine | coarse
    frequency, fsc, limit = global_fsc(half1, half2, 1.0, mask)
    plain = fsc_resolution(*fsc_curve(half1, half2, 1.0, fsc_mask_weights(mask, 1.0)))
    assert fsc_resolution(frequency, fsc) == pytest.approx(plain, abs=0.01)      # whitening changes nothing here
    sharp = [apply_bfactor(h, 1.0, -100.0) for h in (half1, half2)]
    collapsed = fsc_resolution(*fsc_curve(*sharp, 1.0, fsc_mask_weights(mask, 1.0)))
    assert collapsed > 20.0                                           # the masked FSC of sharpened halves
    again = global_fsc(*sharp, 1.0, mask)
    assert fsc_resolution(again[0], again[1]) == pytest.approx(fsc_resolution(frequency, fsc), abs=0.01)
    assert again[2] == pytest.approx(limit)
    # nothing correlates beyond the 4 A filter's zero (3.70 A): the information ends there
    assert limit == pytest.approx(min(plain, limit)) and 3.4 < limit < 3.75


def test_information_limit_is_the_last_significant_shell():
    frequency = np.arange(1, 51) / 100.0                              # box of 100 voxels at 1 A/px
    fsc = np.where(frequency < 0.3, 0.9, 0.0)
    fsc[39] = 0.3                                                     # shell 40: 3 sigma is 0.027
    assert information_limit(frequency, fsc, 1.0, 100) == pytest.approx(2.5)
    fsc[39] = 0.02
    assert information_limit(frequency, fsc, 1.0, 100) == pytest.approx(1 / 0.29)
    assert information_limit(frequency, np.zeros(50), 1.0, 100) == pytest.approx(100.0)
    fsc[39] = 0.1                                                     # significant in the box, not in a 1 % mask
    assert information_limit(frequency, fsc, 1.0, 100) == pytest.approx(2.5)
    assert information_limit(frequency, fsc, 1.0, 100, mask_fraction=0.01) == pytest.approx(1 / 0.29)


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


@pytest.fixture(scope="module")
def window_reference(regions):
    """The moving window on the regions as they are (once for every B-factor)."""
    (half1, half2), fine, coarse = regions
    return local_fsc_map(half1, half2, 1.0, fine | coarse, WINDOW_A, stride=2).resolution


@pytest.mark.parametrize("bfactor", [-100.0, 50.0])
def test_a_global_bfactor_does_not_change_the_result(regions, window_reference, bfactor):
    (half1, half2), fine, coarse = regions
    mask = fine | coarse
    before = window_reference
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
    # the same FSC, but for the shells where it falls steeply: the whitening factor is interpolated
    # between shell centres (so that a B-factor cancels within a shell), which reweighs them slightly
    np.testing.assert_allclose(fsc_curve(white1, white2, 1.0)[1], fsc_curve(half1, half2, 1.0)[1], atol=0.05)
    difference = np.abs(np.fft.rfftn(white1 - white2)) ** 2
    shells = np.rint(np.sqrt(sum(np.meshgrid(*(np.fft.fftfreq(40) ** 2,) * 2, np.fft.rfftfreq(40) ** 2,
                                             indexing="ij"))) * 40).astype(int)
    per_shell = np.bincount(shells.ravel(), difference.ravel()) / np.bincount(shells.ravel())
    # white noise of unit power per coefficient (each shell's estimate is interpolated with its
    # neighbours', so a shell of a 40-voxel box is within 10 %, and the average exact)
    np.testing.assert_allclose(per_shell[1:20], 1.0, rtol=0.1)
    assert np.mean(per_shell[1:20]) == pytest.approx(1.0, abs=0.02)


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
    with pytest.raises(ParameterError, match="larger than the map"):
        local_fsc_map(half, half + 1, 1.0, mask, 17.0)
    with pytest.raises(ParameterError, match="window method only"):
        local_resolution_map(half, half + 1, 1.0, mask, "bands", window=12.0)
    with pytest.raises(ParameterError, match="unknown local resolution method"):
        local_resolution_map(half, half + 1, 1.0, mask, "blocres")
    with pytest.raises(ParameterError, match="too small"):
        band_edges(1.0, (16, 16, 16), finest=4.0)


def test_sharpened_halves_keep_the_default_window(regions, tmp_path):
    (half1, half2), fine, coarse = regions
    write_map(tmp_path / "mask.mrc", (fine | coarse).astype(np.float32), 1.0)
    windows = []
    for bfactor in (0.0, -100.0):
        for i, half in enumerate((half1, half2)):
            write_map(tmp_path / f"h{i}.mrc", apply_bfactor(half, 1.0, bfactor), 1.0)
        summary = run_local_fsc(tmp_path / "h0.mrc", tmp_path / "h1.mrc", tmp_path / f"out{bfactor:g}",
                                LocalFscOptions(mask=tmp_path / "mask.mrc", method="window"))
        windows.append(summary.fields["window_A"])
    # the whitened global FSC does not move, so neither does the window (6 x 3.6 A, not 6 x 60 A)
    assert windows[0] == windows[1] and windows[0] <= 24.0
    with pytest.raises(ParameterError, match="positive"):
        local_resolution_map(half1, half2, 1.0, fine, "window", window=0.0)


def test_default_window_is_capped_to_the_map():
    # B = -100 on both halves once made the masked global FSC 60 A: 6 x 60 A is capped to the box
    assert default_window(60.7, 1.0, (144, 144, 145)) == 144.0
    assert default_window(3.5, 1.0, (144, 144, 144)) == 21.0 and default_window(1.0, 1.0) == 12.0


def test_localfsc_command_writes_the_predict_outputs(regions, tmp_path):
    (half1, half2), fine, coarse = regions
    write_map(tmp_path / "h1.mrc", half1, 1.0)
    write_map(tmp_path / "h2.mrc", half2, 1.0)
    write_map(tmp_path / "mask.mrc", (fine | coarse).astype(np.float32), 1.0)
    out = tmp_path / "out"
    assert cli.main(["localfsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--mask",
                     str(tmp_path / "mask.mrc"), "--method", "window", "--window", "32", "--stride", "2",
                     "--out", str(out), "--no-progress"]) == 0
    for name in (RESOLUTION_FILE, "average_map.mrc", "summary.json", "histogram.png", "histogram.csv",
                 "slices.png", "chimerax.cxc", "chimera.cmd", "fsc.csv", "fsc.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    resolution, geometry = read_map(out / RESOLUTION_FILE)
    direct = local_fsc_map(half1, half2, 1.0, fine | coarse, 32.0, stride=2).resolution
    np.testing.assert_allclose(resolution, direct, atol=1e-5)
    assert summary["median_A"] == pytest.approx(float(np.median(direct[fine | coarse])), abs=1e-4)
    assert summary["window_A"] == 32.0 and summary["stride_voxels"] == 2 and geometry.voxel_size == 1.0
    assert summary["localfsc_method"] == "window"
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


def test_localfsc_command_uses_the_band_method_by_default(wide_regions, tmp_path):
    (half1, half2), fine, coarse = wide_regions
    for name, data in (("h1.mrc", half1), ("h2.mrc", half2), ("mask.mrc", (fine | coarse).astype(np.float32))):
        write_map(tmp_path / name, data, 1.0)
    out = tmp_path / "out"
    assert cli.main(["localfsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--mask",
                     str(tmp_path / "mask.mrc"), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    direct = band_correlation_map(half1, half2, 1.0, fine | coarse, finest=summary["information_limit_A"])
    np.testing.assert_allclose(read_map(out / RESOLUTION_FILE)[0], direct.resolution, rtol=1e-5, atol=1e-5)   # float32 rounding
    assert summary["localfsc_method"] == "bands" and "window_A" not in summary
    assert summary["window_wavelengths"] == 1.5 and summary["finest_A"] >= summary["information_limit_A"]
    assert cli.main(["localfsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--window", "30",
                     "--out", str(tmp_path / "refused")]) == 1
    assert not (tmp_path / "refused").exists()
