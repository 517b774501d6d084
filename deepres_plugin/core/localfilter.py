"""Local low-pass filtering: every voxel of a map low-passed to its own local resolution.

As RELION's and cryoSPARC's local filters do, the map is filtered at a bank of resolutions
and each voxel takes the two bank members that bracket its local resolution, interpolated
linearly:

* **The filter** is the project's low-pass, Xmipp's raised cosine
  (:func:`.filters.raised_cosine_lowpass`, pass band ending at the resolution, fall-off
  :data:`.filters.RAISED_COSINE_WIDTH` wide), so that a voxel at d A is filtered exactly as
  :func:`.filters.lowpass_filter` filters a whole map at d A.
* **The bank** spans the local resolutions of the filtered region, finest to coarsest, both
  included, in equal steps of spatial frequency (1/d) no larger than :data:`BANK_STEP`
  cycles per voxel. The raised cosine falls off over a fixed width in cycles per voxel, so
  the interpolation error depends on the step in frequency, not on the ratio of
  resolutions: geometric steps of 3 % (at 1 A/px) are 0.012 cycles/voxel at 2.5 A, too
  coarse (4.6 % RMS between members for white noise), and 0.002 at 13 A, finer than
  needed. A constant resolution map gives a bank of one member: exactly the global
  low-pass.
* **Interpolation** is linear in 1/d between the two bracketing members. A blend of two
  raised cosines a step apart is a raised cosine with a slightly softer edge at the
  interpolated frequency; with the step at a quarter of the fall-off width, the filtered
  map differs from the low-pass at the exact resolution, in the worst place between two
  members, by 1.0, 1.1, 1.2, 1.8 and 2.2 % RMS at resolutions of 2.5, 3, 4, 8 and 13
  voxels for a white spectrum (the worst case; a spectrum falling as B = 100 A^2 at
  1 A/px: 0.1, 0.2, 0.5, 1.4, 2.1 %), and not at all at a bank member.
* **Sharpening** (optional) multiplies the spectrum once by ``exp(-B s^2 / 4)`` before the
  bank, held constant beyond the finest member's last non-zero frequency (as
  :func:`.filters.apply_bfactor` with a resolution), so a voxel at d A is
  ``apply_bfactor(map, B, d)``. The B can be estimated from the map: the negative of its
  Guinier B-factor (:func:`.diagnostics.measure_map`, the fit DeepRes reports in every
  prediction), which flattens the Guinier plot as RELION's automatic B does.
* **Outside the region** (voxels without a local resolution, or outside the mask) the map
  is low-passed at the coarsest bank resolution rather than set to zero: the map stays
  continuous across the mask's edge (no step for contouring or later Fourier work), and
  the solvent is no sharper than the worst part of the molecule. Mask the result to zero
  it.

The map is Fourier transformed once; each member is one inverse FFT of a spectrum that is
kept between members (only the shell where the response changes is rewritten), added into
the output only at the voxels of its two brackets (voxels sorted by bracket once). The FFTs
are global, so the map is not cut into slabs; memory besides the two input maps: the
spectrum and its working copy, the inverse FFT's scratch copy, one member, the output and
the sorted frequencies (about seven float32 maps: 307 MB for 224^3, benchmarks/
localfilter_speed.py), plus 8 bytes per filtered voxel (about 26 while they are sorted).
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from typing import Iterator

import numpy as np

from .cluster import available_cpus
from .errors import MapFormatError, ParameterError
from .filters import RAISED_COSINE_WIDTH, bfactor_response, lowpass_zero_frequency, raised_cosine_lowpass
from .fourier import frequency_magnitude, irfft_map, rfft_map
from .mrc import MapGeometry
from .report import (
    DEFAULT_PALETTE,
    FIGURE_DPI,
    check_palette,
    chimerax_script,
    draw_colorbar,
    draw_slice,
    slice_grid,
)

logger = logging.getLogger(__name__)

#: Largest step between bank members, in cycles per voxel: a quarter of the raised cosine's
#: fall-off (module docstring: about 1 % RMS from the exact low-pass at 2.5-3 voxels).
BANK_STEP = RAISED_COSINE_WIDTH / 4
#: What the filter does where there is no local resolution (summary.json, the log).
OUTSIDE_NOTE = ("voxels without a local resolution (outside the mask, or 0 in the resolution map) are "
                "low-passed at the coarsest bank resolution")
#: Grey scale of the before/after slices: these percentiles of each row's values.
GREY_PERCENTILES = (1, 99.9)
#: Where the sharpening B-factor came from (summary.json ``bfactor_source``).
BFACTOR_SOURCES = ("none", "given", "estimated")


@dataclasses.dataclass(frozen=True)
class LocalLowpass:
    """What :func:`local_lowpass` returns.

    Attributes:
        filtered: float32 map [z, y, x] on the input grid.
        bank: resolutions of the bank (A), finest first.
        clamped_voxels: local resolutions finer than Nyquist, filtered at Nyquist.
        seconds: time spent filtering.
    """

    filtered: np.ndarray
    bank: tuple[float, ...]
    clamped_voxels: int
    seconds: float


def bank_resolutions(finest: float, coarsest: float, voxel_size: float, step: float = BANK_STEP) -> np.ndarray:
    """Resolutions (A) of a filter bank from ``finest`` to ``coarsest`` (both included), equally
    spaced in spatial frequency, at most ``step`` cycles per voxel apart; one member when they
    are equal.

    Raises:
        ParameterError: non-positive or reversed resolutions, or a non-positive step.
    """
    if not 0 < finest <= coarsest or not np.isfinite(coarsest):
        raise ParameterError(f"a filter bank needs 0 < finest <= coarsest, got {finest:g}-{coarsest:g} Å")
    if not step > 0:
        raise ParameterError(f"the bank step must be positive, got {step:g} cycles/voxel")
    high, low = voxel_size / finest, voxel_size / coarsest            # cycles per voxel
    members = int(np.ceil((high - low) / step - 1e-9)) + 1 if high > low else 1
    frequencies = np.linspace(high, low, members)
    resolutions = voxel_size / frequencies
    resolutions[0], resolutions[-1] = finest, coarsest                 # exact ends, whatever the rounding
    return resolutions


def bank_position(resolution: np.ndarray, bank: np.ndarray, voxel_size: float) -> np.ndarray:
    """Fractional index into ``bank`` (from :func:`bank_resolutions`) of each resolution (A):
    linear in 1/resolution, 0 at the finest member, ``len(bank) - 1`` at the coarsest."""
    if len(bank) == 1:
        return np.zeros(np.shape(resolution), np.float32)
    high, low = voxel_size / bank[0], voxel_size / bank[-1]
    position = (high - voxel_size / np.asarray(resolution, np.float64)) * ((len(bank) - 1) / (high - low))
    return np.clip(position, 0, len(bank) - 1).astype(np.float32)


def _members(spectrum: np.ndarray, shape: tuple[int, int, int], voxel_size: float, bank: np.ndarray,
             workers: int) -> Iterator[np.ndarray]:
    """The map low-passed at each bank resolution, finest first (one inverse FFT each).

    Members are filtered finest first, so member k differs from member k - 1 only where the
    frequency lies between its cut-off and the previous member's zero: a working spectrum
    is kept and only that shell is rewritten (its points sorted by frequency once). The
    responses are :func:`.filters.raised_cosine_lowpass`'s, value for value.
    """
    frequency = frequency_magnitude(shape).astype(np.float32).ravel()
    order = np.argsort(frequency)
    order = order.astype(np.int32) if order.size < np.iinfo(np.int32).max else order
    sorted_frequency = frequency[order]
    del frequency
    source = spectrum.reshape(-1)
    working = spectrum.copy()
    flat = working.reshape(-1)
    previous_zero = np.inf
    for resolution in bank:
        cutoff = voxel_size / float(resolution)
        # bounds as float32, as the response compares them (a float64 bound would convert the array)
        start = int(np.searchsorted(sorted_frequency, np.float32(cutoff), side="right"))  # below: 1, unchanged
        stop = sorted_frequency.size if np.isinf(previous_zero) else int(
            np.searchsorted(sorted_frequency, np.float32(previous_zero), side="right"))  # beyond: 0 before and now
        shell = order[start:stop]
        response = raised_cosine_lowpass(sorted_frequency[start:stop], cutoff, RAISED_COSINE_WIDTH)
        flat[shell] = source[shell] * response.astype(np.float32)
        previous_zero = cutoff + RAISED_COSINE_WIDTH
        yield irfft_map(working, shape, workers).astype(np.float32, copy=False)


def local_lowpass(volume: np.ndarray, resolution: np.ndarray, voxel_size: float, region: np.ndarray | None = None,
                  bfactor: float = 0.0, workers: int | None = None, step: float = BANK_STEP) -> LocalLowpass:
    """Low-pass every voxel of ``volume`` to its local ``resolution`` (module docstring).

    Args:
        volume: map [z, y, x].
        resolution: local resolution (A) on the same grid; values <= 0 mean no estimate.
        voxel_size: A/px.
        region: voxels to filter to their own resolution (default: resolution > 0); the
            others are low-passed at the coarsest resolution of the region.
        bfactor: global B-factor (A^2) applied first; negative sharpens.
        workers: FFT threads (default: the CPUs this process may use, :func:`.cluster.available_cpus`).
        step: largest bank step, cycles per voxel.

    Returns:
        the filtered map (float32, input grid) and the bank.

    Raises:
        MapFormatError: the two maps differ in shape.
        ParameterError: no voxel with a local resolution in the region, or a sharpening
            beyond floating-point sense (:func:`.sweep.check_sharpening`).
    """
    from .sweep import check_sharpening

    start = time.perf_counter()
    workers = workers or available_cpus()     # scipy's -1 would count the machine's CPUs
    if volume.shape != resolution.shape:
        raise MapFormatError(f"the map {volume.shape} and the resolution map {resolution.shape} differ in shape")
    region = resolution > 0 if region is None else region & (resolution > 0)
    index = np.flatnonzero(region)
    if index.size == 0:
        raise ParameterError("no voxel to filter: the resolution map has no positive value inside the mask")
    index = index.astype(np.int32) if volume.size < np.iinfo(np.int32).max else index
    values = resolution.reshape(-1)[index]
    nyquist = 2.0 * voxel_size
    clamped = int(np.count_nonzero(values < nyquist))
    if clamped:
        logger.warning("%d voxels have a local resolution finer than Nyquist (%.3g Å): filtered at Nyquist",
                       clamped, nyquist)
        values = np.maximum(values, nyquist)
    bank = bank_resolutions(float(values.min()), float(values.max()), voxel_size, step)
    if bfactor:
        check_sharpening([bfactor], float(bank[0]))
    spectrum = rfft_map(volume.astype(np.float32, copy=False), workers)
    if bfactor:
        frequency = frequency_magnitude(volume.shape, voxel_size)
        held = np.minimum(frequency, lowpass_zero_frequency(float(bank[0]), voxel_size))
        del frequency
        spectrum *= bfactor_response(held, bfactor).astype(np.float32)
        del held
    filtered = _accumulate(spectrum, volume.shape, voxel_size, bank, index, values, region, workers)
    seconds = time.perf_counter() - start
    logger.info("local filter: %d voxels at %d resolutions from %.2f to %.2f Å, B = %.1f Å², %.1f s", index.size,
                len(bank), bank[0], bank[-1], bfactor, seconds)
    return LocalLowpass(filtered, tuple(float(r) for r in bank), clamped, seconds)


def _accumulate(spectrum: np.ndarray, shape: tuple[int, int, int], voxel_size: float, bank: np.ndarray,
                index: np.ndarray, values: np.ndarray, region: np.ndarray, workers: int) -> np.ndarray:
    """Sum each member into the voxels of its two brackets, weighted linearly in 1/resolution;
    the voxels outside ``region`` take the coarsest member."""
    members = _members(spectrum, shape, voxel_size, bank, workers)
    if len(bank) == 1:
        return next(members)                                            # a global low-pass, exactly
    position = bank_position(values, bank, voxel_size)
    bracket = np.minimum(position.astype(np.int32), len(bank) - 2).astype(np.uint16)
    order = np.argsort(bracket, kind="stable")                          # radix sort: voxels grouped by bracket
    edges = np.searchsorted(bracket[order], np.arange(len(bank)))
    index, fraction = index[order], (position[order] - bracket[order]).astype(np.float32)
    del position, bracket, order
    filtered = np.zeros(shape, np.float32)
    out = filtered.reshape(-1)
    for k, member in enumerate(members):
        flat = member.reshape(-1)
        if k > 0:                                                       # upper end of bracket k - 1
            lo, hi = edges[k - 1], edges[k]
            out[index[lo:hi]] += fraction[lo:hi] * flat[index[lo:hi]]
        if k < len(bank) - 1:                                           # lower end of bracket k
            lo, hi = edges[k], edges[k + 1]
            out[index[lo:hi]] = (1 - fraction[lo:hi]) * flat[index[lo:hi]]
        else:
            np.copyto(filtered, member, where=~region)
    return filtered


def estimate_sharpening(volume: np.ndarray, voxel_size: float, region: np.ndarray) -> tuple[float, float]:
    """The B-factor (A^2) that flattens the map's Guinier plot, and the map's own B-factor:
    ``(-B_map, B_map)``, B_map from :func:`.diagnostics.measure_map` inside ``region``.

    Raises:
        ParameterError: the map's B-factor cannot be measured (too few Fourier shells with
            signal above the solvent's).
    """
    from .diagnostics import measure_map

    condition = measure_map(volume, voxel_size, region)
    if condition.bfactor is None:
        raise ParameterError("the map's B-factor cannot be measured (too few Fourier shells where the molecule's "
                             "power exceeds the solvent's); give a B-factor instead", option="--bfactor")
    logger.info("map condition: %s", condition.describe())
    return -condition.bfactor, condition.bfactor


def comparison_slices_png(volume: np.ndarray, filtered: np.ndarray, resolution: np.ndarray, region: np.ndarray,
               low: float, high: float, palette: str = DEFAULT_PALETTE) -> bytes:
    """Three orthogonal central slices of the map before (top) and after (middle) the local
    filter, on one grey scale, and the local resolution over the filtered map (bottom), with
    a colour bar in A (the style of :func:`.report.slices_png`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_palette(palette)
    cz, cy, cx = (n // 2 for n in volume.shape)
    cuts = [(f"XY (z = {cz})", np.s_[cz, :, :]), (f"XZ (y = {cy})", np.s_[:, cy, :]),
            (f"YZ (x = {cx})", np.s_[:, :, cx])]
    rows = [("before", volume), ("after", filtered)]
    # each row on its own grey scale (the slices' 1st-99.9th percentiles): a sharpened map keeps its contrast
    scales = [np.percentile(np.concatenate([data[cut].ravel() for _, cut in cuts]), GREY_PERCENTILES)
              for _, data in rows]
    figure = Figure(figsize=(13, 12.5), layout="tight")
    panels, colorbar_axes = slice_grid(figure, len(rows) + 1, len(cuts))     # the bar beside the bottom row
    image = None
    for column, (label, cut) in enumerate(cuts):
        for row, ((title, data), (vmin, vmax)) in enumerate(zip(rows, scales)):
            axes = panels[len(cuts) * row + column]
            axes.imshow(data[cut], cmap="gray", origin="lower", interpolation="nearest", vmin=vmin, vmax=vmax)
            axes.set_title(f"{label}, {title}")
        axes = panels[len(cuts) * len(rows) + column]
        image = draw_slice(axes, filtered[cut], resolution[cut], region[cut], low, high, palette)
        axes.set_title(f"{label}, local resolution")
    for axes in panels:
        axes.set_xticks([])
        axes.set_yticks([])
    draw_colorbar(figure, image, colorbar_axes)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def localfilter_chimerax_script(filtered_file: str, original_file: str, resolution_file: str, geometry: MapGeometry,
                      low: float, high: float, level: float, palette: str = DEFAULT_PALETTE) -> str:
    """ChimeraX commands: the filtered map's surface coloured by local resolution with the key of
    :func:`.report.chimerax_script` (models #1 and #2), and the original map as a hidden mesh
    (#3) at the same level, to compare. File names are relative to the script's folder.

    The filtered map is written with the original's geometry, so ChimeraX places the original
    (from its header) where the script places the filtered map."""
    return "\n".join([
        "# DeepRes local filter: the map low-pass filtered to its local resolution (#1), coloured by it;",
        "# the original map is #3 (volume #3 show)",
        chimerax_script(filtered_file, resolution_file, geometry, low, high, level, palette).rstrip("\n"),
        f"open {json.dumps(original_file)} format mrc",
        f"volume #3 level {level:.6g} style mesh",
        "volume #3 hide",
        "",
    ])


