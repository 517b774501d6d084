"""Viewer of the per-residue resolution: the plot per chain along the sequence, the table
(in Scipion's table window, units in its headers), and ChimeraX with the core's script (the
model coloured by the ``deepres_resolution`` residue attribute, with the key of the map's
scripts).

The views come from :class:`~.report_views.ReportViews` on the files the core wrote
(:data:`~deepres_plugin.core.outputs.RESIDUE_FILES`).
"""
import pyworkflow.protocol.params as params
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from ..core.outputs import RESIDUE_FILES
from ..core.residues import NO_ESTIMATE_CELL, residue_table
from ..protocols import ProtDeepResModelResolution
from .report_views import ReportViews, TableWindowView


class DeepResModelResolutionViewer(ReportViews, ProtocolViewer):
    """Per-chain plot, residue table and ChimeraX view of a model's per-residue resolution."""

    _label = "viewer deepres per-residue resolution"
    _targets = [ProtDeepResModelResolution]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("doShowPlot", params.LabelParam, label="Show per-chain plot",
                      help="Per chain, along the sequence of its polymer residues: each residue's median local "
                           "resolution (coloured on the map's scale) and its 20th-80th percentile band.")
        form.addParam("doShowTable", params.LabelParam, label="Show residue table",
                      help="One row per residue: chain, number, insertion code, name, atoms sampled and not, "
                           "median and 20th/80th percentiles (Å).")
        form.addParam("doShowChimera", params.LabelParam, label="Show in ChimeraX",
                      help="The model as a cartoon coloured by each residue's local resolution (grey: no "
                           "estimate), with the map as a mesh when there is one.")

    def _getVisualizeDict(self):
        return {"doShowPlot": self._showPlot, "doShowTable": self._showTable, "doShowChimera": self._showChimera}

    def _file(self, role):
        return self.protocol.getOutputFile(RESIDUE_FILES[role])

    def _showPlot(self, param=None):
        return self._imageViews(self._file("plot"), "DeepRes per-residue resolution")

    def _showTable(self, param=None):
        headers, rows = residue_table(self._file("csv"))
        message = (f"One row per residue: the local resolution at its atoms (median, 20th and 80th percentiles); "
                   f"{NO_ESTIMATE_CELL}: no estimate. The table: {self._absolutePath(self._file('csv'))}")
        return [TableWindowView(headers, rows, "DeepRes per-residue resolution", message)]

    def _showChimera(self, param=None):
        return self._scriptViews(self._file("chimerax"), "DeepRes per-residue resolution")
