"""Local FSC resolution from two half maps as a Scipion protocol: ``deepres localfsc``
(:func:`deepres_plugin.core.pipeline.run_local_fsc`) run as a process of its own, on the
half-map inputs of :class:`.base_half_maps.ProtDeepResHalfMapsBase`.
"""
from enum import Enum

import pyworkflow.object as pwobj
from pwem.objects import Volume

from .. import constants
from .base_half_maps import AVERAGE_MAP, BLOCRES_CITATION, HALVES_FROM_VOLUME, METHOD_WINDOW, ProtDeepResHalfMapsBase


class outputs(Enum):
    resolution_Volume = Volume


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
