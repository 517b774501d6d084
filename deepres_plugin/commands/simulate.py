"""Simulate a cryo-EM-like map from an atomic model (PDB/mmCIF, optionally .gz).

Electron scattering factors (gemmi), atom B-factors ignored, hydrogens and waters removed,
ligands kept; then an optional global B-factor, a raised-cosine low-pass at the given
resolution (Xmipp semantics, width 0.02), scaling so that the map's maximum is 1, and
optional Gaussian white noise of the given SD. The MRC origin overlays the model.

Example usage:
    deepres simulate model.pdb --sampling 1.0 --resolution 4.0 --noise 0.08 \\
        --out map.mrc --mask-out mask.mrc
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.errors import ParameterError
from ..core.fileio import atomic_outputs, check_writable_dir
from ..core.masks import ATOM_MASK_RADIUS_A
from ..core.mrc import write_map
from ..core.simulate import DEFAULT_PADDING_A, AtomSelection, simulate_map
from .options import BFACTOR, RESOLUTION, SAMPLING, SEED, number

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="atomic model: .pdb, .cif (optionally .gz)")
    parser.add_argument("--sampling", type=SAMPLING, required=True, help="voxel size of the map, Å/px")
    parser.add_argument("--resolution", type=RESOLUTION, help="low-pass resolution in A (default: none, "
                        "the map is band-limited at Nyquist only)")
    parser.add_argument("--noise", type=number(minimum=0.0), default=0.0, metavar="SD",
                        help="SD of Gaussian white noise, relative to the map maximum of 1 (default 0)")
    parser.add_argument("--bfactor", type=BFACTOR, default=0.0, metavar="B",
                        help="global B-factor in Å² applied before the low-pass: >0 blurs, <0 sharpens")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the noise (default 0)")
    parser.add_argument("--padding", type=number(minimum=0.0, unit="Å"), default=DEFAULT_PADDING_A,
                        help=f"margin around the model in A (default {DEFAULT_PADDING_A:g})")
    parser.add_argument("--keep-hydrogens", action="store_true", help="simulate hydrogen atoms too")
    parser.add_argument("--keep-waters", action="store_true", help="simulate water molecules too")
    parser.add_argument("--no-ligands", action="store_true", help="drop ligands, ions and other hetero groups")
    parser.add_argument("--use-atom-bfactors", action="store_true",
                        help="blur each atom by its own B-factor (default: B = 0, as in the paper)")
    parser.add_argument("--out", type=Path, required=True, help="output map (.mrc)")
    parser.add_argument("--mask-out", type=Path, help="also write the molecular mask: voxels within "
                        "--mask-radius A of an atom")
    parser.add_argument("--mask-radius", type=number(above=0.0, unit="Å"), default=ATOM_MASK_RADIUS_A,
                        help=f"radius of the mask around atoms, A (default {ATOM_MASK_RADIUS_A:g})")


def main(args: argparse.Namespace) -> int:
    outputs = [args.out] + ([args.mask_out] if args.mask_out else [])
    if args.mask_out and args.mask_out.resolve() == args.out.resolve():
        raise ParameterError("--out and --mask-out name the same file")
    if args.noise < 0:
        raise ParameterError(f"--noise must be >= 0, got {args.noise:g}")
    if args.mask_radius <= 0:
        raise ParameterError(f"--mask-radius must be positive, got {args.mask_radius:g}")
    for path in outputs:
        check_writable_dir(path)
    selection = AtomSelection(keep_hydrogens=args.keep_hydrogens, keep_waters=args.keep_waters,
                              keep_ligands=not args.no_ligands)
    simulated, volume = simulate_map(args.model, args.sampling, args.resolution, args.bfactor, args.noise,
                                     args.seed, args.padding, selection, args.use_atom_bfactors)
    with atomic_outputs(*outputs) as temporaries:
        write_map(temporaries[0], volume, simulated.geometry, final_name=args.out)
        if args.mask_out:
            write_map(temporaries[1], simulated.atom_mask(args.mask_radius).astype("float32"), simulated.geometry,
                      final_name=args.mask_out)
    logger.info("wrote %s: %s voxels at %g Å/px%s", args.out, "x".join(map(str, volume.shape[::-1])),
                args.sampling, f", mask {args.mask_out}" if args.mask_out else "")
    return 0
