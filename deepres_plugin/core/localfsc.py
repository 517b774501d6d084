"""Local resolution from two half maps: the Fourier correlation of the halves measured
locally, by one of two estimators.

``bands`` (the default): local correlation of band-passed halves. Both halves are whitened
(below), cut into narrow frequency bands over the whole map (exact in Fourier space), and
in each band the correlation of the halves is averaged locally with a Gaussian window whose
SD is :data:`WINDOW_WAVELENGTHS` wavelengths of the band:
``rho_b(x) = <B1 B2>_x / sqrt(<B1^2>_x <B2^2>_x)``, the FSC of that band around ``x``; the
averages are weighted by the mask (softened as for the global FSC), so solvent next to the
molecule does not dilute its correlation, as a masked FSC does not count it. The
resolution at ``x`` is the first band where ``rho`` falls below the threshold and stays
below for :data:`SUSTAIN_BANDS` bands, interpolated between bands. Each band is a raised
cosine in ``ln f`` spanning ``[f_b, f_b e^w]`` (``w`` = :data:`BAND_WIDTH_LN`) and is
labelled by its lower edge ``f_b``: a region whose signal stops at ``f`` has no signal in
any band labelled beyond ``f``, so the estimate cannot read finer than the signal's own
limit (the windowed FSC below can). Each band is computed on a grid just fine enough for
the band and the products (Fourier cropping), so the coarse bands cost little.

Domains (``bands``). A narrow band is spread in space (its kernel rings over several
wavelengths) and the window reaches 1.5 wavelengths, so where compact domains of different
resolution lie side by side the coarse ones would see the fine ones' correlated signal and
read too fine. The mask is therefore split into domains: the components of the mask eroded
by :data:`DOMAIN_EROSION_A` (masks that touch only across a narrow solvent gap part), pieces
smaller than :data:`MIN_DOMAIN_VOLUME_A3` joining the nearest domain. Every voxel of the box
belongs to the cell of its nearest domain (the cells meet in the middle of the solvent gaps);
two domains whose cells meet in density rather than solvent (:data:`GAP_POWER_FRACTION`: a
mask that leaves out part of a molecule) are joined again, since a cut through density adds
fine detail of its own. Each domain is estimated on its own: the whitened halves are multiplied by its cell (edge
softened by a Gaussian of :data:`CELL_EDGE_SD_A`), so neither the bands nor the windows see
another domain's density. A mask in one piece (a loose mask, a connected molecule) is one
domain, and the estimate is the plain band correlation. Everything runs in the bounding box
of the mask (and then of each domain) plus :data:`CROP_MARGIN_A`, when that box is small
enough to be worth it (:data:`CROP_LARGEST_FRACTION`).

``window`` (BlocRes-like, Cardone, Heymann & Steven, J. Struct. Biol. 2013): around each
position a spherical Hann window of diameter ``window`` A weighs both whitened halves inside
a box of that edge; the boxes are Fourier transformed and the correlation in each shell of
the box (width ``1 / window``) is compared with the threshold. The window multiplies the
map, so it convolves the spectrum: where the signal drops steeply, correlated power leaks
about two shells beyond the drop and the crossing comes out finer than the signal's limit
(by 10-40 %, the more the larger the resolution compared with the window;
``benchmarks/localfsc_accuracy.py``). The default window is
:data:`WINDOW_RESOLUTION_FACTOR` (6) x the global FSC resolution (Bsoft advises 5-7 x),
at least :data:`MIN_WINDOW_VOXELS` voxels; a window larger than the map is refused.

Whitening (both estimators). Both halves are divided, in each one-voxel Fourier shell of
the whole map, by the amplitude of their noise (estimated from the half-map difference):
the noise becomes white, the power in a shell measures the SNR, the global FSC is
unchanged, and any radial filter applied to both halves (a global B-factor, a low-pass)
cancels exactly, so neither estimate moves with sharpening.

Positions are the masked voxels on a grid of ``stride`` voxels (1: every voxel); the
resolution is interpolated trilinearly in between.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

from .errors import MaskError, ParameterError
from .fourier import frequency_magnitude
from .fsc import FSC_THRESHOLD, fsc_mask_weights

logger = logging.getLogger(__name__)

#: Estimators: local correlation of band-passed halves (default), or FSC in a moving window.
METHODS = ("bands", "window")
DEFAULT_METHOD = METHODS[0]
#: Width of a band in ln(frequency): a raised cosine over [f, f e^0.2] (22 % of f).
BAND_WIDTH_LN = 0.2
#: Where in a band its correlation is placed, in ln(frequency) above the lower edge: 0 (the
#: lower edge) is exact for a region whose signal stops abruptly, half the width (the
#: centroid) for an FSC that falls smoothly; each reads the other 10 % off.
BAND_LABEL_LN = 0.0
#: Distance between consecutive bands' lower edges in ln(frequency) (4 %).
BAND_STEP_LN = float(np.log(1.04))
#: SD of the Gaussian local-averaging window, in wavelengths of the band's lower edge.
WINDOW_WAVELENGTHS = 1.5
#: A crossing counts when the correlation stays below the threshold for this many bands
#: (12 % of frequency): a dip of the protein spectrum near 10 A is not taken for the limit.
SUSTAIN_BANDS = 3
#: The coarsest band's window SD is at most the map's smallest edge over this.
WINDOW_SDS_PER_BOX = 4.0
#: Products of band-passed maps are smoothed by the Gaussian window; beyond the frequency
#: where its transfer falls under this, aliasing of the products is harmless.
GAUSSIAN_TRANSFER_FLOOR = 1e-4
#: Domains are the components of the mask eroded by this (A, at least one voxel): masks that
#: reach 3 A from the atoms of two domains 5 A apart touch in a thin neck, which this parts;
#: a compact molecule stays in one piece.
DOMAIN_EROSION_A = 1.5
#: A piece of the eroded mask smaller than this (A^3; a sphere of 10 A across) is no domain
#: of its own (a side chain, an island of the mask): its voxels join the nearest domain.
MIN_DOMAIN_VOLUME_A3 = 500.0
#: SD (A) of the Gaussian that softens the edge of a domain's cell before it cuts the halves.
CELL_EDGE_SD_A = 1.5
#: Two domains are estimated apart only where solvent parts them: the correlated power of the
#: whitened halves (smoothed by a Gaussian of :data:`GAP_POWER_SD_A`) where their cells meet
#: must stay under this fraction of its mean inside the weaker domain's mask; otherwise the
#: cut would cross density (a mask that leaves out part of a molecule) and they stay together.
GAP_POWER_FRACTION = 0.25
GAP_POWER_SD_A = 2.0
#: Margin (A) around the bounding box of the mask, and of each domain, when cropping: more
#: than the soft mask's edge and the cell's, so the box faces lie in solvent.
CROP_MARGIN_A = 12.0
#: The map is cropped only when the box keeps at most this fraction of its voxels: a face of
#: the box that cuts density (a mask on part of a molecule) adds edges that read as fine
#: detail, so a crop must pay for that risk in time and memory.
CROP_LARGEST_FRACTION = 0.5
#: Planes per slab where a whole-map operation would otherwise copy the map several times.
SLAB_PLANES = 16

#: Default window diameter of the ``window`` estimator, as a multiple of the global FSC resolution.
WINDOW_RESOLUTION_FACTOR = 6.0
#: Smallest window diameter in voxels (fewer shells cannot give a usable curve).
MIN_WINDOW_VOXELS = 12
#: Default distance between evaluated positions, in voxels (1: every voxel).
DEFAULT_STRIDE = 2
#: Bytes of the float32 boxes of one batch (both halves); the FFTs take about as much again.
DEFAULT_BATCH_BYTES = 64 * 2 ** 20


@dataclasses.dataclass
class LocalFsc:
    """Result of :func:`local_resolution_map`.

    Attributes:
        resolution: float32 map in A on the halves' grid, 0 outside the mask.
        method: ``bands`` or ``window``.
        stride: distance between evaluated positions in voxels.
        positions: number of positions evaluated.
        seconds: wall time.
        window: window diameter in A (``window``), or the window SD in wavelengths (``bands``).
        box: window diameter in voxels (``window`` only).
        coarsest: coarsest value the estimator can report (A).
        finest: finest value it can report (A).
        domains: domains estimated apart (``bands``; 1: the mask is one piece).
    """

    resolution: np.ndarray
    method: str
    stride: int
    positions: int
    seconds: float
    window: float
    box: int | None
    coarsest: float
    finest: float
    domains: int = 1

    def summary(self) -> dict:
        """The settings and bounds as ``summary.json`` keys."""
        settings = {"localfsc_method": self.method, "localfsc_description": self.describe(),
                    "stride_voxels": self.stride, "positions": self.positions,
                    "coarsest_A": round(self.coarsest, 3), "finest_A": round(self.finest, 3)}
        if self.method == "window":
            settings.update(window_A=self.window, window_voxels=self.box)
        else:
            settings.update(window_wavelengths=self.window, band_width_ln=BAND_WIDTH_LN,
                            sustain_bands=SUSTAIN_BANDS, domains=self.domains)
        return settings

    def describe(self) -> str:
        """One phrase for logs and summaries, in A."""
        if self.method == "window":
            return f"FSC in a moving {self.window:.1f} \u00c5 window"
        apart = f", {self.domains} domains apart" if self.domains > 1 else ""
        return (f"local correlation of band-passed halves (window SD {self.window:g} wavelengths, "
                f"{self.finest:.2f}-{self.coarsest:.1f} \u00c5{apart})")


def window_box(window: float, voxel_size: float, shape: tuple[int, ...] | None = None) -> int:
    """Even diameter (voxels) of a window of ``window`` A at ``voxel_size`` A/px.

    Raises:
        ParameterError: non-positive window, one smaller than :data:`MIN_WINDOW_VOXELS`,
            or one larger than the map's smallest edge (when ``shape`` is given).
    """
    if not np.isfinite(window) or window <= 0:
        raise ParameterError(f"window must be positive, got {window:g} Å")
    box = 2 * int(np.ceil(window / voxel_size / 2 - 1e-9))
    if box < MIN_WINDOW_VOXELS:
        raise ParameterError(f"window {window:g} Å is {box} voxels at {voxel_size:g} Å/px; "
                             f"at least {MIN_WINDOW_VOXELS} voxels are needed")
    if shape is not None and box > min(shape):
        raise ParameterError(f"window {window:g} Å ({box} voxels) is larger than the map "
                             f"({min(shape)} voxels, {min(shape) * voxel_size:g} Å, on its smallest edge)")
    return box


def default_window(global_resolution: float, voxel_size: float, shape: tuple[int, ...] | None = None) -> float:
    """Window diameter (A): :data:`WINDOW_RESOLUTION_FACTOR` x the global resolution, at least
    :data:`MIN_WINDOW_VOXELS` voxels and at most the map's smallest (even) edge."""
    window = max(WINDOW_RESOLUTION_FACTOR * global_resolution, MIN_WINDOW_VOXELS * voxel_size)
    if shape is not None:
        window = min(window, 2 * (min(shape) // 2) * voxel_size)
    return window


def hann_window(box: int) -> np.ndarray:
    """Spherical Hann window on a ``box``^3 grid centred on voxel ``box // 2``:
    ``cos^2(pi r / box)`` for ``r < box / 2``, 0 beyond; normalised to sum 1."""
    r = np.sqrt(np.sum(np.square(np.indices((box,) * 3) - box // 2), axis=0))
    window = np.where(r < box / 2, np.cos(np.pi * r / box) ** 2, 0.0)
    return window / window.sum()


def whitened_spectra(half1: np.ndarray, half2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rfft spectra of both halves divided by the radial amplitude of their noise (estimated
    from the half-map difference in each one-voxel-wide Fourier shell of the map); the
    mean (zero frequency) is removed."""
    shape = half1.shape
    # float64: after sharpening (B = -100 A^2 multiplies Nyquist by 500) float32 transforms
    # lose the low shells' precision, and the estimates would move with the B-factor
    spectra = [scipy.fft.rfftn(half.astype(np.float64), workers=-1) for half in (half1, half2)]
    radius = frequency_magnitude(shape) * max(shape)                        # in shells
    shells = np.rint(radius).astype(np.int64)
    size = int(shells.max()) + 1
    power, count = np.zeros(size), np.zeros(size)
    for z in range(0, shape[0], SLAB_PLANES):              # slabs: no whole-spectrum temporaries
        slab = shells[z:z + SLAB_PLANES].ravel()
        power += np.bincount(slab, (np.abs(spectra[0][z:z + SLAB_PLANES] - spectra[1][z:z + SLAB_PLANES]) ** 2).ravel(),
                             minlength=size)
        count += np.bincount(slab, minlength=size)
    rms = np.sqrt(np.divide(power, count, out=np.zeros_like(power), where=count > 0))
    # the noise amplitude between shell centres is interpolated linearly, so that a smooth
    # radial filter of both halves (a B-factor) cancels within a shell too, not only on average
    centres = np.flatnonzero(rms > 0)
    factor = np.interp(radius, centres, rms[centres])       # the noise amplitude, then its inverse
    del radius
    np.divide(1.0, factor, out=factor, where=factor > 0)
    factor[shells == 0] = 0.0                               # no mean: the windows see fluctuations only
    del shells
    whitened = []
    while spectra:
        spectrum = spectra.pop(0)
        spectrum *= factor
        whitened.append(spectrum.astype(np.complex64))
        del spectrum
    return tuple(whitened)


def whiten(half1: np.ndarray, half2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both halves with their noise made white (see :func:`whitened_spectra`).

    Afterwards the power in each shell measures the SNR; the same factor multiplies both
    halves in each shell, so the global FSC is unchanged and any radial filter applied to
    both halves (a global B-factor, a low-pass) cancels exactly.
    """
    return tuple(scipy.fft.irfftn(spectrum, s=half1.shape, workers=-1).astype(np.float32)
                 for spectrum in whitened_spectra(half1, half2))


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
        box: window diameter in voxels (even, at most the map's smallest edge).

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
        from .progress import progress_bar
        chunks = progress_bar(chunks, desc="local FSC", unit="batch")
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


@dataclasses.dataclass
class _Positions:
    """The evaluated positions of a mask on a ``stride`` grid, and how to spread their values."""

    mask: np.ndarray
    stride: int
    centres: np.ndarray                       # voxel indices [positions, 3]
    flags: np.ndarray | None = None           # the coarse grid's evaluated cells (stride > 1)

    @classmethod
    def of(cls, mask: np.ndarray, stride: int) -> "_Positions":
        if stride == 1:
            return cls(mask, 1, np.argwhere(mask))
        # the corners of every coarse cell holding a masked voxel; the coarse grid wraps like the map
        coarse_shape = tuple(-(-n // stride) for n in mask.shape)
        padded = np.zeros(tuple(c * stride for c in coarse_shape), dtype=bool)
        padded[tuple(slice(0, n) for n in mask.shape)] = mask
        occupied = padded.reshape(coarse_shape[0], stride, coarse_shape[1], stride, coarse_shape[2],
                                  stride).any(axis=(1, 3, 5))
        flags = np.zeros(coarse_shape, dtype=bool)
        for corner in np.ndindex(2, 2, 2):
            flags |= np.roll(occupied, corner, axis=(0, 1, 2))
        return cls(mask, stride, np.argwhere(flags) * stride % np.array(mask.shape), flags)

    def spread(self, values: np.ndarray) -> np.ndarray:
        """A map with ``values`` (one per centre) at every masked voxel, trilinear in between."""
        resolution = np.zeros(self.mask.shape, dtype=np.float32)
        if self.flags is None:
            resolution[self.mask] = values
            return resolution
        coarse = np.zeros(self.flags.shape, dtype=np.float32)
        coarse[self.flags] = values
        for z in range(0, len(self.mask), SLAB_PLANES):       # slabs: the voxel indices take 24 bytes each
            inside = np.argwhere(self.mask[z:z + SLAB_PLANES]) + np.array([z, 0, 0])
            resolution[z:z + SLAB_PLANES][self.mask[z:z + SLAB_PLANES]] = scipy.ndimage.map_coordinates(
                coarse, (inside / self.stride).T, order=1, mode="grid-wrap")
        return resolution


def _check(half1: np.ndarray, mask: np.ndarray, threshold: float) -> None:
    if mask.shape != half1.shape:
        raise MaskError(f"mask shape {mask.shape} differs from half map shape {half1.shape}")
    if not mask.any():
        raise MaskError("the mask is empty")
    if not 0 < threshold < 1:
        raise ParameterError(f"FSC threshold must lie in (0, 1), got {threshold:g}")


def _check_stride(stride, largest: int) -> int:
    if int(stride) != stride or not 1 <= stride <= largest:
        raise ParameterError(f"stride must be a whole number of voxels from 1 to {largest}, got {stride}")
    return int(stride)


def local_fsc_map(half1: np.ndarray, half2: np.ndarray, voxel_size: float, mask: np.ndarray,
                  window: float, stride: int = DEFAULT_STRIDE, threshold: float = FSC_THRESHOLD,
                  batch_bytes: int = DEFAULT_BATCH_BYTES, progress: bool = False) -> LocalFsc:
    """Local FSC resolution (A) at every voxel of ``mask``, in a moving window (``window`` method).

    Args:
        half1, half2: half maps on the same grid (check with :func:`.fsc.check_half_maps`).
        voxel_size: A/px.
        mask: boolean mask of the voxels to estimate (the windows see the whole map).
        window: window diameter in A (see :func:`default_window`), at most the map.
        stride: distance in voxels between evaluated positions (1: every voxel).
        threshold: FSC threshold, in (0, 1).

    Returns:
        resolution between Nyquist (2 x voxel size: the FSC never fell) and the window
        diameter (it fell in the first shell), 0 outside the mask.

    Raises:
        MaskError: empty mask or one of another shape.
        ParameterError: bad window (too small, or larger than the map), stride or threshold.
    """
    start = time.perf_counter()
    _check(half1, mask, threshold)
    box = window_box(window, voxel_size, half1.shape)
    stride = _check_stride(stride, box // 2)
    white1, white2 = whiten(half1, half2)
    positions = _Positions.of(mask, stride)
    logger.info("local FSC: %d positions, window %d voxels (%.1f Å), stride %d", len(positions.centres), box,
                box * voxel_size, stride)
    fsc = windowed_fsc(white1, white2, positions.centres, box, batch_bytes, progress)
    values = crossing_resolution(fsc, box, voxel_size, threshold)
    return LocalFsc(positions.spread(values), "window", stride, len(positions.centres), time.perf_counter() - start,
                    box * voxel_size, box, box * voxel_size, 2.0 * voxel_size)


def band_edges(voxel_size: float, shape: tuple[int, ...], finest: float | None = None) -> np.ndarray:
    """Lower edges (1/A) of the bands of :func:`band_correlation_map`: from the coarsest band
    whose window fits the map (SD at most the smallest edge / :data:`WINDOW_SDS_PER_BOX`) to
    the last band whose upper edge stays within Nyquist and whose lower edge within
    ``1 / finest``; :data:`BAND_STEP_LN` apart.

    Raises:
        ParameterError: the map is too small for one band.
    """
    edge = min(shape) * voxel_size                                   # A
    lowest = WINDOW_WAVELENGTHS * WINDOW_SDS_PER_BOX / edge
    highest = 0.5 / voxel_size / np.exp(BAND_WIDTH_LN)
    if finest is not None:
        highest = min(highest, 1.0 / finest)
    if highest <= lowest:
        raise ParameterError(f"the map ({min(shape)} voxels, {edge:g} Å on its smallest edge) is too small "
                             f"for a local resolution coarser than {1.0 / highest:.2f} Å")
    count = int(np.floor(np.log(highest / lowest) / BAND_STEP_LN)) + 1
    return lowest * np.exp(BAND_STEP_LN * np.arange(count))


def _band_grid(shape: tuple[int, ...], voxel_size: float, top: float, window_sd: float) -> tuple[int, ...]:
    """Grid (voxels per axis over the same box) on which a band reaching ``top`` (1/A) and its
    products, smoothed by a Gaussian of SD ``window_sd`` (A), are computed without harmful
    aliasing: Nyquist at least ``top`` + half the frequency where the Gaussian's transfer
    falls under :data:`GAUSSIAN_TRANSFER_FLOOR`."""
    reach = np.sqrt(np.log(1.0 / GAUSSIAN_TRANSFER_FLOOR) / 2.0) / (np.pi * window_sd)   # 1/A
    nyquist = top + reach / 2.0
    return tuple(_even_fast_length(max(8, 2 * int(np.ceil(nyquist * n * voxel_size)))) for n in shape)


def _even_fast_length(n: int) -> int:
    """The smallest even length >= ``n`` that the FFT handles fast (no large prime factor:
    a length of 2 x 43 takes 3-6 times as long as 96)."""
    length = scipy.fft.next_fast_len(n, real=True)
    while length % 2:
        length = scipy.fft.next_fast_len(length + 1, real=True)
    return length


def _cropped_band(spectrum: np.ndarray, shape: tuple[int, ...], grid: tuple[int, ...], voxel_size: float,
                  low: float) -> np.ndarray:
    """The band [low, low e^w] (1/A) of a map's rfft ``spectrum`` (real-space ``shape``),
    weighted by the band's raised cosine in ln f, as an rfft spectrum of a ``grid`` map over
    the same box (Fourier cropping or padding: frequencies k / box edge are kept)."""
    top = low * np.exp(BAND_WIDTH_LN)
    reach = [int(np.floor(top * n * voxel_size)) for n in shape]            # highest |k| per axis
    index = [np.r_[0:k + 1, -k:0] for k in reach[:2]] + [np.arange(reach[2] + 1)]
    block = spectrum[np.ix_(index[0] % shape[0], index[1] % shape[1], index[2])]
    u = np.sqrt(sum(np.square(i / (n * voxel_size)).reshape([-1 if a == j else 1 for a in range(3)])
                    for j, (i, n) in enumerate(zip(index, shape))))              # frequency (1/A)
    # in place from here: for the finest bands the block is nearly the whole spectrum
    np.maximum(u, 1e-12, out=u)
    u /= low
    np.log(u, out=u)
    u /= BAND_WIDTH_LN                                                         # ln(f / low) / w
    inside = (u > 0) & (u < 1)
    u *= np.pi
    np.sin(u, out=u)
    np.square(u, out=u)
    u[~inside] = 0.0
    block *= u.astype(np.float32)                                              # the raised cosine in ln f
    del u, inside
    band = np.zeros((grid[0], grid[1], grid[2] // 2 + 1), dtype=np.complex64)
    band[np.ix_(index[0] % grid[0], index[1] % grid[1], index[2])] = block
    return band


def _gaussian_transfer(grid: tuple[int, ...], spacing: tuple[float, ...], sd: float) -> np.ndarray:
    """rfft-grid transfer of a Gaussian of SD ``sd`` A on a ``grid`` with ``spacing`` A per axis."""
    fz, fy = (scipy.fft.fftfreq(n, d) for n, d in zip(grid[:2], spacing[:2]))
    fx = scipy.fft.rfftfreq(grid[2], spacing[2])
    squared = fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2
    return np.exp(-2.0 * (np.pi * sd) ** 2 * squared).astype(np.float32)


def _cropped(spectrum: np.ndarray, shape: tuple[int, ...], grid: tuple[int, ...]) -> np.ndarray:
    """A map on a coarser ``grid`` over the same box: its rfft ``spectrum`` cropped to the
    grid's Nyquist (a low-pass), back in real space."""
    reach = [min(n, m) // 2 - 1 for n, m in zip(shape, grid)]
    index = [np.r_[0:k + 1, -k:0] for k in reach[:2]] + [np.arange(reach[2] + 1)]
    block = np.zeros((grid[0], grid[1], grid[2] // 2 + 1), dtype=np.complex64)
    block[np.ix_(index[0] % grid[0], index[1] % grid[1], index[2])] = \
        spectrum[np.ix_(index[0] % shape[0], index[1] % shape[1], index[2])]
    scale = np.prod(grid) / np.prod(shape)
    cropped = scipy.fft.irfftn(block, s=grid, workers=-1)
    cropped *= scale
    return cropped


def band_correlations(spectrum1: np.ndarray, spectrum2: np.ndarray, shape: tuple[int, ...], voxel_size: float,
                      centres: np.ndarray, low: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Local correlation of the halves in the band with lower edge ``low`` (1/A) at each of
    ``centres`` (voxel indices [positions, 3]): ``<B1 B2> / sqrt(<B1^2> <B2^2>)`` with the
    Gaussian window of :data:`WINDOW_WAVELENGTHS` wavelengths, times the mask ``weights``
    (given as the rfft of the soft mask) when given: like the masked global FSC, solvent
    outside the mask does not dilute the correlation of the molecule next to it."""
    sd = WINDOW_WAVELENGTHS / low                                              # A
    grid = _band_grid(shape, voxel_size, low * np.exp(BAND_WIDTH_LN), sd)
    spacing = tuple(n * voxel_size / m for n, m in zip(shape, grid))
    mask = 1.0
    if weights is not None:                          # before the bands: the finest grids are large
        mask = _cropped(weights, shape, grid)
        np.maximum(mask, 0.0, out=mask)              # the low-passed soft mask, never negative
    bands = [scipy.fft.irfftn(_cropped_band(s, shape, grid, voxel_size, low), s=grid, workers=-1)
             for s in (spectrum1, spectrum2)]
    transfer = _gaussian_transfer(grid, spacing, sd)
    coordinates = (centres * (np.array(grid) / np.array(shape))).T
    local = []
    for first, second in ((0, 1), (0, 0), (1, 1)):            # one product at a time: the finest grids are large
        product = bands[first] * bands[second]
        product *= mask
        spectrum = scipy.fft.rfftn(product, workers=-1)
        del product
        spectrum *= transfer
        smooth = scipy.fft.irfftn(spectrum, s=grid, workers=-1)
        del spectrum
        local.append(scipy.ndimage.map_coordinates(smooth, coordinates, order=1, mode="grid-wrap"))
    denominator = np.sqrt(np.maximum(local[1], 0.0) * np.maximum(local[2], 0.0))
    return np.divide(local[0], denominator, out=np.zeros_like(local[0]), where=denominator > 0).astype(np.float32)


def sustained_runs(below: np.ndarray, sustain: int = SUSTAIN_BANDS) -> np.ndarray:
    """[bands - sustain + 1, positions]: True where ``below`` holds for ``sustain`` bands in a row
    from that band on."""
    return np.all(np.lib.stride_tricks.sliding_window_view(below, sustain, axis=0), axis=-1)


def sustained_crossing(correlations: np.ndarray, edges: np.ndarray, threshold: float,
                       sustain: int = SUSTAIN_BANDS) -> np.ndarray:
    """Resolution (A) per column of ``correlations`` [bands, positions]: the first band where
    the correlation falls below ``threshold`` and stays below for ``sustain`` bands (bands
    beyond the last count as below), interpolated in ln f between that band's lower edge and
    the previous one's. Below already in the first band: the first edge; never below: the
    last edge."""
    below = correlations < threshold
    run = sustained_runs(np.concatenate([below, np.ones((sustain - 1, below.shape[1]), bool)]), sustain)
    crossed = run.any(axis=0)
    first = np.argmax(run, axis=0)
    columns = np.arange(below.shape[1])
    c0 = correlations[np.maximum(first - 1, 0), columns]
    c1 = correlations[first, columns]
    drop = c0 - c1
    step = np.clip(np.divide(c0 - threshold, drop, out=np.zeros_like(drop), where=drop > 0), 0.0, 1.0)
    log_edges = np.log(edges)
    log_frequency = log_edges[np.maximum(first - 1, 0)] + step * (log_edges[first] - log_edges[np.maximum(first - 1, 0)])
    frequency = np.where(first == 0, edges[0], np.exp(log_frequency))
    frequency = np.where(crossed, frequency, edges[-1])
    return (1.0 / frequency).astype(np.float32)


def crop_box(mask: np.ndarray, voxel_size: float, margin: float = CROP_MARGIN_A) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask`` grown by ``margin`` A on every side, each edge
    then grown to a fast FFT length (within the map, shifted inwards at its faces)."""
    pad = int(np.ceil(margin / voxel_size))
    box = []
    for axis, n in enumerate(mask.shape):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        start, stop = max(0, int(hit[0]) - pad), min(n, int(hit[-1]) + 1 + pad)
        size = min(n, scipy.fft.next_fast_len(stop - start, real=True))
        start = int(np.clip(start - (size - (stop - start)) // 2, 0, n - size))
        box.append(slice(start, start + size))
    return tuple(box)


def _ball(radius: float) -> np.ndarray:
    """Boolean ball of ``radius`` voxels (at least the 6 face neighbours) for morphology."""
    reach = max(1, int(np.floor(radius)))
    offsets = np.indices((2 * reach + 1,) * 3) - reach
    return np.sum(np.square(offsets), axis=0) <= max(radius, 1.0) ** 2


def domain_cells(mask: np.ndarray, voxel_size: float) -> tuple[np.ndarray | None, int]:
    """The mask's domains (components of the mask eroded by :data:`DOMAIN_EROSION_A`, at
    least one voxel, of :data:`MIN_DOMAIN_VOLUME_A3` or more) and the cell of every voxel
    (the nearest domain's index, 0 to count - 1).

    Returns:
        int16 cells on the mask's grid and the number of domains; ``(None, 1)`` when the
        mask is one domain (or none survives the erosion).
    """
    cores = scipy.ndimage.binary_erosion(mask, _ball(max(DOMAIN_EROSION_A / voxel_size, 1.0)))
    labels, count = scipy.ndimage.label(cores)
    sizes = np.bincount(labels.ravel()) * voxel_size ** 3
    kept = np.flatnonzero(sizes >= MIN_DOMAIN_VOLUME_A3)
    kept = kept[kept > 0]
    if len(kept) <= 1:
        return None, 1
    index = np.full(count + 1, -1, dtype=np.int16)
    index[kept] = np.arange(len(kept))
    domains = index[labels]
    del labels, cores
    # every voxel takes the domain of its nearest domain voxel (the cells of a Voronoi partition)
    nearest = scipy.ndimage.distance_transform_edt(domains < 0, return_distances=False, return_indices=True)
    cells = np.empty_like(domains)
    for z in range(0, len(cells), SLAB_PLANES):              # slabs: indexing makes 64-bit copies of the indices
        cells[z:z + SLAB_PLANES] = domains[tuple(axis[z:z + SLAB_PLANES] for axis in nearest)]
    return cells, len(kept)


def join_across_density(cells: np.ndarray, count: int, mask: np.ndarray, white1: np.ndarray,
                         white2: np.ndarray, voxel_size: float) -> tuple[np.ndarray, int]:
    """The cells of :func:`domain_cells` with every two neighbouring domains joined whose cells
    meet in density rather than solvent (:data:`GAP_POWER_FRACTION`), from the whitened halves.

    Returns:
        the new cells (0 to count - 1) and their count.
    """
    power = scipy.ndimage.gaussian_filter(white1 * white2, GAP_POWER_SD_A / voxel_size)
    inside = np.bincount(cells[mask], power[mask], minlength=count) / np.maximum(
        np.bincount(cells[mask], minlength=count), 1)
    pairs, values = [], []
    for axis in range(cells.ndim):               # faces between voxels of different cells
        c, p = np.moveaxis(cells, axis, 0), np.moveaxis(power, axis, 0)
        differ = c[1:] != c[:-1]
        low, high = np.minimum(c[1:], c[:-1])[differ], np.maximum(c[1:], c[:-1])[differ]
        pairs.append(low.astype(np.int64) * count + high)
        values.append(0.5 * (p[1:][differ] + p[:-1][differ]))
    pair, value = np.concatenate(pairs), np.concatenate(values)
    faces = np.bincount(pair, minlength=count * count)
    boundary = np.bincount(pair, value, minlength=count * count) / np.maximum(faces, 1)
    reference = np.minimum.outer(inside, inside).ravel()
    joined = np.flatnonzero((faces > 0) & (boundary > GAP_POWER_FRACTION * reference))
    logger.debug("domains: boundary power / weaker domain's %s", np.round(boundary[faces > 0] /
                                                                            reference[faces > 0], 3))
    graph = scipy.sparse.coo_matrix((np.ones(len(joined)), (joined // count, joined % count)), shape=(count, count))
    merged, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int16)[cells], int(merged)


def _band_resolutions(spectra: tuple[np.ndarray, np.ndarray], shape: tuple[int, ...], voxel_size: float,
                      mask: np.ndarray, edges: np.ndarray, stride: int, threshold: float,
                      bar=None) -> tuple[np.ndarray, int]:
    """Resolution (A) at the voxels of ``mask`` (0 elsewhere) by the band correlations of two
    whitened rfft ``spectra`` of maps of ``shape``, bands with lower edges ``edges``; the
    number of positions evaluated."""
    weights = scipy.fft.rfftn(fsc_mask_weights(mask, voxel_size), workers=-1)
    positions = _Positions.of(mask, stride)
    crossing = StreamingCrossing(len(positions.centres), threshold)
    for low in edges:
        crossing.add(band_correlations(*spectra, shape, voxel_size, positions.centres, low, weights))
        if bar is not None:
            bar.update()
        if crossing.done:                                         # the finer bands cannot change anything
            break
    values = crossing.resolution(edges * np.exp(BAND_LABEL_LN))
    return positions.spread(values), len(positions.centres)


def band_correlation_map(half1: np.ndarray, half2: np.ndarray, voxel_size: float, mask: np.ndarray,
                         stride: int = DEFAULT_STRIDE, threshold: float = FSC_THRESHOLD,
                         finest: float | None = None, progress: bool = False, domains: bool = True) -> LocalFsc:
    """Local resolution (A) at every voxel of ``mask`` by local correlation of band-passed
    halves (``bands`` method; see the module's docstring).

    Args:
        half1, half2: half maps on the same grid.
        voxel_size: A/px.
        mask: boolean mask of the voxels to estimate.
        stride: distance in voxels between evaluated positions (1: every voxel).
        threshold: correlation threshold, in (0, 1).
        finest: finest resolution (A) to test, e.g. the halves' information limit
            (:func:`.fsc.information_limit`); default Nyquist.
        domains: estimate each domain of the mask on its own (:func:`domain_cells`); False
            correlates across the whole mask, domains together (the earlier estimate).

    Returns:
        resolution between the finest band's lower edge and the coarsest's, 0 outside the mask.

    Raises:
        MaskError: empty mask or one of another shape.
        ParameterError: bad stride or threshold, or a map too small for one band.
    """
    start = time.perf_counter()
    _check(half1, mask, threshold)
    stride = _check_stride(stride, max(1, min(half1.shape) // 4))
    edges = band_edges(voxel_size, half1.shape, finest)
    box = crop_box(mask, voxel_size)
    if np.prod([b.stop - b.start for b in box]) > CROP_LARGEST_FRACTION * mask.size:
        box = tuple(slice(0, n) for n in mask.shape)
    mask_box = mask[box]
    shape = mask_box.shape
    cells, count = domain_cells(mask_box, voxel_size) if domains else (None, 1)
    spectra = whitened_spectra(half1[box], half2[box])
    if cells is not None:
        whites = [scipy.fft.irfftn(spectrum, s=shape, workers=-1).astype(np.float32) for spectrum in spectra]
        cells, count = join_across_density(cells, count, mask_box, *whites, voxel_size)
        if count == 1:
            cells = whites = None
        else:
            spectra = None                                        # each domain transforms its own cut
    logger.info("local resolution by band correlation: %d masked voxels in a %s box, %d domain(s), %d bands from "
                "%.1f to %.2f Å, stride %d", int(mask_box.sum()), "x".join(map(str, shape)), count, len(edges),
                1 / edges[0], 1 / edges[-1], stride)
    bar = None
    if progress:
        from .progress import progress_bar
        bar = progress_bar(total=count * len(edges), desc="local FSC", unit="band")
    resolution = np.zeros(half1.shape, dtype=np.float32)
    if cells is None:
        resolution[box], positions = _band_resolutions(spectra, shape, voxel_size, mask_box, edges, stride,
                                                       threshold, bar)
    else:
        region, positions = resolution[box], 0                    # a view: filled domain by domain
        for domain in range(count):
            inside = mask_box & (cells == domain)
            if not inside.any():
                continue
            sub = crop_box(inside, voxel_size)
            cut = scipy.ndimage.gaussian_filter((cells[sub] == domain).astype(np.float32), CELL_EDGE_SD_A / voxel_size)
            sub_spectra = tuple(scipy.fft.rfftn(white[sub] * cut, workers=-1).astype(np.complex64) for white in whites)
            values, evaluated = _band_resolutions(sub_spectra, cut.shape, voxel_size, inside[sub], edges, stride,
                                                  threshold, bar)
            region[sub][inside[sub]] = values[inside[sub]]
            positions += evaluated
    if bar is not None:
        bar.close()                          # a loop left early leaves its bar open
    labels = edges * np.exp(BAND_LABEL_LN)
    return LocalFsc(resolution, "bands", stride, positions, time.perf_counter() - start, WINDOW_WAVELENGTHS, None,
                    float(1.0 / labels[0]), float(1.0 / labels[-1]), count)


class StreamingCrossing:
    """:func:`sustained_crossing` fed one band at a time: only the last ``sustain`` + 1 bands'
    correlations are kept (a few values per position instead of one per band and position:
    1.3 GB for a 400^3 map with most of it masked)."""

    def __init__(self, positions: int, threshold: float, sustain: int = SUSTAIN_BANDS):
        self.threshold, self.sustain, self.bands = threshold, sustain, 0
        self.recent = np.zeros((sustain + 1, positions), dtype=np.float32)   # band b in row b % (sustain + 1)
        self.run = np.zeros(positions, dtype=np.int32)                        # bands below in a row so far
        self.first = np.full(positions, -1, dtype=np.int64)                   # start of the first sustained run
        self.before = np.zeros(positions, dtype=np.float32)                   # correlation in the band before it
        self.at = np.zeros(positions, dtype=np.float32)                       # and in its first band

    def add(self, correlation: np.ndarray) -> None:
        """The next band's correlation at every position."""
        self.recent[self.bands % (self.sustain + 1)] = correlation
        self.run = np.where(correlation < self.threshold, self.run + 1, 0)
        self._found((self.first < 0) & (self.run >= self.sustain), self.bands - self.sustain + 1)
        self.bands += 1

    @property
    def done(self) -> bool:
        """Every position has a sustained crossing: the finer bands cannot change anything."""
        return bool(np.all(self.first >= 0))

    def _found(self, which: np.ndarray, first) -> None:
        index = np.flatnonzero(which)
        first = np.broadcast_to(first, which.shape)[index]
        self.first[index] = first
        self.at[index] = self.recent[first % (self.sustain + 1), index]
        self.before[index] = self.recent[np.maximum(first - 1, 0) % (self.sustain + 1), index]

    def resolution(self, edges: np.ndarray) -> np.ndarray:
        """Resolution (A) per position, as :func:`sustained_crossing` of the bands added, whose
        lower edges (or labels) are ``edges[:bands]`` (1/A): bands beyond the last count as below."""
        edges = edges[:self.bands]
        self._found((self.first < 0) & (self.run > 0), self.bands - self.run)
        crossed, first = self.first >= 0, np.maximum(self.first, 0)
        drop = self.before - self.at
        step = np.clip(np.divide(self.before - self.threshold, drop, out=np.zeros_like(drop), where=drop > 0),
                       0.0, 1.0)
        log_edges = np.log(edges)
        previous = np.maximum(first - 1, 0)
        log_frequency = log_edges[previous] + step * (log_edges[first] - log_edges[previous])
        frequency = np.where(first == 0, edges[0], np.exp(log_frequency))
        frequency = np.where(crossed, frequency, edges[-1])
        return (1.0 / frequency).astype(np.float32)


def local_resolution_map(half1: np.ndarray, half2: np.ndarray, voxel_size: float, mask: np.ndarray,
                         method: str = DEFAULT_METHOD, window: float | None = None, stride: int = DEFAULT_STRIDE,
                         threshold: float = FSC_THRESHOLD, global_resolution: float | None = None,
                         finest: float | None = None, progress: bool = False) -> LocalFsc:
    """Local resolution from two half maps by ``method`` (``bands`` or ``window``).

    ``window`` (A) applies to the ``window`` method only; its default is
    :func:`default_window` of ``global_resolution``. ``finest`` bounds the ``bands`` method.

    Raises:
        ParameterError: unknown method, a window given to the ``bands`` method, or the
            estimators' own errors.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown local resolution method {method!r}; choose from {', '.join(METHODS)}")
    if method == "bands":
        if window is not None:
            raise ParameterError("a window diameter applies to the window method only (the band method's "
                                 f"window follows each band: {WINDOW_WAVELENGTHS:g} wavelengths)")
        return band_correlation_map(half1, half2, voxel_size, mask, stride, threshold, finest, progress)
    if window is None:
        if global_resolution is None:
            raise ParameterError("the window method needs a window diameter or the global FSC resolution")
        window = default_window(global_resolution, voxel_size, half1.shape)
    return local_fsc_map(half1, half2, voxel_size, mask, window, stride, threshold, progress=progress)
