"""Low-pass filter a map to its local resolution, voxel by voxel (local filtering).

The map is low-passed (Xmipp's raised cosine, as deepres simulate and the training data)
at a bank of resolutions spanning the local resolutions inside the mask, in equal steps
of 1/resolution; each voxel is interpolated linearly (in 1/resolution) between the two
bank members that bracket its local resolution. A constant resolution map gives exactly a
global low-pass. Voxels without a local resolution (0 in RESOLUTION.mrc, or outside
--mask) are low-passed at the coarsest resolution of the bank, so the map stays
continuous across the mask's edge. --bfactor B (Å², negative sharpens) or --auto-bfactor
(minus the map's Guinier B-factor, as every prediction measures it) sharpens the map
first.

Outputs in --out: locally_filtered.mrc (the input's grid and geometry), summary.json,
localfilter_slices.png (before/after slices and the local resolution), localfilter.cxc
(open with ChimeraX: the filtered map coloured by local resolution, the original as #3).

Example usage:
    deepres localfilter map.mrc deepres_out/resolution.mrc --auto-bfactor --out localfilter
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.pipeline import LocalFilterOptions, run_localfilter
from .options import BFACTOR, PALETTE, POSITIVE_INT

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", type=Path, metavar="MAP", help="cryo-EM map (.mrc/.map, optionally .gz)")
    parser.add_argument("resolution", type=Path, metavar="RESOLUTION.mrc",
                        help="its local-resolution map (Å, on the map's grid; 0 = no estimate)")
    parser.add_argument("--mask", type=Path, help="filter only these voxels to their local resolution "
                        "(default: every voxel with a local resolution)")
    sharpening = parser.add_mutually_exclusive_group()
    sharpening.add_argument("--bfactor", type=BFACTOR, metavar="B",
                            help="global B-factor in Å² applied first: < 0 sharpens, > 0 blurs")
    sharpening.add_argument("--auto-bfactor", action="store_true",
                            help="sharpen with minus the map's Guinier B-factor (measured inside the mask)")
    parser.add_argument("--palette", type=PALETTE, help="matplotlib colour map of the figure and script "
                        "(default: that of the resolution map's report, or jet)")
    parser.add_argument("--threads", type=POSITIVE_INT, metavar="N",
                        help="FFT threads (default: the CPUs this process may use)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def main(args: argparse.Namespace) -> int:
    options = LocalFilterOptions(mask=args.mask, bfactor=args.bfactor, auto_bfactor=args.auto_bfactor,
                                 palette=args.palette, workers=args.threads)
    summary = run_localfilter(args.map, args.resolution, args.out, options)
    logger.info("filtered to the local resolution (%.2f-%.2f Å), B-factor %.1f Å² (%s); outputs in %s",
                summary.bank_resolutions[0], summary.bank_resolutions[-1], summary.bfactor, summary.bfactor_source,
                args.out)
    return 0
