"""Estimate the local resolution of a cryo-EM map with DeepRes.

The map (and mask) are resampled to the network's voxel size (wide: 1.0 Å/px, 2.5-13 Å;
high: 0.5 Å/px, 1.5-6 Å; by default the map chooses: wide, or high when the wide network's
first reading puts most of the map finer than 4.5 Å; the log says which and why), every voxel of the mask where the map shows density gets the
network's answer for the 13^3 box centred on it (one exact convolutional pass over the map),
and the result is brought back onto the map's grid. Voxels of the mask outside the map's
density envelope (solvent inside a loose mask) get no estimate (0); summary.json says how
many (left_out). Without --mask an automatic molecular mask is made and written.

Outputs in --out: resolution.mrc, summary.json, histogram.png, histogram.csv, slices.png,
chimerax.cxc (open with ChimeraX), chimera.cmd (UCSF Chimera) [, mask.mrc].

Many maps (several MAP arguments, or --batch FILE.csv with the columns map, mask, range,
sampling; empty cells take the options): one map per Dask task (by default on a local
cluster of one process per CPU, see --workers), each map's outputs in
--out/<map name>/, plus batch.csv (one row per map: figures, time, status, error) and
batch.png (the maps' distributions). A failing map is reported in its row and the others
go on (exit status 1 if any failed); a rerun skips the maps already done.

Example usage:
    deepres predict map.mrc --mask mask.mrc --out deepres_out
    deepres predict emd_*.map --out project_maps --workers 2
    deepres predict --batch maps.csv --out project_maps --scheduler tcp://head:8786
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.batch import STATUS_DONE, STATUS_FAILED, STATUS_SKIPPED, BatchMap, read_batch_csv, run_batch
from ..core.diagnostics import AUDIENCE_CLI, AUDIENCES
from ..core.errors import ParameterError
from ..core.inference import DEFAULT_SLAB_BYTES, DEVICES, PRECISIONS
from ..core.outputs import BATCH_FILES
from ..core.pipeline import PredictOptions, run_predict
from ..core.ranges import AUTO_HIGH_BELOW_A, AUTO_HIGH_SHARE, AUTO_RANGE, RANGE_CHOICES
from ..core.report import DEFAULT_PALETTE
from ..core.tfquiet import quiet_tensorflow
from .cluster_options import add_cluster_args, cluster_options
from .options import PALETTE, POSITIVE_INT, SAMPLING

logger = logging.getLogger(__name__)

#: Output folder of a batch when --out is not given.
DEFAULT_BATCH_DIR = Path("deepres_batch")
#: Exit status of a batch in which some map failed (the others done).
EXIT_SOME_FAILED = 1
#: MiB in a MB of --slab-mb.
MIB = 2 ** 20
#: What to change when a prediction runs out of memory (the command line's one-line message).
MEMORY_HINT = (f"lower --slab-mb (default {DEFAULT_SLAB_BYTES // MIB}), give a tighter --mask, or use a machine "
               "(or a queue slot) with more memory")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("maps", type=Path, nargs="*", metavar="MAP",
                        help="cryo-EM map(s) (.mrc/.map, optionally .gz); several maps make a batch")
    parser.add_argument("--batch", type=Path, metavar="FILE.csv",
                        help="a batch of maps: CSV with a map column and optional mask, range, sampling columns "
                             "(paths relative to the file)")
    parser.add_argument("--mask", type=Path, help="binary or soft mask on the map's grid (default: automatic)")
    parser.add_argument("--range", dest="range_name", choices=RANGE_CHOICES, default=AUTO_RANGE,
                        help=f"wide: 2.5-13 Å at 1.0 Å/px; high: 1.5-6 Å at 0.5 Å/px; auto (default): wide, or "
                             f"high when the wide network reads {100 * AUTO_HIGH_SHARE:.0f} %% of the map finer "
                             f"than {AUTO_HIGH_BELOW_A:g} Å (with --model: the network's range)")
    parser.add_argument("--model", type=Path, help="a .keras model from `deepres train` (default: shipped network)")
    parser.add_argument("--sampling", type=SAMPLING, metavar="A", help="voxel size in Å/px, overriding the header")
    parser.add_argument("--out", type=Path, help="output folder (default: MAPNAME_deepres; for a batch "
                                                 f"{DEFAULT_BATCH_DIR})")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="TensorFlow device (default auto: GPU if any)")
    parser.add_argument("--path", choices=("auto", "whole", "box"), default="auto",
                        help="inference path: whole-map convolution, box by box, or auto per slab (default)")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                        help="arithmetic of the network (default float32; bfloat16 needs an AVX-512 BF16 CPU, "
                             "float16 a GPU; both are slower on CPUs without them)")
    parser.add_argument("--palette", type=PALETTE, default=DEFAULT_PALETTE, help="matplotlib colour map of plots and scripts")
    parser.add_argument("--slab-mb", type=POSITIVE_INT, default=DEFAULT_SLAB_BYTES // MIB, metavar="MB",
                        help="memory for the network's first layer per slab of the map, in MB (default "
                             f"{DEFAULT_SLAB_BYTES // MIB}); lower it when memory runs out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # whose words the warnings' advice uses: the Scipion protocols name protocols, not commands
    parser.add_argument("--audience", choices=AUDIENCES, default=AUDIENCE_CLI, help=argparse.SUPPRESS)
    add_cluster_args(parser, "map")


def main(args: argparse.Namespace) -> int:
    verbose = getattr(args, "verbose", False)
    quiet_tensorflow(verbose)   # before anything imports TensorFlow
    if args.batch and args.maps:
        raise ParameterError("give maps or a batch file, not both")
    if not args.batch and not args.maps:
        raise ParameterError("give a map (or several, or a batch file)", option="--batch")
    options = PredictOptions(mask=args.mask, range_name=args.range_name, model=args.model, sampling=args.sampling,
                             device=args.device, path=args.path, palette=args.palette, precision=args.precision,
                             progress=not args.no_progress, audience=args.audience, slab_bytes=args.slab_mb * MIB)
    if len(args.maps) == 1:
        return predict_one(args.maps[0], args.out, options)
    maps = read_batch_csv(args.batch) if args.batch else [BatchMap(path) for path in args.maps]
    out = args.out or DEFAULT_BATCH_DIR
    rows = run_batch(maps, out, options, cluster_options(args), progress=not args.no_progress, verbose=verbose)
    counts = {status: sum(row["status"] == status for row in rows)
              for status in (STATUS_DONE, STATUS_SKIPPED, STATUS_FAILED)}
    logger.info("%d maps: %d done, %d skipped (done before), %d failed; outputs in %s, table %s", len(rows),
                counts[STATUS_DONE], counts[STATUS_SKIPPED], counts[STATUS_FAILED], out,
                out / BATCH_FILES["csv"])
    return EXIT_SOME_FAILED if counts[STATUS_FAILED] else 0


def predict_one(map_path: Path, out: Path | None, options: PredictOptions) -> int:
    """One map, as `deepres predict MAP` always did."""
    out = out or Path(f"{map_path.name.split('.')[0]}_deepres")
    summary = run_predict(map_path, out, options)
    logger.info("median %.2f Å (20-80 %%: %.2f-%.2f Å) over %d voxels; outputs in %s",
                summary.median, summary.percentile_20, summary.percentile_80, summary.voxels, out)
    return 0
