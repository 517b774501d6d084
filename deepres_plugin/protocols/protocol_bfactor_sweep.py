"""B-factor sweep against oversharpening as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_bfactor_sweep` (section 3.4 and Fig. 5 of the
DeepRes paper)."""
import pyworkflow.object as pwobj
from pwem.objects import Volume
from pyworkflow.protocol import params

from .. import constants
from ..core.errors import ParameterError
from ..core.outputs import DEEPRES_DIR, RESOLUTION_FILE, SweepSummary
from ..core.ranges import RANGES
from ..core.sweep import DEFAULT_BFACTORS, parse_bfactors
from .base import defineGpuParams, defineNetworkParams, validateNetwork
from .base_half_maps import (
    AVERAGE_MAP,
    BLOCRES_CITATION,
    HALVES_FROM_VOLUME,
    INPUT_HALF1,
    INPUT_HALF2,
    METHOD_WINDOW,
    ProtDeepResHalfMapsBase,
)

OUTPUT_VOLUME = "outputVolume"
OUTPUT_RESOLUTION = "resolution_Volume"
#: Both outputs are Volumes: a dict, as an Enum would make the second an alias of the first.
POSSIBLE_OUTPUTS = {OUTPUT_VOLUME: Volume, OUTPUT_RESOLUTION: Volume}


class ProtDeepResBfactorSweep(ProtDeepResHalfMapsBase):
    """Choose a global B-factor with DeepRes and the half maps (DeepRes paper, section 3.4).

    The local FSC of the half maps does not change with sharpening; DeepRes does. The
    halves' average is sharpened with each B-factor of the sweep and low-passed at the
    global FSC resolution, DeepRes is run on each map, and the B-factor whose DeepRes 20th
    percentile is closest to the local FSC's is recommended. The recommended map is the
    output volume (with the two half maps attached).
    """

    _label = "B-factor sweep"
    _possibleOutputs = POSSIBLE_OUTPUTS
    _runFolder = "bfactor_sweep"

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineHalfMapParams(form)
        form.addParam("bfactors", params.StringParam, default=DEFAULT_BFACTORS, label="B-factors (Å²)",
                      help="start:stop:step with stop included (e.g. -200:0:20), or a comma list "
                           "(e.g. -150,-100,-50,0). Negative B sharpens. DeepRes runs once per value.")
        form.addParam("resolutionRange", params.EnumParam, choices=constants.RANGE_LABELS,
                      default=constants.RANGE_WIDE, display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution range",
                      help="wide: maps between 2.5 and 13 Å (network at 1 Å/px); high: maps between 1.5 "
                           "and 6 Å (network at 0.5 Å/px). Where the local FSC is finer than the range's "
                           "minimum, DeepRes cannot match it: use the high range.")
        defineNetworkParams(form)
        form.addSection(label="Advanced")
        self._defineLocalFscParams(form)
        defineGpuParams(form)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.sweepStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def sweepStep(self):
        arguments = self.localArguments() + [f"--bfactors={self.bfactors.get()}", "--range", self.getRangeName()]
        if self.getNetworkPath():
            arguments += ["--model", self.getNetworkPath()]
        self.runDeepRes("bfactor-sweep", arguments, gpu=True, threads=max(1, self.numberOfThreads.get()))
        summary = self.getSweepSummary()
        self.logLines([f"B = {row.bfactor:g} Å²: DeepRes median {row.deepres_median:.2f} Å, 20th percentile "
                       f"{row.deepres_p20:.2f} Å against the local FSC's {row.localfsc_p20:.2f} Å: {row.verdict}"
                       for row in summary.rows]
                      + [f"Recommended B-factor {summary.recommended_bfactor:g} Å² "
                         f"({summary.recommended_verdict}); time {summary.run_seconds:.1f} s."])
        # the mask's voxels left without an estimate: the core has logged them (once)

    def createOutputStep(self):
        summary = self.getSweepSummary()
        recommended = summary.recommended
        self.recommendedBfactor = pwobj.Float(summary.recommended_bfactor)
        self.recommendedVerdict = pwobj.String(summary.recommended_verdict)
        self.globalFscResolution = pwobj.Float(summary.global_fsc_resolution)
        self.localFscPercentile20 = pwobj.Float(summary.localfsc_p20)
        self.deepresPercentile20 = pwobj.Float(recommended.deepres_p20)
        self.deepresMedian = pwobj.Float(recommended.deepres_median)
        self.storeLocalSettings(summary)
        self.sweptBfactors = pwobj.String(", ".join(f"{row.bfactor:g}" for row in summary.rows))
        self.leftOut = pwobj.String(summary.left_out or "")

        sharpened = self._outputVolume(self.getOutputFile(summary.sharpened_map))
        sharpened.setHalfMaps([self._getExtraPath(INPUT_HALF1), self._getExtraPath(INPUT_HALF2)])
        sharpened.recommendedBfactor = pwobj.Float(summary.recommended_bfactor)
        resolution = self._outputVolume(self.getResolutionFile())
        self._defineOutputs(**{OUTPUT_VOLUME: sharpened, OUTPUT_RESOLUTION: resolution})
        self._defineSourceRelation(self.getReferencePointer(), sharpened)
        self._defineSourceRelation(self.getReferencePointer(), resolution)

    # --------------------------- UTILS functions -----------------------------------------
    def getResolutionFile(self):
        """The DeepRes resolution map of the recommended (sharpened) map."""
        return self.getOutputFile(DEEPRES_DIR, RESOLUTION_FILE)

    def getSweepSummary(self):
        """The sweep's summary (typed, :class:`~deepres_plugin.core.outputs.SweepSummary`)."""
        return SweepSummary.read(self.getOutputFile())

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        errors = self._validateHalfMaps()
        try:
            parse_bfactors(self.bfactors.get() or "")
        except ParameterError as exc:
            errors.append(str(exc))
        errors += validateNetwork(self)
        return errors

    def _warnings(self):
        warnings = super()._warnings()
        reference = self.getReferenceVolume()
        resolution_range = RANGES[self.getRangeName()]
        if reference is not None and reference.getSamplingRate() > resolution_range.min_resolution / 2:
            warnings.append(f"The pixel size ({reference.getSamplingRate():g} Å) is coarser than half the range's "
                            f"best resolution ({resolution_range.min_resolution:g} Å): DeepRes cannot report "
                            f"resolutions below {2 * reference.getSamplingRate():g} Å (Nyquist).")
        return warnings

    def _summary(self):
        if not self.isFinished() or not hasattr(self, "recommendedBfactor"):
            return ["The B-factor sweep has not been run yet."]
        return [f"Recommended B-factor {self.recommendedBfactor.get():g} Å² ({self.recommendedVerdict.get()}): "
                f"DeepRes 20th percentile {self.deepresPercentile20.get():.2f} Å against the local FSC's "
                f"{self.localFscPercentile20.get():.2f} Å (DeepRes median {self.deepresMedian.get():.2f} Å).",
                f"Global FSC resolution {self.globalFscResolution.get():.2f} Å at {self.getThreshold():g}; "
                f"B-factors swept: {self.sweptBfactors.get()} Å²; {self.getRangeName()} network."] + (
                    [f"Compared where the average shows density: {self.leftOut.get()}."]
                    if hasattr(self, "leftOut") and self.leftOut.get() else [])

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "recommendedBfactor"):
            return []
        source = self.getObjectTag("inputVolume" if self.halvesSource.get() == HALVES_FROM_VOLUME else "inputHalf1")
        return [f"The average of the half maps of {source} was sharpened with global B-factors of "
                f"{self.sweptBfactors.get()} Å² and low-passed at the global FSC resolution "
                f"({self.globalFscResolution.get():.2f} Å at {self.getThreshold():g}). The local resolution of each "
                f"map was estimated with DeepRes [{constants.DEEPRES_CITATION}] ({self.getRangeName()} network) and "
                f"compared with the local resolution of the half maps by {self.localMethod.get()}"
                f"{self.blocresReference()}: a B-factor of {self.recommendedBfactor.get():g} Å² was chosen, whose DeepRes "
                f"20th percentile ({self.deepresPercentile20.get():.2f} Å) was closest to the local FSC's "
                f"({self.localFscPercentile20.get():.2f} Å). {self.maskMethods(AVERAGE_MAP)}"]

    def _citations(self):
        return [constants.DEEPRES_CITATION] + ([BLOCRES_CITATION] if self.method.get() == METHOD_WINDOW else [])
