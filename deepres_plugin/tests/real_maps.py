"""The panel of real EMDB maps (../shared/data/realmaps/README.md): one definition for the
tests and ``benchmarks/real_maps.py``.

The data live beside the project (never in the repository); ``DEEPRES_SHARED_DATA`` points
elsewhere. Each map either runs end to end (``refusal`` None) or must be refused with a
one-line message containing ``refusal``.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

SHARED_DATA_ENV = "DEEPRES_SHARED_DATA"
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_data_dir() -> Path:
    """``$DEEPRES_SHARED_DATA``, else ../shared/data beside the repository."""
    return Path(os.environ.get(SHARED_DATA_ENV, DEFAULT_SHARED_DATA))


@dataclasses.dataclass(frozen=True)
class RealMap:
    """A map of the panel: its file (relative to the shared data folder), EMDB entry, what it
    shows, reported resolution (A; None when there is none) and its FSC threshold."""

    file: str
    entry: str
    what: str
    reported: float | None
    fsc_threshold: float | None = 0.143
    refusal: str | None = None
    model: str | None = None

    @property
    def model_path(self) -> Path | None:
        """The placed (fitted) atomic model, if the panel has one."""
        return shared_data_dir() / self.model if self.model else None

    @property
    def path(self) -> Path:
        return shared_data_dir() / self.file


PANEL = (
    RealMap("realmaps/emd5168.map", "EMD-5168", "F-actin filament (as deposited)", 6.6,
            model="realmaps/emd5168_3mfp_monomer.pdb"),
    RealMap("realmaps/emd1997.map", "EMD-1997", "GroEL, apo (as deposited)", 7.0, fsc_threshold=0.5),
    RealMap("realmaps/emd21457_crop.mrc", "EMD-21457", "SARS-CoV-2 spike, N-terminal domain (Chimera crop)", 3.2,
            model="realmaps/emd21457_6vyb_ndom.pdb"),
    RealMap("maps/emd1461_crop.mrc", "EMD-1461", "rotavirus VP6 region (Chimera crop)", 3.8),
    RealMap("maps/emd2513_crop.mrc", "EMD-2513", "F420-reducing hydrogenase region (Chimera crop)", 3.36),
    RealMap("maps/emd2566_crop_3j6b_chain9.mrc", "EMD-2566", "mitoribosome protein region (Chimera crop)", 3.2,
            model="maps/3j6b_chain9.pdb"),
    RealMap("realmaps/emd3197.map", "EMD-3197", "membrane subtomogram average, 11.4 Å/px", None, None,
            refusal="Nyquist limit (22.8 Å) is coarser than the wide range's worst resolution"),
    RealMap("realmaps/emd3001.map", "EMD-3001", "MicroED crystal map, axis order 3,1,2", None, None,
            refusal="has anisotropic voxels"),
)
RUNNABLE = tuple(m for m in PANEL if m.refusal is None)
REFUSED = tuple(m for m in PANEL if m.refusal is not None)
