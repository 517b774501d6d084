"""Local low-pass filtering as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_localfilter`."""
from enum import Enum

import pyworkflow.object as pwobj
from pwem.objects import Volume
from pyworkflow.protocol import params

from .. import constants
from ..core.cluster import available_cpus
from ..core.errors import ParameterError
from ..core.localfilter import BFACTOR_SOURCES
from ..core.outputs import LOCALFILTER_FILES, LocalFilterSummary
from ..core.sweep import MAX_SHARPENING_EXPONENT, check_sharpening
from .base import gridErrors
from .base_resolution_map import ProtDeepResResolutionMapBase
from .files import INPUT_MASK

#: Sharpening before the filter (EnumParam indices, in the order of the core's BFACTOR_SOURCES).
BFACTOR_NONE, BFACTOR_GIVEN, BFACTOR_AUTO = 0, 1, 2
BFACTOR_LABELS = ["none", "given", "automatic"]
#: The B-factor offered when 'given' is chosen (Å²; a mild sharpening).
DEFAULT_SHARPENING_B = -50.0
#: FFT threads offered (Scipion's threads) where the machine has that many CPUs.
MAX_DEFAULT_THREADS = 4


def defaultThreads():
    """The threads the form offers: :data:`MAX_DEFAULT_THREADS`, or the CPUs this process may
    use when fewer (the core's count, :func:`~deepres_plugin.core.cluster.available_cpus`)."""
    return min(MAX_DEFAULT_THREADS, available_cpus())


class outputs(Enum):
    outputVolume = Volume


class ProtDeepResLocalFilter(ProtDeepResResolutionMapBase):
    """Low-pass filter a map to its local resolution, voxel by voxel.

    The map is low-passed (Xmipp's raised cosine, the filter of the DeepRes training maps)
    at a bank of resolutions spanning the local resolutions inside the mask, in equal steps
    of 1/resolution, and every voxel is interpolated between the two members that bracket
    its local resolution: a region at d Å is filtered as the whole map low-passed at d Å.
    Voxels without a local resolution (outside the mask) are low-passed at the coarsest
    resolution of the bank. Optionally the map is sharpened first with a global B-factor,
    given or estimated from the map (minus its Guinier B-factor).
    """

    _label = "filter to local resolution"
    _possibleOutputs = outputs
    _runFolder = "local_filter"

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineResolutionParams(form)
        form.addParam("inputMask", params.PointerParam, pointerClass="VolumeMask", allowsNull=True,
                      label="Mask (optional)",
                      help="Filter only these voxels to their local resolution (on the map's grid; values above "
                           "0.5). Leave empty to filter every voxel with a local resolution (the resolution map's "
                           "own mask); the others are low-passed at the coarsest resolution.")
        form.addParam("bfactorChoice", params.EnumParam, choices=BFACTOR_LABELS,
                      default=BFACTOR_NONE,          # as the core (LocalFilterOptions): no sharpening
                      display=params.EnumParam.DISPLAY_HLIST, label="Sharpen first",
                      help="none: only the local low-pass. given: multiply the map's spectrum by exp(-B s²/4) "
                           "first (negative B sharpens). automatic: B is minus the map's Guinier B-factor, "
                           "measured inside the mask as DeepRes measures it, which flattens the Guinier plot.")
        form.addParam("bfactor", params.FloatParam, default=DEFAULT_SHARPENING_B,
                      condition=f"bfactorChoice=={BFACTOR_GIVEN}", label="B-factor (Å²)",
                      help="Global B-factor applied before the local low-pass; negative sharpens. The gain at the "
                           f"finest local resolution must stay below exp({MAX_SHARPENING_EXPONENT:g}).")
        form.addParallelSection(threads=defaultThreads(), mpi=0)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.localFilterStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        super().convertInputStep()
        if self.inputMask.hasValue():
            self._toMrc(self.inputMask.get(), self._getExtraPath(INPUT_MASK), self.getReferenceVolume())

    def localFilterStep(self):
        choice = self.bfactorChoice.get()
        arguments = [self.getMapPath(), self.getResolutionPath(), "--out", self.getOutputFile(),
                     "--threads", max(1, self.numberOfThreads.get())]
        if self.getMaskPath():
            arguments += ["--mask", self.getMaskPath()]
        if choice == BFACTOR_GIVEN:
            arguments.append(f"--bfactor={self.bfactor.get():g}")
        elif choice == BFACTOR_AUTO:
            arguments.append("--auto-bfactor")
        self.runDeepRes("localfilter", arguments, threads=max(1, self.numberOfThreads.get()))
        self.logLines(self.filterLines(self.getFilterSummary()))

    def createOutputStep(self):
        summary = self.getFilterSummary()
        self.finestResolution = pwobj.Float(summary.bank_resolutions[0])
        self.coarsestResolution = pwobj.Float(summary.bank_resolutions[-1])
        self.bankMembers = pwobj.Integer(len(summary.bank_resolutions))
        self.appliedBfactor = pwobj.Float(summary.bfactor)
        self.bfactorSource = pwobj.String(summary.bfactor_source)
        if summary.map_bfactor is not None:
            self.mapBfactor = pwobj.Float(summary.map_bfactor)
        self.filteredVoxels = pwobj.Integer(summary.voxels)
        self.runSeconds = pwobj.Float(summary.run_seconds)
        output = self._outputVolume(self.getOutputFile(LOCALFILTER_FILES["map"]))
        output.appliedBfactor = pwobj.Float(summary.bfactor)
        self._defineOutputs(**{outputs.outputVolume.name: output})
        self._defineSourceRelation(self.inputResolution, output)
        if self.inputVolume.hasValue():
            self._defineSourceRelation(self.inputVolume, output)

    # --------------------------- UTILS functions -----------------------------------------
    def getMaskPath(self):
        """The converted mask, or None without one."""
        return self._getExtraPath(INPUT_MASK) if self.inputMask.hasValue() else None

    def getFilterSummary(self):
        """The run's summary (typed, :class:`~deepres_plugin.core.outputs.LocalFilterSummary`)."""
        return LocalFilterSummary.read(self.getOutputFile())

    @staticmethod
    def filterLines(summary):
        """The figures of a local-filter summary as run-log lines, in Å."""
        bank = summary.bank_resolutions
        lines = [f"Local filter: {summary.voxels} voxels low-passed to their local resolution, {bank[0]:.2f}-"
                 f"{bank[-1]:.2f} Å ({len(bank)} filters); the others at {bank[-1]:.2f} Å."]
        if summary.bfactor_source != BFACTOR_SOURCES[0]:
            measured = (f" (the map's B-factor is {summary.map_bfactor:.0f} Å²)"
                        if summary.map_bfactor is not None else "")
            lines.append(f"Sharpened first with B = {summary.bfactor:.1f} Å², {summary.bfactor_source}{measured}.")
        lines.append(f"Time: {summary.run_seconds:.1f} s.")
        return lines

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        errors = self._validateResolutionMap(requireMap=True)
        if errors:
            return errors
        if self.inputMask.hasValue():
            errors += gridErrors(self.inputMask.get(), self.getReferenceVolume(), "the mask", checkOrigin=False,
                                 advice="make the mask on the map's grid")
        report = self.getResolutionReport()
        if self.bfactorChoice.get() == BFACTOR_GIVEN and report is not None:
            nyquist = 2.0 * self.getReferenceVolume().getSamplingRate()
            try:                         # the finest local resolution is known from the run's report
                check_sharpening([self.bfactor.get()], max(report.min, nyquist))
            except ParameterError as exc:
                errors.append(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        return errors

    def _summary(self):
        if not self.isFinished() or not hasattr(self, "finestResolution"):
            return ["The map has not been filtered yet."]
        lines = [f"Filtered to the local resolution: {self.filteredVoxels.get()} voxels at "
                 f"{self.finestResolution.get():.2f}-{self.coarsestResolution.get():.2f} Å ({self.bankMembers.get()} "
                 f"filters), the others at {self.coarsestResolution.get():.2f} Å; {self.runSeconds.get():.1f} s."]
        if self.bfactorSource.get() != BFACTOR_SOURCES[0]:
            measured = (f"; the map's B-factor {self.mapBfactor.get():.0f} Å²" if hasattr(self, "mapBfactor") else "")
            lines.append(f"Sharpened first with B = {self.appliedBfactor.get():.1f} Å² "
                         f"({self.bfactorSource.get()}{measured}).")
        return lines

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "finestResolution"):
            return []
        sharpening = ""
        if self.bfactorSource.get() != BFACTOR_SOURCES[0]:
            how = " (minus the map's Guinier B-factor)" if self.bfactorSource.get() == BFACTOR_SOURCES[2] else ""
            sharpening = f" after sharpening with a global B-factor of {self.appliedBfactor.get():.0f} Å²{how}"
        return [f"The map {self.getMapTag()} was low-pass filtered to the local resolution of "
                f"{self.getObjectTag('inputResolution')}{sharpening}: the map was low-passed with a raised cosine at "
                f"{self.bankMembers.get()} resolutions from {self.finestResolution.get():.2f} to "
                f"{self.coarsestResolution.get():.2f} Å, equally spaced in spatial frequency, and every voxel was "
                f"interpolated linearly in 1/resolution between the two that bracket its local resolution, as "
                f"implemented in the DeepRes plugin [{constants.DEEPRES_CITATION}]. {self.maskMethods()}"]

    def maskMethods(self, madeFrom=None):
        """Which voxels were filtered to their own resolution: the mask's (named by its tag), or,
        without one, those with a local resolution (the resolution map's own mask; this
        protocol makes no automatic mask, so ``madeFrom`` is not used)."""
        region = (f"the voxels of the mask {self.getObjectTag('inputMask')} with a local resolution"
                  if self.inputMask.hasValue() else "the voxels with a local resolution (no mask was given)")
        return (f"The voxels filtered to their own local resolution were {region}; the others were low-passed "
                f"at {self.coarsestResolution.get():.2f} Å.")

    def _citations(self):
        return [constants.DEEPRES_CITATION]
