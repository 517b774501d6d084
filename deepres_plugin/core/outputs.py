"""The contract of a run folder: every file and folder name the pipeline writes and the CLI,
protocols and viewers read, defined once. Nothing else types these names.

A prediction (``deepres predict``) or local-FSC folder holds :data:`RESOLUTION_FILE`,
:data:`SUMMARY_FILE` and the report files (:data:`REPORT_FILES`), plus :data:`MASK_FILE`
when the mask was made automatically; a local-FSC folder also :data:`AVERAGE_FILE` and the
global FSC (:data:`FSC_FILES`); a B-factor sweep folder :data:`SWEEP_FILES`,
:data:`SHARPENED_FILE`, the FSC files and two report folders, :data:`LOCALFSC_DIR` and
:data:`DEEPRES_DIR`. A local-filter folder holds :data:`LOCALFILTER_FILES`, a per-residue
folder :data:`RESIDUE_FILES`. A batch prediction folder holds one prediction folder per map
and :data:`BATCH_FILES`. (The Scipion protocols' own names, converted inputs and run
folders, are in :mod:`deepres_plugin.protocols.files`.)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

#: The local-resolution map (A), on the input's grid, 0 outside the mask.
RESOLUTION_FILE = "resolution.mrc"
#: The run's summary (JSON); renamed last: a folder with one holds that run's complete outputs.
SUMMARY_FILE = "summary.json"
#: The automatic mask, written when no mask was given (listed in the summary's ``files`` as
#: :data:`MASK_ROLE`).
MASK_FILE = "mask.mrc"
MASK_ROLE = "mask"
#: The report files, by role (the summary lists them under ``files``).
REPORT_FILES = {
    "summary": SUMMARY_FILE, "histogram_png": "histogram.png", "histogram_csv": "histogram.csv",
    "slices": "slices.png", "chimerax": "chimerax.cxc", "chimera": "chimera.cmd",
}
#: The half maps' mean (local FSC).
AVERAGE_FILE = "average_map.mrc"
#: The global FSC curve: CSV and plot.
FSC_FILES = ("fsc.csv", "fsc.png")
#: The B-factor sweep's table and plot.
SWEEP_FILES = {"csv": "bfactor_sweep.csv", "plot": "bfactor_sweep.png"}
#: The average sharpened with the recommended B-factor.
SHARPENED_FILE = "sharpened_map.mrc"
#: The sweep's report folders: the local FSC of the halves, DeepRes on the recommended map.
LOCALFSC_DIR = "localfsc"
DEEPRES_DIR = "deepres"
#: A local-filter folder (``deepres localfilter``), by role: the map low-pass filtered to its
#: local resolution (the input's grid and geometry), the before/after slices, the ChimeraX script.
LOCALFILTER_FILES = {
    "map": "locally_filtered.mrc", "slices": "localfilter_slices.png", "chimerax": "localfilter.cxc",
    "summary": SUMMARY_FILE,
}
#: A per-residue folder (``deepres residues``), by role: the table, the plot along the sequence,
#: the ChimeraX attribute file and script, and the model with the local resolution as B-factors.
RESIDUE_FILES = {
    "csv": "residues.csv", "plot": "residues.png", "defattr": "residues.defattr", "chimerax": "residues.cxc",
    "model_cif": "model_resolution.cif", "model_pdb": "model_resolution.pdb", "summary": SUMMARY_FILE,
}
#: A batch prediction folder (``deepres predict`` over several maps), by role: one row per map
#: (its figures, time, status, error) and the figure comparing the maps' distributions.
BATCH_FILES = {"csv": "batch.csv", "plot": "batch.png"}

def left_out_count(entry: dict[str, Any] | None) -> int:
    """The voxels of the mask without an estimate, from the ``left_out`` entry of a summary
    (:meth:`.signal.SignalSelection.as_dict`; 0 for a summary without one)."""
    return int(sum((entry or {}).get("voxels", {}).values()))


def left_out_line(entry: dict[str, Any] | None) -> str | None:
    """The ``left_out`` entry of a summary as one line: how many voxels of the mask got no
    estimate and why; None when none was left out."""
    total = left_out_count(entry)
    if not total:
        return None
    voxels = entry["voxels"]
    share = 100.0 * total / max(entry.get("mask_voxels", 0), 1)
    reasons = "; ".join(f"{count} {entry['reasons'][key]}" for key, count in voxels.items() if count)
    return f"{total} of {entry['mask_voxels']} mask voxels ({share:.1f} %) have no estimate: {reasons}"


# ---------------------------------------------------------------------------------------
# The summaries, typed: what the pipeline writes into summary.json and every reader reads.
# ---------------------------------------------------------------------------------------

# A key whose value has a physical unit ends in it: ``_A`` (Å, voxel sizes Å/px), ``_A2``
# (Å^2), ``_seconds``. Counts, ratios, thresholds and map values (in the map's own units)
# carry none.

#: The keys of a report's figures in summary.json (resolutions in Å; ``voxels``, a count), by
#: :class:`ReportSummary` field.
STATISTIC_KEYS = {"median": "median_A", "mean": "mean_A", "std": "std_A", "min": "min_A", "max": "max_A",
                  "percentile_20": "percentile_20_A", "percentile_80": "percentile_80_A", "voxels": "voxels"}
#: The keys of a B-factor sweep's rows (summary.json ``sweep``, and the columns of its CSV), by
#: :class:`SweepRow` field.
SWEEP_ROW_KEYS = {"bfactor": "bfactor_A2", "deepres_median": "deepres_median_A", "deepres_p20": "deepres_p20_A",
                  "deepres_p80": "deepres_p80_A", "localfsc_p20": "localfsc_p20_A", "difference": "difference_A",
                  "verdict": "verdict"}
#: The keys of a per-residue summary's figures over residue medians (Å), by field of
#: :class:`ResiduesSummary` and :class:`ChainResolution`.
RESIDUE_FIGURE_KEYS = {"median": "median_A", "percentile_20": "percentile_20_A", "percentile_80": "percentile_80_A"}
#: The keys of a per-residue summary's counts (residues, atoms), by field.
RESIDUE_COUNT_KEYS = {name: name for name in ("residues", "residues_estimated", "atoms", "atoms_outside_map",
                                              "atoms_outside_region")}
#: The colour scale of a report's figures and scripts (Å) and its colour map, by field.
COLOUR_KEYS = {"colour_range": "colour_range_A", "palette": "palette"}
#: Keys of summary.json files written before the units were part of the names (run folders of
#: DeepRes 0.1.0): the old key -> the present one, at the top level of a summary ...
OLD_SUMMARY_KEYS = {
    **{old: new for old, new in STATISTIC_KEYS.items() if old != new},
    "colour_range": "colour_range_A", "input_voxel_size": "input_voxel_size_A",
    "model_voxel_size": "model_voxel_size_A", "global_fsc_resolution": "global_fsc_resolution_A",
    "recommended_bfactor": "recommended_bfactor_A2", "localfsc_p20": "localfsc_p20_A",
    "localfsc_median": "localfsc_median_A", "bfactor": "bfactor_A2",
}
#: ... and inside these entries (a dict, or a list of dicts).
OLD_NESTED_KEYS = {
    "range": {"min_resolution": "min_resolution_A", "max_resolution": "max_resolution_A"},
    "clamp": {"low": "low_A", "high": "high_A"},
    "sweep": {old: new for old, new in SWEEP_ROW_KEYS.items() if old != new},
    "chains": RESIDUE_FIGURE_KEYS,
}


def _renamed(entry: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    return {renames[key] if key in renames and renames[key] not in entry else key: value
            for key, value in entry.items()}


def current_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json's contents with the keys of an older version renamed to the present ones
    (:data:`OLD_SUMMARY_KEYS`, :data:`OLD_NESTED_KEYS`), so that every reader reads the run
    folders of earlier versions too; a present summary comes back unchanged (a copy)."""
    current = _renamed(summary, OLD_SUMMARY_KEYS)
    for key, renames in OLD_NESTED_KEYS.items():
        entry = current.get(key)
        if isinstance(entry, dict):
            current[key] = _renamed(entry, renames)
        elif isinstance(entry, list):
            current[key] = [_renamed(item, renames) if isinstance(item, dict) else item for item in entry]
    return current


def read_summary(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``summary.json`` of a run folder, with the present key names (:func:`current_summary`)."""
    return current_summary(json.loads((Path(folder) / SUMMARY_FILE).read_text()))


def _json_value(value: Any) -> Any:
    """A field's value as summary.json holds it: records as dicts, tuples as lists."""
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    return value


class _Record:
    """A typed record of summary.json: each field of :attr:`KEYS` under its key (the one
    definition of the key, for writing and reading alike)."""

    #: field -> key in summary.json.
    KEYS: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_value(getattr(self, field)) for field, key in self.KEYS.items()}

    @classmethod
    def _decode(cls, field: str, value: Any) -> Any:
        """A field's value from its JSON form (lists become tuples)."""
        return tuple(value) if isinstance(value, list) else value

    @classmethod
    def _typed(cls, entry: dict[str, Any]) -> dict[str, Any]:
        """The fields of :attr:`KEYS` read from ``entry`` (a summary.json dict)."""
        return {field: cls._decode(field, entry[key]) for field, key in cls.KEYS.items()}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]):
        return cls(**cls._typed(entry))


class _SummaryFields(_Record):
    """A whole summary.json: the typed figures (:attr:`KEYS`) and, in ``fields``, everything
    else a run writes (settings, provenance, files). A job builds one and saves
    :meth:`to_json`; a reader gets one from :meth:`from_dict` (``fields`` then holds the whole
    summary, so ``from_dict(s.to_dict()).to_dict() == s.to_dict()``)."""

    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.fields, **super().to_dict()}

    def to_json(self) -> bytes:
        """The contents of summary.json."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    @classmethod
    def from_dict(cls, summary: dict[str, Any]):
        """From a summary.json's contents, of this version or an earlier one (:func:`current_summary`)."""
        summary = current_summary(summary)
        return cls(**cls._typed(summary), fields=summary)

    @classmethod
    def read(cls, folder: str | os.PathLike):
        """The summary of a run folder."""
        return cls.from_dict(read_summary(folder))

    @property
    def run_seconds(self) -> float | None:
        return self.fields.get("run_seconds")

    @property
    def left_out(self) -> str | None:
        """How many voxels of the mask got no estimate and why (one line), or None."""
        return left_out_line(self.fields.get("left_out"))

    @property
    def left_out_voxels(self) -> int:
        """How many voxels of the mask got no estimate."""
        return left_out_count(self.fields.get("left_out"))

    @property
    def method_description(self) -> str | None:
        """How a half-map local resolution was estimated (local FSC, B-factor sweep)."""
        return self.fields.get(LOCALFSC_DESCRIPTION_KEY)


#: Where a local-FSC summary says how the local resolution was estimated.
LOCALFSC_DESCRIPTION_KEY = "localfsc_description"


@dataclasses.dataclass(frozen=True)
class ReportSummary(_SummaryFields):
    """The figures of a report folder's ``summary.json`` (resolutions in A), with the whole
    summary in ``fields`` for what only some runs write (``map_condition``, ``model``, the
    local-FSC settings, ...). Written by :func:`deepres_plugin.core.report.report_contents`;
    the files, among them the map the report was made for (relative to the folder), are under
    ``files``."""

    median: float
    mean: float
    std: float
    min: float
    max: float
    percentile_20: float
    percentile_80: float
    voxels: int
    colour_range: tuple[float, float]
    palette: str
    fields: dict[str, Any]

    KEYS: ClassVar[dict[str, str]] = {**STATISTIC_KEYS, **COLOUR_KEYS}
    #: The figures above read from summary.json (their keys there: :data:`STATISTIC_KEYS`).
    STATISTICS = tuple(STATISTIC_KEYS)

    @property
    def map_file(self) -> str:
        """The density map of the report, relative to the folder."""
        return self.fields["files"]["map"]

    def map_path(self, folder: str | os.PathLike) -> str:
        """The density map the report was made for."""
        return os.path.normpath(os.path.join(folder, self.map_file))

    @classmethod
    def of_resolution_map(cls, path: str | os.PathLike) -> "ReportSummary | None":
        """The summary of the report folder that holds the resolution map ``path`` (its
        summary.json names that file), or None: a map from elsewhere, or no readable report."""
        target = Path(path).resolve()
        try:
            summary = json.loads((target.parent / SUMMARY_FILE).read_text())
            if (target.parent / summary["files"]["resolution"]).resolve() != target:
                return None
            return cls.from_dict(summary)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- what some runs add (None when absent) ---------------------------------------------
    @property
    def network(self) -> str | None:
        """``name version`` of the DeepRes network (predictions)."""
        model = self.fields.get("model")
        return f"{model['name']} {model['version']}" if isinstance(model, dict) else None

    @property
    def range_name(self) -> str | None:
        resolution_range = self.fields.get("range")
        return resolution_range.get("name") if isinstance(resolution_range, dict) else resolution_range

    @property
    def input_voxel_size(self) -> float | None:
        return self.fields.get("input_voxel_size_A")

    @property
    def model_voxel_size(self) -> float | None:
        return self.fields.get("model_voxel_size_A")

    @property
    def device(self) -> str | None:
        """The device the network ran on (``CPU``, ``GPU:0``; predictions)."""
        return self.fields.get("device")

    @property
    def mask_file(self) -> str | None:
        """The automatic mask written with the run (relative to the folder), or None."""
        return self.fields.get("files", {}).get("mask")

    @property
    def mask(self) -> str | None:
        """The mask file, or ``automatic``."""
        return self.fields.get("mask")

    @property
    def warnings(self) -> list[str]:
        return list(self.fields.get("warnings", []))

    @property
    def map_bfactor(self) -> float | None:
        """The map's Guinier B-factor (A^2), when it could be measured (predictions)."""
        return self.fields.get("map_condition", {}).get("bfactor_A2")

    @property
    def solvent(self) -> str | None:
        """``noisy``, ``flattened`` or ``masked`` (predictions)."""
        return self.fields.get("map_condition", {}).get("solvent")

    @property
    def noise_to_signal(self) -> float | None:
        """SD outside the mask over the molecule's SD (predictions)."""
        return self.fields.get("map_condition", {}).get("noise_to_signal")

    @property
    def global_fsc_resolution(self) -> float | None:
        return self.fields.get("global_fsc_resolution_A")

    @property
    def threshold(self) -> float | None:
        return self.fields.get("threshold")


@dataclasses.dataclass(frozen=True)
class SweepRow(_Record):
    """One B-factor of a sweep: DeepRes' median and percentiles (A), the local-FSC 20th
    percentile, their difference and the verdict."""

    bfactor: float
    deepres_median: float
    deepres_p20: float
    deepres_p80: float
    localfsc_p20: float
    difference: float
    verdict: str

    KEYS: ClassVar[dict[str, str]] = SWEEP_ROW_KEYS


@dataclasses.dataclass(frozen=True)
class SweepSummary(_SummaryFields):
    """A B-factor sweep's ``summary.json``: the recommendation, the references and every row.
    Written by :func:`deepres_plugin.core.pipeline.run_bfactor_sweep`."""

    recommended_bfactor: float
    recommended_verdict: str
    global_fsc_resolution: float
    localfsc_p20: float
    localfsc_median: float
    threshold: float
    rows: tuple[SweepRow, ...]
    fields: dict[str, Any]

    KEYS: ClassVar[dict[str, str]] = {
        "recommended_bfactor": "recommended_bfactor_A2", "recommended_verdict": "recommended_verdict",
        "global_fsc_resolution": "global_fsc_resolution_A", "localfsc_p20": "localfsc_p20_A",
        "localfsc_median": "localfsc_median_A", "threshold": "threshold", "rows": "sweep",
    }

    @classmethod
    def _decode(cls, field: str, value: Any) -> Any:
        return tuple(SweepRow.from_dict(row) for row in value) if field == "rows" else value

    @property
    def recommended(self) -> SweepRow:
        return next(row for row in self.rows if row.bfactor == self.recommended_bfactor)

    @property
    def sharpened_map(self) -> str:
        """The recommended map, relative to the folder."""
        return self.fields["files"]["sharpened_map"]


@dataclasses.dataclass(frozen=True)
class LocalFilterSummary(_SummaryFields):
    """A local-filter folder's ``summary.json`` (``deepres localfilter``): the filter bank
    (A, finest first), the sharpening B-factor (A^2) and where it came from (``none``,
    ``given``, ``estimated``; the map's own Guinier B when estimated), the voxels filtered to
    their own resolution, and the colour scale of the figure and script. Written by
    :func:`deepres_plugin.core.pipeline.run_localfilter`."""

    bank_resolutions: tuple[float, ...]
    bfactor: float
    bfactor_source: str
    map_bfactor: float | None
    voxels: int
    colour_range: tuple[float, float]
    palette: str
    fields: dict[str, Any]

    KEYS: ClassVar[dict[str, str]] = {
        "bank_resolutions": "bank_resolutions_A", "bfactor": "bfactor_A2", "bfactor_source": "bfactor_source",
        "map_bfactor": "map_bfactor_A2", "voxels": "voxels", **COLOUR_KEYS,
    }

    def filtered_map_path(self, folder: str | os.PathLike) -> str:
        """The filtered map (:data:`LOCALFILTER_FILES` ``map``)."""
        return os.path.join(folder, self.fields["files"]["map"])


@dataclasses.dataclass(frozen=True)
class ChainResolution(_Record):
    """One chain of a per-residue summary: its residues (all, and those with an estimate), the
    atoms sampled and those outside the map's box or outside the estimated region, and the
    median and 20th/80th percentiles (A) of its residues' medians (None without estimates)."""

    chain: str
    residues: int
    residues_estimated: int
    atoms: int
    atoms_outside_map: int
    atoms_outside_region: int
    median: float | None
    percentile_20: float | None
    percentile_80: float | None

    KEYS: ClassVar[dict[str, str]] = {"chain": "chain", **RESIDUE_COUNT_KEYS, **RESIDUE_FIGURE_KEYS}


@dataclasses.dataclass(frozen=True)
class ResiduesSummary(_SummaryFields):
    """A per-residue folder's ``summary.json`` (``deepres residues``): the figures over every
    residue's median (A), the atoms not sampled, each chain (:class:`ChainResolution`), and
    the rank correlation with the model's B-factors when asked for. Written by
    :func:`deepres_plugin.core.pipeline.run_residues`."""

    residues: int
    residues_estimated: int
    median: float | None
    percentile_20: float | None
    percentile_80: float | None
    atoms: int
    atoms_outside_map: int
    atoms_outside_region: int
    chains: tuple[ChainResolution, ...]
    colour_range: tuple[float, float]
    palette: str
    fields: dict[str, Any]

    KEYS: ClassVar[dict[str, str]] = {**RESIDUE_COUNT_KEYS, **RESIDUE_FIGURE_KEYS, "chains": "chains", **COLOUR_KEYS}

    @classmethod
    def _decode(cls, field: str, value: Any) -> Any:
        return tuple(ChainResolution.from_dict(chain) for chain in value) if field == "chains" else \
            super()._decode(field, value)

    @property
    def bfactor_correlation(self) -> float | None:
        """Spearman's rank correlation of the residues' medians with their mean refined
        B-factors (when compared and defined)."""
        comparison = self.fields.get("bfactor_comparison")
        return comparison.get("spearman") if isinstance(comparison, dict) else None

    def chain(self, name: str) -> ChainResolution:
        return next(chain for chain in self.chains if chain.chain == name)
