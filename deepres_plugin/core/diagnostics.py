"""The condition of a map as DeepRes sees it, and the one place that warns about it.

Every prediction measures, besides the local resolution:

- the map's own **B-factor**: the Guinier slope of the radially averaged Fourier
  amplitudes of the masked map, ``ln |F|(s) = c - B s^2 / 4``, fitted between
  :data:`GUINIER_LOW_A` (10 A) and the finest resolution the map supports, where the
  molecule's power stops exceeding the solvent's by :data:`SUPPORT_SNR` (for a map whose
  solvent carries no noise, the molecule's own power floor near Nyquist stands in for the
  solvent's). The fit includes the fall-off that the protein's structure and the atoms'
  form factors give any map: maps simulated from atoms with B = 0 and low-passed at 3.5 A
  measure about 35 A^2, so a map is taken as unsharpened above :data:`UNSHARPENED_BFACTOR`
  (100 A^2, about +60 A^2 of blur on top of that). DeepRes reads unsharpened maps worse
  (paper 3.3);
- the **noise** outside the mask: its SD in map units and relative to the molecule's SD;
- the **solvent**: ``noisy`` (as reconstructed), ``flattened`` (a constant) or ``masked``
  (zero).

:func:`check_map_for_range` refuses maps that no range can read (the voxel too coarse);
:func:`map_warnings` gives every warning a prediction logs and writes, for the command
line and the Scipion protocols alike.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import scipy.ndimage

from .errors import ParameterError
from .fourier import frequency_magnitude, rfft_map
from .ranges import BOX_SIZE, ResolutionRange

logger = logging.getLogger(__name__)

#: Low-resolution end of the Guinier fit, A (below it, the molecule's shape dominates).
GUINIER_LOW_A = 10.0
#: Shell power ratio (molecule over solvent, per voxel) below which a shell is unsupported.
SUPPORT_SNR = 2.0
#: With a noise-free solvent, the noise power is the median over the shells beyond this
#: fraction of Nyquist.
FLOOR_SHELLS_FROM = 0.9
#: Fewest shells for a Guinier fit.
GUINIER_MIN_SHELLS = 4
#: Solvent margin: voxels farther than this from the mask are the solvent, A.
SOLVENT_MARGIN_A = 3.0
#: Width of the linear ramp that weights the molecule before its Fourier transform, A.
MOLECULE_EDGE_A = 3.0
#: The measurement works on the mask's bounding box grown by this much (A): memory follows
#: the molecule, not the box, and the solvent shell is wide enough to measure the noise.
SOLVENT_SHELL_A = 15.0
#: Above this B-factor (A^2) a map is taken as unsharpened (module docstring).
UNSHARPENED_BFACTOR = 100.0
#: Solvent SD below this fraction of the molecule's SD: the solvent was flattened.
FLAT_SOLVENT_FRACTION = 1e-3
#: Fraction of exact zeros in the solvent above which it was masked to zero.
MASKED_ZERO_FRACTION = 0.5
#: Fewest solvent voxels to measure the noise.
MIN_SOLVENT_VOXELS = 1000


@dataclasses.dataclass(frozen=True)
class MapCondition:
    """What :func:`measure_map` finds (B-factor in A^2, resolutions in A, noise in map units).

    ``bfactor`` is None when the fit was impossible (too few supported shells).
    """

    bfactor: float | None
    guinier_range: tuple[float, float] | None
    support_resolution: float | None
    noise_sd: float | None
    noise_to_signal: float | None
    solvent: str

    @property
    def sharpened(self) -> bool | None:
        """False when the B-factor says the map is unsharpened, None when unknown."""
        return None if self.bfactor is None else bool(self.bfactor <= UNSHARPENED_BFACTOR)

    def as_dict(self) -> dict:
        def rounded(v, digits):
            return None if v is None else round(float(v), digits)
        return {"bfactor_A2": rounded(self.bfactor, 1),
                "guinier_range_A": None if self.guinier_range is None else [round(v, 2) for v in self.guinier_range],
                "support_resolution_A": rounded(self.support_resolution, 2),
                "sharpened": self.sharpened, "unsharpened_above_A2": UNSHARPENED_BFACTOR,
                "noise_sd": rounded(self.noise_sd, 6), "noise_to_signal": rounded(self.noise_to_signal, 4),
                "solvent": self.solvent}

    def describe(self) -> str:
        """One line for logs and summaries, units as people read them."""
        parts = [f"B-factor {self.bfactor:.0f} Å² (Guinier {self.guinier_range[0]:.1f}–{self.guinier_range[1]:.1f} Å)"
                 if self.bfactor is not None else "B-factor not measurable"]
        if self.noise_to_signal is not None:
            parts.append(f"noise outside the mask {self.noise_to_signal:.2f} × the molecule's SD")
        parts.append(f"solvent {self.solvent}")
        return "; ".join(parts)


def shell_average(values: np.ndarray, shells: np.ndarray, count: int) -> np.ndarray:
    """Mean of ``values`` over each integer shell index (bincount)."""
    sums = np.bincount(shells.ravel(), weights=values.ravel(), minlength=count)[:count]
    n = np.bincount(shells.ravel(), minlength=count)[:count]
    return sums / np.maximum(n, 1)


def classify_solvent(solvent_values: np.ndarray, molecule_sd: float) -> str:
    """``masked`` (mostly exact zeros), ``flattened`` (constant) or ``noisy``."""
    if solvent_values.size == 0:
        return "noisy"
    if np.mean(solvent_values == 0) > MASKED_ZERO_FRACTION:
        return "masked"
    if float(solvent_values.std()) < FLAT_SOLVENT_FRACTION * molecule_sd:
        return "flattened"
    return "noisy"


def measure_map(volume: np.ndarray, voxel_size: float, mask: np.ndarray) -> MapCondition:
    """B-factor, support, noise and solvent of a map (module docstring).

    Args:
        volume: map [z, y, x].
        voxel_size: A/px.
        mask: boolean mask of the molecule.
    """
    mask = np.asarray(mask, bool)
    if mask.any():
        grow = int(np.ceil(SOLVENT_SHELL_A / voxel_size))
        corners = np.argwhere(mask)
        crop = tuple(slice(max(int(lo) - grow, 0), int(hi) + grow + 1)
                     for lo, hi in zip(corners.min(axis=0), corners.max(axis=0)))
        volume, mask = volume[crop], mask[crop]
    distance_out = (scipy.ndimage.distance_transform_edt(~mask).astype(np.float32) * np.float32(voxel_size)
                    if (~mask).any() else None)
    molecule_values = volume[mask]
    molecule_sd = float(molecule_values.std()) if molecule_values.size else 0.0
    if distance_out is not None:
        solvent = distance_out > SOLVENT_MARGIN_A
        weight = np.clip(1.0 - distance_out / np.float32(MOLECULE_EDGE_A), 0.0, 1.0)
    else:
        solvent = np.zeros_like(mask)
        weight = mask.astype(np.float32)
    solvent_values = volume[solvent]
    state = classify_solvent(solvent_values, molecule_sd)
    has_noise = state == "noisy" and solvent_values.size >= MIN_SOLVENT_VOXELS
    noise_sd = float(solvent_values.std()) if solvent_values.size >= MIN_SOLVENT_VOXELS else None
    ratio = noise_sd / molecule_sd if noise_sd is not None and molecule_sd > 0 else None

    level = float(np.median(solvent_values)) if solvent_values.size else 0.0
    shape = volume.shape
    freq = frequency_magnitude(shape, voxel_size)                      # 1/A
    step = 1.0 / (max(shape) * voxel_size)
    shells = np.rint(freq / step).astype(np.int64)
    count = int(np.floor(0.5 / voxel_size / step)) + 1                # up to Nyquist
    power_mol = shell_average(np.abs(rfft_map((volume - level) * weight)) ** 2, shells, count) / max(weight.sum(), 1)
    s = np.arange(count) * step
    low = int(np.ceil((1.0 / GUINIER_LOW_A) / step))
    if has_noise:
        noise_weight = solvent.astype(np.float32)
        power_noise = (shell_average(np.abs(rfft_map((volume - level) * noise_weight)) ** 2, shells, count)
                       / max(noise_weight.sum(), 1))
    else:
        power_noise = np.median(power_mol[int(FLOOR_SHELLS_FROM * (count - 1)):])
    supported = power_mol > SUPPORT_SNR * power_noise
    if low >= count - GUINIER_MIN_SHELLS:                            # Nyquist is about 10 A or coarser
        return MapCondition(None, None, None, noise_sd, ratio, state)
    unsupported = np.flatnonzero(~supported[low + 1:])
    high = low + (int(unsupported[0]) if len(unsupported) else count - 1 - low)
    if high - low + 1 < GUINIER_MIN_SHELLS:
        return MapCondition(None, None, float(1.0 / s[high]), noise_sd, ratio, state)
    fit = slice(low, high + 1)
    slope = np.polyfit(s[fit] ** 2, 0.5 * np.log(np.maximum(power_mol[fit], np.finfo(float).tiny)), 1)[0]
    return MapCondition(float(-4.0 * slope), (float(1.0 / s[low]), float(1.0 / s[high])), float(1.0 / s[high]),
                        noise_sd, ratio, state)


def check_map_for_range(voxel_size: float, shape: tuple[int, ...], resolution_range: ResolutionRange,
                        source: str = "the map") -> None:
    """Refuse a map that the range cannot read.

    Raises:
        ParameterError: the Nyquist limit (2 x voxel size) is at or beyond the range's worst
            resolution, so no resolution of the range can be represented.
    """
    nyquist = 2.0 * voxel_size
    if nyquist >= resolution_range.max_resolution:
        raise ParameterError(
            f"{source} has {voxel_size:g} Å/px: its Nyquist limit ({nyquist:g} Å) is coarser than the "
            f"{resolution_range.name} range's worst resolution ({resolution_range.max_resolution:g} Å); "
            "DeepRes cannot estimate resolutions this coarse")


def geometry_warnings(voxel_size: float, shape: tuple[int, ...], resolution_range: ResolutionRange) -> list[str]:
    """Warnings that need only the grid: voxel too coarse for the range, map smaller than the box."""
    warnings = []
    nyquist = 2.0 * voxel_size
    if nyquist > resolution_range.min_resolution:
        warnings.append(f"the voxel size ({voxel_size:g} Å/px) is too coarse for the {resolution_range.name} range: "
                        f"resolutions finer than Nyquist ({nyquist:g} Å) cannot be reported "
                        f"(range {resolution_range.min_resolution:g}–{resolution_range.max_resolution:g} Å)")
    box_a = BOX_SIZE * resolution_range.voxel_size
    smallest_a = min(shape) * voxel_size
    if smallest_a < box_a:
        warnings.append(f"the map ({min(shape)} voxels = {smallest_a:.1f} Å along its shortest edge) is smaller "
                        f"than the network's box ({box_a:g} Å): every estimate sees the map's edge")
    return warnings


def map_warnings(condition: MapCondition, voxel_size: float, shape: tuple[int, ...],
                 resolution_range: ResolutionRange) -> list[str]:
    """Every warning of a prediction: the grid's (:func:`geometry_warnings`) and an unsharpened map."""
    warnings = geometry_warnings(voxel_size, shape, resolution_range)
    if condition.sharpened is False:
        warnings.append(f"the map looks unsharpened (B-factor {condition.bfactor:.0f} Å² > {UNSHARPENED_BFACTOR:g} Å²): "
                        "DeepRes reads unsharpened maps worse than their FSC resolution (paper 3.3); sharpen it "
                        "first, or check with deepres bfactor-sweep")
    return warnings
