"""Map conditions: what real maps vary in besides their resolution.

A map "at resolution d" can have been made in many ways. DeepRes must read d whatever the
way, so the training data (:mod:`.dataset`) draws one :class:`MapCondition` per filtered
map, and ``benchmarks/robustness.py`` applies the same conditions to whole maps. A
condition is:

- the **low-pass shape** (:class:`.filters.LowpassShape`): raised cosine of several
  widths, Butterworth of several orders, Gaussian. Every shape at resolution d has its
  half-amplitude point where Xmipp's raised cosine at d has it (digital frequency
  ``voxel / d + 0.01`` of the network's grid), so the label keeps the paper's meaning;
- a **B-factor envelope** before the low-pass, ``exp(-B s^2 / 4)`` with ``B = 4 d^2 t``, held
  constant beyond the filter's half-amplitude point: the
  amplitude at the label frequency is multiplied by ``exp(-t)``, t within
  ``[-BFACTOR_LOG_GAIN_MAX, BFACTOR_LOG_GAIN_MAX]`` (a gain of 0.61-1.65: sharpening a
  little too much or too little). Larger B-factors change what the map shows and must
  change the estimate (DeepRes follows sharpening, paper 3.3), so they are not drawn;
- the **noise colour**: white, low-passed like the signal (FSC-weighted reconstructions),
  or ``1/f`` (amplitude inversely proportional to frequency: slow background ripples);
- the **noise reference** its level is relative to: the map's ``maximum`` (the paper's
  simulations), the signal's ``sd`` over the molecule, or the ``local`` signal RMS (each
  region as noisy, relative to itself, as the others);
- the **solvent**: ``noisy`` (as reconstructed), ``flattened`` (noise multiplied by a
  soft mask) or ``masked`` (map multiplied by a soft mask), the mask built from atoms
  with a radius and a raised-cosine edge (A).

The label is always the low-pass resolution d in the sense above.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage

from .errors import ParameterError
from .filters import XMIPP_LOWPASS, LowpassShape, lowpass_bank
from .fourier import frequency_magnitude, irfft_map, rfft_map

NOISE_COLOURS = ("white", "signal", "1/f")
NOISE_REFERENCES = ("maximum", "sd", "local")
SOLVENTS = ("noisy", "flattened", "masked")
#: Largest |ln gain| of the B-factor envelope at the label frequency.
BFACTOR_LOG_GAIN_MAX = 0.5
#: Noise levels are drawn up to ``noise_sd_max`` (relative to the maximum) times this factor
#: for each reference. Measured on training structures at 1 and 0.5 A/px, 2.5-12 A: the
#: signal SD over the molecule is 0.20-0.23 of the maximum, the RMS of a 13^3 box 0.2-0.45.
NOISE_REFERENCE_SCALE = {"maximum": 1.0, "sd": 4.0, "local": 3.0}
#: Lowest frequency of 1/f noise, in cycles per voxel (caps the amplitude at low frequency).
PINK_NOISE_MIN_DIGITAL = 0.02
#: Gaussian SD (in box edges) of the smoothing that gives the local signal RMS of a whole map.
LOCAL_RMS_SMOOTHING_BOXES = 0.5
#: Choices drawn for training data, with their probabilities.
LOWPASS_CHOICES = ((XMIPP_LOWPASS, 0.35), (LowpassShape("cosine", width=0.05), 0.1),
                   (LowpassShape("cosine", width=0.1), 0.1), (LowpassShape("butterworth", order=2), 0.1),
                   (LowpassShape("butterworth", order=4), 0.1), (LowpassShape("butterworth", order=8), 0.1),
                   (LowpassShape("gaussian"), 0.15))
#: Fraction of training maps made as the paper's (format-1) data: Xmipp's filter, no envelope,
#: white or signal-coloured noise relative to the maximum, noisy solvent.
PAPER_FRACTION = 0.0
BFACTOR_PROBABILITY = 0.5
NOISE_COLOUR_PROBABILITIES = {"white": 0.4, "signal": 0.4, "1/f": 0.2}
NOISE_REFERENCE_PROBABILITIES = {"maximum": 0.5, "sd": 0.25, "local": 0.25}
SOLVENT_PROBABILITIES = {"noisy": 0.5, "flattened": 0.25, "masked": 0.25}
#: Soft-mask radius (distance from the nearest atom) and edge width drawn for training, in A.
MASK_RADIUS_RANGE_A = (2.0, 8.0)
MASK_EDGE_RANGE_A = (0.0, 6.0)


@dataclasses.dataclass(frozen=True)
class MapCondition:
    """How one map at a given resolution was made (module docstring)."""

    lowpass: LowpassShape = XMIPP_LOWPASS
    bfactor_log_gain: float = 0.0
    noise_colour: str = "white"
    noise_reference: str = "maximum"
    noise_level: float = 0.0
    solvent: str = "noisy"
    mask_radius: float = 3.0
    mask_edge: float = 0.0

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.noise_colour, NOISE_COLOURS, "noise colour"),
                                     (self.noise_reference, NOISE_REFERENCES, "noise reference"),
                                     (self.solvent, SOLVENTS, "solvent")):
            if value not in allowed:
                raise ParameterError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
        if not np.isfinite(self.noise_level) or self.noise_level < 0:
            raise ParameterError(f"noise level must be finite and >= 0, got {self.noise_level:g}")
        if self.mask_radius < 0 or self.mask_edge < 0:
            raise ParameterError("mask radius and edge must be >= 0 Å")

    def bfactor(self, resolution: float) -> float:
        """The envelope's B-factor (A^2) for a map at ``resolution`` A."""
        return 4.0 * resolution ** 2 * self.bfactor_log_gain


def _pick(rng: np.random.Generator, probabilities: dict) -> str:
    keys = list(probabilities)
    return keys[rng.choice(len(keys), p=np.array([probabilities[k] for k in keys]))]


def draw_condition(rng: np.random.Generator, noise_sd_max: float, noise_exponent: float = 1.0) -> MapCondition:
    """A random condition for one training map (probabilities: the module constants).

    The noise level is ``noise_sd_max * u ** noise_exponent * NOISE_REFERENCE_SCALE[reference]``.
    """
    if rng.random() < PAPER_FRACTION:
        colour = "signal" if rng.random() < NOISE_COLOUR_PROBABILITIES["signal"] / (
            NOISE_COLOUR_PROBABILITIES["signal"] + NOISE_COLOUR_PROBABILITIES["white"]) else "white"
        return MapCondition(noise_colour=colour, noise_level=float(noise_sd_max * rng.random() ** noise_exponent))
    shapes, weights = zip(*LOWPASS_CHOICES)
    lowpass = shapes[rng.choice(len(shapes), p=np.array(weights))]
    log_gain = rng.uniform(-BFACTOR_LOG_GAIN_MAX, BFACTOR_LOG_GAIN_MAX) if rng.random() < BFACTOR_PROBABILITY else 0.0
    colour = _pick(rng, NOISE_COLOUR_PROBABILITIES)
    reference = _pick(rng, NOISE_REFERENCE_PROBABILITIES)
    level = noise_sd_max * rng.random() ** noise_exponent * NOISE_REFERENCE_SCALE[reference]
    solvent = _pick(rng, SOLVENT_PROBABILITIES)
    return MapCondition(lowpass, float(log_gain), colour, reference, float(level), solvent,
                        float(rng.uniform(*MASK_RADIUS_RANGE_A)), float(rng.uniform(*MASK_EDGE_RANGE_A)))


def noise_response(freq_digital: np.ndarray, colour: str, cutoff_digital: float,
                   lowpass: LowpassShape = XMIPP_LOWPASS) -> np.ndarray:
    """Amplitude spectrum of noise of a colour (unnormalised).

    Args:
        freq_digital: frequency magnitudes, cycles per voxel.
        colour: ``white``, ``signal`` (the low-pass at ``cutoff_digital`` = voxel / d) or ``1/f``.
    """
    f = np.asarray(freq_digital)
    if colour == "white":
        return np.ones_like(f)
    if colour == "signal":
        return lowpass.response(f, cutoff_digital)
    return 1.0 / np.maximum(f, PINK_NOISE_MIN_DIGITAL)


def coloured_noise(rng: np.random.Generator, shape: tuple[int, int, int], colour: str, cutoff_digital: float,
                   lowpass: LowpassShape = XMIPP_LOWPASS) -> np.ndarray:
    """Periodic Gaussian noise field of unit SD with the given colour (float32)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if colour == "white":
        return white
    response = noise_response(frequency_magnitude(shape), colour, cutoff_digital, lowpass)
    response.flat[0] = 0.0                                           # no offset: zero-mean noise
    field = irfft_map(rfft_map(white) * response.astype(np.float32), shape).astype(np.float32)
    return field / max(float(field.std()), np.finfo(np.float32).tiny)


def soft_mask(distance_a: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """1 within ``radius`` A, a raised cosine to 0 over ``edge`` A beyond it (float32)."""
    if edge <= 0:
        return (distance_a <= radius).astype(np.float32)
    t = np.clip((distance_a - radius) / edge, 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def atom_distance(atom_seeds: np.ndarray, voxel_size: float) -> np.ndarray:
    """Distance (A) of every voxel from the nearest seed voxel (voxels holding an atom)."""
    return (scipy.ndimage.distance_transform_edt(~atom_seeds) * voxel_size).astype(np.float32)


def local_rms(volume: np.ndarray, box_voxels: int) -> np.ndarray:
    """RMS of ``volume`` around every voxel (Gaussian weight of SD half a network box)."""
    sigma = LOCAL_RMS_SMOOTHING_BOXES * box_voxels
    return np.sqrt(np.maximum(scipy.ndimage.gaussian_filter(volume.astype(np.float32) ** 2, sigma), 0.0))


def condition_map(signal: np.ndarray, voxel_size: float, noise_resolution: float, condition: MapCondition,
                  rng: np.random.Generator, molecule: np.ndarray, distance_a: np.ndarray,
                  box_voxels: int) -> np.ndarray:
    """Noise and solvent of ``condition`` applied to a whole filtered map (benchmarks).

    Args:
        signal: the low-passed map (with its B envelope), scaled so that its maximum is 1.
        voxel_size: A/px.
        noise_resolution: resolution (A) of the ``signal``-coloured noise (the map's best).
        molecule: boolean mask of the molecule (the ``sd`` reference's voxels).
        distance_a: distance from the nearest atom, A (the solvent mask).
        box_voxels: the network's box edge (the ``local`` reference's scale).
    """
    noise = coloured_noise(rng, signal.shape, condition.noise_colour, voxel_size / noise_resolution,
                           condition.lowpass)
    if condition.noise_reference == "maximum":
        reference: np.ndarray | float = float(signal.max())
    elif condition.noise_reference == "sd":
        reference = float(signal[molecule].std())
    else:
        reference = local_rms(signal, box_voxels)
    noisy_part = noise * np.float32(condition.noise_level) * reference
    if condition.solvent == "noisy":
        return (signal + noisy_part).astype(np.float32)
    mask = soft_mask(distance_a, condition.mask_radius, condition.mask_edge)
    if condition.solvent == "flattened":
        return (signal + noisy_part * mask).astype(np.float32)
    return ((signal + noisy_part) * mask).astype(np.float32)


def filtered_signals(density: np.ndarray, voxel_size: float, resolutions: list[float],
                     conditions: list[MapCondition], workers: int | None = None):
    """The density low-passed at each resolution with each condition's shape and B envelope."""
    return lowpass_bank(rfft_map(density, workers=workers), density.shape, voxel_size, resolutions,
                        workers=workers, shapes=[c.lowpass for c in conditions],
                        bfactors=[c.bfactor(r) for c, r in zip(conditions, resolutions)])
