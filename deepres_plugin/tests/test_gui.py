"""The protocol form opens in Scipion's Tk GUI under Xvfb and shows the parameters; a
screenshot of the form is written under the test's output folder."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

DISPLAY = ":97"
#: Protocol class -> parameters its form must show (the first is the screenshot in docs/scipion.md).
FORM_PARAMS = {
    "ProtDeepResLocalResolution": {"inputVolume", "inputMask", "resolutionRange", "modelChoice"},
    "ProtDeepResLocalFilter": {"inputResolution", "inputVolume", "inputMask", "bfactorChoice"},
    "ProtDeepResModelResolution": {"inputStructure", "inputResolution", "inputVolume", "compareBfactors"},
}


def _xvfb() -> str:
    """Path of Xvfb; the test is skipped where it is not installed (`make install` installs it
    with apt-get when run as root; tests never install system packages)."""
    found = shutil.which("Xvfb")
    if found is None:
        pytest.skip("Xvfb not installed: the protocol form needs an X display "
                    "(`apt-get install xvfb` as root, or `make install` as root on Debian/Ubuntu)")
    return found


@pytest.fixture(scope="module")
def display():
    server = subprocess.Popen([_xvfb(), DISPLAY, "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    yield DISPLAY
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize("protocol_class", sorted(FORM_PARAMS))
def test_protocol_form_opens_and_shows_the_parameters(display, tmp_path, protocol_class):
    screenshot = tmp_path / "deepres_form.png"
    script = Path(__file__).with_name("gui_form_screenshot.py")
    result = subprocess.run([sys.executable, str(script), str(screenshot), f"gui_form_{protocol_class}_{os.getpid()}",
                             protocol_class],
                            env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert FORM_PARAMS[protocol_class] <= set(shown["params"])
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1400, 1000)
        colours = image.convert("L").getextrema()
        assert colours[1] - colours[0] > 100          # a drawn form, not a blank screen


def test_residue_table_opens_as_a_table(display, tmp_path):
    """'Show residue table' opens Scipion's table window with a column per field, units in the
    headings and rounded cells (before, a text window showed the raw CSV)."""
    table = tmp_path / "residues.csv"
    table.write_text("chain,number,icode,name,atoms,atoms_outside,median_A,p20_A,p80_A\n"
                     "A,1,,ALA,5,0,3.500,3.412,3.587\nA,2,B,GLY,0,4,,,\n")
    script = Path(__file__).with_name("gui_residue_table.py")
    result = subprocess.run([sys.executable, str(script), str(table)], env={**os.environ, "DISPLAY": display},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    window, = json.loads(result.stdout.strip().splitlines()[-1])["windows"]
    assert window["title"] == "DeepRes per-residue resolution"
    assert "Median (Å)" in window["headings"] and len(window["headings"]) == 9
    assert window["rows"] == [["A", "1", "", "ALA", "5", "0", "3.50", "3.41", "3.59"],
                              ["A", "2", "B", "GLY", "0", "4", "-", "-", "-"]]


def test_viewer_messages_appear_in_a_window(display):
    """'Show in ChimeraX' without ChimeraX (the usual case) opens a message window that says
    where the script is; it once showed nothing (a message view without a Tk parent)."""
    script = Path(__file__).with_name("gui_viewer_message.py")
    result = subprocess.run([sys.executable, str(script), f"gui_viewer_{os.getpid()}"],
                            env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert any("ChimeraX" in window["title"] and any("deepres_viewer.cxc" in text for text in window["texts"])
               for window in shown["windows"]), shown
