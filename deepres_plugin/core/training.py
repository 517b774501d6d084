"""Training DeepRes networks (paper 2.2: Adam, mean squared error) on a dataset from
:mod:`.dataset`.

* The validation set is the dataset's validation split, made by structure (whole
  complexes), never by box. The learning rate drops (x 0.3) after 2 epochs without
  validation improvement; early stopping watches the validation loss; the weights of the
  best epoch are kept.
* ``deepres`` networks are trained in their box form, ``Flatten -> Dense(F) -> Dense(512)
  -> Dense(1)``, which on a 13^3 box is the same function as the ``Conv3D(F, 13, valid)``
  form and trains 3-4 times faster on a CPU (measured: 33 000 against 7 000 boxes/s in
  batches of 1024). The saved model is the convolutional form, with the first Dense kernel
  reshaped into the 13^3 filters: exactly the trained function, now fully convolutional.
* Each epoch ends with a checkpoint (model with optimizer state, best weights, history) in
  ``NAME.checkpoint/``; running the same command again (possibly with more epochs)
  resumes from it. Other options that differ from the checkpoint's are refused. The
  folder is removed when training ends.
* The training record (dataset manifest hash and counts, seed, epochs, losses and MAE,
  wall time of generation and training, library versions) goes into the model's sidecar,
  and a learning curve next to the model (``NAME.learning_curve.png``).
* Several GPUs: when more than one GPU is visible, training is mirrored over them
  (``tf.distribute.MirroredStrategy``: a copy of the network per GPU, gradients summed
  every step). The batch size is per replica, so the global batch is ``batch_size`` x the
  number of GPUs (each GPU does as much work per step as a single one would; the
  learning rate is left unchanged). With one GPU or none, nothing changes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from ..version import __version__
from .dataset import MANIFEST_FILE, load_split, read_manifest
from .errors import ParameterError
from .fileio import atomic_outputs, check_writable_dir
from .networks import ModelInfo, build_network, check_finite_weights, save_keras, save_model
from .progress import is_terminal
from .ranges import get_range
from .train_config import TrainConfig

logger = logging.getLogger(__name__)

#: Keras' ``verbose`` for a live bar per epoch (on a terminal: elsewhere Keras writes a new
#: line at every refresh), and for one line per epoch (a log, or no progress asked for).
KERAS_BAR, KERAS_EPOCH_LINES = 1, 2
CHECKPOINT_SUFFIX = ".checkpoint"
CURVE_SUFFIX = ".learning_curve.png"
#: Boxes of the training split used to report the final training loss/MAE (a full pass
#: over millions of boxes would cost a third of an epoch for one number).
TRAIN_EVALUATION_BOXES = 200_000
#: The learning rate is multiplied by LEARNING_RATE_FACTOR after every LEARNING_RATE_PATIENCE
#: epochs without validation improvement (the first wide run, without it, saw the validation
#: loss oscillate from epoch 11 while the training loss still fell).
LEARNING_RATE_PATIENCE = 2
LEARNING_RATE_FACTOR = 0.3


def replica_devices(gpus: Sequence[str]) -> list[str]:
    """The devices to mirror training over: all of ``gpus`` when there are several, none
    (no mirroring) for one or zero."""
    return list(gpus) if len(gpus) > 1 else []


def training_strategy(devices: Sequence[str] | None = None):
    """The ``tf.distribute`` strategy of a training run: ``MirroredStrategy`` over
    ``devices`` (default: the visible GPUs, ``tf.config.list_logical_devices("GPU")``) when
    there are several, else the default strategy (one device, as without a strategy)."""
    import tensorflow as tf

    names = [device.name for device in tf.config.list_logical_devices("GPU")] if devices is None else list(devices)
    mirrored = replica_devices(names)
    return tf.distribute.MirroredStrategy(mirrored) if mirrored else tf.distribute.get_strategy()


def global_batch_size(batch_size: int, replicas: int) -> int:
    """Boxes per training step over all replicas: ``batch_size`` boxes per replica."""
    return batch_size * max(1, replicas)


def box_input_scale(box_size: int) -> float:
    """sqrt(box^3): unit-norm boxes times this have voxels of order 1, which Adam's first
    steps like far better than voxels of order 0.02 (the factor is folded into the saved
    filters, so the saved network takes unit-norm boxes as the paper's does)."""
    return float(np.sqrt(box_size ** 3))


def box_form_network(config: TrainConfig, box_size: int):
    """The ``deepres`` network in its box form (see module docstring), or the ``xmipp`` one."""
    from keras import layers

    if config.architecture == "xmipp":
        return build_network("xmipp", box_size, config.filters, config.hidden, seed=config.seed)
    keras.utils.set_random_seed(config.seed)
    boxes = keras.Input((box_size, box_size, box_size, 1), name="box")
    x = layers.Flatten(name="flatten")(boxes)
    x = layers.Rescaling(box_input_scale(box_size), name="unit_voxels")(x)
    x = layers.Dense(config.filters, activation="relu", name="conv")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="dropout")(x)
    x = layers.Dense(config.hidden, activation="relu", name="hidden")(x)
    resolution_range = get_range(config.range_name)
    middle = (resolution_range.min_resolution + resolution_range.max_resolution) / 2
    x = layers.Dense(1, name="resolution", bias_initializer=keras.initializers.Constant(middle))(x)
    return keras.Model(boxes, x, name="deepres_box_form")


def to_convolutional(box_network, config: TrainConfig, box_size: int):
    """The fully convolutional ``deepres`` network with the weights of its box form."""
    if config.architecture == "xmipp":
        return box_network
    network = build_network("deepres", box_size, config.filters, config.hidden)
    kernel, bias = box_network.get_layer("conv").get_weights()
    kernel = kernel * box_input_scale(box_size)     # fold the input scaling into the filters
    network.get_layer("conv").set_weights([kernel.reshape(box_size, box_size, box_size, 1, config.filters), bias])
    for name in ("hidden", "resolution"):
        network.get_layer(name).set_weights(box_network.get_layer(name).get_weights())
    return network


class BoxBatches(keras.utils.PyDataset):
    """Shuffled float32 batches from float16 boxes kept in memory.

    The order of an epoch depends on (seed, epoch) only, so a resumed run replays it.
    """

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, shuffle: bool):
        super().__init__()
        self.boxes, self.labels, self.batch_size = boxes, labels, batch_size
        self.seed, self.shuffle = seed, shuffle
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        count = len(self.labels)
        self.order = (np.random.default_rng([self.seed, epoch]).permutation(count) if self.shuffle
                      else np.arange(count))

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __getitem__(self, index: int):
        pick = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.boxes[pick].astype(np.float32)[..., None], self.labels[pick]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


def dataset_fingerprint(dataset_dir: str | os.PathLike) -> tuple[str, dict]:
    """SHA-256 of a dataset's manifest, and the manifest."""
    manifest = read_manifest(dataset_dir)
    raw = (Path(dataset_dir) / MANIFEST_FILE).read_bytes()
    return hashlib.sha256(raw).hexdigest(), manifest


def _checkpoint_state(folder: Path) -> dict | None:
    state = folder / "state.json"
    return json.loads(state.read_text()) if state.is_file() else None


class Checkpointer(keras.callbacks.Callback):
    """After each epoch: the history and elapsed time into the run's ``state`` (the dict saved
    as ``state.json``), ``best.keras`` when the validation loss improved, the learning rate
    lowered after :data:`LEARNING_RATE_PATIENCE` flat epochs, ``last.keras`` and the state
    saved into ``checkpoint`` (a folder), and a stop after ``patience`` epochs without
    improvement. ``seconds_before``: training time of earlier runs; ``start``: this run's
    ``time.perf_counter()`` at its start."""

    def __init__(self, state: dict, checkpoint: Path, patience: int, seconds_before: float, start: float):
        super().__init__()
        self.state, self.checkpoint, self.patience = state, checkpoint, patience
        self.seconds_before, self.start = seconds_before, start

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        for key, value in (logs or {}).items():
            state["history"].setdefault(key, []).append(float(value))
        val_loss = float(logs["val_loss"])
        state["epoch"] = epoch + 1
        state["seconds"] = self.seconds_before + time.perf_counter() - self.start
        if state["best_val_loss"] is None or val_loss < state["best_val_loss"]:
            state["best_val_loss"], state["best_epoch"], state["wait"] = val_loss, epoch + 1, 0
            save_keras(self.model, self.checkpoint / "best.keras")
        else:
            state["wait"] += 1
            if state["wait"] % LEARNING_RATE_PATIENCE == 0:
                rate = _learning_rate(self.model) * LEARNING_RATE_FACTOR
                self.model.optimizer.learning_rate = rate
                logger.info("validation loss flat for %d epochs: learning rate now %.2g", state["wait"], rate)
        state["history"].setdefault("learning_rate", []).append(_learning_rate(self.model))
        save_keras(self.model, self.checkpoint / "last.keras")
        with atomic_outputs(self.checkpoint / "state.json") as (tmp,):
            tmp.write_text(json.dumps(state, indent=1))
        if state["wait"] >= self.patience:
            logger.info("early stop: no validation improvement for %d epochs", self.patience)
            self.model.stop_training = True


def train_model(dataset_dir: str | os.PathLike, out_path: str | os.PathLike, config: TrainConfig,
                progress: bool = True, name: str | None = None, version: str = "1",
                devices: Sequence[str] | None = None) -> dict[str, Any]:
    """Train a network on a dataset and save it (with sidecar and learning curve) to ``out_path``.

    ``devices``: the devices to train on (default: every visible GPU; mirrored when there
    are several, :func:`training_strategy`, with ``config.batch_size`` boxes per device).

    Returns:
        the training record.

    Raises:
        ParameterError: bad options, unfinished dataset, dataset of another range, empty
            split, or a checkpoint made with other options.
    """
    config.validate()
    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise ParameterError(f"the model file must end in .keras: {out_path}")
    check_writable_dir(out_path)
    digest, manifest = dataset_fingerprint(dataset_dir)
    if manifest["config"]["range_name"] != config.range_name:
        raise ParameterError(f"{dataset_dir} is a {manifest['config']['range_name']!r} dataset, "
                             f"not {config.range_name!r}")
    box_size = int(manifest["config"]["box_size"])
    train_boxes, train_labels = load_split(dataset_dir, "train")
    val_boxes, val_labels = load_split(dataset_dir, "val")
    if len(train_labels) == 0 or len(val_labels) == 0:
        raise ParameterError(f"{dataset_dir} needs boxes in both splits (train {len(train_labels)}, "
                             f"val {len(val_labels)}); change the validation fraction", option="--val-fraction")
    logger.info("training %s/%s on %d boxes, validating on %d", config.architecture, config.range_name,
                len(train_labels), len(val_labels))

    checkpoint = out_path.with_name(out_path.stem + CHECKPOINT_SUFFIX)
    # more epochs may be asked for on resume; every other option must match
    wanted = {"config": {k: v for k, v in dataclasses.asdict(config).items() if k != "epochs"},
              "dataset_sha256": digest}
    state = _checkpoint_state(checkpoint)
    if state is not None and {k: state[k] for k in wanted} != wanted:
        raise ParameterError(f"{checkpoint} holds a run with other options or another dataset; "
                             "delete it or repeat the original command")
    strategy = training_strategy(devices)
    replicas = strategy.num_replicas_in_sync
    batch_size = global_batch_size(config.batch_size, replicas)
    if replicas > 1:
        logger.info("mirrored over %d devices (%s): %d boxes per step, %d per device", replicas,
                    ", ".join(strategy.extended.worker_devices), batch_size, config.batch_size)
    with strategy.scope():              # variables (and the optimizer's) made on every replica
        if state is None:
            network = box_form_network(config, box_size)
            network.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse", metrics=["mae"])
            state = {**wanted, "epoch": 0, "history": {}, "best_val_loss": None, "best_epoch": 0, "wait": 0,
                     "seconds": 0.0}
            checkpoint.mkdir(parents=True, exist_ok=True)
        else:
            logger.info("resuming from %s after epoch %d", checkpoint, state["epoch"])
            network = keras.saving.load_model(checkpoint / "last.keras")

    train_data = BoxBatches(train_boxes, train_labels, batch_size, config.seed, shuffle=True)
    train_data.set_epoch(state["epoch"])
    val_data = BoxBatches(val_boxes, val_labels, batch_size, config.seed, shuffle=False)
    start = time.perf_counter()
    seconds_before = state["seconds"]

    if state["epoch"] < config.epochs and state["wait"] < config.patience:
        network.fit(train_data, validation_data=val_data, epochs=config.epochs, initial_epoch=state["epoch"],
                    callbacks=[Checkpointer(state, checkpoint, config.patience, seconds_before, start)], verbose=KERAS_BAR if progress and is_terminal(sys.stdout)
                    else KERAS_EPOCH_LINES)
    best = keras.saving.load_model(checkpoint / "best.keras")
    record = _training_record(config, digest, manifest, dataset_dir, state, best, train_boxes, train_labels,
                              val_boxes, val_labels)
    record.update(replicas=replicas, global_batch_size=batch_size)
    check_finite_weights(best, "training diverged: the network's weights are not finite; lower the learning rate",
                         option="--learning-rate")
    final = to_convolutional(best, config, box_size)
    info = ModelInfo.for_range(config.architecture, config.range_name, name=name or out_path.stem,
                               version=version, trained=True, training=record)
    save_model(final, info, out_path)
    _save_curve(state["history"], out_path.with_name(out_path.stem + CURVE_SUFFIX), config)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return record


def _learning_rate(network) -> float:
    """The optimizer's current learning rate (a mirrored variable under several devices)."""
    return float(keras.ops.convert_to_numpy(network.optimizer.learning_rate))


def _evaluate(network, boxes, labels, batch_size: int) -> dict[str, float]:
    predictions = network.predict(BoxBatches(boxes, labels, batch_size, 0, shuffle=False), verbose=0).reshape(-1)
    errors = predictions - labels
    return {"mse": float(np.mean(errors ** 2)), "mae": float(np.mean(np.abs(errors)))}


def _training_record(config, digest, manifest, dataset_dir, state, best, train_boxes, train_labels,
                     val_boxes, val_labels) -> dict[str, Any]:
    import tensorflow as tf

    sample = np.random.default_rng(config.seed).permutation(len(train_labels))[:TRAIN_EVALUATION_BOXES]
    sample.sort()
    train_metrics = _evaluate(best, train_boxes[sample], train_labels[sample], 2048)
    val_metrics = _evaluate(best, val_boxes, val_labels, 2048)
    timing = manifest.get("timing", {})
    return {
        "dataset": str(Path(dataset_dir).resolve()), "dataset_manifest_sha256": digest,
        "dataset_counts": manifest["counts"], "dataset_config": manifest["config"],
        "dataset_generation_wall_seconds": timing.get("wall_seconds_this_run"),
        "dataset_generation_structure_seconds": timing.get("structure_seconds_total"),
        "config": dataclasses.asdict(config), "seed": config.seed,
        "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
        "train_loss_mse": train_metrics["mse"], "train_mae_A": train_metrics["mae"],
        "train_metrics_boxes": int(len(sample)),
        "val_loss_mse": val_metrics["mse"], "val_mae_A": val_metrics["mae"],
        "training_wall_seconds": round(state["seconds"], 1),
        "history": state["history"],
        "versions": {"deepres": __version__, "python": platform.python_version(), "numpy": np.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }


def _save_curve(history: dict[str, list[float]], path: Path, config: TrainConfig) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.8))
    FigureCanvasAgg(figure)
    for i, (metric, label) in enumerate([("loss", "MSE (Å²)"), ("mae", "MAE (Å)")]):
        axes = figure.add_subplot(1, 2, i + 1)
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric, [])
            axes.plot(range(1, len(values) + 1), values, style, label=("validation" if prefix else "training"))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.legend()
    figure.suptitle(f"DeepRes {config.architecture}/{config.range_name} training")
    figure.tight_layout()
    with atomic_outputs(path) as (tmp,):
        figure.savefig(tmp, format="png", dpi=100)
