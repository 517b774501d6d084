"""Viewers of the half-map protocols: local FSC and B-factor sweep.

As :class:`~.viewer_local_resolution.DeepResViewer`, every handler returns Scipion views and
the figures are drawn by the core's report code (:func:`~deepres_plugin.core.report.draw_histogram`,
:func:`~deepres_plugin.core.report.draw_slice`) from the files of the report folders the
core wrote (``resolution.mrc``, ``summary.json``, ``fsc.csv``, ...). Voxel size and origin
of the ChimeraX scripts come from the output objects, never from a file header.
"""
import json
import os

import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pwem.viewers.viewer_chimera import ChimeraView
from pwem.viewers.viewer_localres import chimeraInstalled
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, MessageView, ProtocolViewer, TextView

from ..core.fsc import draw_fsc, read_fsc_csv
from ..core.mrc import MapGeometry, read_map
from ..core.report import (chimerax_script, draw_histogram, draw_slice, histogram, resolution_values,
                           summary_statistics, surface_level)
from ..protocols import ProtDeepResBfactorSweep, ProtDeepResLocalFsc
from .viewer_local_resolution import AXIS_Z, CENTRAL_SLICE, SLICE_AXES, VIEWER_SCRIPT


class _ReportViews:
    """Views of one report folder of the core (``resolution.mrc``, its map, ``summary.json``,
    ``fsc.csv``), shared by the viewers below."""

    def _defineSliceParams(self, form, label):
        group = form.addGroup("Colored slices")
        group.addParam("sliceAxis", params.EnumParam, choices=SLICE_AXES, default=AXIS_Z,
                       display=params.EnumParam.DISPLAY_HLIST, label="Slices along")
        group.addParam("sliceNumber", params.IntParam, default=CENTRAL_SLICE,
                       label="Slice number", help="Index along the chosen axis, from 0; -1 shows the central slice.")
        group.addParam("doShowSlices", params.LabelParam, label=label,
                       help="The map in grey with the local resolution of the masked voxels in colour "
                            "(the report's colour scale).")

    # -- data -----------------------------------------------------------------------------
    @staticmethod
    def _readSummary(folder):
        with open(os.path.join(folder, "summary.json")) as handle:
            return json.load(handle)

    def _mapFile(self, folder):
        """The density map of a report folder (its summary names it relative to the folder)."""
        return os.path.normpath(os.path.join(folder, self._readSummary(folder)["files"]["map"]))

    @staticmethod
    def _geometry(output):
        """Voxel size and origin of the output object (never from a file header)."""
        x, y, z = output.getShiftsFromOrigin()
        return MapGeometry(voxel_size=output.getSamplingRate(), origin=(-x, -y, -z))

    # -- views ----------------------------------------------------------------------------
    def _histogramViews(self, folder, title):
        resolution, _ = read_map(os.path.join(folder, "resolution.mrc"))
        values = resolution_values(resolution)
        stats = summary_statistics(values)
        edges, counts = histogram(values)
        plotter = EmPlotter(x=1, y=1, mainTitle=title, windowTitle=f"{title}: histogram")
        axes = plotter.createSubPlot(f"median {stats['median']:.2f} A, 20-80 %: {stats['percentile_20']:.2f}-"
                                     f"{stats['percentile_80']:.2f} A", "Resolution (A)", "Voxels")
        draw_histogram(axes, edges, counts, stats)
        return [plotter]

    def _sliceViews(self, folder, title):
        resolution, _ = read_map(os.path.join(folder, "resolution.mrc"))
        volume, _ = read_map(self._mapFile(folder))
        summary = self._readSummary(folder)
        axis = self.sliceAxis.get()
        size = resolution.shape[axis]
        index = self.sliceNumber.get()
        index = size // 2 if index == CENTRAL_SLICE else index
        if not 0 <= index < size:
            return [MessageView(f"Slice {index} is outside the map: choose 0 to {size - 1} (or -1).",
                                title=title)]
        cut = [slice(None)] * 3
        cut[axis] = index
        cut = tuple(cut)
        low, high = summary["colour_range"]
        plotter = EmPlotter(x=1, y=1, mainTitle=f"{title}: median {summary['median']:.2f} A, 20-80 %: "
                                                f"{summary['percentile_20']:.2f}-{summary['percentile_80']:.2f} A",
                            windowTitle=f"{title}: slices")
        axes = plotter.createSubPlot(f"{SLICE_AXES[axis].split()[1][1:]} slice {index}", "", "")
        image = draw_slice(axes, volume[cut], resolution[cut], resolution[cut] > 0, low, high, summary["palette"])
        plotter.getColorBar(image)
        return [plotter]

    def _fscViews(self, folder, threshold, resolution):
        """The global FSC curve (``fsc.csv``) with the threshold and the resolution marked."""
        frequency, fsc = read_fsc_csv(os.path.join(folder, "fsc.csv"))
        plotter = EmPlotter(x=1, y=1, mainTitle="Global FSC of the half maps", windowTitle="FSC")
        axes = plotter.createSubPlot(f"{resolution:.2f} A at {threshold:g}", "Spatial frequency (1/A)", "FSC")
        draw_fsc(axes, frequency, fsc, threshold, resolution)
        return [plotter]

    def _chimeraViews(self, folder, output, title):
        """A ChimeraX script (``deepres_viewer.cxc`` in the folder) colouring the map's surface
        by the resolution map with the report's colour scale."""
        resolution, _ = read_map(os.path.join(folder, "resolution.mrc"))
        mapFile = self._mapFile(folder)
        volume, _ = read_map(mapFile)
        summary = self._readSummary(folder)
        low, high = summary["colour_range"]
        script = os.path.join(folder, VIEWER_SCRIPT)
        text = chimerax_script(os.path.relpath(mapFile, folder), "resolution.mrc", self._geometry(output), low, high,
                               surface_level(volume, resolution > 0), summary["palette"])
        with open(script, "w") as handle:
            handle.write(text)
        if chimeraInstalled():
            return [ChimeraView(script)]
        return [MessageView(f"ChimeraX is not installed in Scipion. Open this script in ChimeraX:\n{script}",
                            title=f"{title}: ChimeraX script")]

    @staticmethod
    def _imageViews(path, title):
        """A PNG written by the core, shown in a plot window."""
        import matplotlib.image

        plotter = EmPlotter(x=1, y=1, mainTitle="", windowTitle=title, figsize=(10, 6))
        axes = plotter.createSubPlot("", "", "")
        axes.imshow(matplotlib.image.imread(path))
        axes.set_axis_off()
        return [plotter]


class DeepResLocalFscViewer(_ReportViews, ProtocolViewer):
    """Histogram, coloured slices, global FSC curve and ChimeraX view of a local FSC map."""

    _label = "viewer deepres local FSC"
    _targets = [ProtDeepResLocalFsc]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("doShowHistogram", params.LabelParam, label="Show resolution histogram",
                      help="Voxels per 0.25 A bin, with the median.")
        self._defineSliceParams(form, "Show colored slice")
        form.addParam("doShowFsc", params.LabelParam, label="Show global FSC curve",
                      help="FSC of the half maps inside the (softened) mask, with the threshold.")
        form.addParam("doShowChimera", params.LabelParam, label="Show in ChimeraX",
                      help="The surface of the halves' average coloured by local FSC resolution.")

    def _getVisualizeDict(self):
        return {"doShowHistogram": self._showHistogram, "doShowSlices": self._showSlices,
                "doShowFsc": self._showFsc, "doShowChimera": self._showChimera}

    def _folder(self):
        return os.path.dirname(self.protocol.resolution_Volume.getFileName())

    def _showHistogram(self, param=None):
        return self._histogramViews(self._folder(), "Local FSC resolution")

    def _showSlices(self, param=None):
        return self._sliceViews(self._folder(), "Local FSC resolution")

    def _showFsc(self, param=None):
        summary = self._readSummary(self._folder())
        return self._fscViews(self._folder(), summary["threshold"], summary["global_fsc_resolution"])

    def _showChimera(self, param=None):
        return self._chimeraViews(self._folder(), self.protocol.resolution_Volume, "Local FSC")


class DeepResBfactorSweepViewer(_ReportViews, ProtocolViewer):
    """The B-factor sweep (plot and table), the local FSC and DeepRes histograms, DeepRes
    slices and ChimeraX view of the recommended map, and the global FSC curve."""

    _label = "viewer deepres B-factor sweep"
    _targets = [ProtDeepResBfactorSweep]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("doShowSweep", params.LabelParam, label="Show B-factor sweep plot",
                      help="DeepRes resolution distributions per B-factor, their 20th percentiles, the local "
                           "FSC 20th percentile and the recommended B-factor (Fig. 5 of the DeepRes paper).")
        form.addParam("doShowTable", params.LabelParam, label="Show sweep table",
                      help="One row per B-factor: DeepRes median and percentiles, the local FSC 20th "
                           "percentile, the difference and the verdict.")
        form.addParam("doShowLocalFscHistogram", params.LabelParam, label="Show local FSC histogram",
                      help="Local FSC resolution of the half maps (independent of the B-factor).")
        form.addParam("doShowDeepResHistogram", params.LabelParam, label="Show DeepRes histogram",
                      help="DeepRes resolution of the map sharpened with the recommended B-factor.")
        self._defineSliceParams(form, "Show DeepRes colored slice")
        form.addParam("doShowFsc", params.LabelParam, label="Show global FSC curve",
                      help="FSC of the half maps; the sharpened maps are low-passed at its resolution.")
        form.addParam("doShowChimera", params.LabelParam, label="Show DeepRes in ChimeraX",
                      help="The recommended sharpened map's surface coloured by its DeepRes resolution.")

    def _getVisualizeDict(self):
        return {"doShowSweep": self._showSweep, "doShowTable": self._showTable,
                "doShowLocalFscHistogram": self._showLocalFscHistogram,
                "doShowDeepResHistogram": self._showDeepResHistogram, "doShowSlices": self._showSlices,
                "doShowFsc": self._showFsc, "doShowChimera": self._showChimera}

    def _file(self, *names):
        return self.protocol.getOutputFile(*names)

    def _showSweep(self, param=None):
        return self._imageViews(self._file("bfactor_sweep.png"), "DeepRes B-factor sweep")

    def _showTable(self, param=None):
        return [TextView([self._file("bfactor_sweep.csv")], title="DeepRes B-factor sweep")]

    def _showLocalFscHistogram(self, param=None):
        return self._histogramViews(self._file("localfsc"), "Local FSC resolution")

    def _showDeepResHistogram(self, param=None):
        return self._histogramViews(self._file("deepres"), "DeepRes resolution of the recommended map")

    def _showSlices(self, param=None):
        return self._sliceViews(self._file("deepres"), "DeepRes, recommended map")

    def _showFsc(self, param=None):
        summary = self.protocol.getSweepSummary()
        return self._fscViews(self._file(), summary["threshold"], summary["global_fsc_resolution"])

    def _showChimera(self, param=None):
        return self._chimeraViews(self._file("deepres"), self.protocol.outputVolume, "DeepRes, recommended map")
