"""Estimate the local resolution from two half maps by their Fourier correlation measured locally.

Both halves are whitened (every Fourier shell of the map scaled so that the noise is white,
which removes any global B-factor or filter). The default method (--method bands) cuts them
into narrow frequency bands and, in each band, averages the correlation of the halves in a
Gaussian window of 1.5 wavelengths; the resolution is where it falls below --threshold
(0.143, or 0.5) for good. --method window is the BlocRes-like FSC in a spherical window of
--window A (default 6 x the global FSC resolution), which reads steep drops 10-40 % too
fine. Values are computed every --stride voxels and interpolated in between.

Outputs in --out: resolution.mrc, average_map.mrc (the halves' mean), summary.json,
histogram.png/.csv, slices.png, chimerax.cxc, chimera.cmd, fsc.csv/.png (global FSC)
[, mask.mrc].

Example usage:
    deepres localfsc half1.mrc half2.mrc --mask mask.mrc --out localfsc
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.localfsc import DEFAULT_METHOD, DEFAULT_STRIDE, METHODS, WINDOW_RESOLUTION_FACTOR
from ..core.pipeline import LocalFscOptions, run_local_fsc
from ..core.report import DEFAULT_PALETTE
from .fsc import add_half_map_args
from .options import PALETTE, POSITIVE_INT, SAMPLING, number

logger = logging.getLogger(__name__)


def add_local_fsc_args(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``deepres bfactor-sweep``."""
    add_half_map_args(parser)
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help=f"bands: local correlation of band-passed halves; window: FSC in a moving window "
                             f"(BlocRes-like) (default {DEFAULT_METHOD})")
    parser.add_argument("--window", type=number(above=0.0, unit="Å"), metavar="A",
                        help=f"window diameter in Å, --method window only (default: {WINDOW_RESOLUTION_FACTOR:g} x "
                             "the global FSC resolution, at most the map)")
    parser.add_argument("--stride", type=POSITIVE_INT, default=DEFAULT_STRIDE, metavar="N",
                        help=f"evaluate every N-th voxel and interpolate (default {DEFAULT_STRIDE}; 1: every voxel)")
    parser.add_argument("--sampling", type=SAMPLING, metavar="A", help="voxel size in Å/px, overriding the headers")
    parser.add_argument("--palette", type=PALETTE, default=DEFAULT_PALETTE, help="matplotlib colour map of plots and scripts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_args(parser: argparse.ArgumentParser) -> None:
    add_local_fsc_args(parser)
    parser.add_argument("--out", type=Path, default=Path("localfsc"), help="output folder (default localfsc)")


def main(args: argparse.Namespace) -> int:
    options = LocalFscOptions(mask=args.mask, method=args.method, window=args.window, stride=args.stride, threshold=args.threshold,
                              sampling=args.sampling, palette=args.palette, progress=not args.no_progress)
    summary = run_local_fsc(args.half1, args.half2, args.out, options)
    logger.info("local FSC median %.2f Å (20-80 %%: %.2f-%.2f Å), global FSC %.2f Å; outputs in %s",
                summary.median, summary.percentile_20, summary.percentile_80, summary.global_fsc_resolution, args.out)
    return 0
