"""End-to-end jobs shared by the ``deepres`` command and the Scipion protocols:
predict a local-resolution map and write every output; rebuild the report of an existing
resolution map."""
from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..version import __version__
from .errors import MaskError
from .fileio import output_directory, write_files
from .inference import DEFAULT_SLAB_BYTES, predict_map
from .masks import automatic_mask, read_mask
from .models import shipped_model_path
from .mrc import read_map, write_map
from .networks import load_model
from .report import DEFAULT_PALETTE, report_contents, resolution_values

logger = logging.getLogger(__name__)

RESOLUTION_FILE = "resolution.mrc"
MASK_FILE = "mask.mrc"
CLAMP_NOTE = ("values clamped to [max(2 x input voxel size, range minimum), range maximum], as Xmipp's "
              "DeepRes does: the network cannot report beyond its training range nor beyond Nyquist")


@dataclasses.dataclass
class PredictOptions:
    """Options of :func:`run_predict` (the ``deepres predict`` flags)."""

    mask: str | os.PathLike | None = None
    range_name: str = "wide"
    model: str | os.PathLike | None = None
    sampling: float | None = None
    device: str = "auto"
    path: str = "auto"
    palette: str = DEFAULT_PALETTE
    progress: bool = False
    slab_bytes: int = DEFAULT_SLAB_BYTES


def run_predict(map_path: str | os.PathLike, out_dir: str | os.PathLike,
                options: PredictOptions = PredictOptions()) -> dict[str, Any]:
    """Predict the local resolution of a map and write all outputs into ``out_dir``.

    Outputs: ``resolution.mrc`` (input grid, voxel size and origin), ``summary.json``,
    ``histogram.png``/``.csv``, ``slices.png``, ``chimerax.cxc``, ``chimera.cmd`` and, when
    no mask is given, the automatic ``mask.mrc``. All are written atomically.

    Returns:
        the summary (as written to ``summary.json``).
    """
    start = time.perf_counter()
    volume, geometry = read_map(map_path, voxel_size=options.sampling)
    model_path = Path(options.model) if options.model else shipped_model_path(options.range_name)
    network, info = load_model(model_path, options.range_name)
    if options.mask:
        mask = read_mask(options.mask, volume.shape, geometry)
        mask_source = str(Path(options.mask).resolve())
    else:
        mask = automatic_mask(volume, geometry.voxel_size)
        mask_source = "automatic"
        if mask.all():
            raise MaskError("the automatic mask covers the whole box; give a mask with --mask")
    if not info.trained:
        logger.warning("%s is an UNTRAINED network: its numbers mean nothing (tests only)", model_path.name)
    prediction = predict_map(volume, geometry.voxel_size, mask, network, info, device=options.device,
                             path=options.path, progress=options.progress, slab_bytes=options.slab_bytes)
    low, high = prediction.clamp
    extra = {
        "range": {"name": info.range_name, "min_resolution": info.min_resolution,
                  "max_resolution": info.max_resolution},
        "model": {"name": info.name, "version": info.version, "architecture": info.architecture,
                  "trained": info.trained, "file": str(model_path.resolve())},
        "input_voxel_size": geometry.voxel_size, "model_voxel_size": info.voxel_size,
        "input_shape_zyx": list(volume.shape), "model_grid_shape_zyx": list(prediction.model_shape),
        "clamp": {"low": low, "high": high, "note": CLAMP_NOTE},
        "background_level": prediction.background, "mask": mask_source,
        "voxels_by_path": prediction.voxels_by_path, "device": options.device,
        "prediction_seconds": round(prediction.seconds, 3),
        "deepres_version": __version__, "python": platform.python_version(),
        "map": str(Path(map_path).resolve()),
    }
    with output_directory(out_dir) as folder:
        resolution_path = folder / RESOLUTION_FILE
        extra["run_seconds"] = round(time.perf_counter() - start, 3)
        summary, contents = report_contents(folder, map_path, volume, resolution_path, prediction.resolution,
                                            geometry, mask, (low, high), options.palette, extra)
        contents[RESOLUTION_FILE] = lambda tmp: write_map(tmp, prediction.resolution, geometry)
        if not options.mask:
            contents[MASK_FILE] = lambda tmp: write_map(tmp, mask.astype(np.float32), geometry)
        write_files(folder, contents)
    return summary


def run_report(resolution_path: str | os.PathLike, map_path: str | os.PathLike, out_dir: str | os.PathLike,
               mask_path: str | os.PathLike | None = None, palette: str = DEFAULT_PALETTE,
               range_min: float | None = None, range_max: float | None = None) -> dict[str, Any]:
    """Rebuild summary, histogram, slices and scripts for an existing resolution map.

    The resolution map may come from any program; without a mask, the voxels with a
    positive value are the estimated ones. The colour scale spans the values unless
    ``range_min``/``range_max`` (A) are given.
    """
    resolution, geometry = read_map(resolution_path)
    volume, map_geometry = read_map(map_path)
    if volume.shape != resolution.shape:
        raise MaskError(f"map shape {volume.shape} differs from resolution map shape {resolution.shape}")
    mask = read_mask(mask_path, resolution.shape, geometry) if mask_path else resolution > 0
    values = resolution_values(resolution, mask)
    low = float(values.min()) if range_min is None else float(range_min)
    high = float(values.max()) if range_max is None else float(range_max)
    if low == high:
        low, high = low - 0.5, high + 0.5
    with output_directory(out_dir) as folder:
        summary, contents = report_contents(folder, map_path, volume, resolution_path, resolution, geometry, mask,
                                            (low, high), palette,
                                            {"resolution_map": str(Path(resolution_path).resolve())})
        write_files(folder, contents)
    return summary
