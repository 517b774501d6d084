"""The two resolution ranges of DeepRes (paper section 2.1): each has its own network,
working voxel size and label range."""
from __future__ import annotations

import dataclasses

import numpy as np

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


#: The range name that lets the map choose (:func:`choose_range`).
AUTO_RANGE = "auto"
#: Every value a user may give as a range.
RANGE_CHOICES = (AUTO_RANGE, *RANGES)
#: The automatic choice reads the map with the wide network first and takes the high range
#: when this share of the estimated voxels reads finer than :data:`AUTO_HIGH_BELOW_A`: the
#: bulk of the map then lies well inside the high range (1.5-6 A), whose finer voxel and
#: finer floor (1.5 A against 2.5 A) it needs.
AUTO_HIGH_SHARE = 0.8
#: See :data:`AUTO_HIGH_SHARE`, A.
AUTO_HIGH_BELOW_A = 4.5


@dataclasses.dataclass(frozen=True)
class RangeChoice:
    """The range ``auto`` chose and why, in a sentence for the log and the summary."""

    name: str
    why: str


def choose_range(wide_reading: np.ndarray) -> RangeChoice:
    """The range for a map from the wide network's reading of its estimated voxels (A):
    high when :data:`AUTO_HIGH_SHARE` of them read finer than :data:`AUTO_HIGH_BELOW_A`,
    else wide."""
    share = float(np.mean(wide_reading < AUTO_HIGH_BELOW_A)) if wide_reading.size else 0.0
    reading = (f"the wide network reads {100 * share:.0f} % of the voxels finer than {AUTO_HIGH_BELOW_A:g} Å "
               f"(median {float(np.median(wide_reading)) if wide_reading.size else float('nan'):.2f} Å)")
    if share >= AUTO_HIGH_SHARE:
        return RangeChoice(HIGH.name, f"range auto: high ({HIGH.min_resolution:g}-{HIGH.max_resolution:g} Å), "
                                      f"because {reading}")
    return RangeChoice(WIDE.name, f"range auto: wide ({WIDE.min_resolution:g}-{WIDE.max_resolution:g} Å), because "
                                  f"{reading}; the high range needs {100 * AUTO_HIGH_SHARE:.0f} %")


def first_range_name(range_name: str, model_range: str | None = None) -> str:
    """The range a prediction starts with: the one asked for; for ``auto``, the given
    network's range (``model_range``) or wide, whose reading :func:`choose_range` uses."""
    if range_name != AUTO_RANGE:
        return get_range(range_name).name
    return model_range or WIDE.name


def get_range(name: str) -> ResolutionRange:
    """The range called ``name``.

    Raises:
        ParameterError: unknown name.
    """
    try:
        return RANGES[name]
    except KeyError:
        raise ParameterError(f"unknown resolution range {name!r}; choose one of {', '.join(RANGES)}") from None
