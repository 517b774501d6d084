"""Training data for DeepRes: boxes of simulated maps labelled with their filter resolution.

For every atomic model (paper section 2.1, with the changes listed here):

1. The model's density is simulated at the range's voxel size (1.0 A/px for ``wide``,
   0.5 A/px for ``high``) with :mod:`.simulate` (electron form factors, B = 0).
2. ``labels_per_structure`` resolutions are drawn from the range. *Label jitter*: instead
   of the paper's fixed 0.1 A grid, the range is cut into equal strata and one resolution
   is drawn uniformly inside each stratum, so every structure covers the whole range and
   the labels are continuous (the network cannot learn a lattice of values).
3. Each resolution gives a map low-passed with Xmipp's raised cosine (width 0.02), scaled
   so that its maximum is 1.
4. *Noise*: Gaussian noise with an SD drawn uniformly in ``[0, noise_sd_max]`` (same units,
   default 0.35) is added to each map. The range is wide because a map is scaled by its
   highest peak, usually in its best region: a region low-passed at 9 A next to one at
   3 A has peaks about 3 times lower, so the map's noise is 3 times stronger there.
   A fraction ``filtered_noise_fraction`` of the maps get noise low-passed by the same
   filter as the signal (and rescaled to the drawn SD), the rest white noise:
   experimental maps carry noise shaped by the reconstruction's FSC weighting, simulated
   benchmarks (paper 3.1) carry white noise; training on both keeps the estimator from
   keying on either. Noise is stationary, so it is drawn per box rather than over the
   whole map (the same distribution in every box, much cheaper): white noise directly in
   the box, filtered noise as boxes cut at random from a periodic field of
   :data:`NOISE_FIELD_SIZE`^3 voxels filtered at the label resolution. What was measured
   on the wide range (docs/benchmarks.md, "Accuracy"): SD up to 0.15 read the 9 A region of the
   paper's four-region test as 8.4 A; up to 0.35, 9.0 A; scaling all maps of a structure
   by its best-resolution peak with SD up to 0.15 gave no better results.
5. *Box centres*: every voxel within 3 A of an atom whose 13^3 box fits the grid is a
   candidate; the candidates are shuffled once and dealt out to the label maps without
   repetition (until exhausted), so the boxes cover the whole molecule evenly rather than
   the first boxes in raster order as Xmipp's trainer took.
6. Each 13^3 box is divided by its L2 norm (paper 2.1); the label is the filter's
   resolution in A.

*Map conditions* (``conditions="varied"``, the default since format 2): steps 3-4 draw, for
every filtered map, a :class:`.conditions.MapCondition`: the low-pass shape (raised
cosines of several widths, Butterworth, Gaussian, all anchored on the label's
half-amplitude point), a mild B-factor envelope, the noise colour (white, low-passed like
the signal, 1/f), the reference of the noise level (the map's maximum, the molecule's SD,
the box's own RMS) and the solvent (noisy, flattened or masked by a soft mask of random
radius and edge around the atoms). ``conditions="paper"`` keeps the format-1 scheme
(Xmipp's filter, noise relative to the maximum, noisy solvent). The label is always the
low-pass resolution (see :mod:`.conditions` for its meaning under each shape).

*Post-processed noise* (``conditions="postprocessed"``): the signal is made as in the paper
scheme; the noise is what a reconstruction leaves after post-processing: white (a third of
the maps), or low-passed at a *global* resolution drawn between the label and Nyquist
(uniform in 1/d: post-processing low-passes the whole map at its best resolution, so a
poorer region carries noise finer than its own detail), half of those also sharpened (a
B-factor that multiplies the noise by up to e at the global resolution); half of the
signals get a B-factor envelope before their low-pass, from oversharpened (e^2 at the
label) to mildly blurred (e^-0.5), so that sharpened detail is not taken for noise; noise at
levels up to
and beyond the point where the box holds no signal (SD relative to the map's maximum,
``noise_sd_max * u ** exponent``). The label is the low-pass resolution where the box's
signal stands above that noise, and coarser where it does not
(:func:`noise_limited_labels`): the resolution where the box's signal power falls under a
third of its noise power (the FSC 0.143 criterion), up to the range's maximum for a box
with no signal left. Added noise can
only make a label coarser.

*Split by structure*: each model belongs to a group (the complex it comes from:
``BM5_1ABC_l_b`` and ``BM5_1ABC_r_u`` share group ``BM5_1ABC``); whole groups go to the
validation split, chosen by a hash of the seed and the group name. Boxes of one complex
never land on both sides.

*Reproducible and resumable*: the random stream of a structure depends only on the seed
and its name, never on worker scheduling. Each structure's examples go to one shard file,
written under a temporary name and renamed when complete; a rerun with the same options
skips complete shards. A shard's bytes depend on its arrays only (fixed zip time stamps,
no timing inside), so a dataset made by 1 worker or by 3 is byte for byte the same.
``config.json`` holds the options; ``manifest.json`` (written last) lists structures,
seeds, splits, counts, the label histogram and each structure's generation time.

*Scale-out*: each structure is one task (:func:`shard_task`); the tasks run in this process
(one worker), on a local Dask cluster of worker processes, on an existing Dask cluster or
on batch-system jobs (:mod:`.cluster`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..version import __version__
from .cluster import ClusterOptions, connected, map_tasks
from .conditions import (
    NOISE_COLOURS,
    NOISE_REFERENCES,
    SOLVENTS,
    atom_distance,
    coloured_noise,
    draw_condition,
    filtered_signals,
    soft_mask,
)
from .errors import DeepResError, ParameterError
from .fileio import atomic_outputs, check_output_dir
from .filters import LowpassShape, lowpass_bank
from .fourier import frequency_magnitude, rfft_map
from .masks import ATOM_MASK_RADIUS_A
from .ranges import BOX_SIZE, ResolutionRange, get_range
from .simulate import SimulatedDensity, is_model_file, model_density, read_model

logger = logging.getLogger(__name__)

DATASET_FORMAT_VERSION = 2
#: How the filtered maps of a dataset are made: ``paper`` (format 1: Xmipp's filter, noise
#: relative to the maximum, noisy solvent), ``varied`` (a random :class:`MapCondition` each)
#: or ``postprocessed`` (Xmipp's filter, noise as a reconstruction leaves it after
#: post-processing, labels no finer than the detail above that noise; module docstring).
CONDITION_SCHEMES = ("paper", "varied", "postprocessed")
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
SHARD_DIR = "shards"
SHARD_SUFFIX = ".npz"
#: Width of the bins of the manifest's label histogram, in A.
LABEL_HISTOGRAM_BIN_A = 0.5
#: Boxes with a smaller L2 norm than this are not normalised (there are none in practice).
MIN_BOX_NORM = 1e-12
SPLITS = ("train", "val")
#: Distance, in worst-range resolutions, kept between a box and the molecule's periodic image.
WRAP_MARGIN_RESOLUTIONS = 1.5
#: Noise SD = noise_sd_max * u ** exponent, u uniform in [0, 1): "uniform" (exponent 1) or
#: "square" (exponent 2: most maps lightly noised, a few heavily).
NOISE_SHAPES = {"uniform": 1.0, "square": 2.0}
#: Edge (voxels) of the periodic field from which filtered-noise boxes are cut.
NOISE_FIELD_SIZE = 48
_HASH_BUCKETS = 10_000
#: Time stamp of every member of a shard file (the zip format's earliest): shards made at
#: different times, by different workers, are byte-identical.
SHARD_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Receptor/ligand, bound/unbound tails of Docking Benchmark and DIPS names (``_r_b-matched``).
_GROUP_SUFFIX = re.compile(r"_[lr]_[bu]([-_.].*)?$")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Options of a dataset; a dataset folder is bound to one configuration."""

    range_name: str
    seed: int = 0
    labels_per_structure: int = 16
    boxes_per_label: int = 100
    noise_sd_max: float = 0.35
    filtered_noise_fraction: float = 0.5
    val_fraction: float = 0.1
    dtype: str = "float16"
    padding: float | None = None
    box_size: int = BOX_SIZE
    label_min: float | None = None
    noise_shape: str = "uniform"
    conditions: str = "varied"

    def validate(self) -> ResolutionRange:
        """Check the options; return the resolution range."""
        resolution_range = get_range(self.range_name)
        if self.labels_per_structure < 1 or self.boxes_per_label < 1:
            raise ParameterError("labels per structure and boxes per label must be at least 1")
        if self.noise_sd_max < 0:
            raise ParameterError("the maximum noise SD must be >= 0")
        if not 0 <= self.filtered_noise_fraction <= 1 or not 0 <= self.val_fraction < 1:
            raise ParameterError("fractions must lie in [0, 1]")
        if self.dtype not in ("float16", "float32"):
            raise ParameterError(f"dtype must be float16 or float32, not {self.dtype!r}")
        if self.box_size % 2 == 0 or self.box_size < 3:
            raise ParameterError("the box size must be odd and at least 3 voxels")
        if self.conditions not in CONDITION_SCHEMES:
            raise ParameterError(f"conditions must be one of {', '.join(CONDITION_SCHEMES)}, not {self.conditions!r}")
        if not np.isfinite(self.noise_sd_max):
            raise ParameterError("the maximum noise SD must be finite")
        if self.noise_shape not in NOISE_SHAPES:
            raise ParameterError(f"noise shape must be one of {', '.join(NOISE_SHAPES)}")
        if self.label_min is not None and not (2 * resolution_range.voxel_size <= self.label_min
                                               < resolution_range.max_resolution):
            raise ParameterError(f"the lowest label must lie between Nyquist ({2 * resolution_range.voxel_size:g} Å) "
                                 f"and the range maximum")
        if self.padding is not None and self.padding < 0:
            raise ParameterError("padding must be >= 0 Å")
        return resolution_range

    def padding_angstrom(self) -> float:
        """Margin around the model in A: ``padding`` if set, else :func:`training_padding`."""
        return self.padding if self.padding is not None else training_padding(get_range(self.range_name),
                                                                               self.box_size)


def training_padding(resolution_range: ResolutionRange, box_size: int = BOX_SIZE) -> float:
    """Smallest margin (A) that keeps the periodic FFT filters from mixing the molecule with
    its own wrapped-around copy inside the training boxes.

    A box voxel lies at most ``r + h`` from an atom (``r`` the atom-mask radius, ``h`` half a
    box in A); the nearest wrapped copy of the molecule is then ``2 P - r - h`` away. That
    distance is made :data:`WRAP_MARGIN_RESOLUTIONS` times the range's worst resolution,
    where the low-pass kernel has decayed: about 14 A for ``wide``, 8 A for ``high``, much
    smaller grids than a fixed margin for the 0.5 A/px maps.
    """
    half_box = (box_size // 2) * resolution_range.voxel_size
    needed = ATOM_MASK_RADIUS_A + half_box + WRAP_MARGIN_RESOLUTIONS * resolution_range.max_resolution
    return float(np.ceil(needed / 2))


def structure_name(path: str | os.PathLike) -> str:
    """File name without model suffixes: ``BM5_1ABC_l_b.pdb.gz`` -> ``BM5_1ABC_l_b``."""
    name = Path(path).name
    stripped = True
    while stripped:
        stripped = False
        for suffix in (".gz", ".pdb", ".ent", ".mmcif", ".cif"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name, stripped = name[: -len(suffix)], True
    return name


def structure_group(name: str) -> str:
    """The complex a structure belongs to: ``BM5_1ABC_r_b-matched`` -> ``BM5_1ABC``.

    Drops the receptor/ligand and bound/unbound tail (and what follows it); other names
    are their own group.
    """
    return _GROUP_SUFFIX.sub("", name) or name


def _stable_hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def assign_split(group: str, seed: int, val_fraction: float) -> str:
    """``"val"`` for a ``val_fraction`` of the groups (by a hash of seed and group), else ``"train"``."""
    return "val" if _stable_hash(seed, group) % _HASH_BUCKETS < val_fraction * _HASH_BUCKETS else "train"


def split_groups(groups: Iterable[str], seed: int, val_fraction: float) -> dict[str, str]:
    """Split of every group (:func:`assign_split`). With a positive ``val_fraction`` and at
    least two groups, neither split is left empty: a small set of structures (a handful
    given to the Scipion training protocol) still gets a validation split, the group with
    the smallest hash (or the largest, for training)."""
    unique = sorted(set(groups))
    splits = {g: assign_split(g, seed, val_fraction) for g in unique}
    if val_fraction > 0 and len(unique) >= 2:
        ranked = sorted(unique, key=lambda g: _stable_hash(seed, g) % _HASH_BUCKETS)
        if "val" not in splits.values():
            splits[ranked[0]] = "val"
        if "train" not in splits.values():
            splits[ranked[-1]] = "train"
    return splits


def structure_seed(seed: int, name: str) -> list[int]:
    """Entropy of a structure's random stream: the global seed and a CRC of its name."""
    return [int(seed), zlib.crc32(name.encode())]


def draw_labels(rng: np.random.Generator, resolution_range: ResolutionRange, count: int,
                low: float | None = None) -> np.ndarray:
    """``count`` resolutions (A), one uniform draw in each of ``count`` equal strata of the range
    (from ``low`` instead of the range's minimum when given)."""
    start = resolution_range.min_resolution if low is None else low
    edges = np.linspace(start, resolution_range.max_resolution, count + 1)
    return edges[:-1] + rng.random(count) * np.diff(edges)


def box_centre_candidates(mask: np.ndarray, box_size: int) -> np.ndarray:
    """(N, 3) indices of masked voxels whose whole box lies in the grid."""
    half = box_size // 2
    interior = np.zeros_like(mask)
    interior[half:mask.shape[0] - half, half:mask.shape[1] - half, half:mask.shape[2] - half] = True
    return np.argwhere(mask & interior)


def deal_centres(candidates: np.ndarray, groups: int, per_group: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffle the candidates once and deal ``per_group`` to each of ``groups``.

    Without repetition while candidates last; the deck is reshuffled if more are needed.

    Returns:
        (groups, per_group, 3) indices.
    """
    needed = groups * per_group
    decks = [rng.permutation(len(candidates)) for _ in range(-(-needed // len(candidates)))]
    order = np.concatenate(decks)[:needed]
    return candidates[order].reshape(groups, per_group, 3)


def extract_boxes(volume: np.ndarray, centres: np.ndarray, box_size: int = BOX_SIZE) -> np.ndarray:
    """Boxes of ``box_size``^3 voxels centred on ``centres`` ((N, 3) z, y, x indices).

    Returns:
        (N, box, box, box) copy (a strided view of the map is indexed, no Python loop).
    """
    windows = np.lib.stride_tricks.sliding_window_view(volume, (box_size,) * 3)
    corner = np.asarray(centres) - box_size // 2
    return windows[corner[:, 0], corner[:, 1], corner[:, 2]].copy()


def normalise_boxes(boxes: np.ndarray) -> np.ndarray:
    """Divide each box by its L2 norm (paper 2.1), in float32."""
    boxes = boxes.astype(np.float32)
    norms = np.sqrt(np.sum(boxes.astype(np.float64) ** 2, axis=(1, 2, 3)))
    return boxes / np.maximum(norms, MIN_BOX_NORM)[:, None, None, None].astype(np.float32)


def coloured_noise_boxes(rng: np.random.Generator, colour: str, cutoff_digital: float, lowpass: LowpassShape,
                         count: int, box_size: int = BOX_SIZE, field_size: int = NOISE_FIELD_SIZE) -> np.ndarray:
    """``count`` boxes of unit-SD noise of a colour (:func:`.conditions.coloured_noise`), cut at
    random positions of one periodic field of ``field_size``^3 voxels."""
    if colour == "white":
        return rng.standard_normal((count,) + (box_size,) * 3, dtype=np.float32)
    return periodic_field_boxes(rng, coloured_noise(rng, (field_size,) * 3, colour, cutoff_digital, lowpass),
                                count, box_size)


def filtered_noise_boxes(rng: np.random.Generator, voxel_size: float, resolution: float, count: int,
                         box_size: int = BOX_SIZE, field_size: int = NOISE_FIELD_SIZE,
                         bfactor: float = 0.0) -> np.ndarray:
    """``count`` boxes of unit-SD Gaussian noise low-passed at ``resolution`` A.

    A periodic white-noise field of ``field_size``^3 voxels is filtered with the same
    raised cosine as the signal (after a B-factor envelope of ``bfactor`` A^2 when given, as
    :func:`.filters.lowpass_bank` applies it: post-processing sharpens its noise too), scaled
    to unit SD, and boxes are cut at random positions (:func:`periodic_field_boxes`).
    """
    field_shape = (field_size,) * 3
    field = next(lowpass_bank(rfft_map(rng.standard_normal(field_shape, dtype=np.float32)), field_shape,
                              voxel_size, [resolution], workers=1, bfactors=[bfactor] if bfactor else None))
    field /= max(float(field.std()), MIN_BOX_NORM)
    return periodic_field_boxes(rng, field, count, box_size)


def periodic_field_boxes(rng: np.random.Generator, field: np.ndarray, count: int,
                         box_size: int = BOX_SIZE) -> np.ndarray:
    """``count`` boxes cut at random positions of a periodic cubic ``field`` (wrapping around)."""
    wrapped = np.pad(field, [(0, box_size - 1)] * 3, mode="wrap")
    corners = rng.integers(0, field.shape[0], size=(count, 3))
    return extract_boxes(wrapped, corners + box_size // 2, box_size)


#: Post-processed noise: shares of white noise and of noise also sharpened.
WHITE_NOISE_FRACTION = 1.0 / 3.0
SHARPENED_NOISE_FRACTION = 0.5
#: Post-processed noise: the sharpening B-factor multiplies the noise by up to e ** this at
#: the global resolution (B = 4 d^2 t, t uniform in [0, this]).
MAX_NOISE_SHARPENING = 1.0
#: Post-processed maps: share of the maps whose signal gets a B-factor envelope before the
#: low-pass, B = 4 d^2 t with t uniform in :data:`SIGNAL_ENVELOPE_T` (t = -2: the amplitude at
#: the label multiplied by e^2, an oversharpened map; t = 0.5: divided by e^0.5).
SIGNAL_ENVELOPE_FRACTION = 0.5
SIGNAL_ENVELOPE_T = (-2.0, 0.5)
#: A shell of a box holds signal where its signal-to-noise power ratio is at least this: 1/3
#: is what the FSC threshold 0.143 means for a full map (SNR = 2 FSC / (1 - FSC) of the halves).
NOISE_LIMIT_SNR = 1.0 / 3.0


#: The signal-to-noise of a box is measured in a window this many boxes wide around it
#: (a 13-voxel box resolves too few Fourier shells; an apodised 27-voxel window resolves 14).
SNR_WINDOW_BOXES = 2


def box_shell_power(boxes: np.ndarray) -> np.ndarray:
    """Power of each box in the Fourier shells of the box grid, (N, shells): shell k holds the
    frequencies within half a step of k / box cycles per voxel, up to Nyquist. The boxes are
    apodised by a separable raised-cosine (Hann) window first, so that the cut at the box's
    faces does not spread the strong low frequencies into the fine shells."""
    size = boxes.shape[-1]
    window = np.hanning(size + 2)[1:-1].astype(np.float32)
    apodised = boxes.astype(np.float32) * (window[:, None, None] * window[None, :, None] * window[None, None, :])
    power = np.abs(np.fft.rfftn(apodised, axes=(1, 2, 3))) ** 2
    shells = np.rint(frequency_magnitude((size,) * 3) * size).astype(np.int64).ravel()
    count = size // 2 + 1
    keep = shells < count
    onehot = np.zeros((shells.size, count), np.float32)
    onehot[np.flatnonzero(keep), shells[keep]] = 1.0
    return power.reshape(len(boxes), -1) @ onehot


def noise_limited_labels(signal_boxes: np.ndarray, noise_boxes: np.ndarray, labels: np.ndarray,
                         voxel_size: float, max_resolution: float) -> np.ndarray:
    """Each box's label (A) made no finer than the resolution where its signal power falls
    under :data:`NOISE_LIMIT_SNR` of its noise power, capped at ``max_resolution``.

    The shells of the box (:func:`box_shell_power`) are scanned from coarse to fine; the
    crossing lies between the last shell whose signal-to-noise power ratio is at least
    :data:`NOISE_LIMIT_SNR` and the first below it, interpolated linearly in frequency and in
    the log of the ratio. A box whose first shell is already below has no signal:
    ``max_resolution``. A box with signal above the noise in every shell keeps its label.
    """
    size = signal_boxes.shape[-1]
    tiny = float(np.finfo(np.float32).tiny)
    ratio = np.log(np.maximum(box_shell_power(signal_boxes)[:, 1:], tiny)
                   / np.maximum(box_shell_power(noise_boxes)[:, 1:], tiny) / NOISE_LIMIT_SNR)  # shells 1 .. Nyquist
    below = ratio < 0
    first = np.where(below.any(axis=1), np.argmax(below, axis=1), -1)          # first shell under the noise
    frequency = np.zeros(len(labels))                                          # cycles per voxel; 0: none
    rows = np.flatnonzero(first > 0)
    before, after = ratio[rows, first[rows] - 1], ratio[rows, first[rows]]
    shell = first[rows] + before / (before - after)                            # 1-based shell of the crossing
    frequency[rows] = shell / size
    limit = np.where(first < 0, 0.0, np.where(first == 0, np.inf, voxel_size / np.maximum(frequency, tiny)))
    return np.minimum(np.maximum(labels, limit), max_resolution).astype(np.float32)


def structure_examples(model_path: str | os.PathLike, config: DatasetConfig,
                       fft_workers: int = 1) -> dict[str, np.ndarray]:
    """All boxes and labels of one structure (steps 1-6 of the module docstring).

    Returns:
        arrays ``boxes`` (N, b, b, b), ``labels`` (N,) in A, ``noise_sd`` (N,),
        ``filtered_noise`` (N,) bool and ``centres`` (N, 3) voxel indices.
    """
    resolution_range = config.validate()
    rng = np.random.default_rng(structure_seed(config.seed, structure_name(model_path)))
    simulated = model_density(read_model(model_path), resolution_range.voxel_size, config.padding_angstrom())
    molecule = simulated.atom_mask(ATOM_MASK_RADIUS_A)
    candidates = box_centre_candidates(molecule, config.box_size)
    if len(candidates) == 0:
        raise DeepResError(f"{model_path}: no voxel of the molecule has a full box in the grid")
    if config.conditions == "varied":
        return _varied_examples(simulated, molecule, candidates, config, rng, fft_workers)
    if config.conditions == "postprocessed":
        return _postprocessed_examples(simulated, candidates, config, rng, fft_workers)

    count, per_label = config.labels_per_structure, config.boxes_per_label
    labels = draw_labels(rng, resolution_range, count, config.label_min)
    noise_sd = rng.random(count) ** NOISE_SHAPES[config.noise_shape] * config.noise_sd_max
    filtered_noise = rng.random(count) < config.filtered_noise_fraction
    centres = deal_centres(candidates, count, per_label, rng)

    shape, voxel = simulated.density.shape, resolution_range.voxel_size
    spectrum = rfft_map(simulated.density, workers=fft_workers)
    signals = lowpass_bank(spectrum, shape, voxel, labels, workers=fft_workers)
    boxes = np.empty((count, per_label) + (config.box_size,) * 3, dtype=config.dtype)
    for i, signal in enumerate(signals):
        signal_boxes = extract_boxes(signal, centres[i], config.box_size) / signal.max()
        if filtered_noise[i]:
            noise_boxes = filtered_noise_boxes(rng, voxel, labels[i], per_label, config.box_size)
        else:
            noise_boxes = rng.standard_normal(signal_boxes.shape, dtype=np.float32)
        boxes[i] = normalise_boxes(signal_boxes + np.float32(noise_sd[i]) * noise_boxes)
    return {
        "boxes": boxes.reshape((-1,) + (config.box_size,) * 3),
        "labels": np.repeat(labels, per_label).astype(np.float32),
        "noise_sd": np.repeat(noise_sd, per_label).astype(np.float32),
        "filtered_noise": np.repeat(filtered_noise, per_label),
        "centres": centres.reshape(-1, 3).astype(np.int32),
    }


def _varied_examples(simulated: SimulatedDensity, molecule: np.ndarray, candidates: np.ndarray,
                     config: DatasetConfig, rng: np.random.Generator, fft_workers: int) -> dict[str, np.ndarray]:
    """Steps 2-6 with one random :class:`.conditions.MapCondition` per filtered map."""
    resolution_range = get_range(config.range_name)
    voxel, size = resolution_range.voxel_size, config.box_size
    count, per_label = config.labels_per_structure, config.boxes_per_label
    labels = draw_labels(rng, resolution_range, count, config.label_min)
    conditions = [draw_condition(rng, config.noise_sd_max, NOISE_SHAPES[config.noise_shape]) for _ in labels]
    centres = deal_centres(candidates, count, per_label, rng)
    seeds = simulated.atom_mask(0.0) if any(c.solvent != "noisy" for c in conditions) else None
    distance = atom_distance(seeds, voxel) if seeds is not None else None

    boxes = np.empty((count, per_label) + (size,) * 3, dtype=config.dtype)
    signals = filtered_signals(simulated.density, voxel, list(labels), conditions, workers=fft_workers)
    for i, (signal, condition) in enumerate(zip(signals, conditions)):
        peak = float(signal.max())
        signal_boxes = extract_boxes(signal, centres[i], size) / np.float32(peak)
        if condition.noise_reference == "maximum":
            reference: np.ndarray | float = 1.0
        elif condition.noise_reference == "sd":
            reference = float(signal[molecule].std()) / peak
        else:
            reference = np.sqrt(np.mean(signal_boxes.astype(np.float64) ** 2, axis=(1, 2, 3)))[:, None, None, None]
        noise = coloured_noise_boxes(rng, condition.noise_colour, voxel / labels[i], condition.lowpass,
                                     per_label, size)
        noise = noise * (np.float32(condition.noise_level) * np.asarray(reference, np.float32))
        if condition.solvent != "noisy":
            mask = soft_mask(extract_boxes(distance, centres[i], size), condition.mask_radius, condition.mask_edge)
            noise = noise * mask
            if condition.solvent == "masked":
                signal_boxes = signal_boxes * mask
        boxes[i] = normalise_boxes(signal_boxes + noise)
    if not np.all(np.isfinite(boxes)):
        raise DeepResError("non-finite training boxes (a filter or envelope overflowed); not written")
    shapes = [c.lowpass for c in conditions]
    return {
        "boxes": boxes.reshape((-1,) + (size,) * 3),
        "labels": np.repeat(labels, per_label).astype(np.float32),
        "noise_sd": np.repeat([c.noise_level for c in conditions], per_label).astype(np.float32),
        "filtered_noise": np.repeat([c.noise_colour == "signal" for c in conditions], per_label),
        "centres": centres.reshape(-1, 3).astype(np.int32),
        "lowpass": np.repeat([s.label() for s in shapes], per_label),
        "bfactor": np.repeat([c.bfactor(r) for c, r in zip(conditions, labels)], per_label).astype(np.float32),
        "noise_colour": np.repeat([NOISE_COLOURS.index(c.noise_colour) for c in conditions], per_label).astype(np.int8),
        "noise_reference": np.repeat([NOISE_REFERENCES.index(c.noise_reference) for c in conditions],
                                     per_label).astype(np.int8),
        "solvent": np.repeat([SOLVENTS.index(c.solvent) for c in conditions], per_label).astype(np.int8),
    }


def _postprocessed_examples(simulated: SimulatedDensity, candidates: np.ndarray, config: DatasetConfig,
                            rng: np.random.Generator, fft_workers: int) -> dict[str, np.ndarray]:
    """Steps 2-6 with post-processed noise and noise-limited labels (module docstring)."""
    resolution_range = get_range(config.range_name)
    voxel, size = resolution_range.voxel_size, config.box_size
    count, per_label = config.labels_per_structure, config.boxes_per_label
    labels = draw_labels(rng, resolution_range, count, config.label_min)
    noise_sd = rng.random(count) ** NOISE_SHAPES[config.noise_shape] * config.noise_sd_max
    white = rng.random(count) < WHITE_NOISE_FRACTION
    nyquist = 2.0 * voxel
    # global resolutions uniform in 1/d between the label and Nyquist
    global_resolution = 1.0 / (1.0 / labels + rng.random(count) * (1.0 / nyquist - 1.0 / labels))
    sharpening = np.where(rng.random(count) < SHARPENED_NOISE_FRACTION,
                          -4.0 * global_resolution ** 2 * rng.random(count) * MAX_NOISE_SHARPENING, 0.0)
    low, high = SIGNAL_ENVELOPE_T
    signal_bfactor = np.where(rng.random(count) < SIGNAL_ENVELOPE_FRACTION,
                              4.0 * labels ** 2 * (low + rng.random(count) * (high - low)), 0.0)
    centres = deal_centres(candidates, count, per_label, rng)

    signals = lowpass_bank(rfft_map(simulated.density, workers=fft_workers), simulated.density.shape, voxel,
                           labels, workers=fft_workers, bfactors=signal_bfactor)
    window = SNR_WINDOW_BOXES * size + 1
    margin = (window - size) // 2
    inner = (slice(None),) + (slice(margin, margin + size),) * 3
    boxes = np.empty((count, per_label) + (size,) * 3, dtype=config.dtype)
    box_labels = np.empty((count, per_label), np.float32)
    for i, signal in enumerate(signals):
        signal_windows = extract_boxes(np.pad(signal, margin), centres[i] + margin, window) / np.float32(signal.max())
        noise_windows = (rng.standard_normal((per_label,) + (window,) * 3, dtype=np.float32) if white[i] else
                         filtered_noise_boxes(rng, voxel, float(global_resolution[i]), per_label, window,
                                              bfactor=float(sharpening[i]))) * np.float32(noise_sd[i])
        box_labels[i] = noise_limited_labels(signal_windows, noise_windows, np.full(per_label, labels[i]), voxel,
                                             resolution_range.max_resolution)
        boxes[i] = normalise_boxes(signal_windows[inner] + noise_windows[inner])
    if not np.all(np.isfinite(boxes)):
        raise DeepResError("non-finite training boxes (a filter or envelope overflowed); not written")
    return {
        "boxes": boxes.reshape((-1,) + (size,) * 3),
        "labels": box_labels.reshape(-1),
        "lowpass_resolution": np.repeat(labels, per_label).astype(np.float32),
        "noise_sd": np.repeat(noise_sd, per_label).astype(np.float32),
        "filtered_noise": np.repeat(~white, per_label),
        "global_resolution": np.repeat(np.where(white, nyquist, global_resolution), per_label).astype(np.float32),
        "noise_bfactor": np.repeat(sharpening, per_label).astype(np.float32),
        "bfactor": np.repeat(signal_bfactor, per_label).astype(np.float32),
        "centres": centres.reshape(-1, 3).astype(np.int32),
    }


def find_structures(structure_dir: str | os.PathLike) -> list[Path]:
    """Model files (PDB/mmCIF, optionally gzipped) directly inside ``structure_dir``, sorted.

    Raises:
        ParameterError: not a directory, or no model file in it.
    """
    folder = Path(structure_dir)
    if not folder.is_dir():
        raise ParameterError(f"{folder} is not a directory")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and is_model_file(p))
    if not paths:
        raise ParameterError(f"{folder} contains no PDB/mmCIF files")
    names = [structure_name(p) for p in paths]
    if len(set(names)) != len(names):
        raise ParameterError(f"{folder} has several files for one structure name")
    return paths


def _shard_is_complete(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as shard:
            return {"boxes", "labels"} <= set(shard.files) and len(shard["labels"]) > 0
    except (OSError, ValueError, EOFError, zlib.error):
        return False


def write_shard(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` file (readable by ``np.load``) atomically, its bytes a
    function of the arrays only: members in the given order, uncompressed, with the fixed
    time stamp :data:`SHARD_ZIP_TIME` (``np.savez`` stamps the current time)."""
    with atomic_outputs(path) as (tmp,):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, value in arrays.items():
                member = zipfile.ZipInfo(f"{key}.npy", date_time=SHARD_ZIP_TIME)
                member.external_attr = 0o644 << 16
                with archive.open(member, "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)


def shard_task(task: tuple[str, str, DatasetConfig]) -> tuple[str, int, str | None, float]:
    """One task: make one structure's shard (``(model path, shard path, config)``).

    Returns:
        ``(name, box count, error message or None, seconds)``; a structure that cannot be
        used (a :class:`DeepResError`) is reported, not raised.
    """
    model_path, shard_path, config = task
    name = structure_name(model_path)
    start = time.perf_counter()
    try:
        arrays = structure_examples(model_path, config)
        write_shard(shard_path, arrays)
        return name, len(arrays["labels"]), None, time.perf_counter() - start
    except DeepResError as exc:
        return name, 0, str(exc), time.perf_counter() - start


def _check_config(out_dir: Path, config: DatasetConfig) -> None:
    """Bind ``out_dir`` to ``config``; refuse to mix datasets made with other options."""
    path = out_dir / CONFIG_FILE
    wanted = {"format_version": DATASET_FORMAT_VERSION, **dataclasses.asdict(config)}
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ParameterError(f"{path} is unreadable ({exc}): {out_dir} is not a dataset this command made; "
                                 "use another output folder") from None
        if found != wanted:
            differing = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise ParameterError(f"{out_dir} holds a dataset made with other options ({', '.join(differing)}); "
                                 "use the same options to resume or another output folder")
        return
    with atomic_outputs(path) as (tmp,):
        tmp.write_text(json.dumps(wanted, indent=2))


def select_structures(paths: list[Path], max_structures: int | None, seed: int) -> list[Path]:
    """All paths, or a seeded random subset of ``max_structures`` of them (kept in name order)."""
    if max_structures is None or max_structures >= len(paths):
        return paths
    if max_structures < 1:
        raise ParameterError("the number of structures must be at least 1")
    chosen = np.random.default_rng(seed).choice(len(paths), size=max_structures, replace=False)
    return [paths[i] for i in sorted(chosen)]


def generate_dataset(structure_dir: str | os.PathLike, out_dir: str | os.PathLike, config: DatasetConfig,
                     workers: int | str = 1, max_structures: int | None = None, progress: bool = True,
                     cluster: ClusterOptions | None = None, client: Any = None) -> dict:
    """Generate (or resume) a sharded dataset; return its manifest.

    Args:
        structure_dir: folder of PDB/mmCIF files.
        out_dir: dataset folder (created; must be empty or hold the same configuration).
        config: dataset options.
        workers: processes working on structures in parallel (a local Dask cluster when
            more than 1; one structure per task; ``"auto"``: one per CPU, see
            :meth:`.cluster.ClusterOptions.sized`).
        max_structures: use a seeded random subset of this many structures.
        progress: show a progress bar (structures done, time left) on stderr.
        cluster: where the tasks run (:class:`.cluster.ClusterOptions`); overrides ``workers``.
        client: a ``distributed.Client`` to run the tasks on (overrides both).

    The shards do not depend on where or in which order the structures were made.
    """
    config.validate()
    cluster = cluster or ClusterOptions(workers=workers)
    cluster.validate()
    paths = select_structures(find_structures(structure_dir), max_structures, config.seed)
    with connected(cluster, client) as client:
        return _generate(structure_dir, Path(out_dir), config, paths, cluster, client, progress)


def _generate(structure_dir: str | os.PathLike, out: Path, config: DatasetConfig, paths: list[Path],
              cluster: ClusterOptions, client: Any, progress: bool) -> dict:
    resolution_range = get_range(config.range_name)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out} exists and is not a directory")
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config)
    (out / SHARD_DIR).mkdir(exist_ok=True)

    shard_of = {p: out / SHARD_DIR / (structure_name(p) + SHARD_SUFFIX) for p in paths}
    # absolute paths: workers elsewhere (a shared file system) may not share our working folder
    todo = [(str(p.resolve()), str(shard_of[p].resolve()), config) for p in paths
            if not _shard_is_complete(shard_of[p])]
    cluster = cluster.sized(len(todo))
    where = cluster.describe() if client is None or cluster.scheduler else "a given Dask cluster"
    workers = len(client.scheduler_info()["workers"]) if client is not None else cluster.workers
    logger.info("%d structures, %d already done, %d to simulate (%s range, on %s)",
                len(paths), len(paths) - len(todo), len(todo), resolution_range.name, where)
    seconds = _previous_seconds(out)
    errors: dict[str, str] = {}
    start = time.perf_counter()
    run = uuid.uuid4().hex[:8]
    keys = [f"shard-{structure_name(task[0])}-{run}" for task in todo]
    results = map_tasks(shard_task, todo, keys, cluster, progress=progress, unit="structure",
                        description=f"dataset {resolution_range.name}", done_before=len(paths) - len(todo),
                        client=client)
    with contextlib.closing(results):
        for name, _, error, task_seconds in results:
            seconds[name] = task_seconds
            if error:
                errors[name] = error
                logger.warning("skipped %s: %s", name, error)
    manifest = build_manifest(structure_dir, out, config, paths, errors, seconds)
    manifest["timing"] = {"workers": workers, "cluster": where,
                          "wall_seconds_this_run": round(time.perf_counter() - start, 1),
                          "structures_this_run": len(todo),
                          "structure_seconds_total": manifest.pop("_structure_seconds")}
    with atomic_outputs(out / MANIFEST_FILE) as (tmp,):
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


def _previous_seconds(out: Path) -> dict[str, float]:
    """Generation time of the structures an earlier run made, from its manifest (if any)."""
    try:
        entries = json.loads((out / MANIFEST_FILE).read_text())["structures"]
        return {entry["name"]: float(entry["seconds"]) for entry in entries if entry.get("seconds") is not None}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def build_manifest(structure_dir: str | os.PathLike, out: Path, config: DatasetConfig,
                   paths: list[Path], errors: dict[str, str], seconds: Mapping[str, float] | None = None) -> dict:
    """Manifest of the shards present: structures, seeds, splits, counts, label histogram and
    each structure's generation time (``seconds``, from this run or an earlier one; shards
    of older format-2 datasets carry their own)."""
    resolution_range = config.validate()
    edges = np.arange(resolution_range.min_resolution,
                      resolution_range.max_resolution + LABEL_HISTOGRAM_BIN_A / 2, LABEL_HISTOGRAM_BIN_A)
    histogram = {split: np.zeros(len(edges) - 1, dtype=np.int64) for split in SPLITS}
    counts = {split: {"structures": 0, "boxes": 0} for split in SPLITS}
    entries = []
    total_seconds = 0.0
    present = [(path, structure_name(path)) for path in paths]
    present = [(path, name, out / SHARD_DIR / (name + SHARD_SUFFIX)) for path, name in present
               if name not in errors and _shard_is_complete(out / SHARD_DIR / (name + SHARD_SUFFIX))]
    splits = split_groups((structure_group(name) for _, name, _ in present), config.seed, config.val_fraction)
    for path, name, shard in present:
        group = structure_group(name)
        split = splits[group]
        with np.load(shard) as data:
            labels = data["labels"]
            took = (seconds or {}).get(name)
            if took is None and "seconds" in data.files:
                took = float(data["seconds"])
        total_seconds += took or 0.0
        histogram[split] += np.histogram(labels, bins=edges)[0]
        counts[split]["structures"] += 1
        counts[split]["boxes"] += int(len(labels))
        entries.append({"name": name, "file": path.name, "group": group, "split": split,
                        "seed": structure_seed(config.seed, name), "boxes": int(len(labels)),
                        "shard": f"{SHARD_DIR}/{shard.name}",
                        "seconds": None if took is None else round(took, 3)})
    return {
        "format_version": DATASET_FORMAT_VERSION,
        "deepres_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "structure_dir": str(Path(structure_dir).resolve()),
        "config": dataclasses.asdict(config),
        "range": dataclasses.asdict(resolution_range),
        "counts": counts,
        "label_histogram": {"bin_edges_angstrom": np.round(edges, 6).tolist(),
                            **{split: histogram[split].tolist() for split in SPLITS}},
        "structures": entries,
        "skipped": [{"name": name, "reason": reason} for name, reason in sorted(errors.items())],
        "_structure_seconds": round(total_seconds, 1),
    }


def load_split(dataset_dir: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Boxes and labels of one split of a finished dataset, in manifest order.

    Returns:
        ``(boxes, labels)``: (N, b, b, b) in the stored dtype and (N,) float32 in A.

    Raises:
        ParameterError: no manifest (unfinished dataset) or unknown split.
    """
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}")
    folder = Path(dataset_dir)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ParameterError(f"{folder} has no {MANIFEST_FILE}: the dataset is missing or unfinished")
    manifest = read_manifest(folder)
    boxes, labels = [], []
    for entry in manifest["structures"]:
        if entry["split"] == split:
            path = folder / entry["shard"]
            try:
                with np.load(path) as shard:
                    boxes.append(shard["boxes"])
                    labels.append(shard["labels"])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise ParameterError(f"{path}: damaged or missing shard ({type(exc).__name__}: {exc}); "
                                     "run `deepres dataset` again with the same options to rebuild it") from None
            if not np.all(np.isfinite(boxes[-1])) or not np.all(np.isfinite(labels[-1])):
                raise ParameterError(f"{path}: the shard holds non-finite values")
    if not boxes:
        size = manifest["config"]["box_size"]
        return np.empty((0, size, size, size), manifest["config"]["dtype"]), np.empty(0, np.float32)
    return np.concatenate(boxes), np.concatenate(labels)


def read_manifest(dataset_dir: str | os.PathLike) -> dict:
    """The manifest of a finished dataset, checked for the fields training reads.

    Raises:
        ParameterError: missing, unreadable or incomplete manifest.
    """
    path = Path(dataset_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ParameterError(f"{dataset_dir} has no {MANIFEST_FILE}: the dataset is missing or unfinished")
    try:
        manifest = json.loads(path.read_text())
        config, structures = manifest["config"], manifest["structures"]
        _ = (config["range_name"], config["box_size"], config["dtype"], manifest["counts"])
        if not all({"split", "shard"} <= set(entry) for entry in structures):
            raise KeyError("structures")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParameterError(f"{path} is not a DeepRes dataset manifest ({type(exc).__name__}: {exc})") from None
    return manifest
