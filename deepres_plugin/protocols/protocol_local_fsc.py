"""Local FSC resolution from two half maps as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_local_fsc`.

:class:`ProtDeepResHalfMapsBase` (a Scipion base class: no label) holds what the local FSC
and the B-factor sweep protocols share: the half-map inputs (a Volume with half maps, or
two Volumes), the optional mask, the local FSC parameters, their conversion to MRC files
and their checks.
"""
import os
from enum import Enum

import mrcfile
import pyworkflow.object as pwobj
from pwem.emlib.image import ImageHandler
from pwem.objects import Volume
from pyworkflow.protocol import params

from .. import constants
from ..core.errors import ParameterError
from ..core.outputs import INPUT_HALVES, INPUT_MASK
from .base import COMPRESSED_SUFFIXES, MRC_SUFFIXES, ProtDeepResBase, scipionOrigin

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


class outputs(Enum):
    resolution_Volume = Volume


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
        errors = []
        if self.halvesSource.get() == HALVES_FROM_VOLUME:
            volume = self.inputVolume.get()
            if volume is None:
                return ["Choose a map with half maps."]
            if not volume.hasHalfMaps() or len(volume.getHalfMaps(asList=True)) != 2:
                return ["The chosen map has no (or not two) half maps: choose one with half maps, "
                        "or choose 'two volumes'."]
            dims = []
            for path in self.getHalfMapPaths():
                if not os.path.exists(path):
                    errors.append(f"Half map {path} does not exist.")
                    continue
                dims.append(self._fileDimensions(path))
            if errors:
                return errors
            if None in dims:
                return ["The half maps cannot be read."]
            if dims[0] != dims[1]:
                errors.append(f"The half maps' dimensions differ: {dims[0]} and {dims[1]}.")
            grid = dims[0]
        else:
            half1, half2 = self.inputHalf1.get(), self.inputHalf2.get()
            if half1 is None or half2 is None:
                return ["Choose both half maps."]
            if half1.getDim() != half2.getDim():
                errors.append(f"The half maps' dimensions differ: {half1.getDim()} and {half2.getDim()}.")
            if abs(half1.getSamplingRate() - half2.getSamplingRate()) > 1e-3 * half1.getSamplingRate():
                errors.append(f"The half maps' sampling rates differ: {half1.getSamplingRate():g} and "
                              f"{half2.getSamplingRate():g} Å/px.")
            grid = half1.getDim()
        sampling = self.getSamplingRate()
        if self.inputMask.hasValue():
            mask = self.inputMask.get()
            if tuple(mask.getDim()) != tuple(grid):
                errors.append(f"The mask's dimensions {mask.getDim()} differ from the half maps' {tuple(grid)}.")
            if abs(mask.getSamplingRate() - sampling) > 1e-3 * sampling:
                errors.append(f"The mask's sampling rate ({mask.getSamplingRate():g} Å/px) differs from the "
                              f"half maps' ({sampling:g} Å/px).")
        if self.method.get() == METHOD_WINDOW and self.window.get() < 0:
            errors.append("The window must be positive (or 0 for automatic).")
        elif self.method.get() == METHOD_WINDOW and self.window.get() > 0:
            from ..core.localfsc import window_box

            try:
                window_box(self.window.get(), sampling, tuple(grid))
            except ParameterError as exc:
                errors.append(f"Window: {exc}.")
        if self.stride.get() < 1:
            errors.append("The stride must be at least 1 voxel.")
        return errors

    def _warnings(self):
        if not self.inputMask.hasValue():
            return ["No mask given: an automatic mask will be made from the average of the half maps."]
        return []


class ProtDeepResLocalFsc(ProtDeepResHalfMapsBase):
    """Local resolution from two half maps by their Fourier correlation measured locally:
    band-pass local correlation (default) or FSC in a moving window (BlocRes-like,
    Cardone et al., J. Struct. Biol. 2013).

    Both halves are whitened; the default cuts them into narrow frequency bands and averages
    their correlation in each band locally. This is the half-map reference DeepRes is
    compared with: it does not change with sharpening, DeepRes does.
    """

    _label = "half-map local FSC"
    _possibleOutputs = outputs
    _runFolder = "local_fsc"

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineHalfMapParams(form)
        self._defineLocalFscParams(form)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.localFscStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def localFscStep(self):
        self.runDeepRes("localfsc", self.localArguments(), threads=max(1, self.numberOfThreads.get()))
        summary = self.readSummary()
        self.logLines(self.summaryLines(summary, f"Local resolution ({summary.method_description})")
                      + [f"Global FSC {summary.global_fsc_resolution:.2f} Å at {summary.threshold:g}."])

    def createOutputStep(self):
        output = self._outputVolume(self.getResolutionFile(), self.getReferenceVolume())
        summary = self.readSummary()
        self.storeFigures(summary)
        self.globalFscResolution = pwobj.Float(summary.global_fsc_resolution)
        self.storeLocalSettings(summary)
        self._defineOutputs(**{outputs.resolution_Volume.name: output})
        self._defineSourceRelation(self.getReferencePointer(), output)

    # --------------------------- UTILS functions -----------------------------------------
    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        return self._validateHalfMaps()

    def _summary(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return ["The local FSC resolution has not been computed yet."]
        return [f"Median local FSC resolution {self.medianResolution.get():.2f} Å "
                f"(20th-80th percentile {self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å, "
                f"range {self.minResolution.get():.2f}-{self.maxResolution.get():.2f} Å); global FSC "
                f"resolution {self.globalFscResolution.get():.2f} Å at {self.getThreshold():g}; "
                f"{self.localMethod.get()}, stride {self.stride.get()} voxels."]

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return []
        source = self.getObjectTag("inputVolume" if self.halvesSource.get() == HALVES_FROM_VOLUME else "inputHalf1")
        return [f"The local resolution of {source} was estimated from its half maps by {self.localMethod.get()}"
                f"{self.blocresReference()}, at an FSC threshold of {self.getThreshold():g}, as implemented in the "
                f"DeepRes plugin "
                f"[{constants.DEEPRES_CITATION}]. {self.maskMethods(AVERAGE_MAP)} The median local resolution was "
                f"{self.medianResolution.get():.2f} Å (global FSC resolution {self.globalFscResolution.get():.2f} Å)."]

    def _citations(self):
        return [constants.DEEPRES_CITATION] + ([BLOCRES_CITATION] if self.method.get() == METHOD_WINDOW else [])
