"""The condition of a map as DeepRes sees it, and the one place that warns about it.

Every prediction measures, besides the local resolution:

- the map's own **B-factor**: the Guinier slope of the radially averaged Fourier
  amplitudes of the masked map, ``ln |F|(s) = c - B s^2 / 4``, fitted between
  :data:`GUINIER_LOW_A` (10 A) and the finest resolution the map supports, where the
  molecule's power stops exceeding the solvent's by :data:`SUPPORT_SNR` (for a map whose
  solvent carries no noise, the molecule's own power floor near Nyquist stands in for the
  solvent's). The noise's power is subtracted from each shell and the fit is weighted
  (:func:`guinier_fit`): each shell by its Fourier voxels and by a factor that falls to 0
  at the support threshold, so the shell where the support ends, which one voxel more of
  mask or a little more noise can move by one, weighs almost nothing; the start is fixed
  at 10 A whatever the box (the shell across it counts in part). A prediction measures on
  its estimated voxels, which a local filter of its resolution map reads as its region, so
  both report the same B. The fit includes the fall-off that the protein's structure, the
  atoms' form factors and a final low-pass give any map, and the coarser the support, the
  more of the fit the low-pass's fall-off fills: maps simulated from atoms with B = 0,
  low-passed and given noise, measure about 40 A^2 with a support of 3.3 A, 130 A^2 at 4.2 A
  and 300 A^2 at 4.8 A (:data:`SHARP_MAP_BFACTOR`). A map is taken as unsharpened when its
  B exceeds that of such a sharp map with its support by more than
  :data:`UNSHARPENED_MARGIN` (60 A^2; :func:`unsharpened_threshold`), and is not judged
  with a support coarser than 4.8 A (there a 200 A^2 blur moves the B by a tenth).
  DeepRes reads unsharpened maps worse (paper 3.3);
- the **noise** outside the mask: its SD in map units and relative to the molecule's SD;
- the **solvent**: ``noisy`` (as reconstructed), ``flattened`` (a constant) or ``masked``
  (zero).

:func:`check_map_for_range` refuses maps that no range can read (the voxel too coarse);
:func:`map_warnings` gives every warning a prediction logs and writes, for the command
line and the Scipion protocols alike; where a warning advises another tool, it names the
command or the protocol, as its audience runs them (:func:`bfactor_sweep_advice`).
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import scipy.ndimage

from .errors import ParameterError
from .fourier import frequency_magnitude, rfft_map
from .ranges import BOX_SIZE, RANGES, ResolutionRange

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
#: The Guinier B (A^2) of a map with no blur beyond its atoms' own, by the resolution (A) its
#: support reaches: medians of maps simulated from four training structures (B = 0,
#: low-passed at 3, 3.5, 4, 5 and 6 A, white noise SD 0.3 x the molecule's; seed 1). Coarser
#: supports are not judged: at 8 A (support 5.1-5.7 A, B about 720 A^2) a 200 A^2 blur moves
#: the B by less than its spread between structures.
SHARP_MAP_BFACTOR = ((2.85, 37.0), (3.3, 42.0), (3.7, 51.0), (4.2, 134.0), (4.8, 299.0))
#: A map is taken as unsharpened when its B exceeds a sharp map's (:data:`SHARP_MAP_BFACTOR`)
#: by more than this (A^2).
UNSHARPENED_MARGIN = 60.0
#: Solvent SD below this fraction of the molecule's SD: the solvent was flattened.
FLAT_SOLVENT_FRACTION = 1e-3
#: Fraction of exact zeros in the solvent above which it was masked to zero.
MASKED_ZERO_FRACTION = 0.5
#: Fewest solvent voxels to measure the noise.
MIN_SOLVENT_VOXELS = 1000
#: Who reads a warning's advice: the command line names commands, Scipion names protocols.
AUDIENCE_CLI = "cli"
AUDIENCE_SCIPION = "scipion"
AUDIENCES = (AUDIENCE_CLI, AUDIENCE_SCIPION)


def unsharpened_threshold(support_A: float) -> float | None:
    """The Guinier B (A^2) above which a map whose support reaches ``support_A`` is taken as
    unsharpened: a sharp map's B there (:data:`SHARP_MAP_BFACTOR`, interpolated) plus
    :data:`UNSHARPENED_MARGIN`; None beyond the table's coarsest support (not judged)."""
    supports, bfactors = np.array(SHARP_MAP_BFACTOR).T
    if support_A > supports[-1]:
        return None
    return float(np.interp(support_A, supports, bfactors)) + UNSHARPENED_MARGIN


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
    def unsharpened_above(self) -> float | None:
        """The B (A^2) above which this map is taken as unsharpened (:func:`unsharpened_threshold`)."""
        return None if self.support_resolution is None else unsharpened_threshold(self.support_resolution)

    @property
    def sharpened(self) -> bool | None:
        """False when the B-factor says the map is unsharpened, None when unknown (no B, or a
        support too coarse to tell)."""
        if self.bfactor is None or self.unsharpened_above is None:
            return None
        return bool(self.bfactor <= self.unsharpened_above)

    def as_dict(self) -> dict:
        def rounded(v, digits):
            return None if v is None else round(float(v), digits)
        return {"bfactor_A2": rounded(self.bfactor, 1),
                "guinier_range_A": None if self.guinier_range is None else [round(v, 2) for v in self.guinier_range],
                "support_resolution_A": rounded(self.support_resolution, 2),
                "sharpened": self.sharpened, "unsharpened_above_A2": rounded(self.unsharpened_above, 1),
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


@dataclasses.dataclass(frozen=True)
class MapSpectrum:
    """What :func:`map_spectrum` measures: per Fourier shell of width ``step`` (1/A, from 0 to
    Nyquist), the molecule's power per unit of its weight (``power``), the noise power
    (``noise``: the solvent's per voxel, or the molecule's own floor near Nyquist), its share
    in ``power`` relative to ``noise`` (``noise_scale``, the mean square of the molecule's
    weight over its mean), the Fourier voxels (``counts``); and the noise and solvent as
    :class:`MapCondition` reports them."""

    frequency: np.ndarray
    power: np.ndarray
    noise: np.ndarray
    counts: np.ndarray
    noise_scale: float
    step: float
    noise_sd: float | None
    noise_to_signal: float | None
    solvent: str

    @property
    def first_shell(self) -> int:
        """The shell holding :data:`GUINIER_LOW_A`, where the fit starts."""
        return int(np.floor((1.0 / GUINIER_LOW_A) / self.step + 0.5))

    def support_end(self) -> int:
        """The last shell of the fit's support: from the first shell on, the shells where the
        molecule's power exceeds :data:`SUPPORT_SNR` x the noise's, up to the first that does not."""
        first = self.first_shell
        unsupported = np.flatnonzero(self.power[first + 1:] <= SUPPORT_SNR * self.noise[first + 1:])
        return first + (int(unsupported[0]) if len(unsupported) else len(self.power) - 1 - first)

    def guinier_weights(self, end: int) -> np.ndarray:
        """Each shell's weight in the Guinier fit up to shell ``end``: its Fourier voxels (the
        precision of its mean, as an inverse variance), times its share beyond 10 Å (the
        shell straddling :data:`GUINIER_LOW_A` counts in part, so the start is fixed in Å,
        not in shells), times ``(1 - SUPPORT_SNR / (power / noise))^2``, which falls to 0 at
        the support threshold: a shell about to leave (or join) the support weighs almost
        nothing, and no single shell decides the fit."""
        s = self.frequency
        beyond = np.clip((s + self.step / 2 - 1.0 / GUINIER_LOW_A) / self.step, 0.0, 1.0)
        ratio = self.power / np.maximum(self.noise, np.finfo(float).tiny)
        weights = self.counts * beyond * np.clip(1.0 - SUPPORT_SNR / ratio, 0.0, None) ** 2
        weights[end + 1:] = 0.0
        return weights


def guinier_fit(spectrum: MapSpectrum, end: int | None = None) -> float | None:
    """The Guinier B-factor (A^2) of a map's spectrum: the weighted least-squares slope of
    ``ln |F|`` (the noise's power subtracted) against ``s^2`` from :data:`GUINIER_LOW_A` to
    shell ``end`` (default :meth:`MapSpectrum.support_end`), each shell weighted by
    :meth:`MapSpectrum.guinier_weights`; None with fewer than :data:`GUINIER_MIN_SHELLS`
    shells to fit."""
    end = spectrum.support_end() if end is None else end
    signal = spectrum.power - spectrum.noise_scale * spectrum.noise
    weights = spectrum.guinier_weights(end)
    used = (weights > 0) & (signal > 0)
    if np.count_nonzero(used) < GUINIER_MIN_SHELLS:
        return None
    slope = np.polyfit(spectrum.frequency[used] ** 2, 0.5 * np.log(signal[used]), 1, w=np.sqrt(weights[used]))[0]
    return float(-4.0 * slope)


def measure_map(volume: np.ndarray, voxel_size: float, mask: np.ndarray) -> MapCondition:
    """B-factor, support, noise and solvent of a map (module docstring).

    Args:
        volume: map [z, y, x].
        voxel_size: A/px.
        mask: boolean mask of the molecule (a prediction measures on its estimated voxels,
            the region a local filter of its resolution map measures on: the same B).
    """
    spectrum = map_spectrum(volume, voxel_size, mask)
    noise = (spectrum.noise_sd, spectrum.noise_to_signal, spectrum.solvent)
    if spectrum.first_shell >= len(spectrum.frequency) - GUINIER_MIN_SHELLS:   # Nyquist about 10 A or coarser
        return MapCondition(None, None, None, *noise)
    end = spectrum.support_end()
    support = float(1.0 / spectrum.frequency[end])
    bfactor = guinier_fit(spectrum, end)
    if bfactor is None:
        return MapCondition(None, None, support, *noise)
    return MapCondition(bfactor, (GUINIER_LOW_A, support), support, *noise)


def map_spectrum(volume: np.ndarray, voxel_size: float, mask: np.ndarray) -> MapSpectrum:
    """The shell powers of a map's molecule and noise, and its noise and solvent (see
    :class:`MapSpectrum`): measured on the mask's bounding box grown by
    :data:`SOLVENT_SHELL_A`, the molecule weighted by the mask with a linear edge of
    :data:`MOLECULE_EDGE_A`, the solvent beyond :data:`SOLVENT_MARGIN_A` from the mask."""
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
    weight_sum = max(float(weight.sum(dtype=np.float64)), 1.0)
    power_mol = shell_average(np.abs(rfft_map((volume - level) * weight)) ** 2, shells, count) / weight_sum
    if has_noise:
        noise_weight = solvent.astype(np.float32)
        power_noise = (shell_average(np.abs(rfft_map((volume - level) * noise_weight)) ** 2, shells, count)
                       / max(noise_weight.sum(), 1))
        # white noise of variance v adds v x sum(w^2) / sum(w) to the molecule's power per weight
        noise_scale = float(np.sum(weight.astype(np.float64) ** 2)) / weight_sum
    else:                                    # the molecule's own floor: already at the molecule's scale
        power_noise = np.full(count, np.median(power_mol[int(FLOOR_SHELLS_FROM * (count - 1)):]))
        noise_scale = 1.0
    counts = np.bincount(shells.ravel(), minlength=count)[:count]
    return MapSpectrum(np.arange(count) * step, power_mol, power_noise, counts, noise_scale, step, noise_sd, ratio,
                       state)


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
    """Warnings that need only the grid: the map smaller than the network's box. (A voxel
    too coarse for the range's finest resolution is no fault of the map: :func:`nyquist_note`.)"""
    box_a = BOX_SIZE * resolution_range.voxel_size
    smallest_a = min(shape) * voxel_size
    if smallest_a < box_a:
        return [f"the map ({min(shape)} voxels = {smallest_a:.1f} Å along its shortest edge) is smaller "
                f"than the network's box ({box_a:g} Å): every estimate sees the map's edge"]
    return []


def nyquist_note(voxel_size: float, resolution_range: ResolutionRange) -> str | None:
    """A line for the log when the map's Nyquist limit is coarser than the range's finest
    resolution (the reported values then start at Nyquist), else None."""
    nyquist = 2.0 * voxel_size
    if nyquist <= resolution_range.min_resolution:
        return None
    return (f"the finest value reported is the map's Nyquist limit, {nyquist:g} Å ({voxel_size:g} Å/px; the "
            f"{resolution_range.name} range reaches {resolution_range.min_resolution:g} Å)")


#: A voxel within this fraction of a range's finest or coarsest resolution reads at its limit.
LIMIT_FRACTION = 0.1
#: Share of the estimated voxels at a limit above which a prediction warns (another range
#: reads them).
LIMIT_WARNING_SHARE = 0.25


def limit_warnings(values: np.ndarray, clamp: tuple[float, float], resolution_range: ResolutionRange) -> list[str]:
    """A warning when many estimated voxels (``values``, A) read at the range's coarsest or
    finest resolution and another range reaches beyond it. The finest counts only when it
    is the range's own (``clamp[0]``, A; a floor at the map's Nyquist limit no range can
    pass)."""
    if not values.size:
        return []
    coarser = [r for r in RANGES.values() if r.max_resolution > resolution_range.max_resolution]
    finer = [r for r in RANGES.values() if r.min_resolution < resolution_range.min_resolution]
    edges = [("coarsest", "coarser", resolution_range.max_resolution, coarser,
              values >= (1 - LIMIT_FRACTION) * resolution_range.max_resolution)]
    if clamp[0] <= resolution_range.min_resolution:
        edges.append(("finest", "finer", resolution_range.min_resolution, finer,
                      values <= (1 + LIMIT_FRACTION) * resolution_range.min_resolution))
    warnings = []
    for edge, beyond, limit, others, at_limit in edges:
        share = float(np.mean(at_limit))
        if others and share >= LIMIT_WARNING_SHARE:
            other = others[0]
            warnings.append(f"{100 * share:.0f} % of the estimated voxels read within {100 * LIMIT_FRACTION:.0f} % "
                            f"of the {resolution_range.name} range's {edge} resolution ({limit:g} Å): the map is "
                            f"{beyond} than this range reads; use the {other.name} range "
                            f"({other.min_resolution:g}-{other.max_resolution:g} Å)")
    return warnings


def bfactor_sweep_advice(audience: str = AUDIENCE_CLI) -> str:
    """Where to check a map's sharpening against its half maps, in the words of ``audience``
    (:data:`AUDIENCES`): the command for the command line, the protocol for Scipion."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}: one of {', '.join(AUDIENCES)}")
    where = "deepres bfactor-sweep" if audience == AUDIENCE_CLI else "the 'deepres - B-factor sweep' protocol"
    return f"check with {where} (it needs the map's two half maps)"


def map_warnings(condition: MapCondition, voxel_size: float, shape: tuple[int, ...],
                 resolution_range: ResolutionRange, audience: str = AUDIENCE_CLI) -> list[str]:
    """Every warning of a prediction: the grid's (:func:`geometry_warnings`) and an unsharpened
    map, whose advice names what ``audience`` runs (:func:`bfactor_sweep_advice`)."""
    warnings = geometry_warnings(voxel_size, shape, resolution_range)
    if condition.sharpened is False:
        warnings.append(f"the map looks unsharpened (B-factor {condition.bfactor:.0f} Å², above the "
                        f"{condition.unsharpened_above:.0f} Å² of a sharpened map whose detail reaches "
                        f"{condition.support_resolution:.1f} Å): "
                        "DeepRes reads unsharpened maps worse than their FSC resolution (paper 3.3); sharpen it "
                        f"first, or {bfactor_sweep_advice(audience)}")
    return warnings
