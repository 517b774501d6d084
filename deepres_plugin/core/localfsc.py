"""Local resolution from two half maps by Fourier shell correlation in a moving window
(BlocRes-like, Cardone, Heymann & Steven, J. Struct. Biol. 2013).

Around each sampled position a spherical Hann window of diameter ``window`` A weighs both
halves inside a box of that edge; the boxes are Fourier transformed and the correlation of
the halves in each shell of the box (width ``1 / window``) is compared with the threshold
(0.143 by default, 0.5 as an option). The resolution is where the curve first falls
below, interpolated linearly between shells. Positions are the masked voxels on a grid of
``stride`` voxels (1: every voxel), and the resolution is interpolated trilinearly in
between. The work is batched: a batch of boxes is cut out of both halves at once
(``sliding_window_view``), windowed, transformed by one batched real FFT and reduced to
shells by one matrix product; Python loops over batches only.

Whitening. The window smears every frequency over about ``2 / window`` (its Fourier main
lobe). On raw halves the strong low-resolution power leaks into the outer shells, and
after sharpening the amplified high-frequency noise leaks into the inner ones, so a
BlocRes-style estimate moves with a global B-factor. Both halves are therefore first
divided, in each one-voxel Fourier shell of the whole map, by the amplitude of their
noise (estimated from the half-map difference): the noise becomes white, the power in a
shell measures the SNR, the global FSC is unchanged, and any radial filter applied to both
halves (a global B-factor, a low-pass) cancels exactly. What stays is the window's own
frequency spread: where the SNR drops steeply (a map low-passed with a sharp filter), the
correlated power below the edge leaks about two window shells beyond it, and the crossing
comes out better than the filter's resolution (by 10-30 % in ``tests/test_localfsc.py``,
less the noisier the map); real FSC curves fall gradually and move less. The Hann window
is used for its low side lobes, which keep that leakage short.

Window. Bsoft's documentation advises a box of at least 5-7 times the expected resolution
(fewer Fourier samples per shell make the FSC noisy; larger boxes average over regions of
different quality). The default diameter is :data:`WINDOW_RESOLUTION_FACTOR` (6) times
the global FSC resolution of the masked halves, at least :data:`MIN_WINDOW_VOXELS` voxels.
The Hann window is 1 at the centre and falls as ``cos^2`` to 0 at the box edge.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import scipy.fft
import scipy.ndimage

from .errors import MaskError, ParameterError
from .fourier import frequency_magnitude
from .fsc import FSC_THRESHOLD, fsc_curve, fsc_mask_weights, fsc_resolution

logger = logging.getLogger(__name__)

#: Default window diameter, as a multiple of the expected (global FSC) resolution.
WINDOW_RESOLUTION_FACTOR = 6.0
#: Smallest window diameter in voxels (fewer shells cannot give a usable curve).
MIN_WINDOW_VOXELS = 12
#: Default distance between evaluated window positions, in voxels (1: every voxel).
DEFAULT_STRIDE = 2
#: Bytes of the float32 boxes of one batch (both halves); the FFTs take about as much again.
DEFAULT_BATCH_BYTES = 64 * 2 ** 20


@dataclasses.dataclass
class LocalFsc:
    """Result of :func:`local_fsc_map`.

    Attributes:
        resolution: float32 map in A on the halves' grid, 0 outside the mask.
        window: window diameter in A (its box edge x voxel size).
        box: window diameter in voxels.
        stride: distance between evaluated positions in voxels.
        positions: number of window positions evaluated.
        seconds: wall time.
    """

    resolution: np.ndarray
    window: float
    box: int
    stride: int
    positions: int
    seconds: float


def window_box(window: float, voxel_size: float) -> int:
    """Even diameter (voxels) of a window of ``window`` A at ``voxel_size`` A/px.

    Raises:
        ParameterError: non-positive window, or one smaller than :data:`MIN_WINDOW_VOXELS`.
    """
    if not np.isfinite(window) or window <= 0:
        raise ParameterError(f"window must be positive, got {window:g} A")
    box = 2 * int(np.ceil(window / voxel_size / 2 - 1e-9))
    if box < MIN_WINDOW_VOXELS:
        raise ParameterError(f"window {window:g} A is {box} voxels at {voxel_size:g} A/px; "
                             f"at least {MIN_WINDOW_VOXELS} voxels are needed")
    return box


def default_window(global_resolution: float, voxel_size: float) -> float:
    """Window diameter (A): :data:`WINDOW_RESOLUTION_FACTOR` x the global resolution, at least
    :data:`MIN_WINDOW_VOXELS` voxels."""
    return max(WINDOW_RESOLUTION_FACTOR * global_resolution, MIN_WINDOW_VOXELS * voxel_size)


def hann_window(box: int) -> np.ndarray:
    """Spherical Hann window on a ``box``^3 grid centred on voxel ``box // 2``:
    ``cos^2(pi r / box)`` for ``r < box / 2``, 0 beyond; normalised to sum 1."""
    r = np.sqrt(np.sum(np.square(np.indices((box,) * 3) - box // 2), axis=0))
    window = np.where(r < box / 2, np.cos(np.pi * r / box) ** 2, 0.0)
    return window / window.sum()


def whiten(half1: np.ndarray, half2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide both halves' spectra by the radial amplitude of their noise, estimated from the
    half-map difference in each one-voxel-wide Fourier shell of the map.

    Afterwards the noise is white, so the power in each shell measures the local SNR; the
    same factor multiplies both halves in each shell, so the global FSC is unchanged and any
    radial filter applied to both halves (a global B-factor, a low-pass) cancels exactly.
    """
    shape = half1.shape
    spectra = [scipy.fft.rfftn(half.astype(np.float32), workers=-1) for half in (half1, half2)]
    shells = np.rint(frequency_magnitude(shape) * max(shape)).astype(np.int64)
    power = np.bincount(shells.ravel(), (np.abs(spectra[0] - spectra[1]) ** 2).ravel())
    count = np.bincount(shells.ravel())
    rms = np.sqrt(np.divide(power, count, out=np.zeros_like(power), where=count > 0))
    scale = np.divide(1.0, rms, out=np.zeros_like(rms), where=rms > 0).astype(np.float32)
    scale[0] = 0.0                                          # no mean: the windows see fluctuations only
    factor = scale[shells]
    return tuple(scipy.fft.irfftn(spectrum * factor, s=shape, workers=-1).astype(np.float32)
                 for spectrum in spectra)


def shell_matrix(box: int) -> np.ndarray:
    """Matrix [rfft coefficients of a ``box``^3 grid, shells 1..box/2] summing the half
    spectrum into shells, with weight 2 for the coefficients that stand for a conjugate
    pair and 1 on the x = 0 and Nyquist planes (so the sums are over the full spectrum)."""
    shells = np.rint(frequency_magnitude((box,) * 3) * box).astype(np.int64).ravel()
    weight = np.full((box, box, box // 2 + 1), 2.0, dtype=np.float32)
    weight[..., 0] = 1.0
    weight[..., -1] = 1.0                                   # box is even: the last plane is Nyquist
    matrix = np.zeros((shells.size, box // 2), dtype=np.float32)
    inside = np.flatnonzero((shells >= 1) & (shells <= box // 2))
    matrix[inside, shells[inside] - 1] = weight.ravel()[inside]
    return matrix


def crossing_resolution(fsc: np.ndarray, box: int, voxel_size: float, threshold: float) -> np.ndarray:
    """Resolution (A) where each row of ``fsc`` (shells 1..box/2) first falls below ``threshold``.

    Shell ``k`` lies at ``k / (box x voxel size)`` 1/A; linear interpolation between shells.
    A curve below the threshold already in shell 1 gives the window diameter, one that never
    falls gives Nyquist (2 x voxel size).
    """
    shell_width = 1.0 / (box * voxel_size)                       # 1/A
    below = fsc < threshold
    first = np.argmax(below, axis=1)                             # column j is shell j + 1
    rows = np.arange(len(fsc))
    c0, c1 = fsc[rows, np.maximum(first - 1, 0)], fsc[rows, first]
    drop = c0 - c1
    step = np.clip(np.divide(c0 - threshold, drop, out=np.zeros_like(drop), where=drop > 0), 0.0, 1.0)
    frequency = np.where(first == 0, shell_width, (first + step) * shell_width)
    frequency = np.where(below.any(axis=1), frequency, 0.5 / voxel_size)
    return (1.0 / frequency).astype(np.float32)


def windowed_fsc(half1: np.ndarray, half2: np.ndarray, centres: np.ndarray, box: int,
                 batch_bytes: int = DEFAULT_BATCH_BYTES, progress: bool = False) -> np.ndarray:
    """FSC per shell (1..box/2) of the windowed halves in the box around each centre.

    Args:
        half1, half2: half maps [z, y, x] (periodic: boxes at the edge wrap around).
        centres: voxel indices [positions, 3].
        box: window diameter in voxels (even).

    Returns:
        float32 array [positions, box / 2].
    """
    half_box = box // 2
    window = hann_window(box).astype(np.float32)
    matrix = shell_matrix(box)
    # after padding by box / 2, the box starting at padded index c has its centre on voxel c
    views = [np.lib.stride_tricks.sliding_window_view(np.pad(half, half_box, mode="wrap"), (box,) * 3)
             for half in (half1, half2)]
    batch = max(1, int(batch_bytes // (2 * 4 * box ** 3)))
    fsc = np.empty((len(centres), box // 2), dtype=np.float32)
    chunks = range(0, len(centres), batch)
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc="local FSC", unit="batch")
    for begin in chunks:
        index = tuple(centres[begin:begin + batch].T)
        f1, f2 = (scipy.fft.rfftn(view[index] * window, axes=(1, 2, 3), workers=-1) for view in views)
        n = len(f1)
        cross = (f1.real * f2.real + f1.imag * f2.imag).reshape(n, -1) @ matrix
        power1 = (f1.real ** 2 + f1.imag ** 2).reshape(n, -1) @ matrix
        power2 = (f2.real ** 2 + f2.imag ** 2).reshape(n, -1) @ matrix
        denominator = np.sqrt(power1 * power2)
        fsc[begin:begin + n] = np.divide(cross, denominator, out=np.zeros_like(cross), where=denominator > 0)
    return fsc


def local_fsc_map(half1: np.ndarray, half2: np.ndarray, voxel_size: float, mask: np.ndarray,
                  window: float, stride: int = DEFAULT_STRIDE, threshold: float = FSC_THRESHOLD,
                  batch_bytes: int = DEFAULT_BATCH_BYTES, progress: bool = False) -> LocalFsc:
    """Local FSC resolution (A) at every voxel of ``mask``.

    Args:
        half1, half2: half maps on the same grid (check with :func:`.fsc.check_half_maps`).
        voxel_size: A/px.
        mask: boolean mask of the voxels to estimate (the windows see the whole map).
        window: window diameter in A (see :func:`default_window`).
        stride: distance in voxels between evaluated positions (1: every voxel).
        threshold: FSC threshold, in (0, 1).

    Returns:
        resolution between Nyquist (2 x voxel size: the FSC never fell) and the window
        diameter (it fell in the first shell), 0 outside the mask.

    Raises:
        MaskError: empty mask or one of another shape.
        ParameterError: bad window, stride or threshold.
    """
    start = time.perf_counter()
    if mask.shape != half1.shape:
        raise MaskError(f"mask shape {mask.shape} differs from half map shape {half1.shape}")
    if not mask.any():
        raise MaskError("the mask is empty")
    if not 0 < threshold < 1:
        raise ParameterError(f"FSC threshold must lie in (0, 1), got {threshold:g}")
    box = window_box(window, voxel_size)
    if int(stride) != stride or not 1 <= stride <= box // 2:
        raise ParameterError(f"stride must be a whole number of voxels from 1 to {box // 2} for a "
                             f"{box}-voxel window, got {stride}")
    stride = int(stride)
    white1, white2 = whiten(half1, half2)
    inside = np.argwhere(mask)
    if stride == 1:
        centres = inside
    else:
        # the corners of every coarse cell holding a masked voxel; the coarse grid wraps like the map
        coarse_shape = tuple(-(-n // stride) for n in mask.shape)
        flags = np.zeros(coarse_shape, dtype=bool)
        cells = inside // stride
        for corner in np.ndindex(2, 2, 2):
            index = (cells + np.array(corner)) % np.array(coarse_shape)
            flags[tuple(index.T)] = True
        centres = np.argwhere(flags) * stride % np.array(mask.shape)
    logger.info("local FSC: %d positions, window %d voxels (%.1f A), stride %d", len(centres), box,
                box * voxel_size, stride)
    fsc = windowed_fsc(white1, white2, centres, box, batch_bytes, progress)
    values = crossing_resolution(fsc, box, voxel_size, threshold)
    resolution = np.zeros(mask.shape, dtype=np.float32)
    if stride == 1:
        resolution[mask] = values
    else:
        coarse = np.zeros(coarse_shape, dtype=np.float32)
        coarse[flags] = values
        resolution[mask] = scipy.ndimage.map_coordinates(coarse, (inside / stride).T, order=1, mode="grid-wrap")
    return LocalFsc(resolution, box * voxel_size, box, stride, len(centres), time.perf_counter() - start)


def global_resolution(half1: np.ndarray, half2: np.ndarray, voxel_size: float, mask: np.ndarray | None,
                      threshold: float = FSC_THRESHOLD) -> float:
    """Global FSC resolution (A) of the halves inside ``mask`` (its edge softened)."""
    weights = fsc_mask_weights(mask, voxel_size) if mask is not None else None
    frequency, fsc = fsc_curve(half1, half2, voxel_size, weights)
    return fsc_resolution(frequency, fsc, threshold)
