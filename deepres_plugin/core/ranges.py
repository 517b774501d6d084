"""The two resolution ranges of DeepRes (paper section 2.1): each has its own network,
working voxel size and label range."""
from __future__ import annotations

import dataclasses

from .errors import ParameterError

#: Edge of the cubic box the network sees, in voxels (paper: 13 x 13 x 13).
BOX_SIZE = 13


@dataclasses.dataclass(frozen=True)
class ResolutionRange:
    """A DeepRes range.

    Attributes:
        name: ``wide`` or ``high``.
        voxel_size: working voxel size of the network, A/px.
        min_resolution: best resolution the network reports, A.
        max_resolution: worst resolution the network reports, A.
    """

    name: str
    voxel_size: float
    min_resolution: float
    max_resolution: float


WIDE = ResolutionRange("wide", voxel_size=1.0, min_resolution=2.5, max_resolution=13.0)
HIGH = ResolutionRange("high", voxel_size=0.5, min_resolution=1.5, max_resolution=6.0)
RANGES: dict[str, ResolutionRange] = {r.name: r for r in (WIDE, HIGH)}


def get_range(name: str) -> ResolutionRange:
    """The range called ``name``.

    Raises:
        ParameterError: unknown name.
    """
    try:
        return RANGES[name]
    except KeyError:
        raise ParameterError(f"unknown resolution range {name!r}; choose one of {', '.join(RANGES)}") from None
