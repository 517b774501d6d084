"""DeepRes local resolution as a Scipion protocol, for one map or for a set of maps: each
prediction is ``deepres predict`` (:func:`deepres_plugin.core.pipeline.run_predict`) run as a
process of its own with the computation's Python (:class:`deepres_plugin.Plugin`).

A set is analysed map by map: one conversion step, then one prediction step per map (Scipion
runs them in parallel, one per thread of the form beyond the first), then one step that
registers the set of resolution maps. Each map keeps what a single map keeps (converted
input and mask, run folder) in a folder of its own (:func:`.core.outputs.protocol_volume_dir`).
"""
import os
from enum import Enum

import pyworkflow.object as pwobj
from pwem.objects import SetOfVolumes, Volume, VolumeMask
from pyworkflow.protocol import STEPS_PARALLEL, params

from .. import constants
from ..core.diagnostics import AUDIENCE_SCIPION, check_map_for_range, geometry_warnings
from ..core.errors import MapFormatError, ParameterError
from ..core.mrc import check_map_file, voxel_size_warning
from ..core.outputs import MASK_FILE, RESOLUTION_FILE, ReportSummary
from ..core.ranges import (
    AUTO_HIGH_BELOW_A,
    AUTO_HIGH_SHARE,
    AUTO_RANGE,
    HIGH,
    WIDE,
    first_range_name,
    get_range,
)
from .base import (
    MRC_SUFFIXES,
    ProtDeepResBase,
    defineGpuParams,
    defineNetworkParams,
    gridErrors,
    samplingErrors,
    sourceFile,
    validateNetwork,
)
from .files import INPUT_MAP, INPUT_MASK, PROTOCOL_DIRS, protocol_volume_dir


class outputs(Enum):
    resolution_Volume = Volume
    outputMask = VolumeMask
    resolution_SetOfVolumes = SetOfVolumes


#: The figures each resolution map of a set carries as attributes, in Å ...
ITEM_MEDIAN, ITEM_PERCENTILE20, ITEM_PERCENTILE80 = "_deepres_median", "_deepres_percentile20", "_deepres_percentile80"
ITEM_MIN, ITEM_MAX = "_deepres_min", "_deepres_max"
#: ... and the summary field each one is read from (:class:`~deepres_plugin.core.outputs.ReportSummary`).
ITEM_FIGURES = {ITEM_MEDIAN: "median", ITEM_PERCENTILE20: "percentile_20", ITEM_PERCENTILE80: "percentile_80",
                ITEM_MIN: "min", ITEM_MAX: "max"}
#: Further attributes of each resolution map of a set: voxels estimated, and the network.
ITEM_VOXELS = "_deepres_voxels"
ITEM_NETWORK = "_deepres_network"


class ProtDeepResLocalResolution(ProtDeepResBase):
    """Local resolution of a cryo-EM map with DeepRes (Ramirez-Aportela et al., IUCrJ 2019).

    A 3D convolutional network trained on maps simulated from atomic models estimates at
    every voxel of the mask where the map shows density the resolution at which the map
    looks as it does in a 13^3 box around it. Unlike FSC/SNR methods it needs no half maps and no noise estimate,
    and it follows B-factor sharpening, denoising and masking.
    """

    # the protocol tree shows about 14 characters of "deepres - <label>": every label starts differently
    _label = "estimate local resolution"
    _possibleOutputs = outputs
    _runFolder = "local_resolution"
    # the maps of a set are predicted in parallel; a single map's steps stay a chain
    stepsExecutionMode = STEPS_PARALLEL
    #: Scipion keeps one thread for itself: below this many, steps in parallel would run one
    #: at a time plus the executor's 3 s polls, so the steps run serially and each prediction
    #: gets the threads.
    MIN_PARALLEL_THREADS = 3

    def modeParallel(self):
        return super().modeParallel() and self.numberOfThreads.get() >= self.MIN_PARALLEL_THREADS

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume,SetOfVolumes", important=True,
                      label="Input map(s)",
                      help="The map to analyse: the full (sharpened or not) map, not a half map. "
                           "Its sampling rate is taken from Scipion, not from the file header. "
                           "A set of maps is analysed map by map, one prediction step per map, run in "
                           "parallel with the threads of the Parallelization section; the output is a "
                           "set of resolution maps with each map's figures.")
        form.addParam("inputMask", params.PointerParam, pointerClass="VolumeMask", allowsNull=True,
                      label="Mask (optional)",
                      help="The voxels to estimate, on the map's grid (binary, or soft: values above 0.5 "
                           "are used); with a set, the mask is used for every map. Leave empty for an "
                           "automatic mask, made from each map: the map is low-passed at 8 Å "
                           "(Gaussian), thresholded at Otsu's level, small blobs are dropped, cavities "
                           "filled and the envelope dilated by 3 Å. With a mask, its voxels outside that "
                           "envelope (solvent inside a loose mask) get no estimate, and the summary says "
                           "how many.")
        form.addParam("resolutionRange", params.EnumParam, choices=constants.PREDICTION_RANGE_LABELS,
                      default=constants.RANGE_AUTO, display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution range",
                      help="wide: for maps whose local resolution lies between 2.5 and 13 Å (the network "
                           "works at 1 Å/px). high: for maps between 1.5 and 6 Å (works at 0.5 Å/px). "
                           f"auto: the wide network reads the map first; the high one reads it again when "
                           f"{100 * AUTO_HIGH_SHARE:.0f} % of the voxels read finer than {AUTO_HIGH_BELOW_A:g} Å "
                           "(the summary says which range was used and why; with a trained network or a "
                           "file, that network's range). The map is resampled to the network's pixel size "
                           "and the result brought back to the map's grid. A run whose values pile up at "
                           "its range's limit warns and names the other range.")
        defineNetworkParams(form)
        defineGpuParams(form)
        # threads run the predictions of a set at once, each a process of its own (one per
        # thread beyond the first); one map's prediction gets the threads (docs/scipion.md)
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        if self.isSetInput():
            self._insertSetSteps()
            return
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.predictStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _insertSetSteps(self):
        """One conversion step, one prediction step per map (each with the map's id and
        Scipion's sampling rate), and the output step once every prediction is done. With the
        GPU off, the predictions claim no GPU slot: Scipion runs as many at once as threads."""
        convertId = self._insertFunctionStep(self.convertSetStep, needsGPU=False)
        predictIds = [self._insertFunctionStep(self.predictVolumeStep, volume.getObjId(), volume.getSamplingRate(),
                                               prerequisites=[convertId], needsGPU=self.useGpu.get())
                      for volume in self.inputVolume.get().iterItems(orderBy="id")]
        self._insertFunctionStep(self.createSetOutputStep, prerequisites=predictIds, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def convertInputStep(self):
        """The input map (and mask) as MRC files in the extra folder."""
        self._toMrc(self.inputVolume.get(), self._getExtraPath(INPUT_MAP))
        if self.inputMask.hasValue():
            self._toMrc(self.inputMask.get(), self._getExtraPath(INPUT_MASK), self.inputVolume.get())

    def predictStep(self):
        self.runDeepRes("predict", self.predictArguments(self._getExtraPath(INPUT_MAP), self.getOutputFile(),
                                                         self._getExtraPath(INPUT_MASK),
                                                         self.inputVolume.get().getSamplingRate()),
                        gpu=True, threads=self.numberOfThreads.get())
        self.logLines(self.summaryLines(self.readSummary(), "DeepRes local resolution"))

    def predictArguments(self, mapPath, outDir, maskPath, sampling):
        """The ``deepres predict`` command line of one map (the mask's path is used when the
        form has a mask)."""
        arguments = [mapPath, "--out", outDir, "--range", self.getRangeName(), "--sampling", f"{sampling:.6g}",
                     "--audience", AUDIENCE_SCIPION, "--no-progress"]
        if self.inputMask.hasValue():
            arguments += ["--mask", maskPath]
        if self.getNetworkPath():
            arguments += ["--model", self.getNetworkPath()]
        return arguments

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
        self.leftOut = pwobj.String(summary.left_out or "")
        self.networkName = pwobj.String(summary.network)
        self.rangeUsed = pwobj.String(summary.range_name)
        self._defineOutputs(**{outputs.resolution_Volume.name: output})
        self._defineSourceRelation(self.inputVolume, output)
        if not self.inputMask.hasValue():          # the automatic mask, for reuse in other protocols
            mask = self._outputVolume(self.getOutputFile(MASK_FILE), volume, VolumeMask)
            self._defineOutputs(**{outputs.outputMask.name: mask})
            self._defineSourceRelation(self.inputVolume, mask)

    def convertSetStep(self):
        """Each map of the set (and the mask, placed on that map's grid) as MRC files in the
        map's folder."""
        for volume in self.inputVolume.get().iterItems(orderBy="id"):
            os.makedirs(self.getVolumePath(volume.getObjId()), exist_ok=True)
            self._toMrc(volume, self.getVolumePath(volume.getObjId(), INPUT_MAP))
            if self.inputMask.hasValue():
                self._toMrc(self.inputMask.get(), self.getVolumePath(volume.getObjId(), INPUT_MASK), volume)

    def predictVolumeStep(self, volumeId, sampling):
        """The prediction of one map of the set, in the map's run folder: a process of its own,
        beside the other maps' (one thread each; the GPUs Scipion gave this step), or, with
        fewer than :attr:`MIN_PARALLEL_THREADS` threads, one after the other with the threads."""
        self.runDeepRes("predict", self.predictArguments(self.getVolumePath(volumeId, INPUT_MAP),
                                                         self.getVolumeOutputFile(volumeId),
                                                         self.getVolumePath(volumeId, INPUT_MASK), sampling),
                        gpu=True, threads=1 if self.modeParallel() else self.numberOfThreads.get())
        summary = ReportSummary.read(self.getVolumeOutputFile(volumeId))
        self.logLines([f"Map {volumeId}: {line}" for line in self.summaryLines(summary, "DeepRes local resolution")])

    def createSetOutputStep(self):
        """The set of resolution maps: each with its input map's id, name, sampling rate and
        origin, and its figures as attributes (:data:`ITEM_FIGURES`, in Å)."""
        inputSet = self.inputVolume.get()
        outputSet = self._createSetOfVolumes()
        outputSet.setSamplingRate(inputSet.getSamplingRate())
        for volume in inputSet.iterItems(orderBy="id"):
            volumeId = volume.getObjId()
            output = self._outputVolume(self.getVolumeOutputFile(volumeId, RESOLUTION_FILE), volume)
            output.setObjId(volumeId)
            output.setObjLabel(self.volumeName(volume))
            summary = ReportSummary.read(self.getVolumeOutputFile(volumeId))
            for attribute, field in ITEM_FIGURES.items():
                setattr(output, attribute, pwobj.Float(getattr(summary, field)))
            setattr(output, ITEM_VOXELS, pwobj.Integer(summary.voxels))
            setattr(output, ITEM_NETWORK, pwobj.String(summary.network))
            outputSet.append(output)
        self._defineOutputs(**{outputs.resolution_SetOfVolumes.name: outputSet})
        self._defineSourceRelation(self.inputVolume, outputSet)

    # --------------------------- UTILS functions -----------------------------------------
    def isSetInput(self):
        """Whether the input is a set of maps (a SetOfVolumes) rather than one map."""
        return isinstance(self.inputVolume.get(), SetOfVolumes)

    def getReferenceVolume(self):
        """The Volume whose sampling rate and origin the outputs take."""
        return self.inputVolume.get()

    def getVolumePath(self, volumeId, *names):
        """The folder of the map with id ``volumeId`` of a set (or a file in it)."""
        return self._getExtraPath(protocol_volume_dir(volumeId), *names)

    def getVolumeOutputFile(self, volumeId, *names):
        """The run folder of the map with id ``volumeId`` of a set (or a file in it)."""
        return self.getVolumePath(volumeId, PROTOCOL_DIRS[self._runFolder], *names)

    @staticmethod
    def volumeName(volume):
        """A map's name for messages: its label, or its file's name."""
        return volume.getObjLabel() or os.path.basename(sourceFile(volume))

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        inputObject = self.inputVolume.get()
        if inputObject is None:
            return ["Choose an input map."]
        if not self.isSetInput():
            return self._volumeErrors(inputObject) + validateNetwork(self)
        if not inputObject.getSize():
            return ["The input set has no maps."]
        errors = []
        for volume in inputObject.iterItems(orderBy="id"):
            errors += [f"Map {volume.getObjId()} ({self.volumeName(volume)}): {error}"
                       for error in self._volumeErrors(volume)]
        return errors + validateNetwork(self)

    def _volumeErrors(self, volume):
        """The errors about one map and the mask on its grid."""
        errors = []
        errors += samplingErrors(volume)
        if self.inputMask.hasValue():
            errors += gridErrors(self.inputMask.get(), volume, "the mask", checkOrigin=False,
                                 advice="give a mask on the map's grid")
        source = sourceFile(volume)
        try:
            if source.lower().endswith(MRC_SUFFIXES):
                check_map_file(source)
            check_map_for_range(volume.getSamplingRate(), volume.getDim(), get_range(first_range_name(
                self.getRangeName())))
        except (MapFormatError, ParameterError) as exc:
            errors.append(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        return errors

    def _warnings(self):
        warnings = []
        inputObject = self.inputVolume.get()
        volumes = [] if inputObject is None else (
            inputObject.iterItems(orderBy="id") if self.isSetInput() else [inputObject])
        for volume in volumes:
            for warning in geometry_warnings(volume.getSamplingRate(), volume.getDim(),
                                             get_range(first_range_name(self.getRangeName()))):
                warning = f"{warning[0].upper()}{warning[1:]}."
                if warning not in warnings:           # the maps of a set mostly share their geometry
                    warnings.append(warning)
            warning = self._voxelSizeWarning(volume)
            if warning:
                warnings.append(warning)
        return warnings

    @staticmethod
    def _voxelSizeWarning(volume):
        """The core's question when the sampling rate given in Scipion differs from the file's header."""
        source = sourceFile(volume)
        try:
            header = check_map_file(source)[1][0] if source.lower().endswith(MRC_SUFFIXES) else None
        except MapFormatError:
            return None                               # _validate names what is wrong with the file
        warning = None if header is None else voxel_size_warning(volume.getSamplingRate(), header,
                                                                 os.path.basename(source))
        return None if warning is None else (f"{warning[0].upper()}{warning[1:]} (the import's sampling rate "
                                             "is the one used).")

    def _summary(self):
        if self.isSetInput():
            return self._setSummary()
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return ["The local resolution has not been computed yet."]
        timing = f", {self.runSeconds.get():.1f} s" if hasattr(self, "runSeconds") else ""
        network = f" ({self.networkName.get()})" if hasattr(self, "networkName") else ""
        return [f"Median local resolution {self.medianResolution.get():.2f} Å "
                f"(20th-80th percentile {self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å, "
                f"range {self.minResolution.get():.2f}-{self.maxResolution.get():.2f} Å), "
                f"{self.getUsedRangeName()} network{network}{timing}."] + self._conditionSummary()

    def _setSummary(self):
        """A table of the figures of each map of the set (Å)."""
        outputSet = getattr(self, outputs.resolution_SetOfVolumes.name, None)
        if not self.isFinished() or outputSet is None:
            return ["The local resolution has not been computed yet."]
        items = list(self._iterItemFigures(outputSet))
        perMap = self.getRangeName() == AUTO_RANGE          # each map chose its network
        network = "network chosen for each map" if perMap else \
            f"{self.getRangeName()} network ({items[0][ITEM_NETWORK] if items else ''})"
        lines = [f"Local resolution of {len(items)} maps, {network}: "
                 "median (20th-80th percentile, range), voxels estimated:"]
        for figures in items:
            lines.append(f"Map {figures['id']} ({figures['name']}): {figures[ITEM_MEDIAN]:.2f} Å "
                         f"({figures[ITEM_PERCENTILE20]:.2f}-{figures[ITEM_PERCENTILE80]:.2f} Å, "
                         f"{figures[ITEM_MIN]:.2f}-{figures[ITEM_MAX]:.2f} Å), "
                         f"{figures[ITEM_VOXELS]} voxels" + (f", {figures[ITEM_NETWORK]}." if perMap else "."))
        return lines

    @staticmethod
    def _iterItemFigures(outputSet):
        """Each resolution map's id, name and figures, as a dict (the set reuses one item
        object while it iterates)."""
        for item in outputSet.iterItems(orderBy="id"):
            figures = {attribute: getattr(item, attribute).get() for attribute in (*ITEM_FIGURES, ITEM_VOXELS,
                                                                                    ITEM_NETWORK)}
            yield {"id": item.getObjId(), "name": item.getObjLabel(), **figures}

    def _conditionSummary(self):
        """The map's B-factor, noise and solvent as measured by the prediction, and its warnings."""
        lines = []
        if hasattr(self, "leftOut") and self.leftOut.get():
            lines.append(f"{self.leftOut.get()}.")
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
        if self.getUsedRangeName() == AUTO_RANGE:       # a set: each map chose its range
            method = (f"DeepRes [{constants.DEEPRES_CITATION}] (wide network, {WIDE.min_resolution:g}-"
                      f"{WIDE.max_resolution:g} Å, or the high network, {HIGH.min_resolution:g}-"
                      f"{HIGH.max_resolution:g} Å, for maps of which it read {100 * AUTO_HIGH_SHARE:.0f} % finer "
                      f"than {AUTO_HIGH_BELOW_A:g} Å)")
        else:
            resolutionRange = get_range(self.getUsedRangeName())
            method = (f"DeepRes [{constants.DEEPRES_CITATION}] ({resolutionRange.name} network, "
                      f"{resolutionRange.min_resolution:g}-{resolutionRange.max_resolution:g} Å)")
        if self.isSetInput():
            outputSet = getattr(self, outputs.resolution_SetOfVolumes.name, None)
            if not self.isFinished() or outputSet is None:
                return []
            medians = [f"{figures[ITEM_MEDIAN]:.2f} Å ({figures['name']})"
                       for figures in self._iterItemFigures(outputSet)]
            listed = ", ".join(medians[:-1]) + f" and {medians[-1]}" if len(medians) > 1 else "".join(medians)
            return [f"The local resolution of each of the {len(medians)} maps of {self.getObjectTag('inputVolume')} "
                    f"was estimated with {method}. {self.maskMethods('each map')} The median local resolutions "
                    f"were {listed}."]
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return []
        return [f"The local resolution of {self.getObjectTag('inputVolume')} was estimated with {method}. "
                f"{self.maskMethods()} The median local resolution was {self.medianResolution.get():.2f} Å "
                f"(20th-80th percentile {self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å)."]

    def _citations(self):
        return [constants.DEEPRES_CITATION]
