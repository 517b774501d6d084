"""What the DeepRes protocols that read two half maps share (local FSC, B-factor sweep):
:class:`ProtDeepResHalfMapsBase` (a Scipion base class: no label) with the half-map inputs
(a Volume with half maps, or two Volumes), the optional mask, the local FSC parameters,
their conversion to MRC files, their checks, and the command-line arguments they give
``deepres localfsc`` and ``deepres bfactor-sweep``.
"""
import os

import mrcfile
import pyworkflow.object as pwobj
from pwem.emlib.image import ImageHandler
from pyworkflow.protocol import params

from ..core.errors import ParameterError
from .base import COMPRESSED_SUFFIXES, MRC_SUFFIXES, ProtDeepResBase, gridErrors, samplingErrors, scipionOrigin
from .files import INPUT_HALVES, INPUT_MASK

#: BibTeX key of BlocRes (see ``bibtex.py``), the moving-window local FSC this follows.
BLOCRES_CITATION = "Cardone2013"

#: Where the half maps come from (EnumParam indices).
HALVES_FROM_VOLUME = 0
HALVES_TWO_VOLUMES = 1
HALVES_LABELS = ["volume with half maps", "two volumes"]

#: Local resolution estimators (EnumParam labels, in the order of ``core.localfsc.METHODS``).
METHOD_LABELS = ["band-pass local correlation", "moving-window FSC (BlocRes-like)"]
METHOD_WINDOW = 1

#: FSC thresholds offered (EnumParam labels and values).
THRESHOLD_LABELS = ["0.143", "0.5"]
THRESHOLD_VALUES = [0.143, 0.5]

INPUT_HALF1, INPUT_HALF2 = INPUT_HALVES
#: What the automatic mask of the half-map protocols is made from (Methods).
AVERAGE_MAP = "the average of the half maps"


class ProtDeepResHalfMapsBase(ProtDeepResBase):
    """Base of the DeepRes protocols that read two half maps (not offered to users)."""

    _label = None

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineHalfMapParams(self, form):
        form.addParam("halvesSource", params.EnumParam, choices=HALVES_LABELS, default=HALVES_FROM_VOLUME,
                      display=params.EnumParam.DISPLAY_HLIST, label="Half maps from",
                      help="A map that carries its two half maps (e.g. from a refinement, or imported with "
                           "'Set half maps'), or two half-map volumes chosen one by one.")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      condition=f"halvesSource=={HALVES_FROM_VOLUME}", label="Map with half maps",
                      help="A volume with two half maps attached. Its sampling rate is used for both halves.")
        form.addParam("inputHalf1", params.PointerParam, pointerClass="Volume", important=True,
                      condition=f"halvesSource=={HALVES_TWO_VOLUMES}", label="Half map 1",
                      help="The first independent half map. Its sampling rate and origin are used.")
        form.addParam("inputHalf2", params.PointerParam, pointerClass="Volume", important=True,
                      condition=f"halvesSource=={HALVES_TWO_VOLUMES}", label="Half map 2",
                      help="The second half map, on the same grid as the first.")
        form.addParam("inputMask", params.PointerParam, pointerClass="VolumeMask", allowsNull=True,
                      label="Mask (optional)",
                      help="The voxels to estimate, on the half maps' grid (binary, or soft: values above 0.5 "
                           "are used); the global FSC is computed inside it (edge softened by 6 Å). Leave "
                           "empty for an automatic mask made from the halves' average.")

    def _defineLocalFscParams(self, form):
        form.addParam("method", params.EnumParam, choices=METHOD_LABELS, default=0,
                      display=params.EnumParam.DISPLAY_COMBO, label="Local resolution method",
                      help="Band-pass local correlation (default): both whitened halves are cut into narrow "
                           "frequency bands and their correlation is averaged locally, in a window of 1.5 "
                           "wavelengths of each band; it reads a region's resolution without the bias of a "
                           "fixed window. Moving-window FSC: the FSC of the halves in a spherical window "
                           "(BlocRes-like); steep drops of resolution read 10-40 % too fine.")
        form.addParam("window", params.FloatParam, default=0.0, label="Window (\u00c5)",
                      condition=f"method=={METHOD_WINDOW}",
                      help="Diameter of the moving window in \u00c5. 0: automatic, 6 times the global FSC "
                           "resolution (at least 12 voxels, at most the map). Larger windows give smoother, "
                           "less local estimates; smaller ones noisier FSC curves.")
        form.addParam("stride", params.IntParam, default=2, label="Stride (voxels)",
                      help="Distance between the evaluated window positions; the resolution is "
                           "interpolated in between. 1 evaluates every masked voxel (slowest).")
        form.addParam("threshold", params.EnumParam, choices=THRESHOLD_LABELS, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="FSC threshold",
                      help="0.143: gold standard (independent halves); 0.5: the older, more conservative "
                           "choice. Used for the local and the global FSC.")

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        """The half maps (and mask) as MRC files in the extra folder."""
        if self.halvesSource.get() == HALVES_FROM_VOLUME:
            reference = self.inputVolume.get()
            for path, name in zip(self.getHalfMapPaths(), INPUT_HALVES):
                self._fileToMrc(path, self._getExtraPath(name))
                with mrcfile.open(self._getExtraPath(name), mode="r+", permissive=True) as mrc:
                    mrc.header.origin = scipionOrigin(reference)   # the halves sit where the map does
        else:
            self._toMrc(self.inputHalf1.get(), self._getExtraPath(INPUT_HALF1))
            self._toMrc(self.inputHalf2.get(), self._getExtraPath(INPUT_HALF2))
        if self.inputMask.hasValue():
            self._toMrc(self.inputMask.get(), self._getExtraPath(INPUT_MASK), self.getReferenceVolume())

    # --------------------------- UTILS functions -----------------------------------------
    def getReferenceVolume(self):
        """The Volume whose sampling rate and origin the halves (and outputs) have."""
        if self.halvesSource.get() == HALVES_FROM_VOLUME:
            return self.inputVolume.get()
        return self.inputHalf1.get()

    def getReferencePointer(self):
        return self.inputVolume if self.halvesSource.get() == HALVES_FROM_VOLUME else self.inputHalf1

    def getSamplingRate(self):
        return self.getReferenceVolume().getSamplingRate()

    def getHalfMapPaths(self):
        """The two half-map files of the input volume (paths relative to the project are
        resolved against it)."""
        volume = self.inputVolume.get()
        paths = [str(p).split(":")[0] for p in volume.getHalfMaps(asList=True)]
        project = self.getProject()
        if project is not None:
            paths = [p if os.path.isabs(p) else os.path.join(project.getPath(), p) for p in paths]
        return paths

    def getConvertedFiles(self):
        """(half 1, half 2, mask or None) as converted by :meth:`convertInputStep`."""
        mask = self._getExtraPath(INPUT_MASK) if self.inputMask.hasValue() else None
        return self._getExtraPath(INPUT_HALF1), self._getExtraPath(INPUT_HALF2), mask

    def getThreshold(self):
        return THRESHOLD_VALUES[self.threshold.get()]

    def getMethod(self):
        """The core's name of the chosen estimator (``bands`` or ``window``)."""
        from ..core.localfsc import METHODS

        return METHODS[self.method.get()]

    def getWindow(self):
        """The window in A (moving-window method), or None for the automatic one."""
        if self.method.get() != METHOD_WINDOW:
            return None
        return self.window.get() if self.window.get() else None

    def localArguments(self):
        """The half maps and the local-FSC options of the form, as the command line of
        ``deepres localfsc`` and ``deepres bfactor-sweep`` takes them."""
        half1, half2, mask = self.getConvertedFiles()
        arguments = [half1, half2, "--method", self.getMethod(), "--stride", self.stride.get(),
                     "--threshold", f"{self.getThreshold():g}", "--sampling", f"{self.getSamplingRate():.6g}",
                     "--no-progress", "--out", self.getOutputFile()]
        if self.getWindow():
            arguments += ["--window", f"{self.getWindow():g}"]
        if mask:
            arguments += ["--mask", mask]
        return arguments

    def storeLocalSettings(self, summary):
        """Keep the estimator's description (from ``summary.json``) for the summary and methods."""
        self.localMethod = pwobj.String(summary.method_description)

    def blocresReference(self):
        """`` [Cardone2013]`` after the moving-window method, nothing otherwise."""
        return f" [{BLOCRES_CITATION}]" if self.method.get() == METHOD_WINDOW else ""

    @staticmethod
    def _fileDimensions(path):
        """(x, y, z) of a map file from its header, or None when it cannot be read."""
        if path.lower().endswith(MRC_SUFFIXES + COMPRESSED_SUFFIXES):
            try:
                with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                    return int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz)
            except (ValueError, OSError, EOFError):
                return None
        try:
            x, y, z, _ = ImageHandler().getDimensions(path)
            return x, y, z
        except Exception:
            return None

    # --------------------------- INFO functions ------------------------------------------
    def _validateHalfMaps(self):
        """Errors of the half-map inputs, the mask and the local FSC parameters."""
        grid, errors = (self._halvesOfVolumeErrors() if self.halvesSource.get() == HALVES_FROM_VOLUME
                        else self._twoVolumesErrors())
        if grid is None:
            return errors
        return (errors + samplingErrors(self.getReferenceVolume(), "the half maps") + self._maskErrors()
                + self._localFscErrors(grid))

    def _halvesOfVolumeErrors(self):
        """``(grid, errors)`` of a Volume's half maps (grid None: nothing more to check)."""
        volume = self.inputVolume.get()
        if volume is None:
            return None, ["Choose a map with half maps."]
        if not volume.hasHalfMaps() or len(volume.getHalfMaps(asList=True)) != 2:
            return None, ["The chosen map has no (or not two) half maps: choose one with half maps, "
                          "or choose 'two volumes'."]
        missing = [f"Half map {path} does not exist." for path in self.getHalfMapPaths() if not os.path.exists(path)]
        if missing:
            return None, missing
        dims = [self._fileDimensions(path) for path in self.getHalfMapPaths()]
        if None in dims:
            return None, ["The half maps cannot be read."]
        return dims[0], ([] if dims[0] == dims[1] else
                         [f"The half maps' dimensions differ: {dims[0]} and {dims[1]}."])

    def _twoVolumesErrors(self):
        """``(grid, errors)`` of two Volumes given as the halves."""
        half1, half2 = self.inputHalf1.get(), self.inputHalf2.get()
        if half1 is None or half2 is None:
            return None, ["Choose both half maps."]
        return half1.getDim(), gridErrors(half2, half1, "the second half map", "the first",
                                          advice="give the two halves of one reconstruction")

    def _maskErrors(self):
        """The mask on another grid than the half maps."""
        if not self.inputMask.hasValue():
            return []
        return gridErrors(self.inputMask.get(), self.getReferenceVolume(), "the mask", "the half maps",
                          checkOrigin=False, advice="give a mask on the half maps' grid")

    def _localFscErrors(self, grid):
        """A window that does not fit the half maps (dimensions ``grid``), a stride below 1."""
        from ..core.localfsc import window_box

        errors = []
        if self.method.get() == METHOD_WINDOW and self.window.get() < 0:
            errors.append("The window must be positive (or 0 for automatic).")
        elif self.method.get() == METHOD_WINDOW and self.window.get() > 0:
            try:
                window_box(self.window.get(), self.getSamplingRate(), tuple(grid))
            except ParameterError as exc:
                errors.append(f"Window: {exc}.")
        if self.stride.get() < 1:
            errors.append("The stride must be at least 1 voxel.")
        return errors
