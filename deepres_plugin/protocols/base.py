"""What every DeepRes protocol shares: the run folder (names from :mod:`deepres_plugin.core.outputs`),
input conversion that keeps Scipion's origin, the network and GPU parameters (the form's GPU
list is honoured), output volumes with the input's sampling and origin, and run-log lines
with the figures of the run's summary.
"""
import os
import shlex
import shutil

import mrcfile
import numpy as np
import pyworkflow.object as pwobj
from pwem.emlib.image import ImageHandler
from pwem.objects import Volume
from pwem.protocols import ProtAnalysis3D
from pyworkflow import BETA
from pyworkflow.protocol import params

from .. import constants
from ..core.errors import DeepResError, ParameterError
from ..core.masks import automatic_mask_description
from ..core.models import shipped_model_path
from ..core.mrc import ORIGIN_TOLERANCE_VOXELS, check_voxel_size, same_voxel_size
from ..core.networks import read_model_info
from ..core.outputs import RESOLUTION_FILE, ReportSummary
from ..core.ranges import AUTO_RANGE, RANGES
from .files import PROTOCOL_DIRS

#: Files copied as they are (Xmipp's converter misreads signed 8-bit MRC); others are converted.
MRC_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrc.gz", ".map.gz", ".ccp4.gz", ".rec")
COMPRESSED_SUFFIXES = (".gz", ".bz2")


def sourceFile(image):
    """The file of an image object, without Scipion's ``:mrc``-style suffix."""
    return image.getFileName().split(":")[0]


def scipionOrigin(image):
    """Where Scipion places an image's first voxel (x, y, z; Å): its origin shifts, which Scipion
    writes as the MRC header origin (``Ccp4Header.fixFile``) and gives ChimeraX as ``volume
    origin``; the import form's x, y, z are their negatives (the wizard reads minus the header)."""
    return tuple(float(v) for v in image.getShiftsFromOrigin())


def gridErrors(volume, reference, what, referenceWhat="the map", checkOrigin=True,
               advice="compute the local resolution on the map's grid"):
    """One-line errors when ``volume`` does not lie on ``reference``'s grid: other dimensions
    or sampling rate (:func:`~deepres_plugin.core.mrc.same_voxel_size`), or (``checkOrigin``)
    an origin further than half a voxel away. The one grid check of every protocol's inputs."""
    sampling = reference.getSamplingRate()

    def describe(image):
        return f"{' x '.join(str(n) for n in image.getDim())} voxels of {image.getSamplingRate():g} Å"

    what = f"{what[0].upper()}{what[1:]}"
    if tuple(volume.getDim()) != tuple(reference.getDim()) \
            or not same_voxel_size(volume.getSamplingRate(), sampling):
        return [f"{what} ({describe(volume)}) and {referenceWhat} ({describe(reference)}) lie on different grids; "
                f"{advice}."]
    shifts = [np.array(image.getShiftsFromOrigin(), float) for image in (volume, reference)]
    if checkOrigin and np.max(np.abs(shifts[0] - shifts[1])) > ORIGIN_TOLERANCE_VOXELS * sampling:
        text = [", ".join(f"{v:g}" for v in shift) for shift in shifts]
        return [f"{what} and {referenceWhat} have different origins in Scipion (shifts {text[0]} and {text[1]} Å): "
                "they lie on different grids; give both the same origin."]
    return []


def samplingErrors(volume, what="the map"):
    """The core's voxel-size check (:func:`~deepres_plugin.core.mrc.check_voxel_size`) on a
    Volume's sampling rate, as ``_validate`` errors: the command line refuses the same."""
    try:
        check_voxel_size(volume.getSamplingRate(), what)
    except DeepResError as exc:
        message = str(exc)
        return [f"{message[0].upper()}{message[1:]} (the sampling rate of its import)."]
    return []


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
    """The GPU parameters of the protocols that run TensorFlow (Scipion's hidden pair)."""
    form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                   label="Use GPU", help="TensorFlow runs on the GPUs of the list when there are any.")
    form.addHidden(params.GPU_LIST, params.StringParam, default="0", label="GPU ids",
                   help="Comma-separated GPU ids; TensorFlow sees only these (CUDA_VISIBLE_DEVICES).")


def validateNetwork(protocol) -> list:
    """Errors about the network chosen on ``protocol`` (missing file, or made for another range)."""
    errors = []
    auto = protocol.getRangeName() == AUTO_RANGE
    try:
        if protocol.modelChoice.get() == constants.MODEL_SHIPPED:
            for rangeName in (RANGES if auto else [protocol.getRangeName()]):
                shipped_model_path(rangeName)
        else:
            info = read_model_info(protocol.getNetworkPath())
            if not auto and info.range_name != protocol.getRangeName():
                errors.append(f"The chosen network is a '{info.range_name}' network; choose that range.")
    except ParameterError as exc:
        errors.append(f"Network: {exc}")
    return errors


def computeDevice(protocol):
    """``(arguments, gpus)`` for a computation step: the ``--device`` option of the command and
    the GPU ids its process may see (:meth:`~deepres_plugin.plugin.Plugin.getEnviron`): none
    with the GPU off; in a queue job that was given GPUs (Slurm sets CUDA_VISIBLE_DEVICES),
    those (None: the job's environment as it is; the form's ids name the GPUs of the machine
    the form was filled on); else the ids Scipion's executor assigned to this step (each
    step of a set its own, when the list has several), each once."""
    if not protocol.useGpu.get():
        return ["--device", "cpu"], []
    if protocol.useQueue() and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return ["--device", "auto"], None
    executor = getattr(protocol, "_stepsExecutor", None)
    gpus = executor.getGpuList() if executor is not None else None
    if gpus is None:
        gpus = protocol.getGpuList()
    return ["--device", "auto"], list(dict.fromkeys(str(g) for g in gpus))


class ProtDeepResBase(ProtAnalysis3D):
    """Base of the DeepRes analysis protocols (not offered to users)."""

    _label = None
    _devStatus = BETA
    #: Key of the run folder in :data:`.files.PROTOCOL_DIRS`.
    _runFolder = None

    # --------------------------- UTILS functions -----------------------------------------
    def getRangeName(self):
        """The range chosen in the form (``wide``, ``high`` or, where offered, ``auto``)."""
        return constants.RANGE_NAMES[self.resolutionRange.get()]

    def getUsedRangeName(self):
        """The range the run used (``auto`` resolved), or the form's before the run."""
        return self.rangeUsed.get() if hasattr(self, "rangeUsed") else self.getRangeName()

    def getNetworkPath(self):
        """The chosen network's path, or None for the shipped one."""
        choice = self.modelChoice.get()
        if choice == constants.MODEL_TRAINED:
            return self.trainedModel.get().getFileName() if self.trainedModel.hasValue() else ""
        return self.customModel.get() or "" if choice == constants.MODEL_FILE else None

    def getOutputFile(self, *names):
        """A file of the run folder the core writes (summary.json, chimerax.cxc, ...)."""
        return self._getExtraPath(PROTOCOL_DIRS[self._runFolder], *names)

    def getResolutionFile(self):
        return self.getOutputFile(RESOLUTION_FILE)

    def readSummary(self, *folder):
        """The run's summary (typed, :class:`~deepres_plugin.core.outputs.ReportSummary`)."""
        return ReportSummary.read(self.getOutputFile(*folder))

    def storeFigures(self, summary):
        """Keep a report summary's figures on the protocol (for its summary and Methods)."""
        for name, value in (("medianResolution", summary.median), ("minResolution", summary.min),
                            ("maxResolution", summary.max), ("percentile20", summary.percentile_20),
                            ("percentile80", summary.percentile_80)):
            setattr(self, name, pwobj.Float(value))
        if summary.run_seconds is not None:
            self.runSeconds = pwobj.Float(summary.run_seconds)

    def runDeepRes(self, command, arguments, gpu=False, threads=1, deviceOption=True):
        """Run ``deepres COMMAND ARGUMENTS`` as a process of its own (Scipion's ``runJob``) with
        the computation's Python and an explicit environment (:class:`deepres_plugin.Plugin`):
        the step's GPUs when ``gpu`` (:func:`computeDevice`; else none; ``deviceOption``: the
        command takes ``--device``), ``threads`` threads
        for the numerical libraries. Its log and messages go to the run log, in order; a
        failure fails the step with the command's one-line message."""
        from .. import Plugin

        arguments = [command] + [str(a) for a in arguments]
        gpus = []
        if gpu:
            device, gpus = computeDevice(self)
            arguments += device if deviceOption else []
        try:
            self.runJob(Plugin.getProgram(), " ".join(shlex.quote(a) for a in arguments) + " 2>&1",
                        env=Plugin.getEnviron(gpus, threads), numberOfMpi=1, numberOfThreads=1)
        except Exception as exc:
            message = self._commandError(command)
            if message is None:
                raise
            raise RuntimeError(message) from exc

    def _commandError(self, command):
        """The last ``deepres COMMAND: ...`` (or the parser's ``deepres: ...``) line of the run
        log, a failed command's one line, or None."""
        prefixes = (f"deepres {command}: ", "deepres: ")
        try:
            with open(self.getLogPaths()[0], errors="replace") as log:
                lines = [line.strip() for line in log if line.startswith(prefixes)]
        except OSError:
            return None
        return lines[-1].split(": ", 1)[1] if lines else None

    def logLines(self, lines):
        """Write lines into the run log (Scipion's run.stdout)."""
        for line in lines:
            self.info(line)

    def maskMethods(self, madeFrom="the map"):
        """The Methods sentence that names the mask (``inputMask``): the user's, by its object
        tag, or the automatic one, made from ``madeFrom``, and how it is made."""
        if self.inputMask.hasValue():
            return f"The mask was {self.getObjectTag('inputMask')}."
        return f"The mask was made automatically from {madeFrom}, {automatic_mask_description()}."

    @staticmethod
    def _toMrc(image, target, reference=None):
        """An image object as an MRC file: MRC files copied as they are, other formats
        converted with Scipion's image handler; the header origin set to ``reference``'s (by
        default the image's own), so the core's outputs and scripts place the map where
        Scipion does. A mask takes its map's origin: it is used voxel for voxel on the map's
        grid (checked by ``_validate``), whatever origin its import gave it."""
        ProtDeepResBase._fileToMrc(sourceFile(image), target)
        with mrcfile.open(target, mode="r+", permissive=True) as mrc:
            mrc.header.origin = scipionOrigin(reference or image)

    @staticmethod
    def _fileToMrc(path, target):
        """Copy an MRC file as it is, decompress a compressed one (.gz, .bz2) with the core's
        reader; convert other formats with Scipion's image handler."""
        if path.lower().endswith(COMPRESSED_SUFFIXES):
            from ..core.mrc import read_map, write_map

            write_map(target, *read_map(path))
        elif path.lower().endswith(MRC_SUFFIXES):
            shutil.copyfile(path, target)
        else:
            ImageHandler().convert(path, target)

    def _outputVolume(self, path, reference=None, volumeClass=Volume):
        """A Volume (or ``volumeClass``) of ``path`` with ``reference``'s sampling rate and origin
        (by default the input map's: ``getReferenceVolume``)."""
        reference = reference or self.getReferenceVolume()
        output = volumeClass()
        output.setFileName(path)
        output.setSamplingRate(reference.getSamplingRate())
        output.setOrigin(reference.getOrigin(force=True).clone())   # a copy: two outputs cannot share one
        return output

    @staticmethod
    def summaryLines(summary, what="Local resolution"):
        """The figures of a report summary (:class:`~deepres_plugin.core.outputs.ReportSummary`)
        as run-log lines, in Å. Not its warnings nor the mask's voxels left without an estimate:
        the core logs those into the run log as they arise (once)."""
        lines = [f"{what}: median {summary.median:.2f} Å, 20th-80th percentile {summary.percentile_20:.2f}-"
                 f"{summary.percentile_80:.2f} Å, range {summary.min:.2f}-{summary.max:.2f} Å, "
                 f"{summary.voxels} voxels."]
        if summary.network:
            lines.append(f"Network: {summary.network} ({summary.range_name} range); map "
                         f"{summary.input_voxel_size:g} Å/px, network {summary.model_voxel_size:g} Å/px.")
        if summary.mask:
            lines.append(f"Mask: {summary.mask}.")
        if summary.run_seconds is not None:
            lines.append(f"Time: {summary.run_seconds:.1f} s.")
        return lines
