"""Open the DeepRes viewer's form in Scipion's Tk GUI (on the X display in $DISPLAY), press
"Show in ChimeraX" where ChimeraX is not installed, and print as JSON the titles and texts of
the windows that appear. Run by test_gui.py."""
import json
import os
import sys
import tkinter as tk
from pathlib import Path

import pyworkflow.gui.project  # noqa: F401  (before pyworkflow.gui.form: circular import otherwise)
from pwem.objects import Volume
from pyworkflow.gui.form import FormWindow
from pyworkflow.project import Manager

from deepres_plugin.core.mrc import read_map, write_map
from deepres_plugin.core.pipeline import PredictOptions, run_predict
from deepres_plugin.protocols import ProtDeepResLocalResolution
from deepres_plugin.protocols.files import INPUT_MAP
from deepres_plugin.viewers import DeepResViewer

DATA = Path(__file__).resolve().parent / "data"
SETTLE_MS = 1500


def texts(widget):
    """Every text shown by ``widget`` and its children."""
    found = []
    for child in widget.winfo_children():
        if isinstance(child, tk.Text):
            found.append(child.get("1.0", "end"))
        else:
            try:
                found.append(str(child.cget("text")))
            except tk.TclError:
                pass
        found += texts(child)
    return [t for t in found if t]


def main(project_name: str) -> None:
    project = Manager().createProject(project_name)
    os.chdir(project.getPath())                             # Scipion's run paths are relative to the project
    protocol = project.newProtocol(ProtDeepResLocalResolution)
    project.saveProtocol(protocol)
    Path(protocol._getExtraPath()).mkdir(parents=True, exist_ok=True)
    write_map(protocol._getExtraPath(INPUT_MAP), *read_map(DATA / "example_map.mrc"))
    run_predict(protocol._getExtraPath(INPUT_MAP), protocol.getOutputFile(),
                PredictOptions(mask=DATA / "example_mask.mrc.gz"))
    output = Volume()
    output.setFileName(protocol.getResolutionFile())
    output.setSamplingRate(1.0)
    protocol.resolution_Volume = output                      # as createOutputStep would register it

    viewer = DeepResViewer(project=project, protocol=protocol)
    viewer.setProtocol(protocol)
    form = FormWindow("Protocol Viewer: DeepResViewer", viewer, viewer._viewAll, None,
                      visualizeDict=viewer._ProtocolViewer__getVisualizeWrapperDict(), visualizeMode=True)
    viewer.formWindow, viewer._tkRoot = form, form.root
    viewer.showInfo, viewer.showError = form.showInfo, form.showError
    shown = {"windows": []}

    def inspect():
        for window in form.root.winfo_children():
            if isinstance(window, tk.Toplevel) and window.winfo_exists():
                shown["windows"].append({"title": window.title(), "texts": texts(window)})
                window.destroy()

    def press():
        form.root.after(SETTLE_MS, inspect)                  # the dialog is modal: look at it from here
        form.visualizeDict["doShowChimera"]("doShowChimera")  # what the form's "Show in ChimeraX" button calls
        form.root.quit()

    form.root.after(SETTLE_MS, press)
    form.show(center=True)
    form.root.destroy()
    print(json.dumps(shown))


if __name__ == "__main__":
    main(sys.argv[1])
