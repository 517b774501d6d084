"""Whole-map DeepRes inference.

The paper assigns to every voxel inside the mask the network's answer for the 13^3 box
centred on it, each box divided by its L2 norm (sections 2.1, 2.3). Where those boxes reach
beyond the map's edges, the map is first mirrored there (:func:`edge_padding`): density
that meets the edge (a filament, a crop of a larger map) then continues instead of
stopping in a step, which the network read as fine detail (EMD-5168's filament: the planes
at the edge read 5.6 A against 8.9 A inside with zeros beyond the edge, 8.0-8.3 A
mirrored). Two exact ways to compute the answers are implemented; both see zeros beyond
the (mirrored) map, and both give the same numbers (to float32 rounding):

* **whole-map path** for fully convolutional networks (``deepres`` architecture). The
  first layer is linear, so ``conv(box / |box|) = conv(box) / |box|``, and ``|box|^2`` is a
  13^3 box-sum of the squared map. One "valid" 3D convolution of the map (TensorFlow,
  oneDNN on CPU, cuDNN on a GPU) and one box-sum give every voxel's first-layer output;
  the per-voxel dense layers are then applied to the masked voxels only. The map is
  processed in slabs along z (each with a 6-voxel halo, cropped in y and x to the mask's
  bounding box within the slab) whose size is set by a memory budget, so peak memory does
  not grow with the map; slabs without masked voxels are skipped.
* **box path** for any network: boxes around the masked voxels are cut in batches
  (strided views, no Python loop over voxels), normalised and passed to the network.
  It is the reference for verification, the only path for the ``xmipp`` architecture,
  and the cheaper one for a slab whose mask is sparse: the convolution costs grow with the
  slab's bounding box, the box evaluation with its masked voxels only. The engine uses
  the box path for a slab when ``masked voxels x BOX_PATH_COST_RATIO < bounding-box
  voxels`` (the ratio is the measured cost of a box relative to a voxel of convolution,
  see ``benchmarks/inference_speed.py``).

Before prediction the map's background level is removed (the median of the voxels
outside the mask: solvent, where simulated training maps are zero on average) and the map
is resampled to the network's voxel size (Fourier interpolation). Input voxel i sits on
network voxel i x (input / network voxel size); its answer is read back trilinearly from
the network voxels around that point, and only those are evaluated: all of them around
each masked input voxel when the ratio is not a whole number, only the lattice of every
ratio-th network voxel when it is (1 A/px input, high network: stride 2, an eighth of the
work, exact). Answers are clamped to [max(2 x input voxel size, range minimum), range
maximum] as Xmipp does; voxels outside the mask are 0.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Iterator

import numpy as np
import scipy.ndimage

from .errors import MaskError, ParameterError
from .networks import ModelInfo
from .progress import progress_bar
from .resample import SlabResampler, resampled_shape

logger = logging.getLogger(__name__)

#: Cost of evaluating one box on the box path relative to one voxel of the whole-map
#: convolution: 3.2 measured with benchmarks/inference_speed.py on this project's 2-core CPU.
BOX_PATH_COST_RATIO = 3.2
#: Memory for one slab's first-layer output, in bytes (the slab thickness follows from it).
#: Thin slabs hug the mask more closely (each is cropped to its own bounding box).
DEFAULT_SLAB_BYTES = 32 * 1024 ** 2
#: Boxes per batch on the box path.
BOX_BATCH = 2048
#: Voxels per call of the per-voxel dense layers: the hidden activations stay in cache
#: (measured: 85 GFLOPS in chunks of 16k voxels against 9 GFLOPS for 300k at once).
HEAD_CHUNK = 16384
#: Norm below which a box is left unnormalised (an all-zero box).
MIN_BOX_NORM = 1e-12
#: Voxels needed outside the mask to estimate the background level.
MIN_BACKGROUND_VOXELS = 1000
DEVICES = ("auto", "cpu", "gpu")
#: Arithmetic of the whole-map convolution and the per-voxel layers. float32 is the default
#: everywhere: bfloat16 (oneDNN on AVX-512 BF16 CPUs) and float16 (GPUs) are available for
#: measurement; see docs/benchmarks.md, "Performance", for their speed and accuracy here.
PRECISIONS = ("float32", "bfloat16", "float16")


@dataclasses.dataclass
class FullyConvolutionalWeights:
    """Weights of a conv + per-voxel dense network, as numpy arrays.

    Attributes:
        kernel: (b, b, b, 1, F) first-layer filters; ``conv_bias`` (F,); ``conv_relu``
            whether a ReLU follows the convolution.
        dense: per-voxel layers ``(W, bias, relu)`` in order; the last gives the resolution.
    """

    kernel: np.ndarray
    conv_bias: np.ndarray
    conv_relu: bool
    dense: list[tuple[np.ndarray, np.ndarray, bool]]

    @property
    def box_size(self) -> int:
        return int(self.kernel.shape[0])

    def multiply_adds_per_voxel(self) -> int:
        """Multiply-adds of one voxel's answer (the floor of any exact evaluation)."""
        return int(self.kernel.size + sum(w.size for w, _, _ in self.dense))


def fully_convolutional_weights(network) -> FullyConvolutionalWeights | None:
    """The network's weights if it is a valid conv + per-voxel dense stack, else None.

    Accepted: input, one Conv3D ("valid", kernel = box, ReLU or linear), then Dense layers
    (ReLU or linear), Dropout (inactive at inference) and shape-only Reshape/Flatten.
    """
    from keras import layers

    body = [layer for layer in network.layers if not isinstance(layer, layers.InputLayer)]
    if not body or not isinstance(body[0], layers.Conv3D):
        return None
    conv = body[0]
    box = network.input_shape[1]
    config = conv.get_config()
    if (config["padding"] != "valid" or tuple(config["kernel_size"]) != (box,) * 3
            or tuple(config["strides"]) != (1, 1, 1) or conv.activation.__name__ not in ("relu", "linear")):
        return None
    dense = []
    for layer in body[1:]:
        if isinstance(layer, layers.Dense):
            name = layer.activation.__name__
            if name not in ("relu", "linear"):
                return None
            kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            dense.append((kernel, bias, name == "relu"))
        elif not isinstance(layer, (layers.Dropout, layers.Reshape, layers.Flatten)):
            return None
    if not dense or dense[-1][0].shape[1] != 1 or dense[-1][2]:
        return None
    kernel, bias = (np.asarray(w, np.float32) for w in conv.get_weights())
    return FullyConvolutionalWeights(kernel, bias, conv.activation.__name__ == "relu", dense)


@contextlib.contextmanager
def tensorflow_device(device: str) -> Iterator[str]:
    """Run TensorFlow ops on ``auto`` (GPU if visible), ``cpu`` or ``gpu``; yields the device used.

    Raises:
        ParameterError: unknown device, or ``gpu`` asked for and none is visible.
        MemoryError: TensorFlow ran out of memory within the block.
    """
    import tensorflow as tf

    if device not in DEVICES:
        raise ParameterError(f"device must be one of {', '.join(DEVICES)}")
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ParameterError("a GPU was asked for, but TensorFlow sees none (is the CUDA build of TensorFlow "
                             "installed?)", option="--device")
    name = gpus[0].name if gpus and device != "cpu" else "/CPU:0"
    with tf.device(name):
        try:
            yield name
        except tf.errors.ResourceExhaustedError:     # one kind of failure: out of memory, whoever allocates
            raise MemoryError(f"TensorFlow could not allocate memory on {device_label(name)}") from None


def device_label(name: str) -> str:
    """A TensorFlow device name as people write it: ``CPU``, or ``GPU:<index>`` (the index
    among the GPUs TensorFlow sees): ``/job:localhost/replica:0/task:0/device:GPU:0`` ->
    ``GPU:0``."""
    kind, _, index = name.rsplit("/", 1)[-1].removeprefix("device:").partition(":")
    kind = kind.upper()
    return kind if kind == "CPU" else f"{kind}:{index or 0}"


class Predictor:
    """Local resolution at every masked voxel of a map already at the network's voxel size.

    Args:
        network: a Keras DeepRes network.
        info: its sidecar.
        path: ``auto`` (per-slab rule), ``whole`` (whole-map only) or ``box`` (box path only).
        slab_bytes: memory budget of a slab's first-layer output.
        precision: arithmetic of the whole-map convolution and the per-voxel layers
            (:data:`PRECISIONS`); box norms, the box path's first layer and the output stay float32.
    """

    def __init__(self, network, info: ModelInfo, path: str = "auto", slab_bytes: int = DEFAULT_SLAB_BYTES,
                 precision: str = "float32"):
        if path not in ("auto", "whole", "box"):
            raise ParameterError(f"inference path must be auto, whole or box, not {path!r}")
        if precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}",
                                 option="--precision")
        self.network, self.info = network, info
        self.weights = fully_convolutional_weights(network)
        if path == "whole" and self.weights is None:
            raise ParameterError(f"the {info.architecture!r} network is not fully convolutional: "
                                 "only the box path can evaluate it")
        if precision != "float32" and self.weights is None:
            raise ParameterError(f"the {info.architecture!r} network is evaluated by Keras box by box: only float32",
                                 option="--precision")
        self.precision = precision
        self.path = "box" if self.weights is None else path
        self.box = info.box_size
        self.slab_bytes = slab_bytes
        self.voxels_by_path = {"whole": 0, "box": 0}
        self.convolved_voxels = 0      # voxels of the slabs' bounding boxes on the whole-map path
        self._head_function = None
        self._kernel = None            # first-layer filters in the compute precision, made on first use
        if self.weights is not None:
            self._kernel_matrix = self.weights.kernel.reshape(-1, self.weights.kernel.shape[-1])

    # -- public -------------------------------------------------------------------------
    def predict(self, volume: np.ndarray, mask: np.ndarray, progress: bool = False, stride: int = 1) -> np.ndarray:
        """Resolution (A) at the masked voxels, 0 elsewhere; unclamped network output.

        Args:
            volume: map at the network's voxel size, background removed, [z, y, x].
            mask: boolean mask of the same shape.
            stride: evaluate only the masked voxels whose three indices are multiples of
                ``stride`` (the others stay 0): the voxels an output grid ``stride`` times
                coarser reads. The whole-map path then convolves with that stride, so its
                cost falls by ``stride``^3; the values are the same as at stride 1.
        """
        if volume.shape != mask.shape:
            raise MaskError(f"mask shape {mask.shape} differs from map shape {volume.shape}")
        if stride > 1:
            lattice = np.zeros(mask.shape, bool)
            lattice[::stride, ::stride, ::stride] = True
            mask = mask & lattice
        half = self.box // 2
        result = np.zeros(volume.shape, np.float32)
        slabs = list(self._slabs(mask, stride))
        with progress_bar(total=int(mask.sum()), unit="voxel", unit_scale=True, desc="deepres predict",
                          enabled=progress) as bar:
            for z0, z1 in slabs:
                local = mask[z0:z1]
                (y0, y1), (x0, x1) = _extent(local.any(axis=(0, 2))), _extent(local.any(axis=(0, 1)))
                y0, x0 = y0 - y0 % stride, x0 - x0 % stride           # on the lattice
                local = local[:, y0:y1, x0:x1]
                block = zero_padded_block(volume, (z0 - half, y0 - half, x0 - half), (z1 + half, y1 + half, x1 + half))
                # |box| for every evaluated voxel at once, from box-sums of the squared map
                norms = np.sqrt(box_sums(block.astype(np.float64) ** 2, self.box, stride)
                                [local[::stride, ::stride, ::stride]])
                norms = np.maximum(norms, MIN_BOX_NORM).astype(np.float32)
                count = len(norms)
                convolved = -(-local.shape[0] // stride) * -(-local.shape[1] // stride) * -(-local.shape[2] // stride)
                use_box = self.path == "box" or (self.path == "auto" and
                                                 count * BOX_PATH_COST_RATIO < convolved)
                if use_box:
                    values = self._box_slab(block, local, norms)
                else:
                    values = self._whole_slab(block, local, norms, stride)
                    self.convolved_voxels += convolved
                self.voxels_by_path["box" if use_box else "whole"] += count
                result[z0:z1, y0:y1, x0:x1][local] = values
                bar.update(count)
        return result

    # -- internals ----------------------------------------------------------------------
    def _box_slab(self, block: np.ndarray, local: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Box path: cut the boxes around the ``local`` voxels of a slab, in batches."""
        windows = np.lib.stride_tricks.sliding_window_view(block, (self.box,) * 3)
        index = np.argwhere(local)
        out = np.empty(len(index), np.float32)
        for start in range(0, len(index), BOX_BATCH):
            corner = index[start:start + BOX_BATCH]
            boxes = windows[corner[:, 0], corner[:, 1], corner[:, 2]]
            scale = norms[start:start + BOX_BATCH]
            if self.weights is None:
                normalised = (boxes / scale[:, None, None, None])[..., None]
                out[start:start + len(corner)] = np.asarray(self.network(normalised, training=False)).reshape(-1)
            else:   # the first layer box by box is one matrix product; conv(box / |box|) = conv(box) / |box|
                first = boxes.reshape(len(corner), -1) @ self._kernel_matrix / scale[:, None]
                out[start:start + len(corner)] = self._head(first)
        return out

    def _whole_slab(self, block: np.ndarray, local: np.ndarray, norms: np.ndarray, stride: int = 1) -> np.ndarray:
        """Whole-map path: one valid convolution of the slab (with ``stride``: only at the
        voxels whose slab indices are multiples of it, where ``local`` voxels lie), then the
        head at the ``local`` voxels."""
        import tensorflow as tf

        kernel = self._compute_kernel()
        conv = tf.nn.conv3d(tf.cast(block[None, ..., None], kernel.dtype), kernel,
                            strides=[1, stride, stride, stride, 1], padding="VALID")[0]
        first = tf.cast(tf.gather_nd(conv, np.argwhere(local) // stride), tf.float32)
        return self._head(first / norms[:, None])

    def _compute_kernel(self):
        """The first layer's filters in the compute precision (made once)."""
        import tensorflow as tf

        if self._kernel is None:
            self._kernel = tf.constant(self.weights.kernel, getattr(tf, self.precision))
        return self._kernel

    def _head(self, first_layer) -> np.ndarray:
        """Resolution from first-layer outputs (N, F) before bias and activation."""
        import tensorflow as tf

        if self._head_function is None:
            weights, dtype = self.weights, getattr(tf, self.precision)
            conv_bias = tf.constant(weights.conv_bias, dtype)
            dense = [(tf.constant(kernel, dtype), tf.constant(bias, dtype), relu) for kernel, bias, relu in weights.dense]

            def head(x):
                x = tf.cast(x, dtype) + conv_bias
                if weights.conv_relu:
                    x = tf.nn.relu(x)
                for kernel, bias, relu in dense:
                    x = tf.matmul(x, kernel) + bias
                    if relu:
                        x = tf.nn.relu(x)
                return tf.cast(tf.reshape(x, [-1]), tf.float32)

            spec = tf.TensorSpec([None, weights.kernel.shape[-1]], tf.float32)
            self._head_function = tf.function(head, input_signature=[spec], reduce_retracing=True)
        count = int(first_layer.shape[0])
        out = np.empty(count, np.float32)
        for start in range(0, count, HEAD_CHUNK):
            out[start:start + HEAD_CHUNK] = self._head_function(first_layer[start:start + HEAD_CHUNK]).numpy()
        return out

    def _slabs(self, mask: np.ndarray, stride: int = 1) -> Iterator[tuple[int, int]]:
        """(z0, z1) ranges holding masked voxels, as thick as the memory budget allows
        (starting on multiples of ``stride``)."""
        occupied = np.flatnonzero(mask.any(axis=(1, 2)))
        if len(occupied) == 0:
            return
        rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
        plane = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        filters = self.weights.kernel.shape[-1] if self.weights is not None else 1
        bytes_per_plane = int(plane) * (filters / stride ** 2 + 2) * 4      # features, box energy, input
        thickness = int(max(1, self.slab_bytes // bytes_per_plane))
        thickness = max(stride, thickness - thickness % stride)
        z = int(occupied[0]) - int(occupied[0]) % stride
        last = int(occupied[-1])
        while z <= last:
            z1 = min(z + thickness, last + 1)
            if mask[z:z1].any():
                yield z, z1
            z = z1


def box_sums(values: np.ndarray, box: int, stride: int = 1) -> np.ndarray:
    """Sums over every ``box``^3 window that fits in ``values`` ("valid"), via cumulative sums;
    with ``stride``, only the windows starting at multiples of it (each axis is thinned as
    soon as it is summed, so the later passes see less).

    Three passes of O(N) work instead of ``box``^3 additions per voxel.
    """
    out = values
    for axis in range(3):
        cumulative = np.cumsum(out, axis=axis)
        zero = np.zeros_like(cumulative.take([0], axis=axis))
        cumulative = np.concatenate([zero, cumulative], axis=axis)
        n = cumulative.shape[axis]
        starts = np.arange(0, n - box, stride)
        out = cumulative.take(starts + box, axis=axis) - cumulative.take(starts, axis=axis)
    return out


def zero_padded_block(volume: np.ndarray, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
    """``volume[start:stop]`` as float32, with zeros where the range leaves the volume (what
    padding the whole map by half a box and slicing gave, without copying the whole map)."""
    block = np.zeros(tuple(b - a for a, b in zip(start, stop)), np.float32)
    source = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, volume.shape))
    target = tuple(slice(s.start - a, s.stop - a) for s, a in zip(source, start))
    block[target] = volume[source]
    return block


def _extent(flags: np.ndarray) -> tuple[int, int]:
    index = np.flatnonzero(flags)
    return int(index[0]), int(index[-1]) + 1


@dataclasses.dataclass
class Prediction:
    """A local-resolution map on the input grid and how it was made.

    Attributes:
        resolution: float32 map in A, 0 outside the mask, input shape.
        clamp: (low, high) bounds applied, in A.
        background: level subtracted from the input map.
        model_shape: shape of the map at the network's voxel size.
        voxels_by_path: masked voxels evaluated by each path (at the network's voxel size).
        seconds: wall time of the prediction.
        device: the device TensorFlow ran on (:func:`device_label`: ``CPU``, ``GPU:0``).
    """

    resolution: np.ndarray
    clamp: tuple[float, float]
    background: float
    model_shape: tuple[int, int, int]
    voxels_by_path: dict[str, int]
    seconds: float
    device: str = "CPU"

    def summary_fields(self) -> dict:
        """How the prediction was made, as summary.json keys."""
        low, high = self.clamp
        return {"model_grid_shape_zyx": list(self.model_shape),
                "clamp": {"low_A": low, "high_A": high, "note": CLAMP_NOTE},
                "background_level": self.background, "voxels_by_path": self.voxels_by_path,
                "device": self.device, "prediction_seconds": round(self.seconds, 3)}


#: What :func:`clamp_bounds` does, in a summary's words.
CLAMP_NOTE = ("values clamped to [max(2 x input voxel size, range minimum), range maximum], as Xmipp's "
              "DeepRes does: the network cannot report beyond its training range nor beyond Nyquist")


def clamp_bounds(info: ModelInfo, input_voxel_size: float) -> tuple[float, float]:
    """[max(2 x input voxel size, range minimum), range maximum] in A (Xmipp's rule)."""
    return max(2.0 * input_voxel_size, info.min_resolution), info.max_resolution


def background_level(volume: np.ndarray, mask: np.ndarray) -> float:
    """Median of the voxels outside the mask (0 if too few of them).

    The median ignores the thin shell of density a tight mask may leave outside.
    """
    outside = volume[~mask]
    if outside.size < MIN_BACKGROUND_VOXELS:
        logger.info("too little solvent outside the mask to estimate the background: none removed")
        return 0.0
    return float(np.median(outside))


#: Memory for one block of the resampled map and its answers, in bytes (the read-back
#: resamples and predicts the network grid block by block along z).
DEFAULT_READBACK_BLOCK_BYTES = 256 * 1024 ** 2
#: Bytes per network voxel of a read-back block: the resampled map and the answers (float32)
#: and the evaluated voxels (bool).
READBACK_BYTES_PER_VOXEL = 9

#: Voxel-size ratios this close to a whole number count as one (the output is read at
#: network voxels i x ratio exactly).
INTEGER_RATIO_TOLERANCE = 1e-6


def output_stride(voxel_size: float, network_voxel_size: float) -> int:
    """The stride at which the output grid reads the network's grid: the voxel-size ratio
    when it is a whole number of 2 or more (1 A/px input, high network: 2), else 1.

    Non-integer ratios are evaluated on every network voxel the read-back touches: reading
    them from a lattice of stride round(ratio) with trilinear interpolation was measured
    0.059 A off in median on the bundled example and 0.104-0.106 A on the accuracy
    benchmark's four-region maps (0.834 A/px, high network; docs/benchmarks.md), beyond the 0.02 A
    allowed."""
    ratio = voxel_size / network_voxel_size
    whole = round(ratio)
    return whole if whole >= 2 and abs(ratio - whole) <= INTEGER_RATIO_TOLERANCE * ratio else 1


def readback_coordinates(index: np.ndarray, scale: float, stride: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Where input voxels ``index`` [N, 3] sit on the lattice of every ``stride``-th network
    voxel, in lattice units [N, 3] (input voxel i sits on network voxel i x ``scale``),
    clipped to the lattice of a network grid of ``shape``."""
    top = (np.array(shape) - 1) // stride
    return np.minimum(index * (scale / stride), top)


def readback_support(coordinates: np.ndarray, stride: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The network voxels a trilinear read-back at lattice ``coordinates`` touches: the
    corners of each point's lattice cell with a non-zero weight (a point on the lattice
    touches itself only), on multiples of ``stride``, as a mask of ``shape``."""
    low = np.floor(coordinates).astype(np.int64)
    step = (coordinates > low).astype(np.int64)
    wanted = np.zeros(shape, bool)
    for corner in np.ndindex(2, 2, 2):
        wanted[tuple(((low + step * corner) * stride).T)] = True
    return wanted


def readback(predictor: "Predictor", resampler: SlabResampler, index: np.ndarray, scale: float, stride: int,
             bounds: tuple[float, float], progress: bool = False,
             block_bytes: int = DEFAULT_READBACK_BLOCK_BYTES) -> np.ndarray:
    """The clamped network answers at input voxels ``index`` [N, 3] (sorted by z) of a map
    whose voxels are ``scale`` network voxels wide, read back trilinearly from the network
    voxels on the lattice of stride ``stride`` that the read-back touches; only those are
    evaluated.

    With ``stride`` 1 this is the trilinear read-back of the whole network grid; with
    ``stride`` = ``scale`` a whole number, the points sit on the lattice and are read
    exactly. The resampled map is made block by block along z (each with the network's
    half-box of planes on either side), so memory is bounded by ``block_bytes``.
    """
    shape = resampler.shape
    half = predictor.box // 2
    coordinates = readback_coordinates(index, scale, stride, shape)
    planes = max(2 * stride, int(block_bytes // (shape[1] * shape[2] * READBACK_BYTES_PER_VOXEL)))
    lattice_planes = max(1, planes // stride)            # lattice planes read per block
    cell = np.floor(coordinates[:, 0]).astype(np.int64)  # lattice plane below each point
    values = np.empty(len(index), np.float32)
    with progress_bar(total=len(index), unit="voxel", unit_scale=True, desc="deepres predict",
                      enabled=progress) as bar:
        for first in range(int(cell[0]), int(cell[-1]) + 1, lattice_planes):
            rows = slice(*np.searchsorted(cell, [first, first + lattice_planes]))
            if rows.start == rows.stop:
                continue
            z0 = first * stride - half
            z0 -= z0 % stride                              # the block's lattice is the grid's
            z1 = (first + lattice_planes) * stride + half + 1
            local = coordinates[rows] - [z0 // stride, 0, 0]
            block = resampler.planes(z0, z1)
            wanted = readback_support(local, stride, block.shape)
            lattice = predictor.predict(block, wanted, stride=stride)[::stride, ::stride, ::stride]
            np.clip(lattice, *bounds, out=lattice)
            values[rows] = scipy.ndimage.map_coordinates(lattice, local.T, order=1, mode="nearest", prefilter=False)
            bar.update(rows.stop - rows.start)
    return values


#: Mirrored margin beyond a map edge, in network boxes: half a box is what the boxes of the
#: edge voxels see; the other half keeps the Fourier resampling's wrap-around (the map is
#: periodic to it) away from them.
EDGE_PADDING_BOXES = 1.0
#: How the map continues beyond its edges (``numpy.pad`` mode).
EDGE_PADDING_MODE = "symmetric"


def edge_padding(mask: np.ndarray, voxel_size: float, box_angstrom: float,
                 boxes: float = EDGE_PADDING_BOXES) -> list[tuple[int, int]]:
    """Voxels to mirror beyond each edge, ``[(before, after)]`` per axis: ``boxes`` network
    boxes (``box_angstrom`` A wide) where a masked voxel lies within half a box of that edge,
    else 0 (a map whose mask keeps away from its edges is not enlarged).

    The pad is capped at the axis length minus one, so that a thin map is mirrored once
    rather than repeated.
    """
    reach = int(np.ceil(0.5 * box_angstrom / voxel_size))
    width = int(np.ceil(boxes * box_angstrom / voxel_size))
    pads = []
    for axis, n in enumerate(mask.shape):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        occupied = np.flatnonzero(mask.any(axis=other))
        pad = min(width, n - 1)
        pads.append((pad if occupied[0] < reach else 0, pad if occupied[-1] >= n - reach else 0))
    return pads


def predict_map(volume: np.ndarray, voxel_size: float, mask: np.ndarray, network, info: ModelInfo,
                device: str = "auto", path: str = "auto", progress: bool = False,
                slab_bytes: int = DEFAULT_SLAB_BYTES, precision: str = "float32") -> Prediction:
    """DeepRes local resolution of a map at any voxel size, on the map's own grid.

    Where the boxes of masked voxels reach beyond the map's edges, the map is mirrored there
    (:func:`edge_padding`): density that meets the edge (a filament, a crop of a larger map)
    continues as it was, instead of stopping in a step, which the network reads as fine
    detail.

    Args:
        volume: the map, [z, y, x].
        voxel_size: its voxel size in A/px.
        mask: boolean mask of the map's shape (the voxels to estimate).
        network, info: a loaded model (:func:`.networks.load_model`).
        device: ``auto``, ``cpu`` or ``gpu``.
        path: ``auto``, ``whole`` or ``box`` (see :class:`Predictor`).
        precision: ``float32`` (default), ``bfloat16`` or ``float16`` (see :class:`Predictor`).

    Raises:
        MaskError: mask and map shapes differ, or the mask is empty (also after resampling).
    """
    start = time.perf_counter()
    if mask.shape != volume.shape:
        raise MaskError(f"mask shape {mask.shape} differs from map shape {volume.shape}")
    if not mask.any():
        raise MaskError("the mask is empty")
    background = background_level(volume, mask)
    centred = volume.astype(np.float32) - np.float32(background)
    pads = edge_padding(mask, voxel_size, info.box_size * info.voxel_size)
    mirrored = any(before or after for before, after in pads)
    if mirrored:     # the map mirrored beyond the edges its masked voxels' boxes reach, cropped back below
        centred, mask = np.pad(centred, pads, mode=EDGE_PADDING_MODE), np.pad(mask, pads)
    target = info.voxel_size
    predictor = Predictor(network, info, path=path, slab_bytes=slab_bytes, precision=precision)
    bounds = clamp_bounds(info, voxel_size)
    resolution = np.zeros(centred.shape, np.float32)
    if np.isclose(voxel_size, target, rtol=1e-6, atol=0):
        with tensorflow_device(device) as used:
            raw = predictor.predict(centred, mask, progress)
        resolution[mask] = np.clip(raw[mask], *bounds)
    else:
        index = np.argwhere(mask)
        with tensorflow_device(device) as used:
            resampler = SlabResampler(centred, voxel_size, target, backend="tensorflow")
            del centred
            values = readback(predictor, resampler, index, voxel_size / target, output_stride(voxel_size, target),
                              bounds, progress)
        resolution[tuple(index.T)] = values
    if mirrored:
        resolution = np.ascontiguousarray(resolution[tuple(slice(before, before + n)
                                                           for (before, _), n in zip(pads, volume.shape))])
    model_shape = resampled_shape(volume.shape, voxel_size, target)
    return Prediction(resolution, bounds, background, model_shape, dict(predictor.voxels_by_path),
                      time.perf_counter() - start, device_label(used))
