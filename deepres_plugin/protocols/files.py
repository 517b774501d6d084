"""The file and folder names of the Scipion protocols' runs (in a protocol's extra folder):
converted inputs, each protocol's run folder (where the core's outputs go, named by
:mod:`deepres_plugin.core.outputs`), one folder per map of a set, the viewers' script. The
core and the command line do not know them.
"""

#: The ChimeraX script a viewer writes into a report folder (with the viewer's colour scale).
VIEWER_SCRIPT = "deepres_viewer.cxc"

#: Converted inputs of the Scipion protocols (in their extra folder).
INPUT_MAP = "input_map.mrc"
INPUT_MASK = "input_mask.mrc"
INPUT_HALVES = ("input_half1.mrc", "input_half2.mrc")
#: A resolution map converted for the local-filter and per-residue protocols (one from a run
#: folder is read in place, so that its report's colour scale carries over).
INPUT_RESOLUTION = "input_resolution.mrc"
#: Each protocol's run folder (in its extra folder), by protocol.
PROTOCOL_DIRS = {"local_resolution": "deepres", "local_fsc": "localfsc", "bfactor_sweep": "sweep",
                 "local_filter": "localfilter", "model_resolution": "residues"}
#: A protocol given a set of maps keeps, for each map, what it keeps for a single map (the
#: converted inputs and the run folder, named as above) in a folder of its own in its extra
#: folder, named by the map's id in the set (:func:`protocol_volume_dir`).
PROTOCOL_VOLUME_DIR = "volume_{:03d}"


def protocol_volume_dir(volume_id: int) -> str:
    """The folder (in a protocol's extra folder) of the map with id ``volume_id`` in a set."""
    return PROTOCOL_VOLUME_DIR.format(volume_id)
