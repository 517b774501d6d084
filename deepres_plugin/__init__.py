"""DeepRes for Scipion: deep-learning local resolution of cryo-EM maps.

The Scipion plugin (protocols, viewers) is a thin layer over :mod:`deepres_plugin.core`,
which imports neither pyworkflow nor pwem and also backs the ``deepres`` command line.
"""
import pwem

from .constants import DEEPRES_CITATION, DEEPRES_PAPER_URL
from .version import __version__

_references = [DEEPRES_CITATION]


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
