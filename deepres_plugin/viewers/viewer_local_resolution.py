"""Viewer of DeepRes local resolution: histogram, coloured slices, ChimeraX.

Every view comes from :class:`~.report_views.ReportViews` on the protocol's run folder (for
a set of maps, the run folder of the map chosen in the form); the colour scale starts at the
report's range (the network's: 2.5-13 Å wide, 1.5-6 Å high) and can be changed with pwem's
colour-scale wizard.
"""
import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from ..core.ranges import first_range_name, get_range
from ..protocols import ProtDeepResLocalResolution
from .report_views import AXIS_X, AXIS_Y, AXIS_Z, CENTRAL_SLICE, SLICE_AXES, ReportViews  # noqa: F401


class DeepResViewer(ReportViews, ProtocolViewer):
    """Histogram, coloured slices and ChimeraX view of a DeepRes local-resolution map."""

    _label = "viewer deepres"
    _targets = [ProtDeepResLocalResolution]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        if self.protocol.isSetInput():
            form.addParam("volumeIndex", params.EnumParam, choices=self._volumeChoices(), default=0,
                          label="Map", help="The map of the set whose local resolution is shown.")
        form.addParam("doShowHistogram", params.LabelParam, label="Show resolution histogram",
                      help="Voxels per 0.25 Å bin, with the median.")
        self._defineSliceParams(form, "Show colored slice", self._defaultColourRange())
        form.addParam("doShowChimera", params.LabelParam, label="Show in ChimeraX",
                      help="The map's surface coloured by local resolution, with a colour key.")

    def _defaultColourRange(self):
        """The report's colour range; before the run, the chosen network's range."""
        resolutionRange = get_range(first_range_name(self.protocol.getUsedRangeName()))
        fallback = (resolutionRange.min_resolution, resolutionRange.max_resolution)
        return self._summaryColourRange(self._folder(), fallback)

    def _volumeIds(self):
        """The ids of the maps of the input set, in the order of the form's choices."""
        return [volume.getObjId() for volume in self.protocol.inputVolume.get().iterItems(orderBy="id")]

    def _volumeChoices(self):
        return [f"{volume.getObjId()}: {self.protocol.volumeName(volume)}"
                for volume in self.protocol.inputVolume.get().iterItems(orderBy="id")]

    def _volumeId(self):
        """The id of the map chosen in the form (the first before the form is shown)."""
        index = self.volumeIndex.get() if hasattr(self, "volumeIndex") else 0
        return self._volumeIds()[index]

    def _getVisualizeDict(self):
        return {"doShowHistogram": self._showHistogram, "doShowSlices": self._showSlices,
                "doShowChimera": self._showChimera}

    def _folder(self):
        if self.protocol.isSetInput():
            return self.protocol.getVolumeOutputFile(self._volumeId())
        return self.protocol.getOutputFile()

    def _output(self):
        """The resolution Volume shown (for a set, the chosen map's item of the output set)."""
        if self.protocol.isSetInput():
            return self.protocol.resolution_SetOfVolumes[self._volumeId()]
        return self.protocol.resolution_Volume

    def _showHistogram(self, param=None):
        return self._histogramViews(self._folder(), "DeepRes local resolution")

    def _showSlices(self, param=None):
        return self._sliceViews(self._folder(), "DeepRes local resolution")

    def _showChimera(self, param=None):
        return self._chimeraViews(self._folder(), self._output(), "DeepRes")
