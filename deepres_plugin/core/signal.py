"""Where DeepRes gives an estimate: the voxels of the mask where the map shows density.

A network trained on boxes of density reads whatever it is shown as density: shown the
solvent of a loose mask, which holds noise only, it reads the noise as fine detail (on a
RELION-made 4 A map with a loose soft mask, 98 % of the solvent voxels read finer than the
molecule's 20th percentile, most at the range's finest value). So DeepRes estimates only
where the map shows density: the mask intersected with the map's *density envelope*, the
automatic mask of :func:`.masks.automatic_mask` (Otsu's level of the map low-passed at
8 A, small pieces dropped, holes filled, dilated by 3 A; the same envelope a run without a
mask uses as its mask). The rest of the mask gets no estimate: 0 in the resolution map, as
outside the mask, and left out of every figure built on it (median, percentiles,
histogram, local filter, sweep, per-residue).

Masks are boolean arrays indexed [z, y, x]; voxel sizes in A/px.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from .errors import MaskError
from .masks import automatic_mask, bounding_slices
from .outputs import left_out_line

logger = logging.getLogger(__name__)

#: The density envelope of a given mask is made on the mask's bounding box grown by this, A.
ENVELOPE_MARGIN_A = 15.0
#: Share of the mask left without an estimate above which a run warns.
LEFT_OUT_WARNING_SHARE = 0.5
#: Why a voxel of the mask gets no estimate (keys of :attr:`SignalSelection.left_out`).
LEFT_OUT_REASONS = {
    "no_density": "outside the map's density envelope (solvent inside the mask)",
}


@dataclasses.dataclass(frozen=True)
class SignalSelection:
    """The voxels of a mask that get an estimate.

    Attributes:
        estimated: boolean map of the voxels with an estimate.
        mask_voxels: voxels in the mask asked for.
        left_out: voxels of the mask without an estimate, by reason (:data:`LEFT_OUT_REASONS`).
    """

    estimated: np.ndarray
    mask_voxels: int
    left_out: dict[str, int]

    @property
    def left_out_voxels(self) -> int:
        return int(sum(self.left_out.values()))

    def as_dict(self) -> dict:
        """The ``left_out`` entry of a summary."""
        return {"mask_voxels": self.mask_voxels, "estimated_voxels": int(self.mask_voxels - self.left_out_voxels),
                "voxels": dict(self.left_out), "reasons": {key: LEFT_OUT_REASONS[key] for key in self.left_out}}

    def log(self) -> None:
        """Say in the log how many voxels of the mask were left out and why: a warning when
        most of it was (:meth:`warnings`), else an information line."""
        line = self.describe()
        if line and not self.warnings():
            logger.info(line)

    def warnings(self) -> list[str]:
        """A warning when most of the mask was left out (a mask far larger than the density)."""
        if self.left_out_voxels <= LEFT_OUT_WARNING_SHARE * self.mask_voxels:
            return []
        return [f"{self.describe()}; the median and percentiles describe the remaining "
                f"{self.mask_voxels - self.left_out_voxels} voxels"]

    def describe(self) -> str | None:
        """One line for the log and the summaries, or None when nothing was left out."""
        return left_out_line(self.as_dict())


def select_signal(volume: np.ndarray, voxel_size: float, mask: np.ndarray,
                  envelope: np.ndarray | None = None) -> SignalSelection:
    """The voxels of ``mask`` where ``volume`` shows density (module docstring).

    Args:
        volume: the map [z, y, x] (any scale and offset).
        voxel_size: A/px.
        mask: the voxels asked for (a user's mask, or the automatic one).
        envelope: the map's density envelope if already made (a run without a mask has
            made it as its mask); else it is made on the mask's bounding box grown by
            :data:`ENVELOPE_MARGIN_A` (:func:`density_envelope`).
    """
    if envelope is None:
        envelope = density_envelope(volume, voxel_size, mask)
    estimated = mask & envelope
    mask_voxels = int(np.count_nonzero(mask))
    if not estimated.any():
        logger.warning("the mask and the map's density envelope do not overlap: estimating the whole mask")
        return SignalSelection(mask.copy(), mask_voxels, {"no_density": 0})
    return SignalSelection(estimated, mask_voxels, {"no_density": mask_voxels - int(estimated.sum())})


def density_envelope(volume: np.ndarray, voxel_size: float, mask: np.ndarray) -> np.ndarray:
    """The map's automatic mask (:func:`.masks.automatic_mask`) made on the mask's bounding
    box grown by :data:`ENVELOPE_MARGIN_A` (enough solvent for Otsu's level, and beyond the
    reach of the low-pass and the dilation), False elsewhere: what the mask needs of the
    envelope, at a fraction of the cost for a mask smaller than the box. A region with
    nothing to threshold (a constant map there) counts as density."""
    crop = bounding_slices(mask, int(np.ceil(ENVELOPE_MARGIN_A / voxel_size)))
    envelope = np.zeros(mask.shape, bool)
    if crop is None:
        return envelope
    try:
        envelope[crop] = automatic_mask(volume[crop], voxel_size)
    except MaskError:
        envelope[crop] = True
    return envelope
