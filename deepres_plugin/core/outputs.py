"""The contract of a run folder: every file and folder name the pipeline writes and the CLI,
protocols and viewers read, defined once. Nothing else types these names.

A prediction (``deepres predict``) or local-FSC folder holds :data:`RESOLUTION_FILE`,
:data:`SUMMARY_FILE` and the report files (:data:`REPORT_FILES`), plus :data:`MASK_FILE`
when the mask was made automatically; a local-FSC folder also :data:`AVERAGE_FILE` and the
global FSC (:data:`FSC_FILES`); a B-factor sweep folder :data:`SWEEP_FILES`,
:data:`SHARPENED_FILE`, the FSC files and two report folders, :data:`LOCALFSC_DIR` and
:data:`DEEPRES_DIR`. The Scipion protocols keep their converted inputs
(:data:`INPUT_MAP`, :data:`INPUT_MASK`, :data:`INPUT_HALVES`) next to their run folder
(:data:`PROTOCOL_DIRS`).
"""
from __future__ import annotations

#: The local-resolution map (A), on the input's grid, 0 outside the mask.
RESOLUTION_FILE = "resolution.mrc"
#: The run's summary (JSON); renamed last: a folder with one holds that run's complete outputs.
SUMMARY_FILE = "summary.json"
#: The automatic mask, written when no mask was given.
MASK_FILE = "mask.mrc"
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
#: The ChimeraX script a viewer writes into a report folder (with the viewer's colour scale).
VIEWER_SCRIPT = "deepres_viewer.cxc"

#: Converted inputs of the Scipion protocols (in their extra folder).
INPUT_MAP = "input_map.mrc"
INPUT_MASK = "input_mask.mrc"
INPUT_HALVES = ("input_half1.mrc", "input_half2.mrc")
#: Each protocol's run folder (in its extra folder), by protocol.
PROTOCOL_DIRS = {"local_resolution": "deepres", "local_fsc": "localfsc", "bfactor_sweep": "sweep"}
