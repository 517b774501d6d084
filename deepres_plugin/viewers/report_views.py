"""The one implementation of every DeepRes view: histogram, coloured slices along any axis,
global FSC, ChimeraX, PNGs and messages, for any report folder the core wrote (names from
:mod:`deepres_plugin.core.outputs`). The figures are drawn by the core's report code, so
the viewers, the command line and the files show the same thing; the colour scale comes
from the report's summary (the network's range for DeepRes), with Å on the bar, which runs
as on ``slices.png``; ChimeraX places the map where Scipion does (the output's origin), as
the protocol's own ``chimerax.cxc`` does.
"""
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pwem.viewers.viewer_chimera import ChimeraView
from pwem.viewers.viewer_localres import chimeraInstalled
from pwem.wizards.wizard import COLORMAP_ATTR, HIGHEST_ATTR, LOWEST_ATTR, ColorScaleWizardBase
from pyworkflow.viewer import View

from ..core.fsc import draw_fsc, read_fsc_csv
from ..core.mrc import MapGeometry, read_map
from ..core.outputs import FSC_FILES, RESOLUTION_FILE, ReportSummary
from ..core.report import (
    DEFAULT_PALETTE,
    RESOLUTION_AXIS_LABEL,
    chimerax_script,
    draw_colorbar,
    draw_histogram,
    draw_slice,
    histogram,
    resolution_values,
    slice_grid,
    summary_statistics,
    surface_level,
)
from ..protocols.files import VIEWER_SCRIPT

SLICE_AXES = ["z (XY slices)", "y (XZ slices)", "x (YZ slices)"]
AXIS_Z, AXIS_Y, AXIS_X = 0, 1, 2
CENTRAL_SLICE = -1
#: Rows a table window shows at once (it scrolls through the others).
TABLE_ROWS_SHOWN = 25


class TableWindowView(View):
    """A table in Scipion's table window (pwem's ``TableView``: headers, rows of cells,
    striped, with its "Save Data" button). The window is made when the view is shown, so the
    view and its cells can be made and checked without a display."""

    def __init__(self, headers, rows, title, message=None):
        View.__init__(self)
        self.headers, self.rows, self.title, self.message = list(headers), list(rows), title, message

    def show(self):
        from pwem.viewers.views import TableView

        TableView(self.headers, self.rows, mesg=self.message, title=self.title, height=TABLE_ROWS_SHOWN)


class ReportViews:
    """Views of one report folder (``resolution.mrc``, its map, ``summary.json``, ``fsc.csv``),
    mixed into the DeepRes viewers (``ProtocolViewer`` subclasses)."""

    def _defineSliceParams(self, form, label, colourRange=None):
        """Slice axis and number; with ``colourRange`` (low, high) also the colour-scale
        line of pwem's wizard, starting at that range."""
        group = form.addGroup("Colored slices")
        group.addParam("sliceAxis", params.EnumParam, choices=SLICE_AXES, default=AXIS_Z,
                       display=params.EnumParam.DISPLAY_HLIST, label="Slices along")
        group.addParam("sliceNumber", params.IntParam, default=CENTRAL_SLICE,
                       label="Slice number", help="Index along the chosen axis, from 0; -1 shows the central slice.")
        group.addParam("doShowSlices", params.LabelParam, label=label,
                       help="The map in grey with the local resolution of the masked voxels in colour.")
        if colourRange is not None:
            low, high = colourRange
            ColorScaleWizardBase.defineColorScaleParams(group, defaultLowest=round(low, 2), defaultHighest=round(high, 2),
                                                        defaultIntervals=11, defaultColorMap=DEFAULT_PALETTE)

    # -- data -----------------------------------------------------------------------------
    @staticmethod
    def _readSummary(folder):
        return ReportSummary.read(folder)

    @classmethod
    def _summaryColourRange(cls, folder, fallback):
        """The report's colour range (A), or ``fallback`` when the folder has no summary yet."""
        try:
            return cls._readSummary(folder).colour_range
        except (OSError, KeyError, ValueError):
            return fallback

    def _mapFile(self, folder):
        """The density map of a report folder (its summary names it relative to the folder)."""
        return self._readSummary(folder).map_path(folder)

    @staticmethod
    def _geometry(output):
        """Voxel size and origin of the output object (never from a file header)."""
        from ..protocols.base import scipionOrigin

        return MapGeometry(voxel_size=output.getSamplingRate(), origin=scipionOrigin(output))

    def _colourScale(self, folder):
        """(low, high, palette): the form's scale when it has one, else the report's."""
        summary = self._readSummary(folder)
        if hasattr(self, LOWEST_ATTR):
            low, high = getattr(self, LOWEST_ATTR).get(), getattr(self, HIGHEST_ATTR).get()
            return min(low, high), max(low, high), getattr(self, COLORMAP_ATTR).get()
        low, high = summary.colour_range
        return low, high, summary.palette

    def _message(self, text, title):
        """A message window with the form as its Tk parent (without one Tk cannot show it)."""
        return self.infoMessage(text, title)

    def _sliceChoice(self, shape):
        """(axis, index, cut) of the form's slice in a map of ``shape`` (z, y, x); ``cut`` is
        the index tuple, or None when the slice lies outside the map."""
        axis = self.sliceAxis.get()
        index = self.sliceNumber.get()
        index = shape[axis] // 2 if index == CENTRAL_SLICE else index
        if not 0 <= index < shape[axis]:
            return axis, index, None
        cut = [slice(None)] * 3
        cut[axis] = index
        return axis, index, tuple(cut)

    def _outsideMessage(self, shape, axis, index, title):
        return self._message(f"Slice {index} is outside the map: choose 0 to {shape[axis] - 1} (or -1).", title)

    @staticmethod
    def _slicePanels(plotter, titles):
        """One row of panels with these titles in a plotter's figure, and the colour bar's own
        axes beside them (the core's :func:`slice_grid`: the plotter lays its figure out before
        showing it, which spread the panels over a bar that took its room from them)."""
        panels, colorbarAxes = slice_grid(plotter.figure, 1, len(titles))
        for axes, title in zip(panels, titles):
            axes.set_title(title, fontsize=plotter.plot_title_fontsize)
        return panels, colorbarAxes

    # -- views ----------------------------------------------------------------------------
    def _histogramViews(self, folder, title):
        resolution, _ = read_map(os.path.join(folder, RESOLUTION_FILE))
        values = resolution_values(resolution)
        stats = summary_statistics(values)
        edges, counts = histogram(values)
        plotter = EmPlotter(x=1, y=1, mainTitle=title, windowTitle=f"{title}: histogram")
        axes = plotter.createSubPlot(f"median {stats['median']:.2f} Å, 20-80 %: {stats['percentile_20']:.2f}-"
                                     f"{stats['percentile_80']:.2f} Å", RESOLUTION_AXIS_LABEL, "Voxels")
        draw_histogram(axes, edges, counts, stats)
        return [plotter]

    def _sliceViews(self, folder, title):
        resolution, _ = read_map(os.path.join(folder, RESOLUTION_FILE))
        volume, _ = read_map(self._mapFile(folder))
        summary = self._readSummary(folder)
        axis, index, cut = self._sliceChoice(resolution.shape)
        if cut is None:
            return [self._outsideMessage(resolution.shape, axis, index, title)]
        low, high, palette = self._colourScale(folder)
        plotter = EmPlotter(x=1, y=1, mainTitle=f"{title}: median {summary.median:.2f} Å, 20-80 %: "
                                                f"{summary.percentile_20:.2f}-{summary.percentile_80:.2f} Å",
                            windowTitle=f"{title}: slices")
        (axes,), colorbarAxes = self._slicePanels(plotter, [f"{SLICE_AXES[axis].split()[1][1:]} slice {index}"])
        image = draw_slice(axes, volume[cut], resolution[cut], resolution[cut] > 0, low, high, palette)
        draw_colorbar(plotter.figure, image, colorbarAxes)
        return [plotter]

    def _fscViews(self, folder, threshold, resolution):
        """The global FSC curve (``fsc.csv``) with the threshold and the resolution marked."""
        frequency, fsc = read_fsc_csv(os.path.join(folder, FSC_FILES[0]))
        plotter = EmPlotter(x=1, y=1, mainTitle="Global FSC of the half maps", windowTitle="FSC")
        axes = plotter.createSubPlot(f"{resolution:.2f} Å at {threshold:g}", "Spatial frequency (1/Å)", "FSC")
        draw_fsc(axes, frequency, fsc, threshold, resolution)
        return [plotter]

    def _chimeraViews(self, folder, output, title):
        """A ChimeraX script (``deepres_viewer.cxc`` in the folder) colouring the map's surface
        by the resolution map with the viewer's colour scale, placed by the output object."""
        resolution, _ = read_map(os.path.join(folder, RESOLUTION_FILE))
        mapFile = self._mapFile(folder)
        volume, _ = read_map(mapFile)
        low, high, palette = self._colourScale(folder)
        script = os.path.join(folder, VIEWER_SCRIPT)
        text = chimerax_script(os.path.relpath(mapFile, folder), RESOLUTION_FILE, self._geometry(output), low, high,
                               surface_level(volume, resolution > 0), palette)
        with open(script, "w") as handle:
            handle.write(text)
        return self._scriptViews(script, title)

    @staticmethod
    def _imageViews(path, title):
        """A PNG written by the core, shown in a plot window."""
        import matplotlib.image

        plotter = EmPlotter(x=1, y=1, mainTitle="", windowTitle=title, figsize=(10, 6))
        axes = plotter.createSubPlot("", "", "")
        axes.imshow(matplotlib.image.imread(path))
        axes.set_axis_off()
        return [plotter]

    def _beforeAfterViews(self, before, after, resolution, region, low, high, palette, title):
        """One slice (the form's axis and number) of a map before and after a filter, each on
        its own grey scale, and the local resolution over the filtered map, as the core's
        ``localfilter_slices.png`` draws its central slices."""
        from ..core.localfilter import GREY_PERCENTILES

        axis, index, cut = self._sliceChoice(before.shape)
        if cut is None:
            return [self._outsideMessage(before.shape, axis, index, title)]
        plane = f"{SLICE_AXES[axis].split()[1][1:]} slice {index}"
        plotter = EmPlotter(x=1, y=3, mainTitle=title, windowTitle=f"{title}: slices", figsize=(15, 5.5))
        names = ("before", "after", "local resolution")
        panels, colorbarAxes = self._slicePanels(plotter, [f"{plane}, {name}" for name in names])
        for axes, data in zip(panels, (before, after)):
            vmin, vmax = np.percentile(data[cut], GREY_PERCENTILES)
            axes.imshow(data[cut], cmap="gray", origin="lower", interpolation="nearest", vmin=vmin, vmax=vmax)
        image = draw_slice(panels[-1], after[cut], resolution[cut], region[cut], low, high, palette)
        draw_colorbar(plotter.figure, image, colorbarAxes)
        return [plotter]

    def _scriptViews(self, script, title):
        """A ChimeraX script written by the core, opened in ChimeraX when it is installed;
        otherwise a message window that says where the script is."""
        if chimeraInstalled():
            return [ChimeraView(script)]
        return [self._message(f"ChimeraX is not installed in Scipion. Open this script in ChimeraX:\n"
                              f"{self._absolutePath(script)}", f"{title}: ChimeraX script")]

    def _absolutePath(self, path):
        """``path`` made absolute: Scipion's run paths are relative to the project folder,
        which is not where a user's shell or ChimeraX starts."""
        project = self.getProject()
        if os.path.isabs(path) or project is None:
            return os.path.abspath(path)
        return os.path.join(project.getPath(), path)
