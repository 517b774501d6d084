"""Rebuild the plots, summary and ChimeraX/Chimera scripts of a local-resolution map.

Works for resolution maps from DeepRes or from other programs (ResMap, MonoRes, BlocRes,
...): without --mask, voxels with a positive value are the estimated ones.

Example usage:
    deepres report deepres_out/resolution.mrc --map map.mrc --out report --range-min 2.5 --range-max 8
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.pipeline import run_report
from ..core.report import DEFAULT_PALETTE
from .options import PALETTE, RESOLUTION

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resolution", type=Path, metavar="RESOLUTION.mrc", help="local-resolution map (A)")
    parser.add_argument("--map", type=Path, required=True, help="the density map it was computed from")
    parser.add_argument("--mask", type=Path, help="mask of the estimated voxels (default: values > 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--palette", type=PALETTE, default=DEFAULT_PALETTE, help="matplotlib colour map (default jet: blue = high)")
    parser.add_argument("--range-min", type=RESOLUTION, metavar="A", help="resolution at the blue end of the scale")
    parser.add_argument("--range-max", type=RESOLUTION, metavar="A", help="resolution at the red end of the scale")


def main(args: argparse.Namespace) -> int:
    summary = run_report(args.resolution, args.map, args.out, args.mask, args.palette, args.range_min,
                         args.range_max)
    logger.info("median %.2f Å over %d voxels; report in %s", summary.median, summary.voxels, args.out)
    return 0
