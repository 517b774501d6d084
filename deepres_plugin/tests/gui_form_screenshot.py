"""Open a DeepRes protocol's form in Scipion's Tk GUI (on the X display in $DISPLAY), take a
screenshot and print the names of the parameters shown, as JSON. Run by test_gui.py:
``gui_form_screenshot.py SCREENSHOT PROJECT [PROTOCOL_CLASS]`` (default: the local-resolution
protocol)."""
import json
import sys

import pyworkflow.gui.project  # noqa: F401  (before pyworkflow.gui.form: circular import otherwise)
from PIL import ImageGrab
from pyworkflow.gui.form import FormWindow
from pyworkflow.project import Manager

from deepres_plugin import protocols

SETTLE_MS = 2500


def main(screenshot: str, project_name: str, protocol_class: str = "ProtDeepResLocalResolution") -> None:
    project = Manager().createProject(project_name)
    protocol = project.newProtocol(getattr(protocols, protocol_class))
    window = FormWindow(protocol.getClassLabel(), protocol, lambda *args: None)
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
    main(*sys.argv[1:4])
