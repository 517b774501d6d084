"""Viewer of DeepRes local resolution: histogram, coloured slices, ChimeraX.

Every handler returns Scipion views; the figures are drawn by the core's report code
(:mod:`deepres_plugin.core.report`), so the viewer, the command line and the files in the
protocol's folder show the same thing. Voxel size and origin come from the output object.
"""
import os

import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pwem.viewers.viewer_chimera import ChimeraView
from pwem.viewers.viewer_localres import LocalResolutionViewer, chimeraInstalled
from pwem.wizards.wizard import COLORMAP_ATTR, HIGHEST_ATTR, LOWEST_ATTR, ColorScaleWizardBase
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, MessageView

from ..core.mrc import MapGeometry, read_map
from ..core.report import (chimerax_script, draw_histogram, draw_slice, histogram, resolution_values,
                           summary_statistics, surface_level)
from ..protocols import ProtDeepResLocalResolution
from ..protocols.protocol_local_resolution import INPUT_MAP

SLICE_AXES = ["z (XY slices)", "y (XZ slices)", "x (YZ slices)"]
AXIS_Z, AXIS_Y, AXIS_X = 0, 1, 2
CENTRAL_SLICE = -1
VIEWER_SCRIPT = "deepres_viewer.cxc"


class DeepResViewer(LocalResolutionViewer):
    """Histogram, coloured slices and ChimeraX view of a DeepRes local-resolution map."""

    _label = "viewer deepres"
    _targets = [ProtDeepResLocalResolution]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("doShowHistogram", params.LabelParam, label="Show resolution histogram",
                      help="Voxels per 0.25 A bin, with the median and the 20th/80th percentiles.")
        group = form.addGroup("Colored slices")
        group.addParam("sliceAxis", params.EnumParam, choices=SLICE_AXES, default=AXIS_Z,
                       display=params.EnumParam.DISPLAY_HLIST, label="Slices along")
        group.addParam("sliceNumber", params.IntParam, default=CENTRAL_SLICE,
                       label="Slice number", help="Index along the chosen axis, from 0; -1 shows the central slice.")
        group.addParam("doShowSlices", params.LabelParam, label="Show colored slice",
                       help="The map in grey with the local resolution of the masked voxels in colour.")
        ColorScaleWizardBase.defineColorScaleParams(group, defaultLowest=2.5, defaultHighest=13.0,
                                                    defaultIntervals=11, defaultColorMap="jet")
        form.addParam("doShowChimera", params.LabelParam, label="Show in ChimeraX",
                      help="The map's surface coloured by local resolution, with a colour key.")

    def _getVisualizeDict(self):
        return {"doShowHistogram": self._showHistogram, "doShowSlices": self._showSlices,
                "doShowChimera": self._showChimera}

    # -- data -----------------------------------------------------------------------------
    def _resolution(self):
        output = getattr(self.protocol, "resolution_Volume")
        resolution, _ = read_map(output.getFileName())
        return resolution, output

    def _colour_range(self):
        low, high = getattr(self, LOWEST_ATTR).get(), getattr(self, HIGHEST_ATTR).get()
        return (low, high) if low < high else (high, low)

    def _geometry(self, output):
        """Voxel size and origin of the output object (never from a file header)."""
        x, y, z = output.getShiftsFromOrigin()
        return MapGeometry(voxel_size=output.getSamplingRate(), origin=(-x, -y, -z))

    # -- handlers ---------------------------------------------------------------------------
    def _showHistogram(self, param=None):
        resolution, _ = self._resolution()
        values = resolution_values(resolution)
        stats = summary_statistics(values)
        edges, counts = histogram(values)
        plotter = EmPlotter(x=1, y=1, mainTitle="DeepRes local resolution", windowTitle="DeepRes histogram")
        axes = plotter.createSubPlot(f"median {stats['median']:.2f} A, 20-80 %: {stats['percentile_20']:.2f}-"
                                     f"{stats['percentile_80']:.2f} A", "Resolution (A)", "Voxels")
        draw_histogram(axes, edges, counts, stats)
        return [plotter]

    def _showSlices(self, param=None):
        resolution, output = self._resolution()
        volume, _ = read_map(self.protocol._getExtraPath(INPUT_MAP))
        axis = self.sliceAxis.get()
        size = resolution.shape[axis]
        index = self.sliceNumber.get()
        index = size // 2 if index == CENTRAL_SLICE else index
        if not 0 <= index < size:
            return [MessageView(f"Slice {index} is outside the map: choose 0 to {size - 1} (or -1).",
                                title="DeepRes viewer")]
        cut = [slice(None)] * 3
        cut[axis] = index
        cut = tuple(cut)
        low, high = self._colour_range()
        stats = summary_statistics(resolution_values(resolution))
        plotter = EmPlotter(x=1, y=1, mainTitle=f"DeepRes local resolution: median {stats['median']:.2f} A, "
                                                f"20-80 %: {stats['percentile_20']:.2f}-{stats['percentile_80']:.2f} A",
                            windowTitle="DeepRes slices")
        axes = plotter.createSubPlot(f"{SLICE_AXES[axis].split()[1][1:]} slice {index}", "", "")
        image = draw_slice(axes, volume[cut], resolution[cut], resolution[cut] > 0, low, high,
                           getattr(self, COLORMAP_ATTR).get())
        plotter.getColorBar(image)
        return [plotter]

    def _showChimera(self, param=None):
        resolution, output = self._resolution()
        volume, _ = read_map(self.protocol._getExtraPath(INPUT_MAP))
        folder = os.path.dirname(output.getFileName())
        script = os.path.join(folder, VIEWER_SCRIPT)
        low, high = self._colour_range()
        level = surface_level(volume, resolution > 0)
        text = chimerax_script(os.path.relpath(self.protocol._getExtraPath(INPUT_MAP), folder),
                               os.path.basename(output.getFileName()), self._geometry(output), low, high, level,
                               getattr(self, COLORMAP_ATTR).get())
        with open(script, "w") as handle:
            handle.write(text)
        if chimeraInstalled():
            return [ChimeraView(script)]
        return [MessageView(f"ChimeraX is not installed in Scipion. Open this script in ChimeraX:\n{script}",
                            title="DeepRes: ChimeraX script")]
