"""DeepRes networks and their file format.

Two architectures (Keras 3 on TensorFlow):

* ``deepres`` (default), the paper's text read literally: Conv3D with 32 filters of 13^3
  and ReLU, then a per-voxel Dense 512 + ReLU and a per-voxel Dense 1. Trained on 13^3
  boxes the convolution is "valid" and yields one voxel, so the same weights applied to a
  whole map give every voxel's answer at once: the network is fully convolutional, and
  :mod:`.inference` predicts a whole map in one exact convolutional pass.
* ``xmipp``, as Xmipp's code has it: Conv3D 32 @ 13^3 with "same" padding, Flatten,
  Dense 512, Dense 1 (36 M parameters). Box-by-box inference only; it exists for
  side-by-side comparison.

A model is a Keras ``.keras`` file plus a JSON sidecar with the same stem (``NAME.json``)
holding the range, voxel size, box size, architecture and training record. Keras is
imported only when a network is built or loaded.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..version import __version__
from .errors import ParameterError
from .fileio import atomic_outputs
from .ranges import BOX_SIZE, RANGES, ResolutionRange, get_range

MODEL_FORMAT = "deepres-model"
MODEL_FORMAT_VERSION = 1
ARCHITECTURES = ("deepres", "xmipp")
#: Width of the per-voxel hidden layer and number of filters of the paper's network.
DEFAULT_FILTERS = 32
DEFAULT_HIDDEN = 512
#: Dropout after the convolution of the ``xmipp`` architecture (paper 2.2).
XMIPP_DROPOUT = 0.25
MODEL_SUFFIX = ".keras"
SIDECAR_SUFFIX = ".json"


@dataclasses.dataclass
class ModelInfo:
    """The sidecar of a model file.

    Attributes:
        name: short name shown in summaries (``deepres-wide``).
        version: version of these weights.
        architecture: ``deepres`` or ``xmipp``.
        range_name: ``wide`` or ``high``.
        voxel_size: A/px the network works at.
        min_resolution, max_resolution: label range in A.
        box_size: edge of the input box in voxels.
        trained: False for freshly initialised weights (tests only: never a result).
        training: the training record (dataset, seed, epochs, losses, timings, versions).
    """

    name: str
    version: str
    architecture: str
    range_name: str
    voxel_size: float
    min_resolution: float
    max_resolution: float
    box_size: int = BOX_SIZE
    trained: bool = False
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    format: str = MODEL_FORMAT
    format_version: int = MODEL_FORMAT_VERSION
    deepres_version: str = __version__

    @property
    def resolution_range(self) -> ResolutionRange:
        return ResolutionRange(self.range_name, self.voxel_size, self.min_resolution, self.max_resolution)

    @classmethod
    def for_range(cls, architecture: str, range_name: str, **extra: Any) -> "ModelInfo":
        resolution_range = get_range(range_name)
        return cls(name=extra.pop("name", f"{architecture}-{range_name}"), version=extra.pop("version", "0"),
                   architecture=architecture, range_name=range_name, voxel_size=resolution_range.voxel_size,
                   min_resolution=resolution_range.min_resolution,
                   max_resolution=resolution_range.max_resolution, **extra)


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``NAME.json`` next to ``NAME.keras``."""
    return Path(model_path).with_suffix(SIDECAR_SUFFIX)


def build_network(architecture: str = "deepres", box_size: int = BOX_SIZE, filters: int = DEFAULT_FILTERS,
                  hidden: int = DEFAULT_HIDDEN, seed: int | None = None):
    """A new, untrained Keras network taking (batch, box, box, box, 1) boxes, returning (batch, 1) A.

    Raises:
        ParameterError: unknown architecture.
    """
    import keras
    from keras import layers

    if architecture not in ARCHITECTURES:
        raise ParameterError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    boxes = keras.Input((box_size, box_size, box_size, 1), name="box")
    if architecture == "deepres":
        x = layers.Conv3D(filters, box_size, padding="valid", activation="relu", name="conv")(boxes)
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
        x = layers.Dense(1, name="resolution")(x)
        x = layers.Reshape((1,), name="voxel")(x)
    else:
        x = layers.Conv3D(filters, box_size, padding="same", activation="relu", name="conv")(boxes)
        x = layers.Dropout(XMIPP_DROPOUT, name="dropout")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
        x = layers.Dense(1, name="resolution")(x)
    return keras.Model(boxes, x, name=architecture)


def save_model(network, info: ModelInfo, path: str | os.PathLike) -> None:
    """Write ``path`` (.keras) and its sidecar, both atomically."""
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise ParameterError(f"model files end in {MODEL_SUFFIX}: {path}")
    with atomic_outputs(path, sidecar_path(path)) as (tmp_model, tmp_info):
        save_keras(network, tmp_model)
        tmp_info.write_text(json.dumps(dataclasses.asdict(info), indent=2))


def save_keras(network, path: str | os.PathLike) -> None:
    """Save a Keras model to ``path`` atomically, whatever its suffix (Keras insists on
    ``.keras``, so it writes a suffixed temporary name that is then renamed)."""
    with atomic_outputs(path) as (tmp,):
        keras_tmp = tmp.with_name(tmp.name + MODEL_SUFFIX)
        try:
            network.save(keras_tmp)
            os.replace(keras_tmp, tmp)
        finally:
            keras_tmp.unlink(missing_ok=True)


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read and check the sidecar of a model file.

    Raises:
        ParameterError: missing or unreadable sidecar, other format, unknown architecture or
            range, or a range whose voxel size/labels differ from the named range's.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: no such model file")
    meta = sidecar_path(path)
    try:
        fields = json.loads(meta.read_text())
    except FileNotFoundError:
        raise ParameterError(f"{path}: the model's metadata file {meta.name} is missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{meta}: unreadable model metadata ({exc})") from None
    if not isinstance(fields, dict) or fields.get("format") != MODEL_FORMAT:
        raise ParameterError(f"{meta} is not DeepRes model metadata")
    if fields.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise ParameterError(f"{meta}: model format {fields.get('format_version')} is newer than this DeepRes "
                             f"({MODEL_FORMAT_VERSION}); upgrade the plugin")
    known = {f.name for f in dataclasses.fields(ModelInfo)}
    try:
        info = ModelInfo(**{k: v for k, v in fields.items() if k in known})
    except TypeError as exc:
        raise ParameterError(f"{meta}: incomplete model metadata ({exc})") from None
    if info.architecture not in ARCHITECTURES:
        raise ParameterError(f"{meta}: unknown architecture {info.architecture!r}")
    if info.range_name not in RANGES or info.resolution_range != RANGES[info.range_name]:
        raise ParameterError(f"{meta}: range {info.range_name!r} at {info.voxel_size} Å/px, "
                             f"{info.min_resolution}-{info.max_resolution} Å is not a DeepRes range")
    return info


def check_model_file(path: str | os.PathLike, range_name: str | None = None) -> ModelInfo:
    """The sidecar of a model file, checked, and made for ``range_name`` when given (cheap:
    TensorFlow is not imported).

    Raises:
        ParameterError: see :func:`read_model_info`, or a model of another range.
    """
    info = read_model_info(path)
    if range_name is not None and info.range_name != get_range(range_name).name:
        raise ParameterError(f"{path} is a {info.range_name!r} model ({info.min_resolution}-{info.max_resolution} Å "
                             f"at {info.voxel_size} Å/px), not a {range_name!r} one")
    return info


def load_model(path: str | os.PathLike, range_name: str | None = None):
    """Load a model and its sidecar; refuse one made for another range.

    Returns:
        ``(network, info)``.

    Raises:
        ParameterError: bad metadata, range mismatch, corrupt Keras file, or an input
            shape that differs from the sidecar's box size.
    """
    import keras

    info = check_model_file(path, range_name)
    try:
        network = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged zip/h5/config
        raise ParameterError(f"{path}: cannot load the Keras model ({type(exc).__name__}: {exc})") from None
    expected = (info.box_size,) * 3 + (1,)
    if tuple(network.input_shape[1:]) != expected:
        raise ParameterError(f"{path}: network input {network.input_shape[1:]} does not match box {expected}")
    check_finite_weights(network, f"{path}: the network's weights are not finite (a diverged training?)")
    return network, info


def check_finite_weights(network, message: str, option: str | None = None) -> None:
    """Raise :class:`ParameterError` with ``message`` when any weight is NaN or infinite."""
    import numpy as np

    if not all(np.all(np.isfinite(weight)) for weight in network.get_weights()):
        raise ParameterError(message, option=option)
