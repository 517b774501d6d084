"""Measure the local resolution of every residue of an atomic model placed on the map.

The resolution map is sampled at every atom (trilinear interpolation over the voxels with
an estimate; hydrogens and waters left out); each residue gets the median and the
20th/80th percentiles of its atoms, each chain the same figures over its residues. Atoms
outside the map's box or outside the estimated region are counted per chain, not used.
--compare-bfactors adds Spearman's rank correlation between the residues' medians and
their refined B-factors. With --map, the map is checked to lie on the resolution map's
grid and shown in the ChimeraX script.

Outputs in --out: residues.csv, summary.json (per chain figures), residues.png (per chain,
along the sequence), residues.defattr and residues.cxc (open with ChimeraX: the model
coloured per residue with the palette and key of the map's scripts),
model_resolution.cif and model_resolution.pdb (the model with each residue's median in
the B-factor column; 0 = no estimate; no PDB when the model does not fit that format).

Example usage:
    deepres residues deepres_out/resolution.mrc model.cif --map map.mrc --compare-bfactors --out residues
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.pipeline import ResidueOptions, run_residues
from .options import PALETTE

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resolution", type=Path, metavar="RESOLUTION.mrc", help="local-resolution map (Å)")
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="atomic model placed on the map: .pdb, .cif, .ent, .mmcif (optionally .gz)")
    parser.add_argument("--map", type=Path, help="the density map (checked against the resolution map's grid, "
                        "shown in the ChimeraX script)")
    parser.add_argument("--compare-bfactors", action="store_true",
                        help="rank correlation of the residues' resolution with their refined B-factors")
    parser.add_argument("--palette", type=PALETTE, help="matplotlib colour map of the plot and script "
                        "(default: that of the resolution map's report, or jet)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def main(args: argparse.Namespace) -> int:
    options = ResidueOptions(map=args.map, compare_bfactors=args.compare_bfactors, palette=args.palette)
    summary = run_residues(args.resolution, args.model, args.out, options)
    logger.info("%d of %d residues with an estimate, median %.2f Å (20-80 %%: %.2f-%.2f Å); outputs in %s",
                summary.residues_estimated, summary.residues, summary.median, summary.percentile_20,
                summary.percentile_80, args.out)
    return 0
