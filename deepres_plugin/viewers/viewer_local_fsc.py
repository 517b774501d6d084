"""Viewers of the half-map protocols: local FSC and B-factor sweep.

Every view comes from :class:`~.report_views.ReportViews`, on the report folders the core
wrote (the protocol's run folder, or the sweep's ``localfsc/`` and ``deepres/``).
"""
import os

import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer, TextView

from ..core.outputs import DEEPRES_DIR, LOCALFSC_DIR, SWEEP_FILES
from ..protocols import ProtDeepResBfactorSweep, ProtDeepResLocalFsc
from .report_views import ReportViews


class DeepResLocalFscViewer(ReportViews, ProtocolViewer):
    """Histogram, coloured slices, global FSC curve and ChimeraX view of a local FSC map."""

    _label = "viewer deepres local FSC"
    _targets = [ProtDeepResLocalFsc]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("doShowHistogram", params.LabelParam, label="Show resolution histogram",
                      help="Voxels per 0.25 Å bin, with the median.")
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
        return self._fscViews(self._folder(), summary.threshold, summary.global_fsc_resolution)

    def _showChimera(self, param=None):
        return self._chimeraViews(self._folder(), self.protocol.resolution_Volume, "Local FSC")


class DeepResBfactorSweepViewer(ReportViews, ProtocolViewer):
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
        return self._imageViews(self._file(SWEEP_FILES["plot"]), "DeepRes B-factor sweep")

    def _showTable(self, param=None):
        return [TextView([self._file(SWEEP_FILES["csv"])], title="DeepRes B-factor sweep")]

    def _showLocalFscHistogram(self, param=None):
        return self._histogramViews(self._file(LOCALFSC_DIR), "Local FSC resolution")

    def _showDeepResHistogram(self, param=None):
        return self._histogramViews(self._file(DEEPRES_DIR), "DeepRes resolution of the recommended map")

    def _showSlices(self, param=None):
        return self._sliceViews(self._file(DEEPRES_DIR), "DeepRes, recommended map")

    def _showFsc(self, param=None):
        summary = self.protocol.getSweepSummary()
        return self._fscViews(self._file(), summary.threshold, summary.global_fsc_resolution)

    def _showChimera(self, param=None):
        return self._chimeraViews(self._file(DEEPRES_DIR), self.protocol.outputVolume, "DeepRes, recommended map")
