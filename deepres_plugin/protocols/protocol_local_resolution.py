"""DeepRes local resolution as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_predict`."""
from enum import Enum

import pyworkflow.object as pwobj
from pwem.objects import Volume, VolumeMask
from pyworkflow.protocol import params

from .. import constants
from ..core.diagnostics import check_map_for_range, geometry_warnings
from ..core.errors import MapFormatError, ParameterError
from ..core.mrc import check_map_file
from ..core.outputs import INPUT_MAP, INPUT_MASK, MASK_FILE
from ..core.ranges import RANGES
from .base import MRC_SUFFIXES, ProtDeepResBase, defineGpuParams, defineNetworkParams, tensorflowDevice, validateNetwork


class outputs(Enum):
    resolution_Volume = Volume
    outputMask = VolumeMask


class ProtDeepResLocalResolution(ProtDeepResBase):
    """Local resolution of a cryo-EM map with DeepRes (Ramirez-Aportela et al., IUCrJ 2019).

    A 3D convolutional network trained on maps simulated from atomic models estimates at
    every voxel of the mask the resolution at which the map looks as it does in a 13^3
    box around it. Unlike FSC/SNR methods it needs no half maps and no noise estimate,
    and it follows B-factor sharpening, denoising and masking.
    """

    _label = "local resolution"
    _possibleOutputs = outputs
    _runFolder = "local_resolution"

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Input map",
                      help="The map to analyse: the full (sharpened or not) map, not a half map. "
                           "Its sampling rate is taken from Scipion, not from the file header.")
        form.addParam("inputMask", params.PointerParam, pointerClass="VolumeMask", allowsNull=True,
                      label="Mask (optional)",
                      help="The voxels to estimate, on the map's grid (binary, or soft: values above 0.5 "
                           "are used). Leave empty for an automatic mask: the map is low-passed at 8 Å "
                           "(Gaussian), thresholded at Otsu's level, small blobs are dropped, cavities "
                           "filled and the envelope dilated by 3 Å.")
        form.addParam("resolutionRange", params.EnumParam, choices=constants.RANGE_LABELS,
                      default=constants.RANGE_WIDE, display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution range",
                      help="wide: for maps whose local resolution lies between 2.5 and 13 Å (the network "
                           "works at 1 Å/px). high: for maps between 1.5 and 6 Å (works at 0.5 Å/px; "
                           "the input pixel size should then be 0.75 Å or finer). The map is resampled "
                           "to the network's pixel size and the result brought back to the map's grid.")
        defineNetworkParams(form)
        defineGpuParams(form)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.predictStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        """The input map (and mask) as MRC files in the extra folder."""
        self._toMrc(self.inputVolume.get(), self._getExtraPath(INPUT_MAP))
        if self.inputMask.hasValue():
            self._toMrc(self.inputMask.get(), self._getExtraPath(INPUT_MASK), self.inputVolume.get())

    def predictStep(self):
        from ..core.pipeline import PredictOptions, run_predict

        options = PredictOptions(
            mask=self._getExtraPath(INPUT_MASK) if self.inputMask.hasValue() else None,
            range_name=self.getRangeName(), model=self.getModelPath(),
            sampling=self.inputVolume.get().getSamplingRate(), device=tensorflowDevice(self))
        run_predict(self._getExtraPath(INPUT_MAP), self.getOutputFile(), options)
        summary = self.readSummary()
        self.logLines(self.summaryLines(summary, "DeepRes local resolution") + summary.warnings)

    def createOutputStep(self):
        volume = self.inputVolume.get()
        output = self._outputVolume(self.getResolutionFile(), volume)
        summary = self.readSummary()
        self.storeFigures(summary)
        if summary.map_bfactor is not None:
            self.mapBfactor = pwobj.Float(summary.map_bfactor)
        self.solventState = pwobj.String(summary.solvent or "")
        if summary.noise_to_signal is not None:
            self.noiseToSignal = pwobj.Float(summary.noise_to_signal)
        self.mapWarnings = pwobj.String("\n".join(summary.warnings))
        self.networkName = pwobj.String(summary.network)
        self._defineOutputs(**{outputs.resolution_Volume.name: output})
        self._defineSourceRelation(self.inputVolume, output)
        if not self.inputMask.hasValue():          # the automatic mask, for reuse in other protocols
            mask = self._outputVolume(self.getOutputFile(MASK_FILE), volume, VolumeMask)
            self._defineOutputs(**{outputs.outputMask.name: mask})
            self._defineSourceRelation(self.inputVolume, mask)

    def getReferenceVolume(self):
        """The Volume whose sampling rate and origin the outputs take."""
        return self.inputVolume.get()

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        errors = []
        volume = self.inputVolume.get()
        if volume is None:
            return ["Choose an input map."]
        if self.inputMask.hasValue():
            mask = self.inputMask.get()
            if mask.getDim() != volume.getDim():
                errors.append(f"The mask's dimensions {mask.getDim()} differ from the map's {volume.getDim()}.")
            if abs(mask.getSamplingRate() - volume.getSamplingRate()) > 1e-3 * volume.getSamplingRate():
                errors.append(f"The mask's sampling rate ({mask.getSamplingRate():g} Å/px) differs from the "
                              f"map's ({volume.getSamplingRate():g} Å/px).")
        source = volume.getFileName().split(":")[0]
        try:
            if source.lower().endswith(MRC_SUFFIXES):
                check_map_file(source)
            check_map_for_range(volume.getSamplingRate(), volume.getDim(), RANGES[self.getRangeName()])
        except (MapFormatError, ParameterError) as exc:
            errors.append(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        errors += validateNetwork(self)
        return errors

    def _warnings(self):
        warnings = []
        volume = self.inputVolume.get()
        if volume is not None:
            warnings += [f"{w[0].upper()}{w[1:]}." for w in
                         geometry_warnings(volume.getSamplingRate(), volume.getDim(), RANGES[self.getRangeName()])]
        if not self.inputMask.hasValue():
            warnings.append("No mask given: an automatic mask will be made from the map.")
        return warnings

    def _summary(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return ["The local resolution has not been computed yet."]
        timing = f", {self.runSeconds.get():.1f} s" if hasattr(self, "runSeconds") else ""
        network = f" ({self.networkName.get()})" if hasattr(self, "networkName") else ""
        return [f"Median local resolution {self.medianResolution.get():.2f} Å "
                f"(20th-80th percentile {self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å, "
                f"range {self.minResolution.get():.2f}-{self.maxResolution.get():.2f} Å), "
                f"{self.getRangeName()} network{network}{timing}."] + self._conditionSummary()

    def _conditionSummary(self):
        """The map's B-factor, noise and solvent as measured by the prediction, and its warnings."""
        lines = []
        if hasattr(self, "mapBfactor"):
            lines.append(f"Map B-factor (Guinier, 10 Å to the supported resolution): {self.mapBfactor.get():.0f} Å².")
        if hasattr(self, "solventState") and self.solventState.get():
            noise = (f"; noise outside the mask {self.noiseToSignal.get():.2f} × the molecule's SD"
                     if hasattr(self, "noiseToSignal") else "")
            lines.append(f"Solvent {self.solventState.get()}{noise}.")
        if hasattr(self, "mapWarnings") and self.mapWarnings.get():
            lines += [f"Warning: {w}." for w in self.mapWarnings.get().split("\n")]
        return lines

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return []
        resolutionRange = RANGES[self.getRangeName()]
        return [f"The local resolution of {self.getObjectTag('inputVolume')} was estimated with DeepRes "
                f"[{constants.DEEPRES_CITATION}] ({self.getRangeName()} network, "
                f"{resolutionRange.min_resolution:g}-{resolutionRange.max_resolution:g} Å). "
                f"The median local resolution was {self.medianResolution.get():.2f} Å (20th-80th percentile "
                f"{self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å)."]

    def _citations(self):
        return [constants.DEEPRES_CITATION]
