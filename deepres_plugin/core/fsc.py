"""Global Fourier shell correlation between two half maps.

Shells are one Fourier pixel of the largest box edge wide (``1 / (n_max * voxel_size)`` in
1/A), so non-cubic boxes work too; the sums per shell are done with ``np.bincount`` (no
loop over voxels or shells). The resolution is where the curve first falls below the
threshold (0.143 by default, gold standard), interpolated linearly between shells.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage

from .errors import MapFormatError, MaskError, ParameterError
from .fourier import frequency_magnitude, rfft_map
from .mapscale import check_not_flat, map_scale, unit_scale
from .masks import automatic_mask, log_automatic_mask, read_mask
from .mrc import MapGeometry, different_placements, read_map, same_voxel_size
from .outputs import FSC_FILES

#: Gold-standard FSC threshold (Rosenthal & Henderson 2003); 0.5 is the older choice.
FSC_THRESHOLD = 0.143
#: Thresholds offered to users.
THRESHOLDS = (FSC_THRESHOLD, 0.5)
#: Width (A) of the raised-cosine edge added around a binary mask before the FFT: a hard
#: edge, the same in both halves, would correlate them at every frequency.
FSC_MASK_EDGE_A = 6.0


def fsc_mask_weights(mask: np.ndarray, voxel_size: float, edge: float = FSC_MASK_EDGE_A) -> np.ndarray:
    """Soft version of a binary mask: 1 inside, ``(1 + cos(pi d / edge)) / 2`` at a distance
    ``d`` < ``edge`` A outside, 0 beyond."""
    distance = scipy.ndimage.distance_transform_edt(~mask, sampling=voxel_size)         # A
    return np.where(distance < edge, 0.5 * (1.0 + np.cos(np.pi * distance / edge)), 0.0).astype(np.float32)


def check_half_maps(half1: np.ndarray, half2: np.ndarray, voxel1: float, voxel2: float) -> None:
    """Raise unless the halves share shape and voxel size and are not the same map."""
    if half1.shape != half2.shape:
        raise MapFormatError(f"half maps differ in shape: {half1.shape} and {half2.shape}")
    if not same_voxel_size(voxel1, voxel2):
        raise MapFormatError(f"half maps differ in voxel size: {voxel1:g} and {voxel2:g} Å/px")
    if np.array_equal(half1, half2):
        raise ParameterError("the two half maps are identical: they must come from independent halves of the data")


def check_half_map_placement(geometry1: MapGeometry, geometry2: MapGeometry, name1: str, name2: str) -> None:
    """Refuse half maps whose headers both state where their first voxel lies, and state
    places more than half a voxel apart (:func:`.mrc.different_placements`); halves that
    state one place, or none, are one grid.

    Raises:
        MapFormatError: naming both files and both places in Å.
    """
    places = different_placements(geometry1, geometry2)
    if places is not None:
        raise MapFormatError(f"the half maps {name1} and {name2} start at ({places[0]}) Å and ({places[1]}) Å: they "
                             "lie on different grids; give the two halves of one reconstruction")


def fsc_curve(half1: np.ndarray, half2: np.ndarray, voxel_size: float,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FSC per shell.

    Args:
        half1, half2: half maps [z, y, x] on the same grid.
        voxel_size: A/px.
        mask: optional weights (binary or soft) applied to both halves before the FFT.

    Returns:
        ``(frequency, fsc)``: shell centres in 1/A from the first non-zero shell up to
        Nyquist, and the correlation in each shell.
    """
    if mask is not None:
        half1, half2 = half1 * mask, half2 * mask
    f1, f2 = rfft_map(half1.astype(np.float64)), rfft_map(half2.astype(np.float64))
    shell_width = 1.0 / (max(half1.shape) * voxel_size)                       # 1/A
    shells = np.rint(frequency_magnitude(half1.shape, voxel_size) / shell_width).astype(np.int64).ravel()
    # the rfft grid holds half of the spectrum: x = 0 and (even n) Nyquist planes once, the rest twice
    weight = np.full(f1.shape, 2.0)
    weight[..., 0] = 1.0
    if half1.shape[2] % 2 == 0:
        weight[..., -1] = 1.0
    weight = weight.ravel()
    cross = np.bincount(shells, weight * (f1 * np.conj(f2)).real.ravel())
    power1 = np.bincount(shells, weight * (np.abs(f1) ** 2).ravel())
    power2 = np.bincount(shells, weight * (np.abs(f2) ** 2).ravel())
    last = int(np.floor(0.5 / voxel_size / shell_width))                      # Nyquist shell
    index = np.arange(1, last + 1)
    denominator = np.sqrt(power1[index] * power2[index])
    fsc = np.divide(cross[index], denominator, out=np.zeros(len(index)), where=denominator > 0)
    return index * shell_width, fsc


def fsc_resolution(frequency: np.ndarray, fsc: np.ndarray, threshold: float = FSC_THRESHOLD) -> float:
    """Resolution (A) where the FSC first falls below ``threshold`` (linear interpolation);
    the Nyquist resolution when it never does."""
    below = np.flatnonzero(fsc < threshold)
    if len(below) == 0:
        return float(1.0 / frequency[-1])
    i = int(below[0])
    if i == 0:
        return float(1.0 / frequency[0])
    f0, f1, c0, c1 = frequency[i - 1], frequency[i], fsc[i - 1], fsc[i]
    crossing = f0 + (c0 - threshold) * (f1 - f0) / (c0 - c1)
    return float(1.0 / crossing)


#: The halves' information limit: the FSC exceeds this many SDs of a noise-only FSC.
INFORMATION_SIGMAS = 3.0


def information_limit(frequency: np.ndarray, fsc: np.ndarray, voxel_size: float, box_edge: int,
                      mask_fraction: float = 1.0) -> float:
    """Finest resolution (A) at which the halves still correlate: the last shell whose FSC
    exceeds :data:`INFORMATION_SIGMAS` x the SD of a noise-only FSC, ``1 / sqrt(n / 2)`` for
    the ``n = 4 pi k^2 x mask_fraction`` independent Fourier voxels of shell ``k`` of a
    ``box_edge`` box (van Heel's 3-sigma curve; a mask keeping a fraction of the box keeps
    that fraction of independent samples). The first shell's resolution when none does.
    """
    shell = frequency * box_edge * voxel_size
    count = np.maximum(4.0 * np.pi * shell ** 2 * mask_fraction, 1.0)
    above = np.flatnonzero(fsc > INFORMATION_SIGMAS / np.sqrt(count / 2.0))
    return float(1.0 / frequency[above[-1] if len(above) else 0])


def fsc_csv(frequency: np.ndarray, fsc: np.ndarray) -> str:
    """CSV: spatial frequency (1/A), resolution (A) and FSC per shell."""
    rows = ["frequency_inv_A,resolution_A,fsc"]
    rows += [f"{f:.5f},{1.0 / f:.3f},{c:.5f}" for f, c in zip(frequency, fsc)]
    return "\n".join(rows) + "\n"


def read_fsc_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """``(frequency, fsc)`` back from a file written with :func:`fsc_csv`."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return table[:, 0], table[:, 2]


def draw_fsc(axes, frequency: np.ndarray, fsc: np.ndarray, threshold: float, resolution: float) -> None:
    """The FSC curve with the threshold and the resolution marked, on matplotlib ``axes``
    (used by :func:`fsc_png` and by the Scipion viewers)."""
    axes.plot(frequency, fsc, color="#4477aa", label="FSC")
    axes.axhline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:g}")
    axes.axvline(1.0 / resolution, color="#228833", linestyle=":", label=f"{resolution:.2f} Å")
    axes.set_ylim(-0.1, 1.05)
    axes.legend()


def fsc_png(frequency: np.ndarray, fsc: np.ndarray, threshold: float, resolution: float) -> bytes:
    """The FSC curve with the threshold and the resolution marked."""
    from matplotlib.figure import Figure

    from .report import _render

    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    draw_fsc(axes, frequency, fsc, threshold, resolution)
    axes.set_xlabel("Spatial frequency (1/Å)")
    axes.set_ylabel("FSC")
    axes.set_title(f"Fourier shell correlation: {resolution:.2f} Å at {threshold:g}")
    figure.tight_layout()
    return _render(figure)


def global_fsc(half1: np.ndarray, half2: np.ndarray, voxel_size: float,
               mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """FSC of the halves inside ``mask`` (its edge softened), computed on the noise-whitened
    halves, and the halves' information limit (A): the finer of the last shell significant
    at 3 sigma (:func:`.fsc.information_limit`) and the FSC resolution at 0.143 (a small
    mask leaves so few independent samples that 3 sigma exceeds 0.143).

    Whitening leaves each shell's FSC of the unmasked halves unchanged, but it stops the
    mask from spreading the noise of a sharpened map (amplified at high frequency) into the
    low shells: without it, halves sharpened by B = -100 A^2 read 60 A instead of 3.7 A.
    """
    from .localfsc import whiten  # localfsc builds on this module

    weights = fsc_mask_weights(mask, voxel_size)
    frequency, fsc = fsc_curve(*whiten(half1, half2), voxel_size, weights)
    limit = information_limit(frequency, fsc, voxel_size, max(half1.shape), float(np.mean(weights ** 2)))
    return frequency, fsc, min(limit, fsc_resolution(frequency, fsc, FSC_THRESHOLD))


@dataclasses.dataclass
class HalfMaps:
    """Two checked half maps (divided by ``scale``, the SD of the first, so that every
    computation sees values near 1 whatever the files' scale), their average (at the files'
    scale), the mask, the global FSC and the halves' information limit (A,
    :func:`.fsc.information_limit`)."""

    half1: np.ndarray
    half2: np.ndarray
    geometry: Any
    mask: np.ndarray
    mask_source: str
    frequency: np.ndarray
    fsc: np.ndarray
    global_resolution: float
    information_limit: float
    scale: float = 1.0

    @property
    def average(self) -> np.ndarray:
        """The halves' mean at the scale of the input files."""
        return ((self.half1.astype(np.float64) + self.half2.astype(np.float64)) * (self.scale / 2)).astype(np.float32)

    def fsc_files(self, threshold: float) -> dict[str, bytes]:
        return {FSC_FILES[0]: fsc_csv(self.frequency, self.fsc).encode(),
                FSC_FILES[1]: fsc_png(self.frequency, self.fsc, threshold, self.global_resolution)}


def load_half_maps(half1_path: str | os.PathLike, half2_path: str | os.PathLike,
                   mask_path: str | os.PathLike | None = None, threshold: float | None = None,
                   sampling: float | None = None) -> HalfMaps:
    """Read and check two half maps, read the mask or make one from their average, and
    compute the global FSC inside the mask (its edge softened).

    Raises:
        MapFormatError: unreadable maps, or halves of different shape or voxel size.
        ParameterError: identical halves.
        MaskError: bad mask, or an automatic mask covering the whole box.
    """
    half1, geometry = read_map(half1_path, voxel_size=sampling)
    half2, geometry2 = read_map(half2_path, voxel_size=sampling)
    check_half_maps(half1, half2, geometry.voxel_size, geometry2.voxel_size)
    check_half_map_placement(geometry, geometry2, str(half1_path), str(half2_path))
    # one common scale (the FSC does not change): halves stored at 1e-30 or 1e38 work as at 1
    sd = map_scale(half1, str(half1_path))
    map_scale(half2, str(half2_path))
    half1, half2 = (unit_scale(half, scale=sd) for half in (half1, half2))
    if mask_path:
        mask = read_mask(mask_path, half1.shape, geometry, voxel_size=sampling)
        mask_source = str(Path(mask_path).resolve())
    else:
        mask = automatic_mask((half1 + half2) / 2, geometry.voxel_size)
        mask_source = "automatic"
        log_automatic_mask(mask)
        if mask.all():
            raise MaskError("the automatic mask covers the whole box; give a mask", option="--mask")
    check_not_flat(half1, mask, str(half1_path))
    check_not_flat(half2, mask, str(half2_path))
    frequency, fsc, limit = global_fsc(half1, half2, geometry.voxel_size, mask)
    resolution = fsc_resolution(frequency, fsc, FSC_THRESHOLD if threshold is None else threshold)
    return HalfMaps(half1, half2, geometry, mask, mask_source, frequency, fsc, resolution, limit, sd)
