"""The jobs: every ``deepres`` command that makes a run folder, end to end, as the command
line and the Scipion protocols (through it) run them: :func:`run_predict` (local resolution
by DeepRes), :func:`run_report` (the report of an existing resolution map),
:func:`run_local_fsc` (half-map local resolution), :func:`run_bfactor_sweep`,
:func:`run_localfilter` (a map filtered to its local resolution) and :func:`run_residues`
(per-residue resolution); a batch of predictions is :func:`.batch.run_batch`.

Each has an options dataclass (default None: the defaults) and one skeleton: the output folder
checked and made before any computation (:class:`.fileio.RunFolder`), the inputs and options
checked by the core's checks, the computation, then the outputs and the typed summary
(:mod:`.outputs`) written into a staging folder and swapped in at once, the summary last.
The science lives in the modules they call."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..version import __version__
from .diagnostics import (
    AUDIENCE_CLI,
    check_map_for_range,
    limit_warnings,
    map_warnings,
    measure_map,
    nyquist_note,
)
from .errors import MaskError, ParameterError, StructureError
from .fileio import RunFolder
from .fsc import FSC_THRESHOLD, HalfMaps, load_half_maps
from .inference import DEFAULT_SLAB_BYTES, predict_map
from .localfilter import (
    BANK_STEP,
    BFACTOR_SOURCES,
    OUTSIDE_NOTE,
    comparison_slices_png,
    estimate_sharpening,
    local_lowpass,
    localfilter_chimerax_script,
)
from .localfsc import DEFAULT_METHOD, DEFAULT_STRIDE
from .mapscale import check_not_flat, unit_scale
from .masks import automatic_mask, log_automatic_mask, read_mask
from .models import chosen_model_path
from .mrc import check_map_file, read_map, voxel_size_warning, write_map
from .networks import check_model_file, load_model
from .outputs import (
    AVERAGE_FILE,
    DEEPRES_DIR,
    FSC_FILES,
    LOCALFILTER_FILES,
    LOCALFSC_DIR,
    MASK_FILE,
    MASK_ROLE,
    RESIDUE_FILES,
    RESOLUTION_FILE,
    SHARPENED_FILE,
    SUMMARY_FILE,
    SWEEP_FILES,
    ChainResolution,
    LocalFilterSummary,
    ReportSummary,
    ResiduesSummary,
    SweepRow,
    SweepSummary,
)
from .ranges import AUTO_RANGE, choose_range, first_range_name, get_range
from .report import DEFAULT_PALETTE, check_palette, report_contents, resolution_values, surface_level
from .residues import (
    ATTRIBUTE,
    EVERY_ATOM,
    INSIDE,
    OUTSIDE_MAP,
    OUTSIDE_REGION,
    ModelResidues,
    atom_counts,
    bfactor_correlation,
    chain_summaries,
    check_model_name,
    defattr_text,
    model_and_box_spans,
    model_residues,
    model_with_resolution,
    placement_warnings,
    residue_figures,
    residue_percentiles,
    residues_chimerax_script,
    residues_csv,
    residues_png,
    sample_at_atoms,
)
from .resolution_maps import (
    ResolutionMap,
    check_density_map,
    check_resolution_values,
    colour_range,
    read_resolution_map,
)
from .signal import select_signal
from .simulate import read_model

logger = logging.getLogger(__name__)

@dataclasses.dataclass
class PredictOptions:
    """Options of :func:`run_predict` (the ``deepres predict`` flags)."""

    mask: str | os.PathLike | None = None
    range_name: str = AUTO_RANGE
    model: str | os.PathLike | None = None
    sampling: float | None = None
    device: str = "auto"
    path: str = "auto"
    palette: str = DEFAULT_PALETTE
    progress: bool = False
    slab_bytes: int = DEFAULT_SLAB_BYTES
    precision: str = "float32"
    #: Whose words the warnings' advice uses (:data:`.diagnostics.AUDIENCES`; Scipion: protocols).
    audience: str = AUDIENCE_CLI


def run_predict(map_path: str | os.PathLike, out_dir: str | os.PathLike,
                options: PredictOptions | None = None, *,
                model_loader: Callable[[Path, str], tuple[Any, Any]] | None = None) -> ReportSummary:
    """Predict the local resolution of a map and write all outputs into ``out_dir``.

    Outputs: ``resolution.mrc`` (input grid, voxel size and origin), ``summary.json``,
    ``histogram.png``/``.csv``, ``slices.png``, ``chimerax.cxc``, ``chimera.cmd`` and, when
    no mask is given, the automatic ``mask.mrc``. All are written atomically.

    Args:
        model_loader: loads ``(network, info)`` from (model path, range name); default
            :func:`.networks.load_model`. A batch passes a cached one, so that a worker
            loads each network once (:func:`.batch.cached_model`).

    Returns:
        the summary (as written to ``summary.json``: :meth:`.outputs.ReportSummary.to_dict`).
    """
    options = options or PredictOptions()
    start = time.perf_counter()
    with RunFolder(out_dir) as run:
        volume, geometry = read_map(map_path, voxel_size=options.sampling)
        check_density_map(volume, str(map_path))
        run.check_room(2 * volume.size * 4 + REPORT_BYTES)     # resolution map, mask
        range_name = first_range_name(options.range_name, check_model_file(options.model).range_name
                                      if options.model and options.range_name == AUTO_RANGE else None)
        check_map_for_range(geometry.voxel_size, volume.shape, get_range(range_name), str(map_path))
        model_path = chosen_model_path(options.model, range_name)
        check_model_file(model_path, range_name)     # a bad network fails now, not after the map work
        loader = model_loader or load_model
        # TensorFlow's import and the model load (2-3 s) overlap the mask
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            loading = pool.submit(loader, model_path, range_name)
            try:
                scaled, mask, mask_source, envelope = _prepare_map(volume, geometry, map_path, options)
            finally:
                network, info = loading.result()
        # after the load: numpy and scipy sharing the interpreter with TensorFlow's import took twice as long
        selection = select_signal(scaled, geometry.voxel_size, mask, envelope)
        # on the estimated voxels: the region that a local filter of this run's map measures its B on
        condition = measure_map(scaled, geometry.voxel_size, selection.estimated)
        if not info.trained:
            logger.warning("%s is an UNTRAINED network: its numbers mean nothing (tests only)", model_path.name)
        logger.info("map condition: %s", condition.describe())
        selection.log()

        def predict(network, info):
            return predict_map(scaled, geometry.voxel_size, selection.estimated, network, info, device=options.device,
                               path=options.path, progress=options.progress, slab_bytes=options.slab_bytes,
                               precision=options.precision)

        prediction, choice = predict(network, info), None
        values = prediction.resolution[selection.estimated]
        if options.range_name == AUTO_RANGE and not options.model:
            choice = choose_range(values)
            logger.info(choice.why)
            if choice.name != info.range_name:
                check_map_for_range(geometry.voxel_size, volume.shape, get_range(choice.name), str(map_path))
                model_path = chosen_model_path(None, choice.name)
                network, info = loader(model_path, choice.name)
                prediction = predict(network, info)
                values = prediction.resolution[selection.estimated]
        note = nyquist_note(geometry.voxel_size, get_range(info.range_name))
        if note:
            logger.info(note)
        warnings = _prediction_warnings(map_path, volume.shape, geometry, condition, selection, values, prediction,
                                        info, options)
        extra = {
            "range": {"name": info.range_name, "min_resolution_A": info.min_resolution,
                      "max_resolution_A": info.max_resolution, "requested": options.range_name,
                      **({"choice": choice.why} if choice else {})},
            "model": {"name": info.name, "version": info.version, "architecture": info.architecture,
                      "trained": info.trained, "file": str(model_path.resolve())},
            "input_voxel_size_A": geometry.voxel_size, "model_voxel_size_A": info.voxel_size,
            "input_shape_zyx": list(volume.shape), "mask": mask_source, "left_out": selection.as_dict(),
            "map_condition": condition.as_dict(), "warnings": warnings, **prediction.summary_fields(),
            "device_requested": options.device, "precision": options.precision,
            "deepres_version": __version__, "python": platform.python_version(),
            "map": str(Path(map_path).resolve()), "run_seconds": round(time.perf_counter() - start, 3),
        }
        automatic = {} if options.mask else {MASK_ROLE: MASK_FILE}
        summary, contents = report_contents(run.path, map_path, volume, run.path / RESOLUTION_FILE,
                                            prediction.resolution, geometry, selection.estimated, prediction.clamp,
                                            options.palette, extra, other_files=automatic)
        contents[RESOLUTION_FILE] = lambda tmp: write_map(tmp, prediction.resolution, geometry)
        if automatic:
            contents[MASK_FILE] = lambda tmp: write_map(tmp, mask.astype(np.float32), geometry)
        run.write(contents, stale=(MASK_FILE,))
    return summary


def _prediction_warnings(map_path, shape: tuple[int, ...], geometry, condition, selection, values: np.ndarray,
                         prediction, info, options: PredictOptions) -> list[str]:
    """Every warning of a prediction (logged here): the map's condition, estimates piled up at
    the range's limit, voxels left out, a voxel size far from the header's."""
    resolution_range = get_range(info.range_name)
    warnings = map_warnings(condition, geometry.voxel_size, shape, resolution_range, options.audience)
    warnings += limit_warnings(values, prediction.clamp, resolution_range)
    warnings += selection.warnings()
    if options.sampling:
        header = check_map_file(map_path, options.sampling)[1][0]
        warnings += [w for w in [voxel_size_warning(geometry.voxel_size, header, Path(map_path).name)] if w]
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _prepare_map(volume: np.ndarray, geometry, map_path, options: PredictOptions):
    """The map at unit scale, its mask (given or automatic) and, when the mask is the
    automatic one, the map's density envelope (else None: :func:`.signal.select_signal`
    makes it around the given mask): what a prediction needs from the map before the network
    runs."""
    scaled = unit_scale(volume, str(map_path))
    if options.mask:
        mask = read_mask(options.mask, volume.shape, geometry, voxel_size=options.sampling)
        mask_source, envelope = str(Path(options.mask).resolve()), None
    else:
        mask, mask_source = automatic_mask(scaled, geometry.voxel_size), "automatic"
        envelope = mask
        log_automatic_mask(mask)
        if mask.all():
            raise MaskError("the automatic mask covers the whole box; give a mask", option="--mask")
    check_not_flat(scaled, mask, str(map_path))
    return scaled, mask, mask_source, envelope


#: About the size of the figures and scripts of a report (bytes).
REPORT_BYTES = 4 * 2 ** 20

def run_report(resolution_path: str | os.PathLike, map_path: str | os.PathLike, out_dir: str | os.PathLike,
               mask_path: str | os.PathLike | None = None, palette: str = DEFAULT_PALETTE,
               range_min: float | None = None, range_max: float | None = None) -> ReportSummary:
    """Rebuild summary, histogram, slices and scripts for an existing resolution map.

    The resolution map may come from any program; without a mask, the voxels with a
    positive value are the estimated ones. The colour scale spans the values unless
    ``range_min``/``range_max`` (A) are given.
    """
    with RunFolder(out_dir) as run:
        resolution, geometry = read_map(resolution_path)
        check_resolution_values(resolution, str(resolution_path))
        volume, map_geometry = read_map(map_path)
        check_density_map(volume, str(map_path))
        if volume.shape != resolution.shape:
            raise MaskError(f"map shape {volume.shape} differs from resolution map shape {resolution.shape}")
        mask = read_mask(mask_path, resolution.shape, geometry) if mask_path else resolution > 0
        values = resolution_values(resolution, mask)
        low = float(values.min()) if range_min is None else float(range_min)
        high = float(values.max()) if range_max is None else float(range_max)
        if low == high:
            low, high = low - 0.5, high + 0.5
        folder = run.path
        summary, contents = report_contents(folder, map_path, volume, resolution_path, resolution, geometry, mask,
                                            (low, high), palette,
                                            {"resolution_map": str(Path(resolution_path).resolve())})
        run.write(contents)
    return summary




@dataclasses.dataclass
class LocalFscOptions:
    """Options of :func:`run_local_fsc` (the ``deepres localfsc`` flags)."""

    mask: str | os.PathLike | None = None
    method: str = DEFAULT_METHOD
    window: float | None = None
    stride: int = DEFAULT_STRIDE
    threshold: float = FSC_THRESHOLD
    sampling: float | None = None
    palette: str = DEFAULT_PALETTE
    progress: bool = False


def _local_fsc(halves: HalfMaps, options) -> Any:
    from .localfsc import local_resolution_map

    local = local_resolution_map(halves.half1, halves.half2, halves.geometry.voxel_size, halves.mask,
                                 options.method, options.window, options.stride, options.threshold,
                                 halves.global_resolution, halves.information_limit, options.progress)
    logger.info("local resolution from the half maps by %s in %.1f s", local.describe(), local.seconds)
    return local


def _report_files(folder: Path, map_path: Path, volume: np.ndarray, resolution: np.ndarray, halves: HalfMaps,
                  colour_range: tuple[float, float], palette: str, extra: dict,
                  estimated: np.ndarray | None = None, other_files: dict[str, str] | None = None) -> tuple[dict, dict]:
    """Summary and report files of a resolution map to be written as ``resolution.mrc`` in
    ``folder``; the map is ``map_path`` (written there too when it lies in ``folder``); the
    figures count the ``estimated`` voxels (default: the halves' mask); ``other_files``, written
    by the caller, are listed in the summary too."""
    mask = halves.mask if estimated is None else estimated
    summary, contents = report_contents(folder, map_path, volume, folder / RESOLUTION_FILE, resolution,
                                        halves.geometry, mask, colour_range, palette, extra, other_files)
    contents[RESOLUTION_FILE] = lambda tmp: write_map(tmp, resolution, halves.geometry)
    if map_path.parent == folder:
        contents[map_path.name] = lambda tmp: write_map(tmp, volume, halves.geometry)
    return summary, contents


def _mask_file(halves: HalfMaps) -> dict:
    """The automatic mask as a file to write (nothing when the user gave one)."""
    if halves.mask_source != "automatic":
        return {}
    return {MASK_FILE: lambda tmp: write_map(tmp, halves.mask.astype(np.float32), halves.geometry)}


def _mask_role(halves: HalfMaps) -> dict[str, str]:
    """The automatic mask's entry in a summary's ``files`` (nothing when the user gave one)."""
    return {MASK_ROLE: MASK_FILE} if halves.mask_source == "automatic" else {}


def _value_range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def run_local_fsc(half1_path: str | os.PathLike, half2_path: str | os.PathLike, out_dir: str | os.PathLike,
                  options: LocalFscOptions | None = None) -> ReportSummary:
    """Local FSC resolution from two half maps; writes the outputs of :func:`run_predict`
    (with the halves' average as the map, ``average_map.mrc``) plus the global ``fsc.csv``/``.png``.

    Returns:
        the summary (as written to ``summary.json``: :meth:`.outputs.ReportSummary.to_dict`).
    """
    options = options or LocalFscOptions()
    start = time.perf_counter()
    with RunFolder(out_dir) as run:
        halves = load_half_maps(half1_path, half2_path, options.mask, options.threshold, options.sampling)
        local = _local_fsc(halves, options)
        values = resolution_values(local.resolution, halves.mask)
        extra = {"method": "local FSC", "threshold": options.threshold, **local.summary(),
                 "global_fsc_resolution_A": halves.global_resolution,
                 "information_limit_A": halves.information_limit, "mask": halves.mask_source,
                 "input_voxel_size_A": halves.geometry.voxel_size, "input_shape_zyx": list(halves.half1.shape),
                 "half_maps": [str(Path(half1_path).resolve()), str(Path(half2_path).resolve())],
                 "localfsc_seconds": round(local.seconds, 3), "deepres_version": __version__}
        folder = run.path
        extra["run_seconds"] = round(time.perf_counter() - start, 3)
        summary, contents = _report_files(folder, folder / AVERAGE_FILE, halves.average, local.resolution, halves,
                                          _value_range(values), options.palette, extra,
                                          other_files=_mask_role(halves))
        contents.update({**halves.fsc_files(options.threshold), **_mask_file(halves)})
        run.write(contents, stale=(MASK_FILE,))
    return summary


@dataclasses.dataclass
class SweepOptions(LocalFscOptions):
    """Options of :func:`run_bfactor_sweep` (the ``deepres bfactor-sweep`` flags)."""

    bfactors: str = "-200:0:20"
    range_name: str = "wide"
    model: str | os.PathLike | None = None
    device: str = "auto"


def run_bfactor_sweep(half1_path: str | os.PathLike, half2_path: str | os.PathLike, out_dir: str | os.PathLike,
                      options: SweepOptions | None = None) -> SweepSummary:
    """Sweep global B-factors on the halves' average, compare DeepRes with the local FSC and
    recommend a B-factor (see :mod:`.sweep`).

    Outputs in ``out_dir``: ``bfactor_sweep.csv``, ``bfactor_sweep.png``, ``summary.json``,
    ``sharpened_map.mrc`` (the average sharpened with the recommended B and low-passed at the
    global FSC resolution), ``fsc.csv``/``fsc.png``, ``localfsc/`` (the local FSC report) and
    ``deepres/`` (the DeepRes report of the recommended map). Nothing is written before every
    computation has succeeded.

    Returns:
        the summary (as written to ``summary.json``: :meth:`.outputs.SweepSummary.to_dict`).
    """
    options = options or SweepOptions()
    from .filters import apply_bfactor
    from .sweep import check_sharpening, parse_bfactors, recommend, sweep_csv, sweep_png, sweep_rows

    start = time.perf_counter()
    with RunFolder(out_dir) as run:
        bfactors = parse_bfactors(options.bfactors)
        model_path = chosen_model_path(options.model, options.range_name)
        network, info = load_model(model_path, options.range_name)
        halves = load_half_maps(half1_path, half2_path, options.mask, options.threshold, options.sampling)
        voxel = halves.geometry.voxel_size
        lowpass = max(halves.global_resolution, 2.0 * voxel)
        check_sharpening(bfactors, lowpass)
        local = _local_fsc(halves, options)
        average = halves.average
        # both estimates are compared on the voxels where the average shows density
        selection = select_signal(average, voxel, halves.mask)
        selection.log()
        for warning in selection.warnings():
            logger.warning(warning)
        estimated = selection.estimated
        fsc_values = resolution_values(local.resolution, estimated)
        fsc_p20 = float(np.percentile(fsc_values, 20))
        maps, predictions, values = [], [], []
        for bfactor in bfactors:
            sharpened = apply_bfactor(average, voxel, bfactor, lowpass)
            prediction = predict_map(unit_scale(sharpened), voxel, estimated, network, info, device=options.device)
            maps.append(sharpened)
            predictions.append(prediction)
            values.append(resolution_values(prediction.resolution, estimated))
            logger.info("B = %g Å²: DeepRes median %.2f Å, 20th percentile %.2f Å (local FSC %.2f Å)", bfactor,
                        np.median(values[-1]), np.percentile(values[-1], 20), fsc_p20)
        rows = sweep_rows(bfactors, values, fsc_p20)
        best = recommend(bfactors, [row["deepres_p20_A"] for row in rows], fsc_p20, [row["verdict"] for row in rows])
        low, high = predictions[best].clamp
        if fsc_p20 < low:
            logger.warning("the local FSC 20th percentile (%.2f Å) is finer than the %s range's minimum (%.2f Å): "
                           "DeepRes cannot match it; use the high range", fsc_p20, info.range_name, low)
        summary = SweepSummary(
            recommended_bfactor=bfactors[best], recommended_verdict=rows[best]["verdict"],
            global_fsc_resolution=halves.global_resolution, localfsc_p20=fsc_p20,
            localfsc_median=float(np.median(fsc_values)), threshold=options.threshold,
            rows=tuple(SweepRow.from_dict(row) for row in rows), fields={
                "lowpass_A": lowpass, **local.summary(), "information_limit_A": halves.information_limit,
                "mask": halves.mask_source, "left_out": selection.as_dict(), "range": info.range_name,
                "model": {"name": info.name, "version": info.version, "file": str(model_path.resolve()),
                          "trained": info.trained},
                "input_voxel_size_A": voxel,
                "half_maps": [str(Path(half1_path).resolve()), str(Path(half2_path).resolve())],
                "files": {**SWEEP_FILES, "sharpened_map": SHARPENED_FILE, "localfsc": LOCALFSC_DIR,
                          "deepres": DEEPRES_DIR, "fsc": list(FSC_FILES), **_mask_role(halves)},
                "deepres_version": __version__, "run_seconds": round(time.perf_counter() - start, 3)})
        folder = run.path
        _, local_contents = _report_files(
            folder / LOCALFSC_DIR, folder / LOCALFSC_DIR / AVERAGE_FILE, average, local.resolution, halves, _value_range(fsc_values),
            options.palette, {"method": "local FSC", **local.summary(), "threshold": options.threshold}, estimated)
        _, deepres_contents = _report_files(
            folder / DEEPRES_DIR, folder / SHARPENED_FILE, maps[best], predictions[best].resolution, halves, (low, high),
            options.palette, {"method": "DeepRes", "bfactor_A2": bfactors[best], "range": info.range_name,
                              "left_out": selection.as_dict()}, estimated)
        contents = {SWEEP_FILES["csv"]: sweep_csv(rows, best).encode(),
                    SWEEP_FILES["plot"]: sweep_png(bfactors, values, fsc_p20, best, halves.global_resolution),
                    SHARPENED_FILE: lambda tmp: write_map(tmp, maps[best], halves.geometry),
                    SUMMARY_FILE: summary.to_json(),
                    **halves.fsc_files(options.threshold), **_mask_file(halves)}
        contents.update({f"{LOCALFSC_DIR}/{name}": data for name, data in local_contents.items()})
        contents.update({f"{DEEPRES_DIR}/{name}": data for name, data in deepres_contents.items()})
        run.write(contents)    # the report folders are made with their files
    return summary


@dataclasses.dataclass
class LocalFilterOptions:
    """Options of :func:`run_localfilter` (the ``deepres localfilter`` flags).

    Attributes:
        mask: the region to filter to its local resolution (default: resolution > 0).
        bfactor: global B-factor (A^2) applied first; negative sharpens.
        auto_bfactor: estimate the B-factor from the map instead (:func:`estimate_sharpening`).
        palette: colour map of the figure and script (default: the resolution map's report's).
        workers: FFT threads (default: the CPUs this process may use, :func:`.cluster.available_cpus`).
    """

    mask: str | os.PathLike | None = None
    bfactor: float | None = None
    auto_bfactor: bool = False
    palette: str | None = None
    workers: int | None = None


def run_localfilter(map_path: str | os.PathLike, resolution_path: str | os.PathLike, out_dir: str | os.PathLike,
                    options: LocalFilterOptions | None = None) -> LocalFilterSummary:
    """Filter a map to its local resolution and write every output into ``out_dir``:
    :data:`.outputs.LOCALFILTER_FILES` (the filtered map on the input's grid and geometry,
    the before/after slices, the ChimeraX script and ``summary.json``, renamed last).
    Nothing is written unless everything succeeded.

    Raises:
        MapFormatError: unreadable maps, or maps on different grids
            (:func:`.resolution_maps.check_same_grid`).
        MaskError: a mask that does not fit the map.
        ParameterError: both a B-factor and its estimate asked for, a B-factor that cannot be
            measured or that sharpens beyond sense, no voxel to filter, an output folder
            that cannot be written.
    """
    options = options or LocalFilterOptions()
    start = time.perf_counter()
    if options.bfactor is not None and options.auto_bfactor:
        raise ParameterError("give a B-factor or ask for its estimate, not both", option="--bfactor/--auto-bfactor")
    if options.palette is not None:
        check_palette(options.palette)
    with RunFolder(out_dir) as run:
        maps = read_resolution_map(resolution_path, map_path)
        volume, resolution, geometry, region = maps.volume, maps.resolution, maps.geometry, maps.region
        run.check_room(volume.size * 4 + 4 * 2 ** 20)
        mask_source = "resolution > 0"
        if options.mask:
            mask = read_mask(options.mask, volume.shape, geometry)
            unestimated = int(np.count_nonzero(mask & ~region))
            if unestimated:
                logger.warning("%d voxels of the mask have no local resolution: filtered as outside the mask", unestimated)
            region &= mask
            mask_source = str(Path(options.mask).resolve())
        if not region.any():
            raise ParameterError(f"{resolution_path} has no positive local resolution"
                                 + (" inside the mask" if options.mask else ""))
        bfactor, map_bfactor, source = 0.0, None, BFACTOR_SOURCES[0]
        if options.auto_bfactor:
            bfactor, map_bfactor = estimate_sharpening(volume, geometry.voxel_size, region)
            source = BFACTOR_SOURCES[2]
        elif options.bfactor:
            bfactor, source = float(options.bfactor), BFACTOR_SOURCES[1]
        (low, high), palette = colour_range(resolution_path, np.maximum(resolution[region], 2.0 * geometry.voxel_size),
                                            options.palette)
        check_palette(palette)
        result = local_lowpass(volume, resolution, geometry.voxel_size, region, bfactor, options.workers)
        names = LOCALFILTER_FILES
        folder = run.path
        relative = {name: os.path.relpath(Path(path).resolve(), folder.resolve())
                    for name, path in (("map", map_path), ("resolution", resolution_path))}
        summary = LocalFilterSummary(
            bank_resolutions=tuple(round(r, 4) for r in result.bank), bfactor=bfactor, bfactor_source=source,
            map_bfactor=map_bfactor, voxels=int(np.count_nonzero(region)), colour_range=(low, high),
            palette=palette, fields={
                "method": "local low-pass",
                "interpolation": "linear in 1/resolution between the two nearest bank members",
                "bank_members": len(result.bank), "bank_step_per_voxel": BANK_STEP, "finest_A": result.bank[0],
                "coarsest_A": result.bank[-1], "outside": OUTSIDE_NOTE, "mask": mask_source,
                "voxels_clamped_to_nyquist": result.clamped_voxels, "input_voxel_size_A": geometry.voxel_size,
                "input_shape_zyx": list(volume.shape), "map": str(Path(map_path).resolve()),
                "resolution_map": str(Path(resolution_path).resolve()), "filter_seconds": round(result.seconds, 3),
                "deepres_version": __version__,
                "files": {**names, "input_map": relative["map"], "resolution": relative["resolution"]},
                "run_seconds": round(time.perf_counter() - start, 3)})
        level = surface_level(result.filtered, region)
        run.write({
            names["map"]: lambda tmp: write_map(tmp, result.filtered, geometry),
            names["slices"]: comparison_slices_png(volume, result.filtered, resolution, region, low, high, palette),
            names["chimerax"]: localfilter_chimerax_script(names["map"], relative["map"], relative["resolution"], geometry,
                                                 low, high, level, palette).encode(),
            SUMMARY_FILE: summary.to_json(),
        })
    return summary


@dataclasses.dataclass
class ResidueOptions:
    """Options of :func:`run_residues` (the ``deepres residues`` flags).

    Attributes:
        map: the density map (checked to share the resolution map's grid, shown in the script).
        compare_bfactors: rank-correlate the residues' medians with their refined B-factors.
        palette: colour map (default: that of the resolution map's report, or jet).
    """

    map: str | os.PathLike | None = None
    compare_bfactors: bool = False
    palette: str | None = None


def run_residues(resolution_path: str | os.PathLike, model_path: str | os.PathLike, out_dir: str | os.PathLike,
                 options: ResidueOptions | None = None) -> ResiduesSummary:
    """Local resolution per residue of a model placed on a resolution map; writes
    :data:`.outputs.RESIDUE_FILES` into ``out_dir`` (``summary.json`` last), nothing unless
    everything succeeded.

    Raises:
        StructureError: not a model file, unreadable, or no atom inside the map (or inside
            its estimated region).
        MapFormatError: unreadable maps, or a map on another grid than the resolution map.
        ParameterError: unknown palette, an output folder that cannot be written.
    """
    options = options or ResidueOptions()
    start = time.perf_counter()
    check_model_name(model_path)
    if options.palette is not None:
        check_palette(options.palette)
    with RunFolder(out_dir) as run:
        maps = read_resolution_map(resolution_path, options.map)
        model = read_model(model_path, EVERY_ATOM)
        residues = model_residues(model)
        values, status = sample_at_atoms(maps.resolution, maps.geometry, residues.positions)
        _check_overlap(status, residues, maps, model_path, resolution_path)
        warnings = placement_warnings(status, Path(model_path).name)
        for warning in warnings:
            logger.warning(warning)
        counts, table = residue_percentiles(values, residues.atom_residue, len(residues.names))
        outside = np.bincount(residues.atom_residue[status != INSIDE], minlength=len(residues.names))
        medians = table[:, 0]
        chains = chain_summaries(residues, counts, medians, status)
        for chain in chains:
            _log_chain(chain)
        mean_b, comparison = None, None
        if options.compare_bfactors:
            atoms = np.bincount(residues.atom_residue, minlength=len(residues.names))
            sums = np.bincount(residues.atom_residue, weights=residues.bfactors, minlength=len(residues.names))
            mean_b = np.where(atoms > 0, sums / np.maximum(atoms, 1), np.nan)
            comparison = bfactor_correlation(medians, mean_b)
            if comparison["spearman"] is None:
                logger.warning("no rank correlation with the B-factors: %s", comparison["reason"])
            else:
                logger.info("Spearman rank correlation of residue medians with mean B-factors: %.3f over %d residues "
                            "(p = %.2g)", comparison["spearman"], comparison["residues"], comparison["p_value"])
        estimated = maps.resolution[maps.region]
        (low, high), palette = colour_range(resolution_path, estimated, options.palette)
        check_palette(palette)
        structure = model_with_resolution(model, medians, Path(model_path).name.split(".")[0])
        names = dict(RESIDUE_FILES)
        try:
            pdb_text = structure.make_pdb_string()
        except RuntimeError as exc:               # chain names longer than 2 characters, too many atoms
            logger.warning("the model cannot be written as PDB (%s): mmCIF only", exc)
            pdb_text, names["model_pdb"] = None, None
        folder = run.path
        relative = {key: os.path.relpath(Path(path).resolve(), folder.resolve())
                    for key, path in (("resolution", resolution_path), ("model", model_path), ("map", options.map))
                    if path is not None}
        summary = ResiduesSummary(
            residues=len(residues.names), residues_estimated=int((counts > 0).sum()), **residue_figures(medians),
            **atom_counts(status), chains=tuple(chains), colour_range=(low, high), palette=palette, fields={
                "bfactor_comparison": comparison, "attribute": ATTRIBUTE, "warnings": warnings,
                "sampling": "trilinear at atom positions over voxels with an estimate; hydrogens and waters left out",
                "resolution_map": str(Path(resolution_path).resolve()), "model": str(Path(model_path).resolve()),
                "map": str(Path(options.map).resolve()) if options.map else None,
                "deepres_version": __version__, "files": {**names, **{f"input_{k}": v for k, v in relative.items()}},
                "run_seconds": round(time.perf_counter() - start, 3)})
        level = surface_level(maps.volume, maps.region) if maps.volume is not None else None
        contents = {
            names["csv"]: residues_csv(residues, counts, outside, table, mean_b).encode(),
            names["plot"]: residues_png(residues, table, low, high, palette),
            names["defattr"]: defattr_text(residues, medians).encode(),
            names["chimerax"]: residues_chimerax_script(names["model_cif"], names["defattr"], low, high, palette,
                                                 relative.get("map"), level).encode(),
            names["model_cif"]: structure.make_mmcif_document().as_string().encode(),
            SUMMARY_FILE: summary.to_json(),
        }
        if pdb_text is not None:
            contents[names["model_pdb"]] = pdb_text.encode()
        run.write(contents, stale=(RESIDUE_FILES["model_pdb"],))   # an earlier run's PDB is not this model
    return summary


def _angstrom(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f} Å"


def _log_chain(chain: ChainResolution) -> None:
    outside = chain.atoms_outside_map + chain.atoms_outside_region
    spread = ("" if chain.median is None else
              f" (20-80 %: {chain.percentile_20:.2f}-{chain.percentile_80:.2f} Å)")
    logger.info("chain %s: %d residues (%d with an estimate), median %s%s%s", chain.chain,
                chain.residues, chain.residues_estimated, _angstrom(chain.median), spread,
                f"; {chain.atoms_outside_map} atoms outside the map, {chain.atoms_outside_region} outside "
                "the estimated region" if outside else "")


def _check_overlap(status: np.ndarray, residues: ModelResidues, maps: ResolutionMap, model_path: str | os.PathLike,
                   resolution_path: str | os.PathLike) -> None:
    """Refuse a model with no atom where the map has an estimate.

    Raises:
        StructureError: no atom to sample (none, none in the box, none in the estimated region).
    """
    if status.size == 0:
        raise StructureError(f"{model_path} has no atom other than hydrogens and waters")
    if not np.any(status == INSIDE):
        if np.all(status == OUTSIDE_MAP):
            spans = model_and_box_spans(residues.positions, maps.geometry, maps.resolution.shape)
            raise StructureError(f"no atom of {model_path} lies inside {resolution_path}: {spans}; place the model "
                                 "on the map first")
        raise StructureError(f"no atom of {model_path} lies where {resolution_path} has a local resolution "
                             f"({int(np.sum(status == OUTSIDE_REGION))} atoms in the box, all on voxels without "
                             "an estimate)")
