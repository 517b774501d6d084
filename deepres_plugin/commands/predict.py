"""Estimate the local resolution of a cryo-EM map with DeepRes.

The map (and mask) are resampled to the network's voxel size (wide: 1.0 A/px, 2.5-13 Å;
high: 0.5 A/px, 1.5-6 Å), every masked voxel gets the network's answer for the 13^3 box
centred on it (one exact convolutional pass over the map), and the result is brought back
onto the map's grid. Without --mask an automatic molecular mask is made and written.

Outputs in --out: resolution.mrc, summary.json, histogram.png, histogram.csv, slices.png,
chimerax.cxc (open with ChimeraX), chimera.cmd (UCSF Chimera) [, mask.mrc].

Example usage:
    deepres predict map.mrc --mask mask.mrc --range wide --out deepres_out
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.inference import DEVICES, PRECISIONS
from ..core.pipeline import PredictOptions, run_predict
from ..core.ranges import RANGES
from ..core.report import DEFAULT_PALETTE
from ..core.tfquiet import quiet_tensorflow
from .options import SAMPLING

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", type=Path, metavar="MAP", help="cryo-EM map (.mrc/.map, optionally .gz)")
    parser.add_argument("--mask", type=Path, help="binary or soft mask on the map's grid (default: automatic)")
    parser.add_argument("--range", dest="range_name", choices=sorted(RANGES), default="wide",
                        help="wide: 2.5-13 Å at 1.0 A/px (default); high: 1.5-6 Å at 0.5 A/px")
    parser.add_argument("--model", type=Path, help="a .keras model from `deepres train` (default: shipped network)")
    parser.add_argument("--sampling", type=SAMPLING, metavar="A", help="voxel size in A/px, overriding the header")
    parser.add_argument("--out", type=Path, help="output folder (default: MAPNAME_deepres)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="TensorFlow device (default auto: GPU if any)")
    parser.add_argument("--path", choices=("auto", "whole", "box"), default="auto",
                        help="inference path: whole-map convolution, box by box, or auto per slab (default)")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                        help="arithmetic of the network (default float32; bfloat16 needs an AVX-512 BF16 CPU, "
                             "float16 a GPU; both are slower on CPUs without them)")
    parser.add_argument("--palette", default=DEFAULT_PALETTE, help="matplotlib colour map of plots and scripts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    quiet_tensorflow(getattr(args, "verbose", False))   # before anything imports TensorFlow
    out = args.out or Path(f"{args.map.name.split('.')[0]}_deepres")
    options = PredictOptions(mask=args.mask, range_name=args.range_name, model=args.model, sampling=args.sampling,
                             device=args.device, path=args.path, palette=args.palette, precision=args.precision,
                             progress=not args.no_progress)
    summary = run_predict(args.map, out, options)
    logger.info("median %.2f Å (20-80 %%: %.2f-%.2f Å) over %d voxels; outputs in %s",
                summary["median"], summary["percentile_20"], summary["percentile_80"], summary["voxels"], out)
    return 0
