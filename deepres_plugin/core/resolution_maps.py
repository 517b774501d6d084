"""A local-resolution map as the input of later work (local filtering, per-residue figures):
read with the density map it belongs to, checked to lie on that map's grid, and coloured
with the scale of its own report.

A resolution map holds resolutions in A; voxels without an estimate hold 0 (DeepRes, the
local FSC, and most other programs outside their mask), so the estimated region is where
the values are positive.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from .errors import MapFormatError
from .mrc import MapGeometry, different_placements, read_map, same_voxel_size
from .outputs import ReportSummary
from .report import DEFAULT_PALETTE

#: Resolutions (A) a local-resolution map may hold besides 0 (no estimate): from a quarter
#: of the finest voxel any program uses to beyond the coarsest any reports. A map whose
#: voxels are all 0 or inside this span is a resolution map, not density: density maps
#: take values near and below their solvent level.
RESOLUTION_VALUES_A = (0.25, 200.0)


@dataclasses.dataclass(frozen=True)
class ResolutionMap:
    """A resolution map (A, [z, y, x]), its geometry and, when read with one, its density map
    (the geometry is then the density map's: the place a model was fitted to, when the
    resolution map's header states none)."""

    resolution: np.ndarray
    geometry: MapGeometry
    volume: np.ndarray | None = None

    @property
    def region(self) -> np.ndarray:
        """The voxels with an estimate (value > 0)."""
        return self.resolution > 0


def read_resolution_map(resolution_path: str | os.PathLike,
                        map_path: str | os.PathLike | None = None) -> ResolutionMap:
    """Read a resolution map and, when given, its density map, checked to share its grid.

    Raises:
        MapFormatError: unreadable files, or maps on different grids (:func:`check_same_grid`).
    """
    resolution, geometry = read_map(resolution_path)
    check_resolution_values(resolution, str(resolution_path))
    if map_path is None:
        return ResolutionMap(resolution, geometry)
    volume, map_geometry = read_map(map_path)
    check_density_map(volume, str(map_path))
    check_same_grid(resolution.shape, geometry, volume.shape, map_geometry, str(resolution_path), str(map_path))
    return ResolutionMap(resolution, map_geometry, volume)


def looks_like_resolution_map(values: np.ndarray) -> bool:
    """Whether every voxel is 0 or a resolution within :data:`RESOLUTION_VALUES_A`, with
    some voxels holding one (a constant map is flat, not a resolution map)."""
    nonzero = values[values != 0]
    if not nonzero.size or (nonzero.size == values.size and float(np.ptp(nonzero)) == 0):
        return False
    low, high = RESOLUTION_VALUES_A
    return float(nonzero.min()) >= low and float(nonzero.max()) <= high


def check_density_map(volume: np.ndarray, name: str) -> None:
    """Refuse a local-resolution map given where a density map is expected.

    Raises:
        MapFormatError: every voxel is 0 or a plausible resolution (:func:`looks_like_resolution_map`).
    """
    if looks_like_resolution_map(volume):
        nonzero = volume[volume != 0]
        raise MapFormatError(f"{name} looks like a local-resolution map, not a density map (every voxel is 0 or "
                             f"between {float(nonzero.min()):.2f} and {float(nonzero.max()):.2f} Å); give the "
                             "density map the resolution map was computed for")


def check_resolution_values(resolution: np.ndarray, name: str) -> None:
    """Refuse a map given as a local-resolution map whose values cannot be resolutions in
    A: negative (a density map) or beyond :data:`RESOLUTION_VALUES_A` (another unit or a
    flag value).

    Raises:
        MapFormatError: naming the file and the offending values.
    """
    low, high = float(resolution.min()), float(resolution.max())
    if low < 0:
        raise MapFormatError(f"{name} holds negative values (down to {low:.3g}): it is not a local-resolution map "
                             "in Å (0 = no estimate); is it the density map?")
    if high > RESOLUTION_VALUES_A[1]:
        raise MapFormatError(f"{name} holds values up to {high:.3g}: a local-resolution map holds resolutions in Å "
                             f"up to {RESOLUTION_VALUES_A[1]:g} (0 = no estimate); is it the density map, or "
                             "another unit?")


def check_same_grid(resolution_shape: tuple[int, ...], resolution_geometry: MapGeometry, map_shape: tuple[int, ...],
                    map_geometry: MapGeometry, resolution_name: str, map_name: str) -> None:
    """Refuse a resolution map that does not lie on its map's grid: another shape or voxel
    size, or a placement that both files state and that differs by more than half a voxel.

    Raises:
        MapFormatError: naming both files and what differs.
    """
    def describe(shape: tuple[int, ...], geometry: MapGeometry) -> str:
        return f"{'x'.join(str(n) for n in shape[::-1])} voxels of {geometry.voxel_size:g} Å"

    if tuple(resolution_shape) != tuple(map_shape) \
            or not same_voxel_size(resolution_geometry.voxel_size, map_geometry.voxel_size):
        raise MapFormatError(f"the resolution map {resolution_name} ({describe(resolution_shape, resolution_geometry)}) "
                             f"and the map {map_name} ({describe(map_shape, map_geometry)}) lie on different grids; "
                             "compute the local resolution on the map's grid")
    text = different_placements(resolution_geometry, map_geometry)
    if text is not None:
        raise MapFormatError(f"the resolution map {resolution_name} starts at ({text[0]}) Å, the map {map_name} at "
                             f"({text[1]}) Å: they lie on different grids")


def colour_range(resolution_path: str | os.PathLike, values: np.ndarray,
                 palette: str | None = None) -> tuple[tuple[float, float], str]:
    """The colour scale (A) and palette for figures and scripts made from a resolution map:
    those of the map's own report when it lies in a run folder whose summary names it (so a
    filtered map or a model is coloured with the key of the map's scripts), else the range
    of ``values`` and the default palette. ``palette`` overrides either."""
    summary = ReportSummary.of_resolution_map(resolution_path)
    if summary is not None:
        return summary.colour_range, palette or summary.palette
    low, high = float(values.min()), float(values.max())
    return ((low - 0.5, high + 0.5) if low == high else (low, high)), palette or DEFAULT_PALETTE
