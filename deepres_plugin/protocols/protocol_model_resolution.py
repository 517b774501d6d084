"""Local resolution per residue of an atomic model as a Scipion protocol: a thin layer over
:func:`deepres_plugin.core.pipeline.run_residues`."""
import os
from enum import Enum

import numpy as np
import pyworkflow.object as pwobj
from pwem.objects import AtomStruct
from pyworkflow.protocol import params

from .. import constants
from ..core.errors import DeepResError, StructureError
from ..core.mrc import MapGeometry, read_header_geometry
from ..core.outputs import RESIDUE_FILES, ResiduesSummary
from ..core.pipeline import ResidueOptions
from ..core.residues import ATTRIBUTE, INSIDE, model_and_box_spans, sample_at_atoms
from .base import scipionOrigin, sourceFile
from .base_resolution_map import ProtDeepResResolutionMapBase


class outputs(Enum):
    outputAtomStruct = AtomStruct


class ProtDeepResModelResolution(ProtDeepResResolutionMapBase):
    """Local resolution per residue of an atomic model placed on the map.

    The local-resolution map is read at every atom (trilinear interpolation over the voxels
    with an estimate; hydrogens and waters left out); each residue gets the median and the
    20th/80th percentiles of its atoms, each chain the same figures over its residues. The
    output is the model with each residue's median in the B-factor column (mmCIF; 0 = no
    estimate), with the table (residues.csv), the plot per chain and a ChimeraX script
    colouring the model in the run folder.
    """

    _label = "per-residue resolution"
    _possibleOutputs = outputs
    _runFolder = "model_resolution"

    # --------------------------- DEFINE param functions ----------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", important=True,
                      label="Atomic model",
                      help="A model placed on the map (PDB or mmCIF, .gz too); its first model is used. Atoms "
                           "outside the map's box or where the resolution map has no estimate are counted, not "
                           "used.")
        self._defineResolutionParams(form)
        form.addParam("compareBfactors", params.BooleanParam, default=ResidueOptions().compare_bfactors,
                      label="Compare with the model's B-factors",
                      help="Spearman's rank correlation between each residue's local resolution and its atoms' "
                           "mean refined B-factor (in the summary and the run log).")

    # --------------------------- INSERT steps functions ----------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.residuesStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------------------
    def residuesStep(self):
        arguments = [self.getResolutionPath(), self.getStructurePath(), "--out", self.getOutputFile()]
        if self.getMapPath():
            arguments += ["--map", self.getMapPath()]
        if self.compareBfactors.get():
            arguments.append("--compare-bfactors")
        self.runDeepRes("residues", arguments)
        summary = self.getResiduesSummary()
        self.logLines(self.residueLines(summary) + self.chainLines(summary))

    def createOutputStep(self):
        summary = self.getResiduesSummary()
        self.medianResolution = pwobj.Float(summary.median)
        self.percentile20 = pwobj.Float(summary.percentile_20)
        self.percentile80 = pwobj.Float(summary.percentile_80)
        self.residueCount = pwobj.Integer(summary.residues)
        self.residuesEstimated = pwobj.Integer(summary.residues_estimated)
        self.atomsOutsideMap = pwobj.Integer(summary.atoms_outside_map)
        self.atomsOutsideRegion = pwobj.Integer(summary.atoms_outside_region)
        self.chainFigures = pwobj.String("\n".join(self.chainLines(summary)))
        if summary.bfactor_correlation is not None:
            self.bfactorCorrelation = pwobj.Float(summary.bfactor_correlation)
        self.runSeconds = pwobj.Float(summary.run_seconds)

        output = AtomStruct(filename=self.getOutputFile(RESIDUE_FILES["model_cif"]))
        mapPath = self.getMapPath()
        if self.inputVolume.hasValue():
            output.setVolume(self.inputVolume.get())
        elif mapPath is not None:
            output.setVolume(self._outputVolume(mapPath, self.inputResolution.get()))
        output.medianResolution = pwobj.Float(summary.median)        # the figures travel with the model
        output.residuesTable = pwobj.String(self.getOutputFile(RESIDUE_FILES["csv"]))
        self._defineOutputs(**{outputs.outputAtomStruct.name: output})
        self._defineSourceRelation(self.inputStructure, output)
        self._defineSourceRelation(self.inputResolution, output)

    # --------------------------- UTILS functions -----------------------------------------
    def getStructurePath(self):
        """The model's file (absolute), read in place."""
        return self._projectFile(sourceFile(self.inputStructure.get()))

    def getResiduesSummary(self):
        """The run's summary (typed, :class:`~deepres_plugin.core.outputs.ResiduesSummary`)."""
        return ResiduesSummary.read(self.getOutputFile())

    @staticmethod
    def residueLines(summary):
        """The figures over all residues as run-log lines, in Å."""
        lines = [f"Per-residue local resolution: median {summary.median:.2f} Å, 20th-80th percentile "
                 f"{summary.percentile_20:.2f}-{summary.percentile_80:.2f} Å over {summary.residues_estimated} of "
                 f"{summary.residues} residues; {summary.atoms_outside_map} atoms outside the map, "
                 f"{summary.atoms_outside_region} outside the estimated region."]
        if summary.bfactor_correlation is not None:
            lines.append(f"Spearman rank correlation with the refined B-factors: {summary.bfactor_correlation:.2f}.")
        lines.append(f"Time: {summary.run_seconds:.1f} s.")
        return lines

    @staticmethod
    def chainLines(summary):
        """One line per chain: its residues and the figures of their medians, in Å."""
        lines = []
        for chain in summary.chains:
            figures = ("no estimate" if chain.median is None else
                       f"median {chain.median:.2f} Å (20-80 %: {chain.percentile_20:.2f}-{chain.percentile_80:.2f} Å)")
            lines.append(f"Chain {chain.chain}: {chain.residues_estimated} of {chain.residues} residues, {figures}.")
        return lines

    # --------------------------- INFO functions ------------------------------------------
    def _validate(self):
        if self.inputStructure.get() is None:
            return ["Choose an atomic model."]
        errors = self._validateResolutionMap(requireMap=False)
        return errors or self._modelErrors()

    def _modelErrors(self):
        """A model file of another type, unreadable, or with no atom inside the map's box."""
        from ..core.residues import EVERY_ATOM, check_model_name, model_residues
        from ..core.simulate import read_model

        path = self.getStructurePath()
        try:
            check_model_name(path)
            positions = model_residues(read_model(path, EVERY_ATOM)).positions
        except StructureError as exc:
            return [f"{str(exc)[0].upper()}{str(exc)[1:]}."]
        reference = self.getReferenceVolume()
        geometry = MapGeometry(reference.getSamplingRate(), origin=scipionOrigin(reference))
        shape = tuple(reference.getDim())[::-1]
        if positions.size == 0 or self._anyAtomInBox(positions, geometry, shape):
            return []
        return [f"No atom of the model lies inside the map: {model_and_box_spans(positions, geometry, shape)}; "
                f"place the model on the map first.{self._lostOriginHint(positions, shape)}"]

    @staticmethod
    def _anyAtomInBox(positions, geometry, shape):
        """Whether an atom lies in the box of ``shape`` (z, y, x) placed by ``geometry``: sampled
        on a constant map of that shape, without its memory."""
        _, status = sample_at_atoms(np.broadcast_to(np.float32(1), shape), geometry, positions)
        return bool(np.any(status == INSIDE))

    def _lostOriginHint(self, positions, shape):
        """When the map's file places the model inside it but Scipion's origin does not: the
        import dropped the header's origin. Else the general hint."""
        general = (" If the model is fitted to the map as deposited, the map may have lost its origin: a map "
                   "imported with 'Set origin: No' ignores its header's origin; import it again with the origin "
                   "from the header.")
        source = self._projectFile(sourceFile(self.getReferenceVolume()))
        try:
            header = read_header_geometry(source)
        except DeepResError:
            return general
        geometry = MapGeometry(self.getReferenceVolume().getSamplingRate(), origin=header.first_voxel_xyz())
        if not self._anyAtomInBox(positions, geometry, shape):
            return general
        first = ", ".join(f"{v:g}" for v in header.first_voxel_xyz())
        return (f" The map's file ({os.path.basename(source)}) places its first voxel at ({first}) Å, where the model "
                "fits: the import did not keep the header's origin ('Set origin: No'); import the map again with "
                "the origin from the header.")

    def _summary(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return ["The per-residue resolution has not been computed yet."]
        lines = [f"Median per-residue resolution {self.medianResolution.get():.2f} Å (20th-80th percentile "
                 f"{self.percentile20.get():.2f}-{self.percentile80.get():.2f} Å) over {self.residuesEstimated.get()} "
                 f"of {self.residueCount.get()} residues; {self.atomsOutsideMap.get()} atoms outside the map, "
                 f"{self.atomsOutsideRegion.get()} outside the estimated region."]
        lines += self.chainFigures.get().split("\n")
        if hasattr(self, "bfactorCorrelation"):
            lines.append(f"Spearman rank correlation with the refined B-factors: {self.bfactorCorrelation.get():.2f}.")
        return lines

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "medianResolution"):
            return []
        return [f"The local resolution of {self.getObjectTag('inputResolution')} was interpolated (trilinearly, over "
                f"the voxels with an estimate) at the non-hydrogen atoms of {self.getObjectTag('inputStructure')}, and "
                f"each residue was given the median over its atoms, as implemented in the DeepRes plugin "
                f"[{constants.DEEPRES_CITATION}]. The median per-residue resolution was "
                f"{self.medianResolution.get():.2f} Å (20th-80th percentile {self.percentile20.get():.2f}-"
                f"{self.percentile80.get():.2f} Å). The model carries it in the B-factor column and as the ChimeraX "
                f"residue attribute {ATTRIBUTE}."]

    def _citations(self):
        return [constants.DEEPRES_CITATION]
