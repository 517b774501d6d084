"""The noise-making and measuring helpers of ``benchmarks/noise.py``, against known answers
(small synthetic arrays; no network, no data files)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from deepres_plugin.core.filters import lowpass_zero_frequency
from deepres_plugin.core.fourier import frequency_magnitude
from deepres_plugin.core.mrc import MapGeometry
from deepres_plugin.tests.conftest import import_benchmark

EDGE = 48
VOXEL_SIZE_A = 1.0
#: The map's resolution (A): coloured noise is cut at 0.8 x this.
MAP_RESOLUTION_A = 5.0
#: Relative tolerance on the added noise's SD (the field is scaled to unit SD exactly).
SD_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def noise():
    return import_benchmark("noise")


@pytest.fixture()
def volume() -> np.ndarray:
    """A blob on a small offset: a map whose SD is not 1."""
    z, y, x = np.indices((EDGE,) * 3) - EDGE / 2
    return (3.0 + 5.0 * np.exp(-(x ** 2 + y ** 2 + z ** 2) / 60.0)).astype(np.float32)


@pytest.fixture()
def white() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((EDGE,) * 3, dtype=np.float32)


@pytest.mark.parametrize("colour", ["white", "coloured"])
@pytest.mark.parametrize("level", [0.25, 1.0])
def test_added_noise_has_the_asked_sd(noise, volume, white, colour, level):
    field = noise.noise_field(white, VOXEL_SIZE_A, colour, MAP_RESOLUTION_A)
    added = noise.add_noise(volume, field, level) - volume
    assert np.std(added) == pytest.approx(level * np.std(volume), rel=SD_TOLERANCE)
    assert abs(float(np.mean(added))) < SD_TOLERANCE * np.std(volume)


def test_white_noise_is_the_drawn_field(noise, white):
    field = noise.noise_field(white, VOXEL_SIZE_A, "white", MAP_RESOLUTION_A)
    assert np.corrcoef(field.ravel(), white.ravel())[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_coloured_noise_has_no_power_beyond_its_cutoff(noise, white):
    cutoff_a = noise.coloured_resolution(MAP_RESOLUTION_A, VOXEL_SIZE_A)
    assert cutoff_a == pytest.approx(noise.COLOURED_FRACTION * MAP_RESOLUTION_A)
    power = np.abs(scipy.fft.rfftn(noise.noise_field(white, VOXEL_SIZE_A, "coloured", MAP_RESOLUTION_A))) ** 2
    frequency = frequency_magnitude(white.shape, VOXEL_SIZE_A)            # 1/A
    beyond = frequency > lowpass_zero_frequency(cutoff_a, VOXEL_SIZE_A)
    passed = frequency <= 1.0 / cutoff_a
    assert power[beyond].sum() < 1e-9 * power.sum()
    assert power[passed].mean() > 0.5 * power[~beyond & (frequency > 0)].mean()  # the pass band carries it


def test_coloured_cutoff_stops_at_nyquist(noise):
    assert noise.coloured_resolution(3.2, 1.34) == pytest.approx(2 * 1.34)      # 0.8 x 3.2 = 2.56 < Nyquist
    assert noise.coloured_resolution(3.2, 1.05) == pytest.approx(2.56)


def test_unknown_colour_is_refused(noise, white):
    with pytest.raises(ValueError, match="unknown noise colour 'pink'"):
        noise.noise_field(white, VOXEL_SIZE_A, "pink", MAP_RESOLUTION_A)


def test_each_map_has_its_own_repeatable_noise(noise):
    def draw(name, stream):
        return noise.case_rng(2019, name, stream).standard_normal(4)

    np.testing.assert_array_equal(draw("wide-1", noise.ADDED_STREAM), draw("wide-1", noise.ADDED_STREAM))
    assert not np.allclose(draw("wide-1", noise.ADDED_STREAM), draw("wide-2", noise.ADDED_STREAM))
    assert not np.allclose(draw("wide-1", noise.ADDED_STREAM), draw("wide-1", noise.BASE_STREAM))


def test_finer_flags_compare_with_the_coarsest_lower_level(noise):
    runs = [{"median": m} for m in (5.0, 5.1, 5.02, 4.9, 5.3, None)]
    noise.finer_flags(runs)
    flags = [r["finer_by"] for r in runs]
    assert flags[:2] == [None, None]
    assert flags[2] == pytest.approx(0.08)          # 5.02 is 0.08 finer than 5.1
    assert flags[3] == pytest.approx(0.2)
    assert flags[4:] == [None, None]                # coarser; no estimate at all


def test_measure_counts_voxels_without_an_estimate(noise):
    shape = (4, 4, 4)
    regions = {3.0: np.zeros(shape, bool), 5.0: np.zeros(shape, bool)}
    regions[3.0][0] = True
    regions[5.0][1] = True
    resolution = np.zeros(shape, np.float32)
    resolution[0] = 3.5                              # region 3 A read 0.5 A coarse
    resolution[1, :2] = 4.0                          # half of region 5 A read 1 A fine, half has no estimate
    case = noise.NoiseCase("wide-1", resolution, MapGeometry(1.0), "wide", 3.0,
                           regions[3.0] | regions[5.0], regions, "test")
    figures = noise.measure(resolution, case, case.mask)
    assert figures["no_estimate_share"] == pytest.approx(8 / 32)
    assert figures["median"] == pytest.approx(3.5)
    assert figures["region_medians"] == {"3.0": pytest.approx(3.5), "5.0": pytest.approx(4.0)}
    assert figures["voxel_mae"] == pytest.approx((16 * 0.5 + 8 * 1.0) / 24)
