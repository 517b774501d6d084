"""Compute the global FSC of two half maps and the resolution where it crosses a threshold.

The Fourier shell correlation of the halves (inside --mask, when given) and the resolution
where it falls below the threshold (0.143 by default). Writes fsc.csv (frequency, resolution, FSC per shell) and fsc.png (the curve) into --out.

Example usage:
    deepres fsc half1.mrc half2.mrc --mask mask.mrc --out fsc
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.fileio import RunFolder
from ..core.fsc import (
    FSC_THRESHOLD,
    THRESHOLDS,
    check_half_map_placement,
    check_half_maps,
    fsc_csv,
    fsc_curve,
    fsc_mask_weights,
    fsc_png,
    fsc_resolution,
)
from ..core.mapscale import map_scale
from ..core.masks import read_mask
from ..core.mrc import read_map
from ..core.outputs import FSC_FILES

logger = logging.getLogger(__name__)


def add_half_map_args(parser: argparse.ArgumentParser) -> None:
    """HALF1 HALF2 --mask --threshold, shared by the half-map commands."""
    parser.add_argument("half1", type=Path, metavar="HALF1", help="first half map")
    parser.add_argument("half2", type=Path, metavar="HALF2", help="second half map")
    parser.add_argument("--mask", type=Path, help="mask on the halves' grid (values > 0.5 kept; the global FSC "
                        "gives it a 6 Å raised-cosine edge)")
    parser.add_argument("--threshold", type=float, choices=THRESHOLDS, default=FSC_THRESHOLD,
                        help="FSC threshold: 0.143 (default, gold standard) or 0.5")


def add_args(parser: argparse.ArgumentParser) -> None:
    add_half_map_args(parser)
    parser.add_argument("--out", type=Path, default=Path("fsc"), help="output folder (default fsc)")


def main(args: argparse.Namespace) -> int:
    with RunFolder(args.out) as run:
        half1, geometry = read_map(args.half1)
        half2, geometry2 = read_map(args.half2)
        check_half_maps(half1, half2, geometry.voxel_size, geometry2.voxel_size)
        check_half_map_placement(geometry, geometry2, str(args.half1), str(args.half2))
        for half, path in ((half1, args.half1), (half2, args.half2)):
            map_scale(half, str(path))                         # refuses a flat half map
        weights = None
        if args.mask:
            weights = fsc_mask_weights(read_mask(args.mask, half1.shape, geometry), geometry.voxel_size)
        frequency, fsc = fsc_curve(half1, half2, geometry.voxel_size, weights)
        resolution = fsc_resolution(frequency, fsc, args.threshold)
        run.write({FSC_FILES[0]: fsc_csv(frequency, fsc).encode(),
                   FSC_FILES[1]: fsc_png(frequency, fsc, args.threshold, resolution)})
    logger.info("FSC resolution %.2f Å at %g; curve in %s", resolution, args.threshold, args.out)
    print(f"{resolution:.3f}")
    return 0
