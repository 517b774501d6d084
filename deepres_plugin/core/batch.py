"""Batch prediction: the local resolution of many maps, one map per task (:mod:`.cluster`).

Each map's outputs go to a folder of its own inside the batch folder, named after the map
(``emd_1234.mrc`` -> ``emd_1234/``; maps with the same name get ``_2``, ``_3``, ... in the
order given), exactly what :func:`.pipeline.run_predict` writes for one map. The batch
folder also gets :data:`.outputs.BATCH_FILES`: ``batch.csv``, one row per map (its figures
in A, time, status and error message), and ``batch.png``, the maps' distributions side by
side.

* A map that fails (an unreadable file, a mask of another grid, a worker that died) is
  reported in its row (status ``failed``, the one-line message) and the others go on.
* A rerun skips the maps whose folder holds a complete prediction of the same map, range
  and network (its ``summary.json`` is written last; status ``skipped``, figures from it).
* A worker imports TensorFlow once and loads each network once (:func:`cached_model`), not
  once per map; it works on one map at a time, so its memory is one map's and the slab
  budget's of the inference.

Maps may be listed in a CSV file (:func:`read_batch_csv`): a ``map`` column and optional
``mask``, ``range`` and ``sampling`` columns; an empty cell takes the command's option.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cluster import ClusterOptions, connected, map_tasks
from .errors import DeepResError, ParameterError
from .fileio import RunFolder
from .models import chosen_model_path
from .outputs import BATCH_FILES, ReportSummary
from .pipeline import PredictOptions, run_predict
from .ranges import AUTO_RANGE, RANGE_CHOICES
from .report import RESOLUTION_AXIS_LABEL, histogram

logger = logging.getLogger(__name__)

#: Columns of a batch CSV file: ``map`` (required), the others optional per row.
CSV_COLUMNS = ("map", "mask", "range", "sampling")
#: Status of a map in ``batch.csv``: predicted by this run, complete from an earlier run, failed.
STATUS_DONE = "done"
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"
#: Percentiles (%) of the whiskers in ``batch.png`` (the box is the summary's 20-80 %).
WHISKER_PERCENTILES = (5, 95)
#: Beyond this many maps ``batch.png`` shows the distribution of the maps' medians instead
#: of one box per map (which would be unreadable).
MAX_BOXES = 50
#: Columns of ``batch.csv``: the map and its folder, what was asked, the outcome, the
#: summary figures (A; voxels with an estimate, voxels of the mask left without one), the
#: whisker percentiles, the time and the error.
ROW_FIELDS = ("name", "map", "mask", "range", "voxel_size", "status", *ReportSummary.STATISTICS,
              "left_out_voxels", "percentile_5", "percentile_95", "seconds", "error")


@dataclasses.dataclass(frozen=True)
class BatchMap:
    """One map of a batch and what it overrides of the command's options (None: the command's)."""

    map: Path
    mask: Path | None = None
    range_name: str | None = None
    sampling: float | None = None


@dataclasses.dataclass(frozen=True)
class BatchTask:
    """One task: predict ``map_path`` into ``folder`` with ``options`` (absolute paths)."""

    name: str
    map_path: Path
    folder: Path
    options: PredictOptions
    verbose: bool = False


def read_batch_csv(path: str | Path) -> list[BatchMap]:
    """The maps listed in a CSV file, relative paths taken from the file's folder.

    Raises:
        ParameterError: unreadable file, no ``map`` column, unknown columns, an empty map
            cell, an unknown range or a sampling that is not a positive number (naming the
            row), or no rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"cannot read the batch file {path} ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if "map" not in columns or unknown:
        problem = f"unknown columns {', '.join(unknown)}" if unknown else "no 'map' column"
        raise ParameterError(f"{path}: {problem}; the columns are {', '.join(CSV_COLUMNS)} (map required)")
    base = path.resolve().parent
    maps = []
    for line, raw in enumerate(reader, start=2):
        row = {key.strip(): (value or "").strip() for key, value in raw.items() if key is not None}
        if not any(row.values()):
            continue                                   # blank line
        if not row.get("map"):
            raise ParameterError(f"{path}, line {line}: no map")
        range_name = row.get("range") or None
        if range_name is not None and range_name not in RANGE_CHOICES:
            raise ParameterError(f"{path}, line {line}: unknown range {range_name!r} "
                                 f"(choose {', '.join(RANGE_CHOICES)})")
        maps.append(BatchMap(base / row["map"], base / row["mask"] if row.get("mask") else None, range_name,
                             _sampling(row.get("sampling"), path, line)))
    if not maps:
        raise ParameterError(f"{path} lists no maps")
    return maps


def _sampling(text: str | None, path: Path, line: int) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ParameterError(f"{path}, line {line}: sampling must be a positive number of A/px, not {text!r}")
    return value


def batch_folders(maps: Sequence[str | Path]) -> list[str]:
    """A folder name per map: its file name without suffixes; repeated names get ``_2``,
    ``_3``, ... in the order given (so a rerun with the same list finds the same folders)."""
    names: list[str] = []
    taken: set[str] = set()
    for path in maps:
        stem = Path(path).name.split(".")[0] or "map"
        name, count = stem, 1
        while name in taken:
            count += 1
            name = f"{stem}_{count}"
        taken.add(name)
        names.append(name)
    return names


_MODELS: dict[tuple, tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()
_LOADS = 0


def cached_model(path: str | Path, range_name: str | None = None) -> tuple[Any, Any]:
    """:func:`.networks.load_model`, once per process for each model file (loaded again
    when the file changes): a worker loads a network for its first map only."""
    from .networks import load_model

    target = Path(path).resolve()
    try:
        stat = target.stat()
    except OSError:
        return load_model(path, range_name)             # raises the usual one-line error
    key = (str(target), range_name, stat.st_mtime_ns, stat.st_size)
    global _LOADS
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(target, range_name)
            _LOADS += 1
        return _MODELS[key]


def loaded_models() -> int:
    """How many times this process has loaded a network through :func:`cached_model`."""
    return _LOADS


def previous_summary(task: BatchTask) -> ReportSummary | None:
    """The summary of a complete earlier prediction of the same map, range and network in
    the task's folder, or None."""
    try:
        found = ReportSummary.read(task.folder)
        summary, asked = found.fields, task.options.range_name
        same = (summary["map"] == str(task.map_path)
                and summary["range"].get("requested", summary["range"]["name"]) == asked
                and (asked == AUTO_RANGE and not task.options.model
                     or summary["model"]["file"] == str(chosen_model_path(task.options.model,
                                                                          summary["range"]["name"]).resolve())))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if same else None


def predict_task(task: BatchTask) -> dict[str, Any]:
    """One task: predict one map (or find it done) and return its ``batch.csv`` row. Every
    error is caught and reported in the row."""
    start = time.perf_counter()
    options = task.options
    row: dict[str, Any] = {"name": task.name, "map": str(task.map_path), "mask": str(options.mask or ""),
                           "range": options.range_name}
    try:
        summary = previous_summary(task)
        status = STATUS_SKIPPED
        if summary is None:
            from .tfquiet import quiet_tensorflow

            quiet_tensorflow(task.verbose)             # a fresh worker: before TensorFlow's import
            summary = run_predict(task.map_path, task.folder, options, model_loader=cached_model)
            status = STATUS_DONE
        row.update({key: getattr(summary, key) for key in ReportSummary.STATISTICS})
        row.update(zip(("percentile_5", "percentile_95"),
                       _whiskers(task.folder / summary.fields["files"]["resolution"])))
        row.update(status=status, range=summary.range_name, voxel_size=summary.input_voxel_size,
                   seconds=summary.run_seconds, left_out_voxels=summary.left_out_voxels)
    except Exception as exc:                           # noqa: BLE001 - one map's failure is its row's
        row.update(status=STATUS_FAILED, error=error_message(exc), seconds=round(time.perf_counter() - start, 3))
    return row


def _whiskers(resolution_path: Path) -> list[float]:
    from .mrc import read_map
    from .report import resolution_values

    values = resolution_values(read_map(resolution_path)[0])
    return [float(v) for v in np.percentile(values, WHISKER_PERCENTILES)]


def error_message(exc: BaseException) -> str:
    """One line saying what went wrong, as the command line says it."""
    if isinstance(exc, DeepResError):
        text = f"{exc} ({exc.option})" if exc.option else str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"cannot read or write{f' ({exc.filename})' if exc.filename else ''}: {exc.strerror}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def batch_tasks(maps: Sequence[BatchMap], out_dir: str | Path, options: PredictOptions,
                verbose: bool = False) -> list[BatchTask]:
    """One task per map, its folder in ``out_dir``, the map's own mask, range and sampling
    replacing the options' where given."""
    out = Path(out_dir).resolve()
    tasks = []
    for entry, name in zip(maps, batch_folders([m.map for m in maps])):
        mask = entry.mask or options.mask
        own = dataclasses.replace(options, mask=Path(mask).resolve() if mask else None,
                                  range_name=entry.range_name or options.range_name,
                                  sampling=entry.sampling or options.sampling, progress=False,
                                  model=Path(options.model).resolve() if options.model else None)
        tasks.append(BatchTask(name, Path(entry.map).resolve(), out / name, own, verbose))
    return tasks


def run_batch(maps: Sequence[BatchMap], out_dir: str | Path, options: PredictOptions | None = None,
              cluster: ClusterOptions | None = None, progress: bool = False, verbose: bool = False,
              client: Any = None) -> list[dict[str, Any]]:
    """Predict every map into its own folder of ``out_dir``; write ``batch.csv`` and
    ``batch.png``; return the rows (in the order of ``maps``).

    Args:
        maps: the maps, with what each overrides of ``options``.
        options: the options of every map.
        cluster: where the tasks run (:class:`.cluster.ClusterOptions`).
        progress: show a progress bar (maps done, time left).
        verbose: let TensorFlow print its start-up lines in the workers.
        client: a ``distributed.Client`` to run the tasks on instead.

    Raises:
        ParameterError: no maps, bad cluster options, an output folder that cannot be written.
    """
    cluster = cluster or ClusterOptions()
    options = options or PredictOptions()
    cluster.validate()
    if not maps:
        raise ParameterError("no maps to predict")
    rows: dict[str, dict[str, Any]] = {}
    key = uuid.uuid4().hex[:8]
    with RunFolder(out_dir) as run, connected(cluster, client) as client:
        tasks = batch_tasks(maps, out_dir, options, verbose)
        results = map_tasks(predict_task, tasks, [f"predict-{task.name}-{key}" for task in tasks], cluster,
                            progress=progress, description="deepres predict", unit="map", client=client,
                            on_error=_failed_row)
        with contextlib.closing(results):
            for row in results:
                rows[row["name"]] = row
                if row["status"] == STATUS_FAILED:
                    logger.warning("%s failed: %s", row["map"], row["error"])
        ordered = [rows[task.name] for task in tasks]
        run.write({BATCH_FILES["csv"]: batch_csv(ordered).encode(), BATCH_FILES["plot"]: batch_png(ordered)})
    return ordered


def _failed_row(task: BatchTask, exc: BaseException) -> dict[str, Any]:
    """The row of a map whose task did not return (its worker died, it could not be sent)."""
    return {"name": task.name, "map": str(task.map_path), "mask": str(task.options.mask or ""),
            "range": task.options.range_name, "status": STATUS_FAILED, "error": error_message(exc)}


def batch_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``batch.csv``: :data:`ROW_FIELDS`, one row per map (empty cells for what a failed map lacks)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in ROW_FIELDS})
    return buffer.getvalue()


def batch_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """The maps' local-resolution distributions side by side: per map a box from the 20th to
    the 80th percentile, the median, whiskers at :data:`WHISKER_PERCENTILES`; beyond
    :data:`MAX_BOXES` maps, the histogram of the maps' medians. Failed maps are named in
    the title."""
    from matplotlib.figure import Figure

    from .report import _render

    measured = [row for row in rows if row["status"] != STATUS_FAILED]
    failed = [row["name"] for row in rows if row["status"] == STATUS_FAILED]
    title = f"DeepRes local resolution of {len(measured)} maps"
    if failed:
        shown = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
        title += f" ({len(failed)} failed: {shown})"
    if len(measured) > MAX_BOXES:
        figure = Figure(figsize=(8, 4.5))
        axes = figure.add_subplot()
        edges, counts = histogram(np.array([row["median"] for row in measured]))
        axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4477aa", edgecolor="white")
        axes.set_xlabel(f"Median {RESOLUTION_AXIS_LABEL.lower()}")
        axes.set_ylabel("Maps")
    else:
        figure = Figure(figsize=(max(6.0, 0.45 * len(measured) + 2), 4.8))
        axes = figure.add_subplot()
        stats = [{"label": row["name"], "med": row["median"], "q1": row["percentile_20"],
                  "q3": row["percentile_80"], "whislo": row["percentile_5"], "whishi": row["percentile_95"],
                  "fliers": []} for row in measured]
        if stats:
            axes.bxp(stats, showfliers=False, patch_artist=True, boxprops={"facecolor": "#bbccee"},
                     medianprops={"color": "#cc3311"})
        axes.set_ylabel(RESOLUTION_AXIS_LABEL)
        axes.tick_params(axis="x", labelrotation=60 if len(measured) > 6 else 0)
    axes.set_title(f"{title}\nbox 20-80 %, line median, whiskers {WHISKER_PERCENTILES[0]}-"
                   f"{WHISKER_PERCENTILES[1]} %" if len(measured) <= MAX_BOXES else title, fontsize=10)
    figure.tight_layout()
    return _render(figure)
