"""Global Fourier shell correlation between two half maps, and the resolution where it
falls below the threshold (0.143 by default).

Writes fsc.csv (frequency, resolution, FSC per shell) and fsc.png (the curve) into --out.

Example usage:
    deepres fsc half1.mrc half2.mrc --mask mask.mrc --out fsc
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.fileio import output_directory, write_files
from ..core.fsc import FSC_THRESHOLD, check_half_maps, fsc_csv, fsc_curve, fsc_png, fsc_resolution
from ..core.masks import read_mask
from ..core.mrc import read_map

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("half1", type=Path, metavar="HALF1", help="first half map")
    parser.add_argument("half2", type=Path, metavar="HALF2", help="second half map")
    parser.add_argument("--mask", type=Path, help="mask applied to both halves (binary or soft, values > 0.5 kept)")
    parser.add_argument("--threshold", type=float, default=FSC_THRESHOLD, help="FSC threshold (default 0.143)")
    parser.add_argument("--out", type=Path, default=Path("fsc"), help="output folder (default fsc)")


def main(args: argparse.Namespace) -> int:
    half1, geometry = read_map(args.half1)
    half2, geometry2 = read_map(args.half2)
    check_half_maps(half1, half2, geometry.voxel_size, geometry2.voxel_size)
    mask = read_mask(args.mask, half1.shape, geometry) if args.mask else None
    frequency, fsc = fsc_curve(half1, half2, geometry.voxel_size, mask)
    resolution = fsc_resolution(frequency, fsc, args.threshold)
    with output_directory(args.out) as folder:
        write_files(folder, {"fsc.csv": fsc_csv(frequency, fsc).encode(),
                             "fsc.png": fsc_png(frequency, fsc, args.threshold, resolution)})
    logger.info("FSC resolution %.2f A at %g; curve in %s", resolution, args.threshold, args.out)
    print(f"{resolution:.3f}")
    return 0
