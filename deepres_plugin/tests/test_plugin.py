"""The package as Scipion sees it: entry point, Plugin class, citation."""
import pyworkflow as pw

import deepres_plugin
from deepres_plugin.constants import DEEPRES_CITATION


def test_scipion_discovers_the_plugin_and_its_citation():
    domain = pw.Config.getDomain()
    plugins = domain.getPlugins()
    assert "deepres_plugin" in plugins
    module = plugins["deepres_plugin"]
    assert issubclass(module.Plugin, __import__("pwem").Plugin)
    assert module._references == [DEEPRES_CITATION]
    entry = module._bibtex[DEEPRES_CITATION]
    assert entry["doi"] == "10.1107/S2052252519011692" and entry["year"] == "2019"


def test_the_computation_environment_is_optional_and_found_by_a_variable(monkeypatch, tmp_path):
    """``scipion3 installb deepres`` makes a venv with pip (not a default binary); without it
    or DEEPRES_PYTHON the computation runs in Scipion's own Python."""
    import sys

    from deepres_plugin.plugin import CLI_MODULE, ENV_FOLDER, HOME_VAR, PYTHON_VAR, THREAD_VARIABLES

    plugin = deepres_plugin.Plugin
    packages = []

    class Recorder:
        def addPackage(self, name, **kwargs):
            packages.append((name, kwargs))

    plugin.defineBinaries(Recorder())
    ((name, package),) = packages
    assert name == "deepres" and package["default"] is False
    ((command, target),) = package["commands"]
    assert "-m venv venv" in command and "pip install --quiet" in command and "[compute]" in command
    assert target == f"{ENV_FOLDER}/bin/python"
    assert plugin._url.startswith("https://doi.org/")

    home = tmp_path / "deepres-home"
    monkeypatch.setattr(plugin, "getVar", classmethod(lambda cls, var, default=None: {
        PYTHON_VAR: "", HOME_VAR: str(home)}.get(var, default)))
    assert plugin.getComputePython() == sys.executable             # nothing installed: Scipion's Python
    (home / ENV_FOLDER / "bin").mkdir(parents=True)
    (home / ENV_FOLDER / "bin" / "python").touch()
    assert plugin.getComputePython() == str(home / ENV_FOLDER / "bin" / "python")
    assert plugin.getProgram() == f"{home / ENV_FOLDER / 'bin' / 'python'} -m {CLI_MODULE}"
    monkeypatch.setattr(plugin, "getVar", classmethod(lambda cls, var, default=None: {
        PYTHON_VAR: "/opt/env/bin/python", HOME_VAR: str(home)}.get(var, default)))
    assert plugin.getComputePython() == "/opt/env/bin/python"      # the variable wins
    env = plugin.getEnviron(gpus=[1, 1, 0], threads=2)
    assert env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert all(env[name] == "2" for name in THREAD_VARIABLES)
    assert plugin.getEnviron(gpus=[])["CUDA_VISIBLE_DEVICES"] == ""


def test_scipion_lists_the_protocol_viewer_and_wizard():
    from pyworkflow.viewer import DESKTOP_TKINTER

    from deepres_plugin.protocols import ProtDeepResLocalResolution
    from deepres_plugin.viewers import DeepResViewer
    from deepres_plugin.wizards import DeepResColorScaleWizard

    domain = pw.Config.getDomain()
    assert domain.getProtocols()["ProtDeepResLocalResolution"] is ProtDeepResLocalResolution
    assert "ProtDeepResTrain" in domain.getProtocols()
    assert DeepResViewer in domain.findViewers(ProtDeepResLocalResolution(), DESKTOP_TKINTER)
    assert DeepResColorScaleWizard in domain.getWizards().values()


#: Characters of a protocol's label that the project window's protocol tree shows (its
#: column is 235 px wide, the Resolution section three levels deep).
TREE_LABEL_CHARS = 14


def test_the_protocol_tree_tells_the_protocols_apart():
    """Cut where the tree cuts them, the labels still differ (they read "deepres - local" for
    local resolution, local FSC and local filter before)."""
    from deepres_plugin import protocols

    labels = [getattr(protocols, name).getClassLabel() for name in protocols.__all__]
    shown = [label[:TREE_LABEL_CHARS] for label in labels]
    assert len(set(shown)) == len(labels), sorted(zip(shown, labels))
    assert all(label.startswith("deepres - ") for label in labels), labels
