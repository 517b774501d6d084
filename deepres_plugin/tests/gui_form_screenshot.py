"""Open the DeepRes protocol form in Scipion's Tk GUI (on the X display in $DISPLAY), take a
screenshot and print the names of the parameters shown, as JSON. Run by test_gui.py."""
import json
import sys

import pyworkflow.gui.project  # noqa: F401  (before pyworkflow.gui.form: circular import otherwise)
from PIL import ImageGrab
from pyworkflow.gui.form import FormWindow
from pyworkflow.project import Manager

from deepres_plugin.protocols import ProtDeepResLocalResolution

SETTLE_MS = 2500


def main(screenshot: str, project_name: str) -> None:
    project = Manager().createProject(project_name)
    protocol = project.newProtocol(ProtDeepResLocalResolution)
    window = FormWindow("deepres - local resolution", protocol, lambda *args: None)
    shown = {}

    def capture():
        window.root.update()
        ImageGrab.grab(xdisplay=None).save(screenshot)
        shown["params"] = sorted(window.widgetDict)
        window.root.quit()        # leave the main loop (Scipion keeps another Tk root alive)

    window.root.after(SETTLE_MS, capture)
    window.show(center=True)
    window.root.destroy()
    print(json.dumps(shown))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
