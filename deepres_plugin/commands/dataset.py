"""Generate DeepRes training data from a folder of atomic models.

Every model is simulated at the range's voxel size (wide: 1.0 A/px, labels 2.5-13 Å;
high: 0.5 A/px, labels 1.5-6 Å), low-passed at resolutions drawn across the range, noised,
and cut into 13^3 boxes centred inside the molecule, each divided by its L2 norm and
labelled with its filter resolution. One shard per structure, a manifest at the end;
structures are split into train/validation by complex. An interrupted run resumes where
it stopped when run again with the same options. See deepres_plugin/core/dataset.py.

Each structure is one Dask task: on a local cluster of one process per CPU (--workers auto,
the default), in this process (--workers 1), on a local cluster of --workers processes, on
an existing cluster (--scheduler) or on batch jobs (--jobqueue).
The shards are byte-identical whichever runs them.

Example usage:
    deepres dataset ../shared/data/structures/train --range wide --out data/wide --workers 2
    deepres dataset structures --range high --out data/high --scheduler tcp://head:8786
    deepres dataset structures --range high --out data/high --jobqueue slurm --workers 64
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..core.dataset import CONDITION_SCHEMES, DatasetConfig, generate_dataset
from ..core.ranges import RANGES
from .cluster_options import add_cluster_args, cluster_options
from .options import FRACTION, POSITIVE_INT, RESOLUTION, SEED, number

logger = logging.getLogger(__name__)
_DEFAULTS = DatasetConfig("wide")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("structures", type=Path, metavar="STRUCTURE_DIR", help="folder of .pdb/.cif(.gz) files")
    parser.add_argument("--range", dest="range_name", choices=sorted(RANGES), required=True,
                        help="resolution range: wide (1.0 A/px, 2.5-13 Å) or high (0.5 A/px, 1.5-6 Å)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created, or resumed)")
    parser.add_argument("--seed", type=SEED, default=_DEFAULTS.seed, help="random seed (default 0)")
    parser.add_argument("--labels-per-structure", type=POSITIVE_INT, default=_DEFAULTS.labels_per_structure,
                        help=f"filter resolutions per structure (default {_DEFAULTS.labels_per_structure})")
    parser.add_argument("--boxes-per-label", type=POSITIVE_INT, default=_DEFAULTS.boxes_per_label,
                        help=f"boxes per filtered map (default {_DEFAULTS.boxes_per_label})")
    parser.add_argument("--noise-max", type=number(minimum=0.0), default=_DEFAULTS.noise_sd_max,
                        help=f"largest noise SD, map maximum = 1 (default {_DEFAULTS.noise_sd_max:g})")
    parser.add_argument("--filtered-noise-fraction", type=FRACTION, default=_DEFAULTS.filtered_noise_fraction,
                        help="fraction of maps whose noise is low-passed like the signal "
                             f"(default {_DEFAULTS.filtered_noise_fraction:g})")
    parser.add_argument("--val-fraction", type=number(minimum=0.0, below=1.0), default=_DEFAULTS.val_fraction,
                        help=f"fraction of complexes held out for validation (default {_DEFAULTS.val_fraction:g})")
    parser.add_argument("--label-min", type=RESOLUTION, metavar="A",
                        help="lowest training label (default: the range minimum); lower labels are clamped "
                             "at inference, which removes the bias of a regression at the edge of its range")
    parser.add_argument("--noise-shape", choices=("uniform", "square"), default=_DEFAULTS.noise_shape,
                        help="noise SD uniform in [0, max], or max * u^2 (mostly light noise)")
    parser.add_argument("--conditions", choices=CONDITION_SCHEMES, default=_DEFAULTS.conditions,
                        help="varied (default): each filtered map gets a random low-pass shape, B envelope, noise "
                             "colour and reference, and solvent (flattened, masked); paper: Xmipp's filter and "
                             "noise relative to the map maximum only")
    parser.add_argument("--max-structures", type=POSITIVE_INT, help="use a seeded random subset of this many structures")
    parser.add_argument("--dtype", choices=("float16", "float32"), default=_DEFAULTS.dtype,
                        help="storage type of the boxes (default float16: half the disk, 1e-3 precision)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cluster_args(parser, "structure")


def main(args: argparse.Namespace) -> int:
    config = DatasetConfig(range_name=args.range_name, seed=args.seed,
                           labels_per_structure=args.labels_per_structure, boxes_per_label=args.boxes_per_label,
                           noise_sd_max=args.noise_max, conditions=args.conditions,
                           filtered_noise_fraction=args.filtered_noise_fraction,
                           val_fraction=args.val_fraction, dtype=args.dtype, label_min=args.label_min,
                           noise_shape=args.noise_shape)
    cluster = cluster_options(args)
    start = time.perf_counter()
    manifest = generate_dataset(args.structures, args.out, config, workers=args.workers,
                                max_structures=args.max_structures, progress=not args.no_progress, cluster=cluster)
    counts = manifest["counts"]
    logger.info("%s: %d train structures (%d boxes), %d validation structures (%d boxes), %d skipped, %.0f s",
                args.out, counts["train"]["structures"], counts["train"]["boxes"], counts["val"]["structures"],
                counts["val"]["boxes"], len(manifest["skipped"]), time.perf_counter() - start)
    return 0
