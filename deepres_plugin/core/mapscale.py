"""A map's scale: the SD every computation divides by (maps stored at any scale give the
answer they give at unit scale), and the refusal of flat maps.
"""
from __future__ import annotations

import numpy as np

from .errors import MapFormatError

#: A map's SD must exceed this fraction of its largest absolute value not to count as flat
#: (float32 keeps 7 digits: below this, what varies is rounding).
FLAT_MAP_RELATIVE_SD = 1e-6


def map_scale(volume: np.ndarray, source: str = "the map") -> float:
    """The map's SD (computed in float64).

    Raises:
        MapFormatError: a flat map (all values equal, to float32 precision).
    """
    sd = float(np.std(volume, dtype=np.float64))
    peak = float(np.max(np.abs(volume), initial=0.0))
    if not sd > FLAT_MAP_RELATIVE_SD * peak or sd == 0.0:
        raise MapFormatError(f"{source} is flat (all values {float(volume.flat[0]):g}): there is nothing to measure")
    return sd


def unit_scale(volume: np.ndarray, source: str = "the map", scale: float | None = None) -> np.ndarray:
    """The map divided by ``scale`` (default its SD, :func:`map_scale`), so that maps stored at
    any scale (1e-30 or 1e38) give the same answer as at unit scale; DeepRes reads boxes
    divided by their norm, so the result does not change otherwise.

    Raises:
        MapFormatError: a flat map (all values equal, to float32 precision).
    """
    scale = map_scale(volume, source) if scale is None else scale
    return (volume.astype(np.float64) / scale).astype(np.float32)


def check_not_flat(volume: np.ndarray, mask: np.ndarray, source: str = "the map") -> None:
    """Raise :class:`MapFormatError` when the map is constant inside the mask."""
    inside = volume[mask]
    if not float(np.std(inside, dtype=np.float64)) > FLAT_MAP_RELATIVE_SD * float(np.max(np.abs(inside), initial=0.0)):
        raise MapFormatError(f"{source} is flat inside the mask (all values {float(inside[0]):g}): "
                             "there is nothing to measure there")
