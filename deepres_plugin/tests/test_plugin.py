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


def test_plugin_needs_no_binaries():
    plugin = deepres_plugin.Plugin

    class Recorder:
        def __getattr__(self, name):
            raise AssertionError(f"defineBinaries called env.{name}")

    plugin.defineBinaries(Recorder())
    assert plugin._url.startswith("https://doi.org/")


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
