"""What the protocols that use a local-resolution map share (local filter, per-residue
resolution): the resolution Volume and its density map, where the core reads them, and the
check that they lie on one grid.

The resolution map is a Volume pointer: the ``resolution_Volume`` of a DeepRes protocol
(local resolution, local FSC, B-factor sweep) or any imported local-resolution map in Å
(ResMap, MonoRes, ...; 0 = no estimate). When it comes from a DeepRes run folder (its
``summary.json`` names it), the file is read in place, so the figures and ChimeraX scripts
keep that run's colour scale, and the map may be left empty: the run's own map is used
(the map it analysed, the half maps' average or the sharpened map). Other resolution maps
are converted to MRC with Scipion's origin, as every input is.
"""
import os

from pyworkflow.protocol import params

from ..core.errors import DeepResError, MapFormatError
from ..core.mrc import read_map
from ..core.outputs import ReportSummary
from ..core.resolution_maps import check_density_map
from .base import ProtDeepResBase, gridErrors, samplingErrors, sourceFile
from .files import INPUT_MAP, INPUT_RESOLUTION

RESOLUTION_HELP = ("A local-resolution map in Å on the map's grid (0 = no estimate): the resolution_Volume of "
                   "'deepres - estimate local resolution', 'deepres - half-map local FSC' or 'deepres - B-factor "
                   "sweep', or an "
                   "imported one (ResMap, MonoRes, ...). The output of a DeepRes run is read in place: the figures "
                   "and ChimeraX scripts keep that run's colour scale.")
MAP_HELP = ("The density map the resolution map was computed for, on its grid (same dimensions, sampling rate and "
            "origin). Leave empty when the resolution map is the output of a DeepRes protocol: the map of that run "
            "is used (local resolution: its input map; local FSC: the half maps' average; B-factor sweep: the "
            "sharpened map).")




class ProtDeepResResolutionMapBase(ProtDeepResBase):
    """Base of the DeepRes protocols that use a local-resolution map (not offered to users)."""

    _label = None

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineResolutionParams(self, form):
        form.addParam("inputResolution", params.PointerParam, pointerClass="Volume", important=True,
                      label="Local resolution map", help=RESOLUTION_HELP)
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", allowsNull=True,
                      label="Map (empty: the DeepRes run's)", help=MAP_HELP)

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        """The resolution map (unless read in place) and the map as MRC files in the extra folder."""
        if self.getResolutionReport() is None:
            self._toMrc(self.inputResolution.get(), self._getExtraPath(INPUT_RESOLUTION))
        if self.inputVolume.hasValue():
            self._toMrc(self.inputVolume.get(), self._getExtraPath(INPUT_MAP))

    # --------------------------- UTILS functions -----------------------------------------
    def _projectFile(self, path):
        """``path`` made absolute (Scipion stores files relative to the project)."""
        project = self.getProject()
        if project is not None and not os.path.isabs(path):
            return os.path.join(project.getPath(), path)
        return os.path.abspath(path)

    def getResolutionSource(self):
        """The resolution Volume's file (absolute), or None when none is chosen."""
        resolution = self.inputResolution.get()
        return None if resolution is None else self._projectFile(sourceFile(resolution))

    def getResolutionReport(self):
        """The report of the DeepRes run folder that holds the resolution map
        (:class:`~deepres_plugin.core.outputs.ReportSummary`), or None for a map from elsewhere."""
        source = self.getResolutionSource()
        return None if source is None else ReportSummary.of_resolution_map(source)

    def getResolutionPath(self):
        """The resolution map the core reads: a run folder's file in place, else the converted copy."""
        if self.getResolutionReport() is not None:
            return self.getResolutionSource()
        return self._getExtraPath(INPUT_RESOLUTION)

    def getMapPath(self):
        """The density map the core reads: the converted input map, else the map of the
        resolution map's run folder, else None."""
        if self.inputVolume.hasValue():
            return self._getExtraPath(INPUT_MAP)
        report = self.getResolutionReport()
        return None if report is None else report.map_path(os.path.dirname(self.getResolutionSource()))

    def getReferenceVolume(self):
        """The Volume whose sampling rate and origin the outputs take (the map's, or the
        resolution map's: they share one grid)."""
        return self.inputVolume.get() if self.inputVolume.hasValue() else self.inputResolution.get()

    def getMapTag(self):
        """The map for the Methods: the chosen one, or that of the resolution map's run."""
        if self.inputVolume.hasValue():
            return self.getObjectTag("inputVolume")
        return f"analysed by the run of {self.getObjectTag('inputResolution')}"

    # --------------------------- INFO functions ------------------------------------------
    def _densityMapErrors(self):
        """An error when the chosen map is a local-resolution map (the core's
        :func:`~deepres_plugin.core.resolution_maps.check_density_map`); a file that cannot
        be read is left to the run, which names what is wrong with it."""
        try:
            volume, _ = read_map(self._projectFile(sourceFile(self.inputVolume.get())))
        except DeepResError:
            return []
        try:
            check_density_map(volume, f"The map {self.getObjectTag('inputVolume')}")
        except MapFormatError as exc:
            return [f"{exc}, or leave Map empty to use the map of the resolution map's DeepRes run."]
        return []

    def _validateResolutionMap(self, requireMap):
        """Errors of the resolution map and its map: missing, or not on one grid; without a
        chosen map (and ``requireMap``), a resolution map that is not a DeepRes run's output."""
        resolution = self.inputResolution.get()
        if resolution is None:
            return ["Choose a local resolution map."]
        if self.inputVolume.hasValue():
            return (samplingErrors(self.inputVolume.get()) or self._densityMapErrors()
                    or gridErrors(resolution, self.inputVolume.get(), "the local resolution map"))
        mapPath = self.getMapPath()
        if mapPath is None:
            return (["Choose the map: the local resolution map is not the output of a DeepRes protocol, so its "
                     "map is not known."] if requireMap else [])
        if not os.path.exists(mapPath):
            return [f"The map of the local resolution map's run ({mapPath}) is missing: choose the map."]
        return []
