"""DeepRes for Scipion: deep-learning local resolution of cryo-EM maps.

The Scipion plugin (protocols, viewers) is a thin layer over :mod:`deepres_plugin.core`,
which imports neither pyworkflow nor pwem and also backs the ``deepres`` command line.

``Plugin`` (the class Scipion looks up here) is defined in :mod:`deepres_plugin.plugin`
and imported on first access, so that ``import deepres_plugin.core`` and the ``deepres``
command do not import Scipion: pyworkflow reads its configuration (SCIPION_HOME,
SCIPION_USER_DATA, ...) from the environment when it is first imported, and a test
harness or a script must be able to set that environment first.
"""
from .constants import DEEPRES_CITATION
from .version import __version__ as __version__  # re-exported: deepres_plugin.__version__

_references = [DEEPRES_CITATION]


def __getattr__(name: str):
    if name == "Plugin":
        from .plugin import Plugin

        return Plugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
