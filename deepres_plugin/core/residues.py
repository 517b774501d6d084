"""Local resolution per residue of an atomic model placed on the map.

* **Atoms**: the first model (``.pdb``, ``.cif``, ``.ent``, ``.mmcif``, gzipped too, read by
  :func:`.simulate.read_model`), hydrogens and waters left out of the figures (every atom
  is kept in the written model).
* **Sampling**: the resolution map is read at each atom's position by trilinear
  interpolation in the map's frame: voxel index ``(position - first voxel) / voxel size``,
  the first voxel placed as ChimeraX places the map (:meth:`.mrc.MapGeometry.first_voxel_xyz`),
  the array indexed [z, y, x]. Voxels without an estimate (value <= 0) are left out of the
  interpolation, the weights of the others renormalised, so an atom at the region's edge
  reads the region's values, not a blend with 0. An atom counts when it lies in the map's
  box (within half a voxel of a voxel centre) and its nearest voxel has an estimate;
  the others are counted per chain as *outside the map* or *outside the estimated region*.
* **Per residue** (chain, number, insertion code, name): the median and the 20th/80th
  percentiles of its atoms' values (numpy's linear interpolation between order statistics),
  computed for every residue at once on the sorted values.
* **Per chain**: the median and percentiles of its residues' medians.
* **B-factors** (optional): Spearman's rank correlation between each residue's median and
  its atoms' mean refined B-factor.

Outputs (:data:`.outputs.RESIDUE_FILES`): the CSV table, a plot per chain along the sequence
of its polymer residues (ligands, glycans and ions are in the table and files only),
a ChimeraX attribute file (``deepres_resolution``, recipient residues) and a script that
colours the model with the palette and key of the map's scripts, and the model with each
residue's median in the B-factor column (mmCIF, and PDB when the model fits that format;
residues without an estimate get 0, as voxels without one do in the map).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from typing import Any

import gemmi
import numpy as np

from .errors import StructureError
from .mrc import MapGeometry
from .outputs import ChainResolution
from .report import (
    DEFAULT_PALETTE,
    FIGURE_DPI,
    RESOLUTION_AXIS_LABEL,
    check_palette,
    palette_stops,
)
from .simulate import MODEL_SUFFIXES, AtomSelection, is_model_file

logger = logging.getLogger(__name__)

#: The ChimeraX residue attribute written into the attribute file.
ATTRIBUTE = "deepres_resolution"
#: Percentiles of the per-residue and per-chain figures (besides the median).
PERCENTILES = (20, 80)
#: Every atom of the file is read (and written back); hydrogens and waters are left out of the figures.
EVERY_ATOM = AtomSelection(keep_hydrogens=True, keep_waters=True, keep_ligands=True)
#: Elements left out of the figures.
HYDROGENS = ("H", "D")
#: B-factor column of residues without an estimate (a resolution map's "no estimate").
NO_ESTIMATE = 0.0
#: A model with fewer of its atoms on voxels with an estimate is questioned (a placed model
#: has most of its atoms inside the map's density envelope; flexible termini and loops
#: outside it are the exception).
MIN_PLACED_ATOM_SHARE = 0.7
#: Chains drawn in the plot (the table has them all).
MAX_PLOT_CHAINS = 12
#: Fewest residues for a rank correlation.
MIN_CORRELATION_RESIDUES = 3
#: How each atom was sampled.
INSIDE, OUTSIDE_MAP, OUTSIDE_REGION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class ModelResidues:
    """The residues and atoms of a model that the figures use.

    Attributes:
        chains, numbers, icodes, names: one entry per residue (insertion code '' when none).
        polymer: whether each residue belongs to a polymer (the plot draws those along the
            sequence; ligands, glycans and ions are in the table and the files).
        atom_residue: index of each atom's residue.
        positions: (N, 3) atom positions (x, y, z) in A.
        bfactors: the atoms' refined B-factors (A^2).
    """

    chains: list[str]
    numbers: np.ndarray
    icodes: list[str]
    names: list[str]
    polymer: np.ndarray
    atom_residue: np.ndarray
    positions: np.ndarray
    bfactors: np.ndarray

    def spec(self, i: int) -> str:
        """ChimeraX specification of residue ``i`` (``/A:123``, ``/A:123B`` with an insertion code)."""
        return f"/{self.chains[i]}:{self.numbers[i]}{self.icodes[i]}"


def is_counted(residue: gemmi.Residue) -> bool:
    """Whether a residue enters the figures (waters do not)."""
    return not residue.is_water()


def model_residues(model: gemmi.Model) -> ModelResidues:
    """The counted residues (:func:`is_counted`) of ``model`` and their non-hydrogen atoms."""
    chains, numbers, icodes, names, polymer, atom_residue, positions, bfactors = [], [], [], [], [], [], [], []
    for chain in model:
        for residue in chain:
            if not is_counted(residue):
                continue
            index = len(names)
            chains.append(chain.name)
            numbers.append(residue.seqid.num)
            icodes.append(residue.seqid.icode.strip())
            names.append(residue.name)
            polymer.append(residue.entity_type == gemmi.EntityType.Polymer)
            for atom in residue:
                if atom.element.name not in HYDROGENS:
                    atom_residue.append(index)
                    positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
                    bfactors.append(atom.b_iso)
    return ModelResidues(chains, np.array(numbers, np.int64), icodes, names, np.array(polymer, bool),
                         np.array(atom_residue, np.int64),
                         np.array(positions, np.float64).reshape(-1, 3), np.array(bfactors, np.float64))


def sample_at_atoms(resolution: np.ndarray, geometry: MapGeometry,
                    positions_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear samples of a resolution map at atom positions (module docstring).

    Args:
        resolution: map [z, y, x], A; values <= 0 mean no estimate.
        geometry: its geometry (voxel size, where its first voxel lies).
        positions_xyz: (N, 3) positions (x, y, z) in A.

    Returns:
        ``(values, status)``: the resolution at each atom (NaN unless sampled) and its
        status, :data:`INSIDE`, :data:`OUTSIDE_MAP` or :data:`OUTSIDE_REGION`.
    """
    shape = np.array(resolution.shape)
    first = np.array(geometry.first_voxel_xyz())
    voxel = ((positions_xyz - first) / geometry.voxel_size)[:, ::-1]          # (z, y, x) voxel coordinates
    in_box = np.all((voxel >= -0.5) & (voxel <= shape - 0.5), axis=1)
    nearest = np.clip(np.rint(voxel).astype(np.int64), 0, shape - 1)
    estimated = in_box & (resolution[tuple(nearest.T)] > 0)
    status = np.where(estimated, INSIDE, np.where(in_box, OUTSIDE_REGION, OUTSIDE_MAP)).astype(np.int8)
    coordinates = voxel[estimated]
    low = np.floor(coordinates).astype(np.int64)
    fraction = coordinates - low
    total = np.zeros(len(coordinates))
    weights = np.zeros(len(coordinates))
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        index = np.clip(low + offset, 0, shape - 1)
        weight = np.prod(np.where(offset, fraction, 1.0 - fraction), axis=1)
        value = resolution[tuple(index.T)].astype(np.float64)
        weight = np.where(value > 0, weight, 0.0)
        total += weight * value
        weights += weight
    values = np.full(len(positions_xyz), np.nan)
    values[estimated] = total / weights        # > 0: the nearest corner has an estimate and weight >= 1/8
    return values, status


def residue_percentiles(values: np.ndarray, residue: np.ndarray, residues: int,
                        percentiles: tuple[float, ...] = (50, *PERCENTILES)) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of each residue's atom values, for all residues at once.

    Args:
        values: one value per atom (NaN: not sampled, left out).
        residue: each atom's residue index.
        residues: number of residues.
        percentiles: in [0, 100], numpy's default (linear) definition.

    Returns:
        ``(counts, table)``: atoms with a value per residue, and a (residues, len(percentiles))
        table, NaN for residues without any.
    """
    keep = ~np.isnan(values)
    values, residue = values[keep], residue[keep]
    order = np.lexsort((values, residue))
    ordered = values[order]
    counts = np.bincount(residue, minlength=residues)
    starts = np.cumsum(counts) - counts
    table = np.full((residues, len(percentiles)), np.nan)
    has = counts > 0
    n, start = counts[has], starts[has]
    for column, q in enumerate(percentiles):
        position = q / 100.0 * (n - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        low, high = ordered[start + below], ordered[start + above]
        table[has, column] = low + (position - below) * (high - low)
    return counts, table


def bfactor_correlation(medians: np.ndarray, bfactors: np.ndarray) -> dict[str, Any]:
    """Spearman's rank correlation of residue medians with mean B-factors, over the residues
    that have both; ``spearman`` is None (with the ``reason``) when it is undefined."""
    from scipy.stats import spearmanr

    keep = ~np.isnan(medians) & ~np.isnan(bfactors)
    result: dict[str, Any] = {"residues": int(keep.sum()), "spearman": None, "p_value": None}
    if keep.sum() < MIN_CORRELATION_RESIDUES:
        return {**result, "reason": f"fewer than {MIN_CORRELATION_RESIDUES} residues with an estimate"}
    if np.ptp(bfactors[keep]) == 0 or np.ptp(medians[keep]) == 0:
        return {**result, "reason": "the B-factors or the resolutions are all equal"}
    rho, p_value = spearmanr(medians[keep], bfactors[keep])
    return {**result, "spearman": float(rho), "p_value": float(p_value)}


def residue_figures(values: np.ndarray) -> dict[str, float | None]:
    """Median and percentiles (A) of some residue medians (None when there are none), by
    field of :class:`.outputs.ChainResolution`."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"median": None, "percentile_20": None, "percentile_80": None}
    low, high = np.percentile(values, PERCENTILES)
    return {"median": float(np.median(values)), "percentile_20": float(low), "percentile_80": float(high)}


def atom_counts(status: np.ndarray) -> dict[str, int]:
    """Atoms sampled, outside the map's box and outside the estimated region."""
    return {"atoms": int((status == INSIDE).sum()), "atoms_outside_map": int((status == OUTSIDE_MAP).sum()),
            "atoms_outside_region": int((status == OUTSIDE_REGION).sum())}


def chain_summaries(residues: ModelResidues, counts: np.ndarray, medians: np.ndarray,
                    status: np.ndarray) -> list[ChainResolution]:
    """Per chain, in the model's order: residues, those with an estimate, atoms sampled,
    outside the map's box and outside the estimated region, and the figures of its residues'
    medians."""
    chains = np.array(residues.chains, dtype=object)
    atom_chain = chains[residues.atom_residue] if residues.atom_residue.size else np.array([], dtype=object)
    summaries = []
    for name in dict.fromkeys(residues.chains):
        in_chain = chains == name
        summaries.append(ChainResolution(
            chain=name, residues=int(in_chain.sum()), residues_estimated=int((counts[in_chain] > 0).sum()),
            **atom_counts(status[atom_chain == name]), **residue_figures(medians[in_chain])))
    return summaries


#: The columns of residues.csv, in order, and their headers in a table for people (with units).
RESIDUE_COLUMNS = {
    "chain": "Chain", "number": "Number", "icode": "Ins. code", "name": "Residue", "atoms": "Atoms sampled",
    "atoms_outside": "Atoms not sampled", "median_A": "Median (Å)", "p20_A": "Percentile 20 (Å)",
    "p80_A": "Percentile 80 (Å)", "bfactor_mean": "Mean B-factor (Å²)",
}
#: The column written only when the model's B-factors are compared.
BFACTOR_COLUMN = "bfactor_mean"
#: A table's cell for a figure without an estimate (empty in the CSV).
NO_ESTIMATE_CELL = "-"


def residue_table(path: str | os.PathLike) -> tuple[list[str], list[tuple[str, ...]]]:
    """``residues.csv`` as a table for people: the headers with their units
    (:data:`RESIDUE_COLUMNS`) and one row of cells per residue, resolutions to 0.01 Å and
    B-factors to 0.1 Å², :data:`NO_ESTIMATE_CELL` where the residue has no estimate."""
    decimals = {"median_A": 2, "p20_A": 2, "p80_A": 2, BFACTOR_COLUMN: 1}

    def cell(column: str, text: str) -> str:
        if column not in decimals:
            return text
        return f"{float(text):.{decimals[column]}f}" if text else NO_ESTIMATE_CELL

    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [tuple(cell(column, row[column]) for column in reader.fieldnames) for row in reader]
        return [RESIDUE_COLUMNS[column] for column in reader.fieldnames], rows


def residues_csv(residues: ModelResidues, counts: np.ndarray, outside: np.ndarray, table: np.ndarray,
                 mean_bfactors: np.ndarray | None = None) -> str:
    """One row per residue: chain, number, insertion code, name, atoms sampled and not, median
    and 20th/80th percentiles (A; empty without an estimate) [, mean refined B-factor]."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name in RESIDUE_COLUMNS if mean_bfactors is not None or name != BFACTOR_COLUMN])
    for i, name in enumerate(residues.names):
        row = [residues.chains[i], int(residues.numbers[i]), residues.icodes[i], name, int(counts[i]),
               int(outside[i])] + ["" if np.isnan(v) else f"{v:.3f}" for v in table[i]]
        if mean_bfactors is not None:
            row.append("" if np.isnan(mean_bfactors[i]) else f"{mean_bfactors[i]:.2f}")
        writer.writerow(row)
    return buffer.getvalue()


def defattr_text(residues: ModelResidues, medians: np.ndarray) -> str:
    """ChimeraX attribute assignment file: :data:`ATTRIBUTE` of every residue with an estimate."""
    lines = ["# DeepRes local resolution per residue: the median over its atoms (Å)",
             f"attribute: {ATTRIBUTE}", "recipient: residues", "match mode: any"]
    lines += [f"\t{residues.spec(i)}\t{value:.3f}" for i, value in enumerate(medians) if not np.isnan(value)]
    return "\n".join(lines) + "\n"


def palette_and_key(low: float, high: float, palette: str = DEFAULT_PALETTE) -> tuple[str, str]:
    """The ChimeraX ``palette`` and ``key`` arguments for a colour scale, written as
    :func:`.report.chimerax_script` writes them (same stops, same key)."""
    stops = palette_stops(palette, low, high)
    return (":".join(f"{value:.3g},{colour}" for value, colour in stops),
            " ".join(f"{colour}:{value:.3g}" for value, colour in stops))


def residues_chimerax_script(model_file: str, defattr_file: str, low: float, high: float, palette: str = DEFAULT_PALETTE,
                      map_file: str | None = None, level: float | None = None) -> str:
    """ChimeraX commands: the model (#1) as a cartoon coloured by each residue's local
    resolution with the key of the map scripts, residues without an estimate grey, and the
    map (#2, a mesh) when given. File names are relative to the script's folder."""
    colours, key = palette_and_key(low, high, palette)
    lines = [
        "# DeepRes local resolution per residue (median over its atoms), coloured on the model "
        "(blue = high resolution, grey = no estimate)",
        f"open {json.dumps(model_file)}",
        f"open {json.dumps(defattr_file)}",
        "cartoon #1",
        f"color byattribute r:{ATTRIBUTE} #1 palette {colours} noValueColor gray",
        f"key {key} pos 0.05,0.06 size 0.5,0.04",
        "2dlabels text \"Local resolution (Å)\" xpos 0.05 ypos 0.11 size 16",
    ]
    if map_file is not None:
        lines += [f"open {json.dumps(map_file)} format mrc", f"volume #2 level {level:.6g} style mesh"]
    return "\n".join(lines + ["view", ""])


def residues_png(residues: ModelResidues, table: np.ndarray, low: float, high: float,
                 palette: str = DEFAULT_PALETTE) -> bytes:
    """Per chain, along the sequence of its polymer residues: each residue's median (points
    coloured on the map's scale) and its 20th-80th percentile band, broken where residues are
    missing or have no estimate. At most :data:`MAX_PLOT_CHAINS` chains are drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    colormap = check_palette(palette)
    names = np.array(residues.chains, dtype=object)
    chains = [name for name in dict.fromkeys(residues.chains) if residues.polymer[names == name].any()]
    drawn = chains[:MAX_PLOT_CHAINS]
    known = table[~np.isnan(table[:, 0])]
    bottom, top = min(low, float(known.min(initial=low))), max(high, float(known.max(initial=high)))
    margin = 0.05 * (top - bottom)
    figure = Figure(figsize=(11, 1.0 + 2.4 * max(len(drawn), 1)), layout="constrained")
    scatter = None
    for i, name in enumerate(drawn):
        axes = figure.add_subplot(len(drawn), 1, i + 1)
        rows = np.flatnonzero((names == name) & residues.polymer)
        x, median, p20, p80 = _with_gaps(residues.numbers[rows], table[rows, 0], table[rows, 1], table[rows, 2])
        axes.fill_between(x, p20, p80, color="#cccccc", label="20–80 %")
        axes.plot(x, median, color="#555555", linewidth=0.6)
        scatter = axes.scatter(x, median, c=median, cmap=colormap, vmin=low, vmax=high, s=9, zorder=3)
        values = table[rows, 0][~np.isnan(table[rows, 0])]
        summary = f"median {np.median(values):.2f} Å" if values.size else "no estimate"
        axes.set_title(f"chain {name}: {len(rows)} polymer residues, {summary}", fontsize=10, loc="left")
        axes.set_ylabel(RESOLUTION_AXIS_LABEL)
        axes.set_ylim(top + margin, bottom - margin)             # one scale for all chains, better resolution up
        axes.set_xlim(np.nanmin(x) - 0.5, np.nanmax(x) + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not drawn:
        figure.add_subplot().text(0.5, 0.5, "no polymer chain", ha="center", va="center")
    figure.axes[-1].set_xlabel("Residue number")
    if len(chains) > len(drawn):
        figure.suptitle(f"first {len(drawn)} of {len(chains)} chains (all in the table)", fontsize=10)
    if scatter is not None:
        figure.colorbar(scatter, ax=figure.axes, fraction=0.02, pad=0.01).set_label(RESOLUTION_AXIS_LABEL)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def _with_gaps(numbers: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
    """``numbers`` and ``columns`` with a NaN row inserted wherever the numbering jumps, so
    that lines and bands break at missing residues."""
    jumps = np.flatnonzero(np.diff(numbers) > 1) + 1
    return [np.insert(numbers.astype(np.float64), jumps, np.nan)] + [np.insert(c, jumps, np.nan) for c in columns]


def model_with_resolution(model: gemmi.Model, medians: np.ndarray, name: str) -> gemmi.Structure:
    """A structure holding ``model`` with each counted residue's median in the B-factor column
    of all its atoms (:data:`NO_ESTIMATE` without one, and for waters); anisotropic B-factors
    are removed (they would contradict the column)."""
    structure = gemmi.Structure()
    structure.name = name
    structure.add_model(model)
    no_aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    index = 0
    for chain in structure[0]:
        for residue in chain:
            value = NO_ESTIMATE
            if is_counted(residue):
                value = NO_ESTIMATE if np.isnan(medians[index]) else float(medians[index])
                index += 1
            for atom in residue:
                atom.b_iso = value
                atom.aniso = no_aniso
    structure.setup_entities()
    return structure


def check_model_name(path: str | os.PathLike) -> None:
    """Refuse a file whose name is not that of a PDB/mmCIF model.

    Raises:
        StructureError: another suffix.
    """
    if not is_model_file(path):
        raise StructureError(f"{path} is not an atomic model: expected one of {', '.join(MODEL_SUFFIXES)}")



def placement_warnings(status: np.ndarray, model_name: str) -> list[str]:
    """A warning when fewer than :data:`MIN_PLACED_ATOM_SHARE` of the model's atoms lie where
    the resolution map has an estimate: a model not fitted to the map (or a map that lost its
    origin) still overlaps it by chance, and its figures describe the overlap."""
    share = float(np.mean(status == INSIDE)) if status.size else 1.0
    if share >= MIN_PLACED_ATOM_SHARE:
        return []
    return [f"only {100 * share:.0f} % of the atoms of {model_name} lie where the resolution map has an estimate "
            f"({int(np.sum(status == OUTSIDE_MAP))} outside the map's box, {int(np.sum(status == OUTSIDE_REGION))} "
            "on voxels without one): is the model fitted to this map, in the map's frame (origin)?"]


def model_and_box_spans(positions: np.ndarray, geometry: MapGeometry, shape_zyx: tuple[int, ...]) -> str:
    """Where the model's atoms (``positions``, x, y, z in A) and the map's box lie, for the
    messages that refuse a model outside the map: ``the model spans x, y, z = ... A, the map
    ... A``."""
    first = np.array(geometry.first_voxel_xyz())
    end = first + (np.array(shape_zyx[::-1]) - 1) * geometry.voxel_size
    span = ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(positions.min(axis=0), positions.max(axis=0)))
    box = ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(first, end))
    return f"the model spans x, y, z = {span} Å, the map {box} Å"


