"""Fourier filters on maps: raised-cosine low-pass (Xmipp semantics), B-factor, phase
randomisation, plus white noise and peak scaling.

Frequencies are "digital" (cycles per voxel, Nyquist = 0.5) where Xmipp uses them and in
1/A for B-factors; resolutions are in A and voxel sizes in A/px.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import ParameterError
from .fourier import frequency_magnitude, irfft_map, rfft_map

#: Width of the raised-cosine fall-off of the low-pass filter, in digital frequency
#: (Xmipp ``xmipp_transform_filter --fourier low_pass w1 0.02``, used to build DeepRes' data).
RAISED_COSINE_WIDTH = 0.02
#: Low-pass families. Whatever the family, a filter "at resolution d" has its half-amplitude
#: point where Xmipp's raised cosine (width :data:`RAISED_COSINE_WIDTH`) at d has it: at
#: digital frequency ``voxel / d + RAISED_COSINE_WIDTH / 2`` of the grid it filters. So the
#: label d of every shape keeps the meaning DeepRes' training data always had (pass band of
#: the paper's filter ending at d), and shapes differ only in how steeply they fall.
LOWPASS_KINDS = ("cosine", "butterworth", "gaussian")
#: Amplitude at which every low-pass shape is anchored (see :data:`LOWPASS_KINDS`).
HALF_AMPLITUDE = 0.5


@dataclasses.dataclass(frozen=True)
class LowpassShape:
    """The shape of a low-pass filter.

    Attributes:
        kind: ``cosine`` (raised cosine of full width ``width`` centred on the half-amplitude
            point; width 0.02 is Xmipp's filter exactly), ``butterworth`` (order ``order``:
            ``1 / sqrt(1 + (f / fc)^(2n))``) or ``gaussian`` (``exp(-f^2 / 2 sigma^2)``).
        width: fall-off width of the raised cosine, cycles per voxel.
        order: Butterworth order.
    """

    kind: str = "cosine"
    width: float = RAISED_COSINE_WIDTH
    order: int = 8

    def __post_init__(self) -> None:
        if self.kind not in LOWPASS_KINDS:
            raise ParameterError(f"low-pass kind must be one of {', '.join(LOWPASS_KINDS)}, not {self.kind!r}")
        if not self.width > 0 or self.order < 1:
            raise ParameterError("the raised-cosine width must be positive and the Butterworth order >= 1")

    def label(self) -> str:
        """Short name, e.g. ``cosine 0.02``, ``butterworth 4``, ``gaussian``."""
        return {"cosine": f"cosine {self.width:g}", "butterworth": f"butterworth {self.order}"}.get(
            self.kind, self.kind)

    @classmethod
    def from_label(cls, label: str) -> "LowpassShape":
        """The shape named by :meth:`label` (as stored in dataset shards)."""
        kind, _, value = label.partition(" ")
        if kind == "cosine":
            return cls(kind, width=float(value))
        if kind == "butterworth":
            return cls(kind, order=int(value))
        return cls(kind)

    @staticmethod
    def half_amplitude_digital(cutoff_digital: float) -> float:
        """Digital frequency where every shape at ``cutoff_digital`` (= voxel / d) is 0.5."""
        return cutoff_digital + RAISED_COSINE_WIDTH / 2

    def response(self, freq_digital: np.ndarray, cutoff_digital: float) -> np.ndarray:
        """Amplitude response at ``freq_digital`` for a filter at ``cutoff_digital`` (= voxel / d)."""
        f = np.asarray(freq_digital)
        half = self.half_amplitude_digital(cutoff_digital)
        if self.kind == "cosine":
            return raised_cosine_lowpass(f, half - self.width / 2, self.width)
        if self.kind == "butterworth":
            corner = half / (HALF_AMPLITUDE ** -2 - 1) ** (1 / (2 * self.order))
            return 1.0 / np.sqrt(1.0 + (f / corner) ** (2 * self.order))
        sigma = half / np.sqrt(-2 * np.log(HALF_AMPLITUDE))
        return np.exp(-0.5 * (f / sigma) ** 2)


#: Xmipp's filter, the one of the paper's training data and of ``deepres simulate``.
XMIPP_LOWPASS = LowpassShape()


def check_resolution(resolution: float, voxel_size: float) -> float:
    """Return ``resolution`` (A) if it can be represented at ``voxel_size`` (A/px).

    Raises:
        ParameterError: non-positive resolution, or finer than Nyquist (2 x voxel size).
    """
    resolution = float(resolution)
    if not np.isfinite(resolution) or resolution <= 0:
        raise ParameterError(f"resolution must be positive, got {resolution:g} Å")
    nyquist = 2.0 * voxel_size
    if resolution < nyquist * (1 - 1e-9):
        raise ParameterError(
            f"resolution {resolution:g} Å is finer than Nyquist ({nyquist:g} Å at {voxel_size:g} Å/px)")
    return resolution


def lowpass_zero_frequency(resolution: float, voxel_size: float, width: float = RAISED_COSINE_WIDTH) -> float:
    """Spatial frequency (1/A) beyond which Xmipp's raised-cosine low-pass at ``resolution`` A
    keeps nothing, on a grid of ``voxel_size`` A/px."""
    return 1.0 / resolution + width / voxel_size


def raised_cosine_lowpass(freq_digital: np.ndarray, cutoff_digital: float,
                          width: float = RAISED_COSINE_WIDTH) -> np.ndarray:
    """Xmipp's raised-cosine low-pass response.

    1 up to ``cutoff_digital``, ``(1 + cos(pi (f - cutoff) / width)) / 2`` between
    ``cutoff`` and ``cutoff + width``, 0 beyond. So the response is exactly 1 at the
    cut-off, 0.5 at ``cutoff + width / 2`` and 0 from ``cutoff + width`` on.

    Args:
        freq_digital: frequency magnitudes in cycles per voxel.
        cutoff_digital: end of the pass band, ``voxel_size / resolution``.
        width: fall-off width in cycles per voxel.
    """
    f = np.asarray(freq_digital)
    ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip((f - cutoff_digital) / width, 0.0, 1.0)))
    return np.where(f <= cutoff_digital, 1.0, ramp)


def bfactor_response(freq_inv_angstrom: np.ndarray, bfactor: float) -> np.ndarray:
    """Amplitude factor ``exp(-B s^2 / 4)`` for spatial frequency ``s`` in 1/A and B in A^2.

    Positive B blurs (attenuates high frequencies); negative B sharpens.
    """
    s = np.asarray(freq_inv_angstrom, dtype=np.float64)
    return np.exp(-0.25 * bfactor * s * s)


def lowpass_filter(volume: np.ndarray, voxel_size: float, resolution: float,
                   width: float = RAISED_COSINE_WIDTH) -> np.ndarray:
    """Low-pass ``volume`` at ``resolution`` A with Xmipp's raised cosine.

    The pass band ends at digital frequency ``voxel_size / resolution``.

    Returns:
        float32 array of the same shape.
    """
    resolution = check_resolution(resolution, voxel_size)
    spectrum = rfft_map(volume)
    return next(lowpass_bank(spectrum, volume.shape, voxel_size, [resolution], width))


def lowpass_bank(spectrum: np.ndarray, shape: tuple[int, int, int], voxel_size: float,
                 resolutions: Iterable[float], width: float = RAISED_COSINE_WIDTH,
                 workers: int | None = None, shapes: Sequence[LowpassShape] | None = None,
                 bfactors: Sequence[float] | None = None) -> Iterator[np.ndarray]:
    """Filter one spectrum at several resolutions (one inverse FFT each).

    Args:
        spectrum: ``rfftn`` of the map.
        shape: real-space shape of the map.
        voxel_size: A/px.
        resolutions: low-pass resolutions in A.
        width: raised-cosine width in cycles per voxel (Xmipp's semantics: the pass band ends
            at the resolution), used when ``shapes`` is not given.
        workers: FFT threads (None: scipy's default).
        shapes: one :class:`LowpassShape` per resolution instead of Xmipp's raised cosine.
        bfactors: one B-factor (A^2) per resolution, applied before the low-pass as an envelope
            that is held constant beyond the filter's half-amplitude point (a sharpening B
            boosts the pass band, not the filter's tail: a Butterworth tail times
            ``exp(|B| s^2 / 4)`` would otherwise grow without bound).

    Yields:
        float32 maps, one per resolution, in the given order.
    """
    freq = frequency_magnitude(shape).astype(np.float32)
    resolutions = list(resolutions)
    for i, resolution in enumerate(resolutions):
        check_resolution(resolution, voxel_size)
        cutoff = voxel_size / resolution
        if shapes is None:
            response = raised_cosine_lowpass(freq, cutoff, width)
        else:
            response = shapes[i].response(freq, cutoff)
        if bfactors is not None and bfactors[i]:
            held = np.minimum(freq, LowpassShape.half_amplitude_digital(cutoff))
            response = response * bfactor_response(held / voxel_size, bfactors[i]).astype(freq.dtype)
        yield irfft_map(spectrum * response.astype(freq.dtype), shape, workers).astype(np.float32, copy=False)


def apply_bfactor(volume: np.ndarray, voxel_size: float, bfactor: float,
                  resolution: float | None = None) -> np.ndarray:
    """Apply a global B-factor (A^2), optionally followed by a low-pass at ``resolution`` A.

    Post-processing sharpens with a negative B and then low-passes at the FSC resolution,
    so that the amplified high-frequency noise is cut; pass ``resolution`` to do the same.
    """
    shape = volume.shape
    frequency = frequency_magnitude(shape, voxel_size)
    if resolution is not None:
        check_resolution(resolution, voxel_size)
        # beyond the low-pass's zero nothing is kept: the gain there need not (and must not) overflow
        frequency = np.minimum(frequency, lowpass_zero_frequency(resolution, voxel_size))
    spectrum = rfft_map(volume) * bfactor_response(frequency, bfactor)
    if resolution is None:
        return irfft_map(spectrum, shape).astype(np.float32)
    return next(lowpass_bank(spectrum, shape, voxel_size, [resolution]))


def randomize_phases(volume: np.ndarray, voxel_size: float, resolution: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Replace the Fourier phases beyond ``resolution`` A by random phases.

    Amplitudes are kept. The random phases are those of the FFT of real white noise, so
    they have the Hermitian symmetry of a real map (Chen et al. 2013's noise-substitution
    test uses the same idea).
    """
    resolution = check_resolution(resolution, voxel_size)
    shape = volume.shape
    spectrum = rfft_map(volume)
    noise = rfft_map(rng.standard_normal(shape))
    phases = noise / np.maximum(np.abs(noise), np.finfo(np.float64).tiny)
    beyond = frequency_magnitude(shape, voxel_size) > 1.0 / resolution
    spectrum = np.where(beyond, np.abs(spectrum) * phases, spectrum)
    return irfft_map(spectrum, shape).astype(np.float32)


def add_white_noise(volume: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """``volume`` plus independent Gaussian noise of standard deviation ``sd`` (map units)."""
    if sd < 0:
        raise ParameterError(f"noise standard deviation must be >= 0, got {sd:g}")
    noise = rng.standard_normal(volume.shape, dtype=np.float32) * np.float32(sd)
    return (volume + noise).astype(np.float32)


def scale_to_unit_peak(volume: np.ndarray) -> np.ndarray:
    """Divide ``volume`` by its maximum, so that the top of the map is 1.

    The noise levels of the simulations (``--noise``) are relative to this scale.

    Raises:
        ParameterError: the map has no positive value.
    """
    peak = float(np.max(volume))
    if peak <= 0:
        raise ParameterError("the map has no positive density to scale")
    return (volume / peak).astype(np.float32)
