"""Viewer of the local filter: a slice before and after (any axis), the core's figure of the
central slices, and ChimeraX with the core's script.

The views come from :class:`~.report_views.ReportViews`; the files are those the protocol
gave the core (its converted inputs, or the resolution map's run folder) and those the core
wrote (:data:`~deepres_plugin.core.outputs.LOCALFILTER_FILES`); the colour scale is the
run's (that of the resolution map's report when it has one).
"""
import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from ..core.masks import read_mask
from ..core.mrc import read_map
from ..core.outputs import LOCALFILTER_FILES
from ..protocols import ProtDeepResLocalFilter
from .report_views import ReportViews


class DeepResLocalFilterViewer(ReportViews, ProtocolViewer):
    """Slices before and after the local filter, coloured by local resolution, and ChimeraX."""

    _label = "viewer deepres local filter"
    _targets = [ProtDeepResLocalFilter]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        self._defineSliceParams(form, "Show slice before and after")
        form.addParam("doShowFigure", params.LabelParam, label="Show central slices (all axes)",
                      help="The run's figure: three orthogonal central slices before (top) and after (middle) "
                           "the filter, and the local resolution over the filtered map (bottom).")
        form.addParam("doShowChimera", params.LabelParam, label="Show in ChimeraX",
                      help="The filtered map's surface coloured by local resolution (#1), the original map as a "
                           "hidden mesh at the same level (#3).")

    def _getVisualizeDict(self):
        return {"doShowSlices": self._showSlices, "doShowFigure": self._showFigure,
                "doShowChimera": self._showChimera}

    def _file(self, role):
        return self.protocol.getOutputFile(LOCALFILTER_FILES[role])

    def _showSlices(self, param=None):
        summary = self.protocol.getFilterSummary()
        before, geometry = read_map(self.protocol.getMapPath())
        after, _ = read_map(self._file("map"))
        resolution, _ = read_map(self.protocol.getResolutionPath())
        region = resolution > 0
        if self.protocol.getMaskPath() is not None:
            region &= read_mask(self.protocol.getMaskPath(), before.shape, geometry)
        low, high = summary.colour_range
        return self._beforeAfterViews(before, after, resolution, region, low, high, summary.palette,
                                      "DeepRes local filter")

    def _showFigure(self, param=None):
        return self._imageViews(self._file("slices"), "DeepRes local filter: central slices")

    def _showChimera(self, param=None):
        return self._scriptViews(self._file("chimerax"), "DeepRes local filter")
