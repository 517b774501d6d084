"""Fourier resampling: exact target voxel size, exact shape round trip, positions kept."""
import numpy as np
import pytest
import scipy.ndimage

from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.resample import SlabResampler, fourier_interpolation_matrix, fourier_resample, resampled_shape


def smooth_object(shape, rng, sigma_voxels=2.0):
    """Random density in the middle of the box, Gaussian-smoothed: band-limited in practice
    and zero at the box edges, the conditions under which resampling is invertible."""
    volume = np.zeros(shape, np.float32)
    core = tuple(slice(n // 2 - n // 8, n // 2 + n // 8) for n in shape)
    volume[core] = rng.standard_normal(volume[core].shape)
    return scipy.ndimage.gaussian_filter(volume, sigma_voxels, mode="constant")


def gaussian_blob(shape, voxel_size, centre_zyx_angstrom, sigma_angstrom=3.0):
    grids = np.meshgrid(*[np.arange(n) * voxel_size for n in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre_zyx_angstrom))
    return np.exp(-r2 / (2 * sigma_angstrom ** 2)).astype(np.float32)


@pytest.mark.parametrize("n", [10, 11])
def test_same_grid_is_the_identity(n):
    np.testing.assert_allclose(fourier_interpolation_matrix(n, 1.2, n, 1.2), np.eye(n), atol=1e-12)


def test_resampled_shape_covers_the_same_box():
    assert resampled_shape((40, 44, 37), 1.34, 1.0) == (54, 59, 50)
    assert resampled_shape((40, 44, 37), 1.0, 0.5) == (80, 88, 74)


@pytest.mark.parametrize("voxel, target, tolerance", [
    (1.0, 0.5, 1e-5),    # integer ratio: the round trip is exact to float32 precision
    (0.5, 1.0, 1e-4),
    (1.34, 1.0, 1e-4),   # non-integer ratios: exact for content that vanishes at the edges
    (1.23, 0.5, 1e-4),
    (0.8, 1.0, 1e-4),
])
def test_round_trip_returns_the_original_grid(rng, voxel, target, tolerance):
    volume = smooth_object((60, 64, 57), rng, sigma_voxels=2.0 * max(1.0, target / voxel))
    there = fourier_resample(volume, voxel, target)
    assert there.shape == resampled_shape(volume.shape, voxel, target)
    back = fourier_resample(there, target, voxel, shape=volume.shape)
    assert back.shape == volume.shape
    assert np.abs(back - volume).max() <= tolerance * np.abs(volume).max()


def test_integral_of_the_map_is_kept(rng):
    volume = smooth_object((30, 32, 34), rng)
    there = fourier_resample(volume, 1.32, 1.0)
    assert there.sum() * 1.0 ** 3 == pytest.approx(volume.sum() * 1.32 ** 3, rel=1e-3)


def test_a_feature_stays_at_its_physical_position():
    voxel, target = 1.34, 0.5
    centre = (20.1, 25.7, 31.3)   # A, in the map's frame (voxel i at i * voxel size)
    blob = gaussian_blob((40, 44, 48), voxel, centre)
    there = fourier_resample(blob, voxel, target)
    peak = np.array(np.unravel_index(np.argmax(there), there.shape)) * target
    np.testing.assert_allclose(peak, centre, atol=target / 2 + 1e-6)
    expected = gaussian_blob(there.shape, target, centre)
    assert np.abs(there - expected).max() < 1e-3


def test_downsampling_drops_what_the_coarse_grid_cannot_hold():
    fine = np.broadcast_to(np.cos(2 * np.pi * 30 * np.arange(80) / 80), (8, 8, 80)).astype(np.float32)
    coarse = fourier_resample(fine, 0.5, 1.0)    # 30 cycles per 40 A box = 0.75 1/A > Nyquist 0.5 1/A
    assert np.abs(coarse).max() < 1e-5


def test_slab_resampler_gives_the_whole_resampled_map_plane_by_plane(rng):
    volume = rng.standard_normal((18, 20, 22)).astype(np.float32)
    whole = fourier_resample(volume, 0.834, 0.5)
    resampler = SlabResampler(volume, 0.834, 0.5)
    assert resampler.shape == whole.shape
    slabs = np.concatenate([resampler.planes(z, min(z + 7, whole.shape[0])) for z in range(0, whole.shape[0], 7)])
    np.testing.assert_allclose(slabs, whole, atol=1e-5)   # BLAS blocks differ: float32 rounding
    outside = resampler.planes(-3, 2)
    assert np.all(outside[:3] == 0)
    np.testing.assert_allclose(outside[3:], whole[:2], atol=1e-5)
    np.testing.assert_array_equal(resampler.planes(whole.shape[0] - 1, whole.shape[0] + 2)[1:], 0)


def test_bad_arguments_are_refused():
    with pytest.raises(ParameterError, match="positive"):
        fourier_resample(np.ones((4, 4, 4)), 0.0, 1.0)
    with pytest.raises(ParameterError, match="3D"):
        fourier_resample(np.ones((4, 4)), 1.0, 0.5)
