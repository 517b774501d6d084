"""Masks: reading against the map's grid, automatic molecular masks, atom masks."""
import numpy as np
import pytest
import scipy.ndimage

from deepres_plugin.core.errors import MaskError
from deepres_plugin.core.masks import (
    AUTO_MASK_DILATION_A,
    automatic_mask,
    bounding_slices,
    dilate,
    fill_holes,
    mask_from_points,
    otsu_threshold,
    read_mask,
)
from deepres_plugin.core.mrc import MapGeometry, write_map

VOXEL = 1.0
SHAPE = (64, 64, 64)


def radius_map(shape=SHAPE, voxel=VOXEL, centre=None):
    centre = np.array(shape) // 2 if centre is None else np.asarray(centre)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre))) * voxel


def test_read_mask_thresholds_soft_masks_at_one_half(tmp_path):
    soft = np.clip(1.2 - radius_map((16, 16, 16)) / 6.0, 0, 1).astype(np.float32)
    write_map(tmp_path / "mask.mrc", soft, VOXEL)
    mask = read_mask(tmp_path / "mask.mrc", soft.shape, MapGeometry(VOXEL))
    np.testing.assert_array_equal(mask, soft > 0.5)


@pytest.mark.parametrize("values, shape, voxel, message", [
    (np.ones((8, 8, 8)), (8, 8, 9), VOXEL, "shape"),
    (np.ones((8, 8, 8)), (8, 8, 8), 1.5, "voxel size"),
    (np.full((8, 8, 8), 2.0), (8, 8, 8), VOXEL, r"\[0, 1\]"),
    (-np.ones((8, 8, 8)), (8, 8, 8), VOXEL, r"\[0, 1\]"),
    (np.zeros((8, 8, 8)), (8, 8, 8), VOXEL, "empty"),
])
def test_read_mask_errors(tmp_path, values, shape, voxel, message):
    write_map(tmp_path / "mask.mrc", values.astype(np.float32), VOXEL)
    with pytest.raises(MaskError, match=message):
        read_mask(tmp_path / "mask.mrc", shape, MapGeometry(voxel))


def test_otsu_threshold_separates_two_populations(rng):
    values = np.concatenate([rng.normal(0.0, 0.1, 20000), rng.normal(1.0, 0.1, 5000)])
    assert 0.3 < otsu_threshold(values) < 0.7


def test_dilation_is_euclidean_in_angstrom():
    point = np.zeros((21, 21, 21), bool)
    point[10, 10, 10] = True
    grown = dilate(point, 0.5, 3.0)                        # 3 A = 6 voxels of 0.5 A
    np.testing.assert_array_equal(grown, radius_map((21, 21, 21), 0.5) <= 3.0)


def test_automatic_mask_finds_a_noisy_sphere_and_ignores_noise(rng):
    radius = 12.0
    distance = radius_map()
    volume = (distance <= radius).astype(np.float32) + rng.normal(0, 0.3, SHAPE).astype(np.float32)
    mask = automatic_mask(volume, VOXEL)
    assert mask[distance <= radius].all()                  # all of the molecule
    assert not mask[distance > radius + AUTO_MASK_DILATION_A + 2.0].any()   # nothing far out
    # its volume is the sphere grown by the dilation, within a voxel of radius
    equivalent_radius = (mask.sum() * VOXEL ** 3 * 3 / (4 * np.pi)) ** (1 / 3)
    assert equivalent_radius == pytest.approx(radius + AUTO_MASK_DILATION_A, abs=1.0)


def test_automatic_mask_fills_cavities_and_drops_small_blobs():
    distance = radius_map()
    shell = ((distance >= 6) & (distance <= 14)).astype(np.float32)     # hollow protein
    blob = radius_map(centre=(6, 6, 6)) <= 2.0                          # far, tiny
    mask = automatic_mask(shell + blob, VOXEL)
    assert mask[distance < 6].all()
    assert not mask[blob].any()


def test_automatic_mask_of_a_flat_map_is_an_error():
    with pytest.raises(MaskError, match="constant"):
        automatic_mask(np.ones((10, 10, 10), np.float32), VOXEL)


def test_mask_from_points_is_a_ball_around_each_point():
    voxel, radius = 0.5, 4.0
    mask = mask_from_points((40, 40, 40), voxel, np.array([[10.0, 10.0, 10.0]]), radius)
    ball = 4 / 3 * np.pi * radius ** 3
    assert mask.sum() * voxel ** 3 == pytest.approx(ball, rel=0.05)
    assert mask[20, 20, 20] and not mask[20, 20, 29]


def test_dilation_and_hole_filling_on_the_bounding_box_equal_the_whole_box(rng):
    """The automatic mask's dilation and hole filling run on the mask's bounding box; they
    must give what the same operations give on the whole box."""
    mask = np.zeros((40, 36, 30), bool)
    mask[10:30, 8:20, 5:25] = rng.random((20, 12, 20)) < 0.6
    mask[0, 0, 0] = True                                 # a piece at the corner: no margin there
    for voxel, distance in ((1.0, 3.0), (1.7, 4.0), (0.5, 1.2)):
        whole = scipy.ndimage.distance_transform_edt(~mask) * voxel <= distance
        assert np.array_equal(dilate(mask, voxel, distance), whole)
    shell = np.zeros((20, 20, 20), bool)
    shell[4:16, 4:16, 4:16] = True
    shell[6:14, 6:14, 6:14] = False                      # a closed cavity
    assert np.array_equal(fill_holes(shell), scipy.ndimage.binary_fill_holes(shell))
    assert fill_holes(shell)[10, 10, 10] and not dilate(np.zeros((3, 3, 3), bool), 1.0, 2.0).any()
    assert bounding_slices(np.zeros((2, 2, 2), bool)) is None
