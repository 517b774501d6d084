"""MRC/CCP4 map input and output with the geometry a user expects to keep.

Maps are returned as float32 arrays indexed ``[z, y, x]`` whatever the file's axis order
(MAPC/MAPR/MAPS); the original order, the origin (A) and the start indices are kept in a
:class:`MapGeometry` and restored when the map is written back, so a read/write round trip
preserves the file's layout.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np

from .errors import MapFormatError
from .fileio import atomic_outputs

#: Relative difference allowed between two voxel sizes that are one: along x, y and z of a
#: map, or of two maps on one grid (:func:`same_voxel_size`).
ISOTROPY_TOLERANCE = 1e-3
#: MRC axis labels: 1 = X, 2 = Y, 3 = Z; the standard order has columns along X.
STANDARD_AXIS_ORDER = (1, 2, 3)
#: File suffix of image stacks (RELION, cryoSPARC); compression suffixes are looked through.
STACK_SUFFIX = ".mrcs"
#: Compression suffixes of map files and mrcfile's name of each: maps are read and written
#: compressed as their names say.
COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bzip2"}
COMPRESSION_SUFFIXES = tuple(COMPRESSION_BY_SUFFIX)
#: MRC2014 space groups of volume stacks (401-630): nz / mz volumes of mz sections each.
VOLUME_STACK_SPACE_GROUPS = (401, 630)
#: Largest distance between the first voxels of two maps on one grid, in voxels (the grid
#: checks of the core and of the Scipion protocols).
ORIGIN_TOLERANCE_VOXELS = 0.5
#: Voxel sizes (Å/px) a map can have, from finer than any detector's super-resolution pixel
#: or crystallographic grid to coarser than any binned tomogram. A value outside is a wrong
#: header or option (a unit cell written as the voxel size), and work sized in voxels from
#: lengths in Å (the automatic mask's Gaussian) would not end.
VOXEL_SIZE_RANGE_A = (0.1, 100.0)
#: Axis names of a map's shape as [z, y, x].
ZYX_AXES = ("z", "y", "x")


@dataclasses.dataclass(frozen=True)
class MapGeometry:
    """Where a map's voxels lie.

    Attributes:
        voxel_size: isotropic voxel size in A/px.
        origin: MRC header origin (x, y, z) in A.
        nstart: MRC start indices (column, row, section), in voxels.
        axis_order: MRC (MAPC, MAPR, MAPS) labels of the file's axes (1=X, 2=Y, 3=Z).
    """

    voxel_size: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    nstart: tuple[int, int, int] = (0, 0, 0)
    axis_order: tuple[int, int, int] = STANDARD_AXIS_ORDER

    def first_voxel_xyz(self) -> tuple[float, float, float]:
        """Position (x, y, z) in A of voxel (0, 0, 0), as ChimeraX places MRC maps: the
        header origin when it is set, otherwise the start indices times the voxel size."""
        if any(self.origin):
            return tuple(float(v) for v in self.origin)
        start_xyz = [0, 0, 0]
        for file_axis, label in enumerate(self.axis_order):
            start_xyz[label - 1] = self.nstart[file_axis]
        return tuple(float(n * self.voxel_size) for n in start_xyz)

    def with_voxel_size(self, voxel_size: float) -> "MapGeometry":
        """The same geometry with another voxel size (A/px), e.g. after resampling."""
        return dataclasses.replace(self, voxel_size=float(voxel_size))


def _file_to_zyx_axes(axis_order: tuple[int, int, int]) -> tuple[int, int, int]:
    """Permutation that turns the file's [section, row, column] array into [z, y, x].

    The file's axis 0 (sections) carries label MAPS, axis 1 MAPR, axis 2 MAPC; the
    canonical array axis of label L (1=X, 2=Y, 3=Z) is ``3 - L``.
    """
    mapc, mapr, maps = axis_order
    canonical_of_file_axis = [3 - maps, 3 - mapr, 3 - mapc]
    return tuple(int(axis) for axis in np.argsort(canonical_of_file_axis))


def check_voxel_size(voxel_size: float, source: str = "map") -> float:
    """Return ``voxel_size`` as a float if it is finite, positive and within
    :data:`VOXEL_SIZE_RANGE_A`.

    Raises:
        MapFormatError: zero, negative, non-finite or implausible voxel size.
    """
    value = float(voxel_size)
    if not np.isfinite(value) or value <= 0:
        raise MapFormatError(
            f"{source} has voxel size {value:g} Å/px; give the real pixel size", option="--sampling")
    low, high = VOXEL_SIZE_RANGE_A
    if not low <= value <= high:
        raise MapFormatError(f"{source} has voxel size {value:g} Å/px, outside the plausible {low:g}-{high:g} Å/px; "
                             "give the real pixel size", option="--sampling")
    return value


#: A voxel size given for a map is questioned when it differs from the header's by more than
#: this fraction (a mistyped pixel size gives a wrong answer silently).
VOXEL_SIZE_DISAGREEMENT = 0.02
#: Header voxel sizes that mean "not set" (0, and 1 written by programs that do not know it).
UNSET_HEADER_VOXEL_SIZES = (0.0, 1.0)


def voxel_size_warning(given: float, header: float, name: str) -> str | None:
    """A warning when the voxel size ``given`` for the map ``name`` (A/px) differs from its
    header's ``header`` by more than :data:`VOXEL_SIZE_DISAGREEMENT`, unless the header's is
    unset (:data:`UNSET_HEADER_VOXEL_SIZES`); else None."""
    if header in UNSET_HEADER_VOXEL_SIZES or abs(given - header) <= VOXEL_SIZE_DISAGREEMENT * header:
        return None
    return (f"the voxel size used for {name}, {given:g} Å/px, differs from its header's, {header:g} Å/px, by "
            f"{100 * abs(given - header) / header:.0f} %: resolutions scale with it; check the pixel size")


def is_stack_file(path: str | os.PathLike) -> bool:
    """Whether the file name says image stack (``.mrcs``, compressed or not).

    The space group does not decide it: UCSF Chimera, ChimeraX, EMAN2 and others write
    ``ispg = 0`` (the MRC2014 value for an image stack) for ordinary 3D volumes, so a
    ``.mrc``/``.map``/``.ccp4`` file with nz > 1 is read as one volume whatever its space group.
    """
    name = Path(path).name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return name.endswith(STACK_SUFFIX)


def same_voxel_size(first_A: float, second_A: float) -> bool:
    """Whether two voxel sizes (Å/px) are one, within :data:`ISOTROPY_TOLERANCE` of the larger:
    the grid check of every pair of maps (half maps, masks, resolution maps)."""
    return abs(first_A - second_A) <= ISOTROPY_TOLERANCE * max(abs(first_A), abs(second_A))


def different_placements(first: MapGeometry, second: MapGeometry) -> tuple[str, str] | None:
    """Where two maps of one grid put their first voxel (:meth:`MapGeometry.first_voxel_xyz`),
    as ``"x, y, z"`` texts in Å, when both headers state a place (not 0, 0, 0) and the places
    differ by more than :data:`ORIGIN_TOLERANCE_VOXELS`; else None (a header that states no place is read as
    lying on the other's grid)."""
    starts = [np.array(geometry.first_voxel_xyz()) for geometry in (first, second)]
    if not all(np.any(start) for start in starts) \
            or np.max(np.abs(starts[0] - starts[1])) <= ORIGIN_TOLERANCE_VOXELS * max(first.voxel_size,
                                                                                      second.voxel_size):
        return None
    text = [", ".join(f"{v:g}" for v in start) for start in starts]
    return text[0], text[1]


def _anisotropy_error(path: Path, file_voxel: np.ndarray) -> MapFormatError | None:
    """The error for a header whose (valid) voxel sizes differ along x, y and z, else None."""
    if np.all(file_voxel > 0) and np.all(np.isfinite(file_voxel)) \
            and np.ptp(file_voxel) > ISOTROPY_TOLERANCE * file_voxel.max():
        return MapFormatError(f"{path} has anisotropic voxels {tuple(np.round(file_voxel, 4))} Å/px; "
                              "resample it to cubic voxels first")
    return None


def thin_axes_error(path: str | os.PathLike, shape_zyx: tuple[int, ...]) -> MapFormatError | None:
    """The error for a map at most one voxel thick along any axis (a 2D image, whichever
    axis is thin), else None."""
    thin = [axis for axis, n in zip(ZYX_AXES, shape_zyx) if n < 2]
    if not thin:
        return None
    size = "x".join(str(n) for n in shape_zyx[::-1])
    return MapFormatError(f"{path} is a 2D image ({size} voxels, at most one along {' and '.join(thin)}); "
                          "a single 3D volume is required")


def check_map_file(path: str | os.PathLike,
                   voxel_size: float | None = None) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Check from its header alone that a file is one 3D volume with cubic voxels.

    Cheap (the data are not read): Scipion's ``_validate`` uses it before a run. A volume
    stack holding one volume (space group 401, mz = nz) is one volume.

    Args:
        path: the map file.
        voxel_size: A/px given to replace the header's: the header's voxel sizes, anisotropic
            ones included (a unit cell that is not the box), are then not checked.

    Returns:
        ``(shape_zyx, voxel_xyz)``: the volume's shape and the header's voxel sizes (A/px).

    Raises:
        MapFormatError: missing or non-MRC file, ``.mrcs`` stack, volume stack, 2D image
            (one voxel thick along any axis), invalid axis order, anisotropic voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise MapFormatError(f"{path}: no such file")
    if is_stack_file(path):
        raise MapFormatError(f"{path} is an image stack ({STACK_SUFFIX}); a single 3D volume (.mrc, .map) "
                             "is required")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mrcfile warns about odd headers; we check what matters
            with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
                header = mrc.header
                file_voxel = np.array([mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z], float)
                dims = (int(header.nz), int(header.ny), int(header.nx))
                axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
                is_volume_stack = VOLUME_STACK_SPACE_GROUPS[0] <= int(header.ispg) <= VOLUME_STACK_SPACE_GROUPS[1]
                volumes = int(header.nz) // max(int(header.mz), 1) if is_volume_stack else 1
    except (ValueError, OSError, EOFError) as exc:
        raise MapFormatError(f"{path} is not a readable MRC/CCP4 map ({exc})") from None
    if volumes > 1:
        raise MapFormatError(f"{path} is a stack of {volumes} volumes (space group {int(header.ispg)}); "
                             "a single 3D volume is required")
    if sorted(axis_order) != [1, 2, 3]:
        raise MapFormatError(f"{path} has an invalid axis order MAPC/MAPR/MAPS = {axis_order}")
    shape_zyx = tuple(int(n) for n in np.array(dims)[list(_file_to_zyx_axes(axis_order))])
    error = thin_axes_error(path, shape_zyx) or (_anisotropy_error(path, file_voxel) if voxel_size is None else None)
    if error is not None:
        raise error
    return shape_zyx, tuple(float(v) for v in file_voxel)


def read_map(path: str | os.PathLike, voxel_size: float | None = None) -> tuple[np.ndarray, MapGeometry]:
    """Read a 3D MRC/CCP4 map (optionally gzip/bzip2 compressed).

    Args:
        path: the map file.
        voxel_size: A/px to use instead of the header's values (for headers that lie: a zero
            or unit cell, isotropic or not).

    Returns:
        ``(data, geometry)``: float32 array indexed [z, y, x] and the map's geometry.

    A file with nz > 1 is one volume whatever its space group (0 included, as UCSF Chimera
    writes it, and a volume stack of one volume); ``.mrcs`` files and volume stacks of several
    volumes are refused. The voxel size is checked (:func:`check_voxel_size`) before the
    data are read.

    Raises:
        MapFormatError: missing or non-MRC file, data that is not a single 3D volume,
            complex data, NaN/Inf values, zero/negative, implausible or anisotropic voxel size.
    """
    path = Path(path)
    _, header_voxel = check_map_file(path, voxel_size)
    if voxel_size is None:
        if min(header_voxel) <= 0 or not np.all(np.isfinite(header_voxel)):
            check_voxel_size(min(header_voxel), str(path))
        voxel_size = float(np.mean(header_voxel))
    voxel_size = check_voxel_size(voxel_size, str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=False) as mrc:
                data = np.asarray(mrc.data)
                origin, nstart, axis_order = _header_placement(mrc.header)
    except (ValueError, OSError, EOFError) as exc:
        raise MapFormatError(f"{path} is not a readable MRC/CCP4 map ({exc})") from None

    if data is not None and data.ndim == 4 and data.shape[0] == 1:
        data = data[0]                     # a volume stack of one volume
    if data is None or data.ndim != 3 or data.shape[0] == 1:
        kind = "a 2D image" if data is not None and data.ndim >= 2 else f"{0 if data is None else data.ndim}-dimensional"
        raise MapFormatError(f"{path} is {kind}; a single 3D volume is required")
    if np.iscomplexobj(data):
        raise MapFormatError(f"{path} holds complex (Fourier) data; a real-space map is required")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise MapFormatError(f"{path} contains {bad} NaN or infinite values")

    zyx = np.transpose(data, _file_to_zyx_axes(axis_order)).astype(np.float32, copy=True)
    return zyx, MapGeometry(voxel_size, origin, nstart, axis_order)


def _header_placement(header) -> tuple[tuple[float, float, float], tuple[int, int, int], tuple[int, int, int]]:
    """An MRC header's origin (x, y, z, A), start indices and axis order (:class:`MapGeometry`)."""
    return ((float(header.origin.x), float(header.origin.y), float(header.origin.z)),
            (int(header.nxstart), int(header.nystart), int(header.nzstart)),
            (int(header.mapc), int(header.mapr), int(header.maps)))


def read_header_geometry(path: str | os.PathLike) -> MapGeometry:
    """Where a map file's header places its voxels (voxel size from x), without reading the
    data: what a program that keeps the header (ChimeraX, the command line) would use.

    Raises:
        MapFormatError: not a readable MRC/CCP4 map.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                return MapGeometry(float(mrc.voxel_size.x), *_header_placement(mrc.header))
    except (ValueError, OSError, EOFError) as exc:
        raise MapFormatError(f"{path} is not a readable MRC/CCP4 map ({exc})") from None


#: Data types an MRC file can hold, besides the default float32 (mode 2).
COMPACT_DTYPES = (np.float16, np.int8, np.int16)


def compression_of(path: str | os.PathLike) -> str | None:
    """mrcfile's name of the compression a map file's name asks for (``.gz``: gzip, ``.bz2``:
    bzip2), else None."""
    return COMPRESSION_BY_SUFFIX.get(Path(path).suffix.lower())


def write_map(path: str | os.PathLike, data: np.ndarray, geometry: MapGeometry | float,
              final_name: str | os.PathLike | None = None) -> None:
    """Write a 3D map atomically (a temporary file renamed on success).

    Args:
        path: destination file, replaced if it exists; compressed when its name (or
            ``final_name``) ends in ``.gz`` or ``.bz2`` (:func:`compression_of`).
        data: array indexed [z, y, x]; stored as float32 (mode 2) unless it is float16,
            int8 or int16 (modes 12, 0, 1: compact masks and label maps).
        geometry: a :class:`MapGeometry`, or just a voxel size in A/px.
        final_name: the name the file will have when ``path`` is a temporary that the
            caller renames (:func:`.fileio.atomic_outputs`).

    Raises:
        MapFormatError: ``data`` is not 3D or has NaN/Inf values.
        ParameterError: the destination directory does not exist.
    """
    if not isinstance(geometry, MapGeometry):
        geometry = MapGeometry(check_voxel_size(geometry))
    data = np.asarray(data)
    if data.ndim != 3:
        raise MapFormatError(f"cannot write {data.ndim}-dimensional data as a map")
    if not np.all(np.isfinite(data)):
        raise MapFormatError(f"refusing to write NaN or infinite values to {path}")
    file_axes = np.argsort(_file_to_zyx_axes(geometry.axis_order))
    dtype = data.dtype if data.dtype in COMPACT_DTYPES else np.float32
    file_data = np.ascontiguousarray(np.transpose(data.astype(dtype), file_axes))
    with atomic_outputs(path) as (tmp,):
        with mrcfile.new(tmp, overwrite=True, compression=compression_of(final_name or path)) as mrc, \
                np.errstate(over="ignore", invalid="ignore"):
            mrc.set_data(file_data)        # header statistics of a map near float32's limit overflow: harmless
            mrc.set_volume()
            mrc.voxel_size = geometry.voxel_size
            mrc.header.origin = geometry.origin
            mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = geometry.nstart
            mrc.header.mapc, mrc.header.mapr, mrc.header.maps = geometry.axis_order
