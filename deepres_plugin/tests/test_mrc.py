"""MRC input/output: geometry round trips and one clear error per bad input."""
import gzip

import mrcfile
import numpy as np
import pytest

from deepres_plugin.core.errors import MapFormatError, ParameterError
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map


def _raw_mrc(path, data, voxel_size=1.0, **header):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, dtype=np.float32))
        mrc.voxel_size = voxel_size
        for key, value in header.items():
            setattr(mrc.header, key, value)


def test_round_trip_keeps_data_voxel_size_origin_and_start(tmp_path, rng):
    volume = rng.standard_normal((7, 9, 11)).astype(np.float32)
    geometry = MapGeometry(voxel_size=1.34, origin=(10.5, -3.0, 7.25), nstart=(2, -4, 6))
    write_map(tmp_path / "map.mrc", volume, geometry)
    data, read_geometry = read_map(tmp_path / "map.mrc")
    np.testing.assert_array_equal(data, volume)
    assert read_geometry.voxel_size == pytest.approx(1.34, rel=1e-6)
    assert read_geometry.origin == pytest.approx(geometry.origin)
    assert read_geometry.nstart == geometry.nstart
    assert read_geometry.axis_order == (1, 2, 3)


def test_permuted_axis_order_is_read_as_zyx_and_written_back_unchanged(tmp_path, rng):
    volume = rng.standard_normal((5, 6, 7)).astype(np.float32)    # [z, y, x]
    # columns along Z (MAPC=3), rows along X (MAPR=1), sections along Y (MAPS=2): file[y, x, z]
    file_data = np.transpose(volume, (1, 2, 0))
    _raw_mrc(tmp_path / "perm.mrc", file_data, mapc=3, mapr=1, maps=2)
    data, geometry = read_map(tmp_path / "perm.mrc")
    np.testing.assert_array_equal(data, volume)
    assert geometry.axis_order == (3, 1, 2)
    write_map(tmp_path / "again.mrc", data, geometry)
    with mrcfile.open(tmp_path / "again.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, file_data)
        assert (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)) == (3, 1, 2)


def test_gzipped_map_and_integer_mode_are_read(tmp_path):
    volume = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    with mrcfile.new(tmp_path / "int.mrc") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 2.0
    with open(tmp_path / "int.mrc", "rb") as raw, gzip.open(tmp_path / "int.mrc.gz", "wb") as packed:
        packed.write(raw.read())
    data, geometry = read_map(tmp_path / "int.mrc.gz")
    assert data.dtype == np.float32 and geometry.voxel_size == 2.0
    np.testing.assert_array_equal(data, volume)


def test_voxel_size_override_replaces_header_value(tmp_path):
    _raw_mrc(tmp_path / "zero.mrc", np.ones((4, 4, 4)), voxel_size=0.0)
    _, geometry = read_map(tmp_path / "zero.mrc", voxel_size=1.1)
    assert geometry.voxel_size == 1.1


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("this is not a map\n" * 100), "not a readable MRC"),
    (lambda p: _raw_mrc(p, np.full((4, 4, 4), np.nan)), "NaN or infinite"),
    (lambda p: _raw_mrc(p, np.r_[np.ones(63), np.inf].reshape(4, 4, 4)), "1 NaN or infinite"),
    (lambda p: _raw_mrc(p, np.ones((4, 4, 4)), voxel_size=0.0), "voxel size 0"),
    (lambda p: _raw_mrc(p, np.ones((4, 4, 4)), voxel_size=-1.0), "voxel size -1"),
    (lambda p: _raw_mrc(p, np.ones((4, 4, 4)), voxel_size=(1.0, 1.0, 1.2)), "anisotropic voxels"),
    (lambda p: _raw_mrc(p, np.ones((4, 5))), "a 2D image"),
    (lambda p: _raw_mrc(p, np.ones((1, 4, 5))), "a 2D image"),
    (lambda p: _make_volume_stack(p), "stack of 2 volumes"),
])
@pytest.mark.filterwarnings("ignore:Data array contains")
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_bad_maps_raise_one_precise_error(tmp_path, make, message):
    path = tmp_path / "bad.mrc"
    make(path)
    with pytest.raises(MapFormatError, match=message):
        read_map(path)


def _make_stack(path, compression=None):
    with mrcfile.new(path, compression=compression) as mrc:
        mrc.set_data(np.arange(48, dtype=np.float32).reshape(3, 4, 4))
        mrc.set_image_stack()  # space group 0, as UCSF Chimera, ChimeraX and EMAN2 write volumes
        mrc.voxel_size = 1.3
        mrc.header.origin = (10.0, 20.0, 30.0)


def _make_volume_stack(path):
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((2, 3, 4, 4), np.float32))  # 4D data: mrcfile writes space group 401


@pytest.mark.parametrize("name, compression", [("chimera.mrc", None), ("chimera.map", None),
                                               ("chimera.ccp4", None), ("chimera.mrc.gz", "gzip"),
                                               ("chimera.map.bz2", "bzip2")])
def test_space_group_zero_with_depth_is_one_volume(tmp_path, name, compression):
    _make_stack(tmp_path / name, compression)
    data, geometry = read_map(tmp_path / name)
    np.testing.assert_array_equal(data, np.arange(48, dtype=np.float32).reshape(3, 4, 4))
    assert geometry.voxel_size == pytest.approx(1.3)
    assert geometry.origin == (10.0, 20.0, 30.0)
    write_map(tmp_path / "copy.mrc", data, geometry)
    again, geometry_again = read_map(tmp_path / "copy.mrc")
    np.testing.assert_array_equal(again, data)
    assert geometry_again == geometry


@pytest.mark.parametrize("name", ["particles.mrcs", "particles.MRCS", "particles.mrcs.gz"])
def test_mrcs_files_are_refused_as_stacks(tmp_path, name):
    _make_stack(tmp_path / name, "gzip" if name.endswith(".gz") else None)
    with pytest.raises(MapFormatError, match=r"is an image stack \(\.mrcs\)"):
        read_map(tmp_path / name)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(MapFormatError, match="no such file"):
        read_map(tmp_path / "absent.mrc")


@pytest.mark.parametrize("data, error", [
    (np.full((3, 3, 3), np.nan), MapFormatError),
    (np.ones((3, 3)), MapFormatError),
])
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_failed_write_leaves_no_file(tmp_path, data, error):
    with pytest.raises(error):
        write_map(tmp_path / "out.mrc", data, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_directory_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        write_map(tmp_path / "nowhere" / "out.mrc", np.ones((3, 3, 3)), 1.0)
    assert list(tmp_path.iterdir()) == []


def test_written_file_is_replaced_atomically_and_readable_by_others(tmp_path):
    write_map(tmp_path / "map.mrc", np.zeros((3, 3, 3)), 1.0)
    write_map(tmp_path / "map.mrc", np.ones((3, 3, 3)), 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["map.mrc"]
    assert read_map(tmp_path / "map.mrc")[0].min() == 1.0
    assert (tmp_path / "map.mrc").stat().st_mode & 0o044  # not the 0600 of a temporary file


def test_voxel_size_warning_questions_a_pixel_size_far_from_the_header():
    from deepres_plugin.core.mrc import voxel_size_warning

    assert voxel_size_warning(5.0, 1.742, "emd5168.map") == (
        "the voxel size used for emd5168.map, 5 Å/px, differs from its header's, 1.742 Å/px, by 187 %: resolutions "
        "scale with it; check the pixel size")
    assert voxel_size_warning(1.77, 1.742, "m.mrc") is None            # within 2 %
    assert voxel_size_warning(0.5, 1.0, "m.mrc") is None               # a header of 1 or 0 says nothing
    assert voxel_size_warning(0.5, 0.0, "m.mrc") is None


def test_same_voxel_size_allows_the_isotropy_tolerance_of_the_larger():
    from deepres_plugin.core.mrc import ISOTROPY_TOLERANCE, same_voxel_size

    assert same_voxel_size(1.742, 1.742 * (1 + 0.9 * ISOTROPY_TOLERANCE))
    assert same_voxel_size(1.742 * (1 + 0.9 * ISOTROPY_TOLERANCE), 1.742)      # symmetric
    assert not same_voxel_size(1.0, 1.0 + 2 * ISOTROPY_TOLERANCE)
    assert not same_voxel_size(1.0, 0.5)
