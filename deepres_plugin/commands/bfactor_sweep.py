"""Choose a sharpening B-factor that does not oversharpen (DeepRes paper, section 3.4).

The halves are averaged; for each B of --bfactors the average is sharpened and low-passed
at the global FSC resolution (as post-processing does) and DeepRes estimates its local
resolution. The local FSC of the half maps, which no global B-factor changes, is computed
once. For each B the table gives the DeepRes median and 20th percentile, the local-FSC
20th percentile and a verdict: oversharpened (DeepRes more than 10 % better than the half
maps support), good, or under-sharpened. The recommended B is the one whose DeepRes 20th
percentile is closest to the local-FSC one.

Outputs in --out: bfactor_sweep.csv, bfactor_sweep.png (Fig. 5 of the paper),
sharpened_map.mrc (recommended B), summary.json, fsc.csv/.png, localfsc/ and deepres/
(full reports of the local FSC and of DeepRes on the recommended map) [, mask.mrc].

Example usage:
    deepres bfactor-sweep half1.mrc half2.mrc --mask mask.mrc --bfactors -200:0:20 --out sweep
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.inference import DEVICES
from ..core.outputs import SweepSummary
from ..core.pipeline import SweepOptions, run_bfactor_sweep
from ..core.ranges import RANGES
from ..core.sweep import DEFAULT_BFACTORS
from ..core.tfquiet import quiet_tensorflow
from .localfsc import add_local_fsc_args

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    add_local_fsc_args(parser)
    parser.add_argument("--bfactors", default=DEFAULT_BFACTORS, metavar="START:STOP:STEP",
                        help=f"B-factors in Å², start:stop:step (stop included) or a comma list "
                             f"(default {DEFAULT_BFACTORS})")
    parser.add_argument("--range", dest="range_name", choices=sorted(RANGES), default="wide",
                        help="DeepRes network: wide (2.5-13 Å, default) or high (1.5-6 Å)")
    parser.add_argument("--model", type=Path, help="a .keras model from `deepres train` (default: shipped network)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="TensorFlow device (default auto)")
    parser.add_argument("--out", type=Path, default=Path("bfactor_sweep"), help="output folder (default bfactor_sweep)")


def main(args: argparse.Namespace) -> int:
    quiet_tensorflow(getattr(args, "verbose", False))   # before anything imports TensorFlow
    options = SweepOptions(mask=args.mask, method=args.method, window=args.window, stride=args.stride, threshold=args.threshold,
                           sampling=args.sampling, palette=args.palette, progress=not args.no_progress,
                           bfactors=args.bfactors, range_name=args.range_name, model=args.model, device=args.device)
    run_bfactor_sweep(args.half1, args.half2, args.out, options)
    summary = SweepSummary.read(args.out)
    for row in summary.rows:
        print(f"B {row.bfactor:8g}  DeepRes median {row.deepres_median:6.2f}  p20 {row.deepres_p20:6.2f}  "
              f"local FSC p20 {row.localfsc_p20:6.2f}  {row.verdict}")
    print(f"recommended B-factor: {summary.recommended_bfactor:g} Å² ({args.out / summary.sharpened_map})")
    return 0
