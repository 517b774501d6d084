"""What a user looks at: summary numbers, histogram, coloured slices, ChimeraX/Chimera scripts.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend), so
they work headless and inside Scipion. Colours follow the field's habit: blue is high
resolution (small values in A), red is low resolution.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import numpy as np

from .errors import ParameterError
from .masks import otsu_threshold
from .mrc import MapGeometry
from .outputs import REPORT_FILES, ReportSummary

#: Histogram bin width in A (as Xmipp's DeepRes viewer).
HISTOGRAM_BIN_A = 0.25
#: Most bins of a histogram: more would be too thin to see and slow to draw; a wider range
#: of values gets wider bins (whole multiples of :data:`HISTOGRAM_BIN_A`).
MAX_HISTOGRAM_BINS = 1000
#: Default colour map: blue for high resolution (low A), red for low resolution.
#: Axis and colour-bar label of every resolution figure.
RESOLUTION_AXIS_LABEL = "Resolution (Å)"
DEFAULT_PALETTE = "jet"
#: Colour stops written into the ChimeraX/Chimera palettes and keys.
PALETTE_STOPS = 5
SUMMARY_PERCENTILES = (20, 80)
FIGURE_DPI = 100
#: Width of the colour bar's column in a figure of slices, relative to a panel's.
COLORBAR_WIDTH = 0.05


def resolution_values(resolution: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Resolution values (A) of the estimated voxels: those in ``mask``, or those above 0."""
    selected = resolution[mask] if mask is not None else resolution[resolution > 0]
    if selected.size == 0:
        raise ParameterError("no voxel with a resolution value (empty mask or all-zero map)")
    return selected.astype(np.float64)


def summary_statistics(values: np.ndarray) -> dict[str, float | int]:
    """Median, mean, SD, min, max, 20th/80th percentiles (A) and voxel count, by
    :class:`.outputs.ReportSummary` field (summary.json's keys: :data:`.outputs.STATISTIC_KEYS`)."""
    low, high = np.percentile(values, SUMMARY_PERCENTILES)
    return {
        "median": float(np.median(values)), "mean": float(values.mean()), "std": float(values.std()),
        "min": float(values.min()), "max": float(values.max()),
        "percentile_20": float(low), "percentile_80": float(high), "voxels": int(values.size),
    }


def histogram_bin_width(low: float, high: float, bin_width: float = HISTOGRAM_BIN_A,
                        max_bins: int = MAX_HISTOGRAM_BINS) -> float:
    """``bin_width`` (A), or the smallest whole multiple of it that covers [low, high] in at
    most ``max_bins`` bins."""
    return bin_width * max(1.0, float(np.ceil((high - low) / (bin_width * (max_bins - 1)))))


def histogram(values: np.ndarray, bin_width: float = HISTOGRAM_BIN_A,
              max_bins: int = MAX_HISTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``values`` in bins of ``bin_width`` A aligned on multiples of the width,
    widened (:func:`histogram_bin_width`) so that there are at most ``max_bins`` bins.

    Returns:
        ``(edges, counts)``; the counts sum to ``values.size``.
    """
    low, high = float(values.min()), float(values.max())
    width = histogram_bin_width(low, high, bin_width, max_bins)
    first = np.floor(low / width)
    bins = int(np.floor(high / width) - first) + 1
    edges = np.round((first + np.arange(bins + 1)) * width, 6)
    counts, _ = np.histogram(values, bins=edges)
    return edges, counts


def check_palette(name: str):
    """The matplotlib colour map called ``name``.

    Raises:
        ParameterError: unknown colour map.
    """
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ParameterError(f"unknown palette {name!r} (any matplotlib colour map name, e.g. jet, viridis)") from None


def palette_stops(name: str, low: float, high: float, stops: int = PALETTE_STOPS) -> list[tuple[float, str]]:
    """``stops`` (value in A, '#rrggbb') pairs spanning [low, high] along the colour map."""
    from matplotlib.colors import to_hex

    colormap = check_palette(name)
    values = np.linspace(low, high, stops)
    return [(float(v), to_hex(colormap(t))) for v, t in zip(values, np.linspace(0, 1, stops))]


def surface_level(volume: np.ndarray, mask: np.ndarray) -> float:
    """A contour level for the map's surface: Otsu's threshold of the values in the mask."""
    inside = volume[mask] if mask.any() else volume.ravel()
    return otsu_threshold(inside)


def _render(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def draw_histogram(axes, edges: np.ndarray, counts: np.ndarray, stats: dict) -> None:
    """Bars of the histogram and a dashed line at the median, on matplotlib ``axes``
    (used by :func:`histogram_png` and by the Scipion viewer)."""
    axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4477aa", edgecolor="white")
    axes.axvline(stats["median"], color="#cc3311", linestyle="--", label=f"median {stats['median']:.2f} Å")


def draw_slice(axes, volume_slice: np.ndarray, resolution_slice: np.ndarray, mask_slice: np.ndarray,
               low: float, high: float, palette: str = DEFAULT_PALETTE):
    """A map slice in grey with the resolution of its masked voxels overlaid in colour, on
    matplotlib ``axes``; returns the overlay image (for a colour bar)."""
    axes.imshow(volume_slice, cmap="gray", origin="lower", interpolation="nearest")
    overlay = np.ma.masked_where(~mask_slice, resolution_slice)
    return axes.imshow(overlay, cmap=check_palette(palette), vmin=low, vmax=high, origin="lower",
                       interpolation="nearest", alpha=0.75)


def slice_grid(figure, rows: int, columns: int, colorbar_row: int = -1) -> tuple[list, Any]:
    """The panels of a figure of slices (``rows`` x ``columns``, row by row) and the colour
    bar's own axes, in a narrow column beside the panels of row ``colorbar_row``.

    Every axes is a cell of one grid: a layout pass (``tight_layout``, which Scipion's
    plotter runs before it shows or saves a figure) keeps the bar beside the panels. A bar
    that takes its room from the panels (``colorbar(ax=...)``) is no cell of the grid, and
    such a pass spreads the panels over it.
    """
    grid = figure.add_gridspec(rows, columns + 1, width_ratios=[1] * columns + [COLORBAR_WIDTH])
    panels = [figure.add_subplot(grid[row, column]) for row in range(rows) for column in range(columns)]
    return panels, figure.add_subplot(grid[colorbar_row, columns])


def draw_colorbar(figure, image, colorbar_axes):
    """The colour bar of a resolution overlay in its own axes (:func:`slice_grid`), labelled
    in Å, low (best) resolution at the bottom (used by :func:`slices_png` and by the Scipion
    viewers, so both read the same way)."""
    colorbar = figure.colorbar(image, cax=colorbar_axes)
    colorbar.set_label(RESOLUTION_AXIS_LABEL)
    return colorbar


def histogram_png(edges: np.ndarray, counts: np.ndarray, stats: dict, title: str = "DeepRes local resolution") -> bytes:
    """Bar chart of the histogram with the summary numbers in the title."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    draw_histogram(axes, edges, counts, stats)
    axes.set_xlabel(RESOLUTION_AXIS_LABEL)
    axes.set_ylabel("Voxels")
    axes.set_title(f"{title}\nmedian {stats['median']:.2f} Å, 20-80 % {stats['percentile_20']:.2f}-"
                   f"{stats['percentile_80']:.2f} Å, {stats['voxels']} voxels", fontsize=10)
    axes.legend()
    figure.tight_layout()
    return _render(figure)


def slices_png(volume: np.ndarray, resolution: np.ndarray, mask: np.ndarray, low: float, high: float,
               palette: str = DEFAULT_PALETTE, centre: tuple[int, int, int] | None = None) -> bytes:
    """Three orthogonal slices through ``centre`` (default: the box centre) of the map in grey,
    with the resolution of the masked voxels overlaid in colour and a colour bar in A."""
    from matplotlib.figure import Figure

    check_palette(palette)
    cz, cy, cx = centre if centre is not None else tuple(n // 2 for n in volume.shape)
    cuts = [("XY (z = %d)" % cz, np.s_[cz, :, :]), ("XZ (y = %d)" % cy, np.s_[:, cy, :]),
            ("YZ (x = %d)" % cx, np.s_[:, :, cx])]
    figure = Figure(figsize=(13, 4.6), layout="tight")
    panels, colorbar_axes = slice_grid(figure, 1, len(cuts))
    image = None
    for axes, (label, cut) in zip(panels, cuts):
        image = draw_slice(axes, volume[cut], resolution[cut], mask[cut], low, high, palette)
        axes.set_title(label)
        axes.set_xticks([])
        axes.set_yticks([])
    draw_colorbar(figure, image, colorbar_axes)
    return _render(figure)


def _relative(path: str | os.PathLike, directory: str | os.PathLike) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(directory))


def _placement_and_colours(geometry: MapGeometry, low: float, high: float,
                           palette: str) -> tuple[str, str, list[tuple[float, str]]]:
    """Shared by both scripts: the ``voxelSize ... origin ...`` options, the ``value,colour:...``
    colour map (Chimera and ChimeraX read the same syntax) and the colour stops."""
    x, y, z = geometry.first_voxel_xyz()
    placement = f"voxelSize {geometry.voxel_size:.6g} origin {x:.6g},{y:.6g},{z:.6g}"
    stops = palette_stops(palette, low, high)
    return placement, ":".join(f"{value:.3g},{colour}" for value, colour in stops), stops


def chimerax_script(map_file: str, resolution_file: str, geometry: MapGeometry, low: float, high: float,
                    level: float, palette: str = DEFAULT_PALETTE) -> str:
    """ChimeraX commands: the map's surface coloured by the resolution map, with a key.

    File names are relative to the script's folder (ChimeraX resolves them there).
    """
    placement, colours, stops = _placement_and_colours(geometry, low, high, palette)
    key = " ".join(f"{colour}:{value:.3g}" for value, colour in stops)
    return "\n".join([
        "# DeepRes local resolution, coloured on the map's surface (blue = high resolution)",
        f"open {json.dumps(map_file)} format mrc",
        f"volume #1 {placement} level {level:.6g} style surface",
        f"open {json.dumps(resolution_file)} format mrc",
        f"volume #2 {placement}",
        "volume #2 hide",
        f"color sample #1 map #2 palette {colours}",
        f"key {key} pos 0.05,0.06 size 0.5,0.04",
        "2dlabels text \"Local resolution (Å)\" xpos 0.05 ypos 0.11 size 16",
        "view",
        "",
    ])


def chimera_script(map_file: str, resolution_file: str, geometry: MapGeometry, low: float, high: float,
                   level: float, palette: str = DEFAULT_PALETTE) -> str:
    """UCSF Chimera commands (``scolor``) doing what :func:`chimerax_script` does."""
    placement, colours, stops = _placement_and_colours(geometry, low, high, palette)
    key = " ".join(f"\"{value:.3g}\" {colour}" for value, colour in stops)
    return "\n".join([
        "# DeepRes local resolution for UCSF Chimera (blue = high resolution)",
        f"open {map_file}",
        f"volume #0 {placement} level {level:.6g} style surface",
        f"open {resolution_file}",
        f"volume #1 {placement} hide",
        f"scolor #0 volume #1 cmap {colours}",
        f"colorkey 0.05,0.05 0.55,0.09 {key}",
        "",
    ])


def histogram_csv(edges: np.ndarray, counts: np.ndarray) -> str:
    """CSV with one row per bin: start and end (A) and the voxel count."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["resolution_from_A", "resolution_to_A", "voxels"])
    for start, end, count in zip(edges[:-1], edges[1:], counts):
        writer.writerow([f"{start:.2f}", f"{end:.2f}", int(count)])
    return buffer.getvalue()




def report_contents(out_dir: str | os.PathLike, map_path: str | os.PathLike, volume: np.ndarray,
                    resolution_path: str | os.PathLike, resolution: np.ndarray, geometry: MapGeometry,
                    mask: np.ndarray, colour_range: tuple[float, float], palette: str = DEFAULT_PALETTE,
                    summary_extra: dict[str, Any] | None = None,
                    other_files: dict[str, str] | None = None) -> tuple[ReportSummary, dict[str, bytes]]:
    """The summary and every report file's bytes, keyed by file name (the caller writes them).

    Args:
        out_dir: folder the files will be written to (script paths are relative to it).
        map_path, volume: the density map (file and data).
        resolution_path, resolution: the resolution map (file and data), same grid.
        mask: voxels with a resolution estimate.
        colour_range: (low, high) A of the colour scale.
        summary_extra: more fields for ``summary.json``.
        other_files: files the caller writes with the report (role -> name), listed in the
            summary's ``files`` too (the automatic mask).
    """
    check_palette(palette)
    low, high = colour_range
    if not low < high:
        raise ParameterError(f"colour range must be increasing, got {low:g}-{high:g} A")
    values = resolution_values(resolution, mask)
    stats = summary_statistics(values)
    edges, counts = histogram(values)
    level = surface_level(volume, mask)
    map_name, resolution_name = _relative(map_path, out_dir), _relative(resolution_path, out_dir)
    summary = ReportSummary(**stats, colour_range=(low, high), palette=palette, fields={
        **(summary_extra or {}),
        "files": {"map": map_name, "resolution": resolution_name, **REPORT_FILES, **(other_files or {})}})
    return summary, {
        REPORT_FILES["summary"]: summary.to_json(),
        REPORT_FILES["histogram_csv"]: histogram_csv(edges, counts).encode(),
        REPORT_FILES["histogram_png"]: histogram_png(edges, counts, stats),
        REPORT_FILES["slices"]: slices_png(volume, resolution, mask, low, high, palette),
        REPORT_FILES["chimerax"]: chimerax_script(map_name, resolution_name, geometry, low, high, level,
                                                  palette).encode(),
        REPORT_FILES["chimera"]: chimera_script(map_name, resolution_name, geometry, low, high, level,
                                                palette).encode(),
    }
