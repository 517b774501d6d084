"""The Scipion ``Plugin`` of DeepRes, exposed as ``deepres_plugin.Plugin``."""
import pwem

from .constants import DEEPRES_PAPER_URL


class Plugin(pwem.Plugin):
    """Nothing external to install: the networks ship inside the package and TensorFlow
    comes from pip (it uses a GPU when one is visible)."""

    _url = DEEPRES_PAPER_URL

    @classmethod
    def _defineVariables(cls):
        """No environment variables: no external program or model download is needed."""

    @classmethod
    def defineBinaries(cls, env):
        """No binaries: everything is installed by pip with the plugin."""
