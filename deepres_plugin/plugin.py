"""The Scipion ``Plugin`` of DeepRes, exposed as ``deepres_plugin.Plugin``.

The protocols run the computation (TensorFlow, Dask) as separate processes: the ``deepres``
command line (``python -m deepres_plugin.cli``) of the computation's Python, started with
Scipion's ``runJob`` and the environment of :meth:`Plugin.getEnviron`. That Python is:

1. the one named by the variable ``DEEPRES_PYTHON`` (in Scipion's config or the
   environment), when set;
2. else the virtual environment made by ``scipion3 installb deepres`` (:meth:`defineBinaries`:
   ``python -m venv`` and pip, the plugin installed there with its ``compute`` extra), when
   it exists;
3. else the Python Scipion runs in, so that ``pip install scipion-em-deepres[compute]`` (or
   ``make demo``) is one environment for everything.
"""
import os
import sys
from pathlib import Path

import pwem
import pyworkflow.utils as pwutils

from .constants import DEEPRES_PAPER_URL, DISPLAY_NAME
from .version import __version__

#: The variable that names the computation's Python.
PYTHON_VAR = "DEEPRES_PYTHON"
#: The variable of the folder :meth:`Plugin.defineBinaries` installs into (under EM_ROOT).
HOME_VAR = "DEEPRES_HOME"
#: That folder's name, and the virtual environment's inside it.
ENV_PACKAGE = "deepres"
ENV_FOLDER = "venv"
#: The command line as a module (no console script needed in the computation's environment).
CLI_MODULE = "deepres_plugin.cli"
#: Variables of Scipion's own Python that another Python must not inherit: its packages would
#: shadow (or break) those of the computation's environment.
PYTHON_ONLY_VARIABLES = ("PYTHONPATH", "PYTHONHOME")
#: Threads of the numerical libraries in a computation process (one per Scipion thread).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


class Plugin(pwem.Plugin):
    """DeepRes needs no external program: the networks ship inside the package; TensorFlow
    and Dask come from pip, in Scipion's Python or in an environment of their own."""

    _url = DEEPRES_PAPER_URL
    _homeVar = HOME_VAR

    def getName(self):
        """The name Scipion shows before each protocol label ("deepres - estimate local resolution");
        the package name would read "deepres_plugin - ..." (cut to the same "deepres_plugi…"
        for every protocol in the tree, and broken at its underscore by the Methods' markup)."""
        return DISPLAY_NAME

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar(HOME_VAR, f"{ENV_PACKAGE}-{__version__}")
        cls._defineVar(PYTHON_VAR, "")

    @classmethod
    def getComputePython(cls) -> str:
        """The Python that runs the computation (module docstring)."""
        named = cls.getVar(PYTHON_VAR)
        if named:
            return named
        installed = Path(cls.getHome(ENV_FOLDER, "bin", "python"))
        return str(installed) if cls.getHome() and installed.exists() else sys.executable

    @classmethod
    def getProgram(cls) -> str:
        """The ``deepres`` command line of the computation's Python, for ``runJob``."""
        return f"{cls.getComputePython()} -m {CLI_MODULE}"

    @classmethod
    def getEnviron(cls, gpus=None, threads: int = 1) -> pwutils.Environ:
        """The environment of one computation process: Scipion's, with ``CUDA_VISIBLE_DEVICES``
        set to ``gpus`` (ids; an empty list hides every GPU; None keeps what the process has,
        e.g. the GPUs a queue gave the job) and the numerical libraries held to ``threads``;
        without Scipion's ``PYTHONPATH`` and ``PYTHONHOME`` when the computation has a Python
        of its own."""
        env = pwutils.Environ(os.environ)
        if os.path.abspath(cls.getComputePython()) != os.path.abspath(sys.executable):
            for name in PYTHON_ONLY_VARIABLES:
                env.pop(name, None)
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in dict.fromkeys(gpus))
        env.update({name: str(max(1, int(threads))) for name in THREAD_VARIABLES})
        return env

    @classmethod
    def defineBinaries(cls, env):
        """``scipion3 installb deepres``: a virtual environment (venv and pip, no conda) with
        this version of the plugin and its ``compute`` extra (TensorFlow, Dask), installed
        from this installation's source tree when it is a checkout, else from PyPI."""
        source = Path(__file__).resolve().parent.parent
        requirement = (f"{source}[compute]" if (source / "pyproject.toml").exists()
                       else f"scipion-em-deepres[compute]=={__version__}")
        python = os.path.join(ENV_FOLDER, "bin", "python")
        commands = [(f"{sys.executable} -m venv {ENV_FOLDER} && {python} -m pip install --quiet --upgrade pip && "
                     f"{python} -m pip install --quiet '{requirement}'", python)]
        env.addPackage(ENV_PACKAGE, version=__version__, tar="void.tgz", commands=commands, default=False)


# Scipion locates a plugin's package through the module of its Plugin class
# (sys.modules[Plugin.__module__].__path__): the class is defined here, so that importing
# deepres_plugin does not import Scipion, but it belongs to the package.
Plugin.__module__ = __package__
