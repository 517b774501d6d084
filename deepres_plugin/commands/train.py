"""Train a DeepRes network on a dataset made by `deepres dataset`.

Adam with mean squared error (paper 2.2); validation on the dataset's validation split
(whole structures held out); early stopping on the validation loss (the best epoch's
weights are kept); a checkpoint after every epoch, so rerunning the same command resumes
an interrupted run. Writes MODEL (.keras), its sidecar MODEL.json with the training
record, and MODEL.learning_curve.png.

With several GPUs visible, training is mirrored over all of them (TensorFlow's
MirroredStrategy); --batch-size is per GPU, so a step takes GPUs x batch-size boxes (the
learning rate is unchanged). Choose the GPUs with CUDA_VISIBLE_DEVICES.

Example usage:
    deepres train data/wide --range wide --out models/deepres_wide.keras --epochs 30
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..core.networks import ARCHITECTURES
from ..core.ranges import RANGES
from ..core.tfquiet import quiet_tensorflow
from ..core.train_config import TrainConfig
from .options import POSITIVE_INT, SEED, number

logger = logging.getLogger(__name__)
_DEFAULTS = TrainConfig("wide")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="folder made by `deepres dataset`")
    parser.add_argument("--range", dest="range_name", choices=sorted(RANGES), required=True,
                        help="resolution range of the dataset and network")
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.keras)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=_DEFAULTS.architecture,
                        help="deepres (fully convolutional, default) or xmipp (Flatten head, box by box only)")
    parser.add_argument("--epochs", type=POSITIVE_INT, default=_DEFAULTS.epochs, help=f"at most (default {_DEFAULTS.epochs})")
    parser.add_argument("--seed", type=SEED, default=_DEFAULTS.seed, help="initialisation and shuffling seed")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=_DEFAULTS.batch_size,
                        help=f"boxes per step and per GPU (default {_DEFAULTS.batch_size}; with several "
                             "GPUs a step takes GPUs x this)")
    parser.add_argument("--learning-rate", type=number(above=0.0, maximum=1.0), default=_DEFAULTS.learning_rate,
                        help=f"Adam step size (default {_DEFAULTS.learning_rate:g})")
    parser.add_argument("--patience", type=POSITIVE_INT, default=_DEFAULTS.patience,
                        help=f"epochs without validation improvement before stopping (default {_DEFAULTS.patience})")
    parser.add_argument("--filters", type=POSITIVE_INT, default=_DEFAULTS.filters,
                        help=f"first-layer filters (default {_DEFAULTS.filters})")
    parser.add_argument("--dropout", type=number(minimum=0.0, below=1.0), default=_DEFAULTS.dropout,
                        help="dropout after the first layer (default 0: it made inference worse, see docs/methods.md)")
    parser.add_argument("--name", help="model name shown in summaries (default: the file name)")
    parser.add_argument("--model-version", default="1", help="version string stored with the weights")
    parser.add_argument("--no-progress", action="store_true", help="one line per epoch instead of a progress bar")


def main(args: argparse.Namespace) -> int:
    quiet_tensorflow(getattr(args, "verbose", False))   # before anything imports TensorFlow
    from ..core.training import train_model

    config = TrainConfig(range_name=args.range_name, architecture=args.arch, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
                         seed=args.seed, filters=args.filters, dropout=args.dropout)
    record = train_model(args.dataset, args.out, config, progress=not args.no_progress, name=args.name,
                         version=args.model_version)
    logger.info("%s: validation MAE %.3f Å (best epoch %d of %d), %.0f s of training on %d device%s "
                "(batches of %d)", args.out, record["val_mae_A"], record["best_epoch"], record["epochs_run"],
                record["training_wall_seconds"], record["replicas"], "s" if record["replicas"] > 1 else "",
                record["global_batch_size"])
    return 0
