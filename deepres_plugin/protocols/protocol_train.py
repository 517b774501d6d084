"""Training a custom DeepRes network as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.dataset.generate_dataset` and :func:`deepres_plugin.core.training.train_model`."""
import os
import shutil
from enum import Enum

from pwem.objects import EMFile
from pyworkflow import BETA
from pyworkflow.protocol import params

from .. import constants
from ..core.dataset import DatasetConfig
from ..core.ranges import RANGES
from ..core.train_config import TrainConfig
from .base import ProtDeepResBase, defineGpuParams

#: The core's defaults, shown in the form.
TRAIN_DEFAULTS = TrainConfig("wide")
DATASET_DEFAULTS = DatasetConfig("wide")

SOURCE_OBJECTS = 0
SOURCE_FOLDER = 1
STRUCTURES_DIR = "structures"
DATASET_DIR = "dataset"
NETWORK_FILE = "deepres_custom.keras"


class outputs(Enum):
    outputModel = EMFile


class ProtDeepResTrain(ProtDeepResBase):
    """Train a DeepRes network on maps simulated from your own atomic structures.

    Each structure is simulated with electron scattering factors, low-passed at resolutions
    spread over the chosen range, noised, and cut into 13^3 boxes labelled with their
    resolution; a network is trained on them (Adam, mean squared error, validation on
    whole structures held out). The output network can be chosen in 'deepres - estimate
    local resolution' as a custom network.
    """

    _label = "train model"
    _devStatus = BETA
    _possibleOutputs = outputs

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("source", params.EnumParam, choices=["atomic structures", "folder of PDB/mmCIF files"],
                      default=SOURCE_OBJECTS, display=params.EnumParam.DISPLAY_HLIST, label="Structures from",
                      help="Atomic structures of the project, or a folder of .pdb/.cif files (.gz too).")
        form.addParam("inputStructures", params.MultiPointerParam, pointerClass="AtomStruct,SetOfAtomStructs",
                      condition=f"source=={SOURCE_OBJECTS}", allowsNull=True, label="Atomic structures",
                      help="At least two: whole structures are held out for validation.")
        form.addParam("structuresFolder", params.PathParam, condition=f"source=={SOURCE_FOLDER}", allowsNull=True,
                      label="Folder", help="A folder with .pdb/.cif(.gz) files.")
        form.addParam("resolutionRange", params.EnumParam, choices=constants.RANGE_LABELS,
                      default=constants.RANGE_WIDE, display=params.EnumParam.DISPLAY_HLIST,
                      label="Resolution range", help="wide: 2.5-13 Å at 1 Å/px; high: 1.5-6 Å at 0.5 Å/px.")
        form.addParam("epochs", params.IntParam, default=TRAIN_DEFAULTS.epochs, validators=[params.Positive],
                      label="Epochs (at most)", help="Training stops earlier when validation stops improving.")
        form.addParam("labelsPerStructure", params.IntParam, default=DATASET_DEFAULTS.labels_per_structure,
                      validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Resolutions per structure")
        form.addParam("boxesPerLabel", params.IntParam, default=DATASET_DEFAULTS.boxes_per_label,
                      validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Boxes per resolution")
        form.addParam("seed", params.IntParam, default=TRAIN_DEFAULTS.seed, expertLevel=params.LEVEL_ADVANCED, label="Random seed")
        defineGpuParams(form)
        form.addParallelSection(threads=2, mpi=0)

    def _insertAllSteps(self):
        self._insertFunctionStep(self.collectStructuresStep, needsGPU=False)
        self._insertFunctionStep(self.datasetStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def collectStructuresStep(self):
        folder = self._getExtraPath(STRUCTURES_DIR)
        os.makedirs(folder, exist_ok=True)
        for path in self.getStructureFiles():
            shutil.copy(path, os.path.join(folder, os.path.basename(path)))

    def datasetStep(self):
        self.runDeepRes("dataset", [self._getExtraPath(STRUCTURES_DIR), "--range", self.getRangeName(),
                                    "--out", self._getExtraPath(DATASET_DIR), "--seed", self.seed.get(),
                                    "--labels-per-structure", self.labelsPerStructure.get(),
                                    "--boxes-per-label", self.boxesPerLabel.get(),
                                    "--workers", max(1, self.numberOfThreads.get()), "--no-progress"])

    def trainStep(self):
        # the command logs the validation MAE, best epoch and time into the run log
        self.runDeepRes("train", [self._getExtraPath(DATASET_DIR), "--range", self.getRangeName(),
                                  "--out", self.getModelFile(), "--epochs", self.epochs.get(), "--seed", self.seed.get(),
                                  "--name", f"custom-{self.getRangeName()}-{self.getObjId()}", "--no-progress"],
                        gpu=True, threads=max(1, self.numberOfThreads.get()), deviceOption=False)

    def createOutputStep(self):
        model = EMFile(filename=self.getModelFile())
        self._defineOutputs(**{outputs.outputModel.name: model})

    # --------------------------- UTILS functions -----------------------------------------
    def getModelFile(self):
        return self._getExtraPath(NETWORK_FILE)

    def getStructureFiles(self):
        """Paths of the atomic structures to simulate."""
        if self.source.get() == SOURCE_FOLDER:
            from ..core.dataset import find_structures

            return [str(p) for p in find_structures(self.structuresFolder.get())]
        files = []
        for pointer in self.inputStructures:
            item = pointer.get()
            items = item if hasattr(item, "iterItems") else [item]
            files.extend(structure.getFileName() for structure in items)
        return files

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        from ..core.errors import ParameterError
        from ..core.simulate import check_seed

        try:
            files = self.getStructureFiles()
        except ParameterError as exc:
            return [str(exc)]
        names = [os.path.basename(f) for f in files]
        if len(files) < 2:
            return ["Give at least two structures: whole structures are held out for validation."]
        if len(set(names)) != len(names):
            return ["Two structures have the same file name; rename one."]
        try:
            check_seed(self.seed.get())                 # the core's check: the command refuses the same
        except ParameterError as exc:
            message = str(exc)
            return [f"{message[0].upper()}{message[1:]}."]
        return []

    def _summary(self):
        if not self.isFinished():
            return ["Training has not finished yet."]
        from ..core.networks import read_model_info

        record = read_model_info(self.getModelFile()).training
        return [f"{self.getRangeName()} network: validation MAE {record['val_mae_A']:.2f} Å after "
                f"{record['epochs_run']} epochs (best {record['best_epoch']}), "
                f"{record['dataset_counts']['train']['boxes']} training boxes."]

    def _methods(self):
        if not self.isFinished():
            return []
        resolution_range = RANGES[self.getRangeName()]
        return [f"A DeepRes network [RamirezAportela2019] was trained on maps simulated from "
                f"{len(self.getStructureFiles())} atomic structures and low-pass filtered between "
                f"{resolution_range.min_resolution:g} and {resolution_range.max_resolution:g} Å."]

    def _citations(self):
        return [constants.DEEPRES_CITATION]
