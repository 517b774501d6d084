"""DeepRes local resolution as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_predict`."""
import json
import shutil
from enum import Enum

import pyworkflow.object as pwobj
from pwem.emlib.image import ImageHandler
from pwem.objects import Volume
from pwem.protocols import ProtAnalysis3D
from pyworkflow.protocol import params

from .. import constants
from ..core.diagnostics import check_map_for_range, geometry_warnings
from ..core.errors import MapFormatError, ParameterError
from ..core.mrc import check_map_file
from ..core.models import shipped_model_path
from ..core.networks import read_model_info
from ..core.ranges import RANGES

INPUT_MAP = "input_map.mrc"
INPUT_MASK = "input_mask.mrc"
OUTPUT_DIR = "deepres"
MRC_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrc.gz", ".map.gz", ".ccp4.gz", ".rec")


class outputs(Enum):
    resolution_Volume = Volume


def defineNetworkParams(form):
    """The network choice (shipped, trained in this project, or a file), shared by the
    protocols that run DeepRes; the protocol also defines ``resolutionRange``."""
    form.addParam("modelChoice", params.EnumParam, choices=constants.MODEL_LABELS,
                  default=constants.MODEL_SHIPPED, display=params.EnumParam.DISPLAY_HLIST,
                  label="Network",
                  help="The network shipped with the plugin for the chosen range, one trained in this "
                       "project with 'deepres - train model', or a .keras file from `deepres train`.")
    form.addParam("trainedModel", params.PointerParam, pointerClass="EMFile",
                  condition=f"modelChoice=={constants.MODEL_TRAINED}", label="Trained network",
                  help="The output of a 'deepres - train model' run made for the chosen range.")
    form.addParam("customModel", params.PathParam, condition=f"modelChoice=={constants.MODEL_FILE}",
                  label="Network file (.keras)",
                  help="A .keras file with its .json sidecar, made for the chosen range.")


def defineGpuParams(form):
    """Hidden GPU parameters of the protocols that run TensorFlow."""
    form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                   label="Use GPU", help="TensorFlow uses the first visible GPU when there is one.")
    form.addHidden(params.GPU_LIST, params.StringParam, default="0", label="GPU id")


def validateNetwork(protocol) -> list:
    """Errors about the network chosen on ``protocol`` (missing file, or made for another range)."""
    errors = []
    try:
        if protocol.modelChoice.get() == constants.MODEL_SHIPPED:
            shipped_model_path(protocol.getRangeName())
        else:
            info = read_model_info(protocol.getModelPath())
            if info.range_name != protocol.getRangeName():
                errors.append(f"The chosen network is a '{info.range_name}' network; choose that range.")
    except ParameterError as exc:
        errors.append(f"Network: {exc}")
    return errors


class ProtDeepResLocalResolution(ProtAnalysis3D):
    """Local resolution of a cryo-EM map with DeepRes (Ramirez-Aportela et al., IUCrJ 2019).

    A 3D convolutional network trained on maps simulated from atomic models estimates at
    every voxel of the mask the resolution at which the map looks as it does in a 13^3
    box around it. Unlike FSC/SNR methods it needs no half maps and no noise estimate,
    and it follows B-factor sharpening, denoising and masking.
    """

    _label = "deepres - local resolution"
    _possibleOutputs = outputs

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
                           "are used). Leave empty for an automatic mask: the map is low-passed at 8 A "
                           "(Gaussian), thresholded at Otsu's level, small blobs are dropped, cavities "
                           "filled and the envelope dilated by 3 A.")
        form.addParam("resolutionRange", params.EnumParam, choices=constants.RANGE_LABELS,
                      default=constants.RANGE_WIDE, display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution range",
                      help="wide: for maps whose local resolution lies between 2.5 and 13 A (the network "
                           "works at 1 A/px). high: for maps between 1.5 and 6 A (works at 0.5 A/px; "
                           "the input pixel size should then be 0.75 A or finer). The map is resampled "
                           "to the network's pixel size and the result brought back to the map's grid.")
        defineNetworkParams(form)
        defineGpuParams(form)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep)
        self._insertFunctionStep(self.predictStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep)

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        """The input map (and mask) as MRC files in the extra folder."""
        self._toMrc(self.inputVolume.get(), self._getExtraPath(INPUT_MAP))
        if self.inputMask.hasValue():
            self._toMrc(self.inputMask.get(), self._getExtraPath(INPUT_MASK))

    def predictStep(self):
        from ..core.pipeline import PredictOptions, run_predict

        options = PredictOptions(
            mask=self._getExtraPath(INPUT_MASK) if self.inputMask.hasValue() else None,
            range_name=self.getRangeName(), model=self.getModelPath(),
            sampling=self.inputVolume.get().getSamplingRate(),
            device="gpu" if self.useGpu.get() and self._gpuAvailable() else "cpu")
        run_predict(self._getExtraPath(INPUT_MAP), self._getExtraPath(OUTPUT_DIR), options)

    def createOutputStep(self):
        volume = self.inputVolume.get()
        output = Volume()
        output.setFileName(self.getResolutionFile())
        output.setSamplingRate(volume.getSamplingRate())
        output.setOrigin(volume.getOrigin(force=True))
        with open(self.getOutputFile("summary.json")) as handle:
            summary = json.load(handle)
        for name, key in (("medianResolution", "median"), ("minResolution", "min"), ("maxResolution", "max"),
                          ("percentile20", "percentile_20"), ("percentile80", "percentile_80")):
            setattr(self, name, pwobj.Float(summary[key]))
        condition = summary.get("map_condition", {})
        if condition.get("bfactor_A2") is not None:
            self.mapBfactor = pwobj.Float(condition["bfactor_A2"])
        self.solventState = pwobj.String(condition.get("solvent", ""))
        if condition.get("noise_to_signal") is not None:
            self.noiseToSignal = pwobj.Float(condition["noise_to_signal"])
        self.mapWarnings = pwobj.String("\n".join(summary.get("warnings", [])))
        self._defineOutputs(**{outputs.resolution_Volume.name: output})
        self._defineSourceRelation(self.inputVolume, output)

    # --------------------------- UTILS functions -----------------------------------------
    def getRangeName(self):
        return constants.RANGE_NAMES[self.resolutionRange.get()]

    def getModelPath(self):
        """The chosen network's path, or None for the shipped one."""
        choice = self.modelChoice.get()
        if choice == constants.MODEL_TRAINED:
            return self.trainedModel.get().getFileName() if self.trainedModel.hasValue() else ""
        return self.customModel.get() or "" if choice == constants.MODEL_FILE else None

    def getResolutionFile(self):
        return self._getExtraPath(OUTPUT_DIR, "resolution.mrc")

    def getOutputFile(self, name):
        """A file of the prediction's output folder (summary.json, chimerax.cxc, ...)."""
        return self._getExtraPath(OUTPUT_DIR, name)

    @staticmethod
    def _toMrc(image, target):
        """Copy MRC files as they are (Xmipp's converter misreads signed 8-bit MRC data);
        convert other formats with Scipion's image handler."""
        source = image.getFileName().split(":")[0]
        if source.lower().endswith(MRC_SUFFIXES):
            shutil.copyfile(source, target)
        else:
            ImageHandler().convert(image, target)

    @staticmethod
    def _gpuAvailable():
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))

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
        return [f"Median local resolution {self.medianResolution.get():.2f} Å "
                f"(20th-80th percentile {self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å, "
                f"range {self.minResolution.get():.2f}-{self.maxResolution.get():.2f} Å), "
                f"{self.getRangeName()} network."] + self._conditionSummary()

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
        return [f"The local resolution of {self.getObjectTag('inputVolume')} was estimated with DeepRes "
                f"[RamirezAportela2019] ({self.getRangeName()} network, "
                f"{RANGES[self.getRangeName()].min_resolution:g}-{RANGES[self.getRangeName()].max_resolution:g} A). "
                f"The median local resolution was {self.medianResolution.get():.2f} A, with 20% of the voxels "
                f"better than {self.percentile20.get():.2f} A."]

    def _citations(self):
        return [constants.DEEPRES_CITATION]
