"""The Scipion ``Plugin`` of DeepRes, exposed as ``deepres_plugin.Plugin``."""
import pwem

from .constants import DEEPRES_PAPER_URL, DISPLAY_NAME


class Plugin(pwem.Plugin):
    """Nothing external to install: the networks ship inside the package and TensorFlow
    comes from pip (it uses a GPU when one is visible)."""

    _url = DEEPRES_PAPER_URL

    def getName(self):
        """The name Scipion shows before each protocol label ("deepres - local resolution");
        the package name would read "deepres_plugin - ..." (cut to the same "deepres_plugi…"
        for every protocol in the tree, and broken at its underscore by the Methods' markup)."""
        return DISPLAY_NAME

    @classmethod
    def _defineVariables(cls):
        """No environment variables: no external program or model download is needed."""

    @classmethod
    def defineBinaries(cls, env):
        """No binaries: everything is installed by pip with the plugin."""


# Scipion locates a plugin's package through the module of its Plugin class
# (sys.modules[Plugin.__module__].__path__): the class is defined here, so that importing
# deepres_plugin does not import Scipion, but it belongs to the package.
Plugin.__module__ = __package__
