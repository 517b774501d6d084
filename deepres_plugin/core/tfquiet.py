"""Keep TensorFlow's start-up messages off the terminal unless they are asked for.

Importing TensorFlow 2.x and enumerating its devices prints a dozen lines from C++ before
Python logging exists (the oneDNN notice, "Could not find cuda drivers", a cuInit error on
machines without a GPU, the CPU-instruction notice, abseil's "All log messages before
absl::InitializeLog()"). ``TF_CPP_MIN_LOG_LEVEL`` does not reach the abseil lines, and its
level 3 would also hide real errors later on. So :func:`quiet_tensorflow` arranges that the
first import of TensorFlow, whoever makes it (``import tensorflow``, ``import keras``),
runs with the process's stderr (file descriptor 2) captured; afterwards the known start-up
lines are dropped and anything else captured is written back to stderr. With
``verbose=True`` everything is written back unchanged.

``TF_ENABLE_ONEDNN_OPTS`` is left alone on purpose: it changes numerical results.

Call :func:`quiet_tensorflow` before anything imports TensorFlow (the ``deepres`` commands do
it first thing in ``main``; a protocol step can do it before running the core). It imports
nothing itself, so a command that fails on its input never pays for loading TensorFlow.

Once TensorFlow is imported, the modules AutoGraph generates are imported without writing
their bytecode into ``$TMPDIR/__pycache__`` (:func:`keep_autograph_bytecode_out`).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from typing import Callable, Iterator

#: TensorFlow's C++ log threshold: 0 all, 1 no INFO, 2 no WARNING (errors still shown), 3 nothing.
TF_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
#: Errors from TensorFlow after start-up are still shown.
QUIET_TF_LOG_LEVEL = "2"
TENSORFLOW = "tensorflow"
#: The module through which AutoGraph imports the code it generates (``load_source``).
AUTOGRAPH_LOADER = "tensorflow.python.autograph.pyct.loader"

#: Lines TensorFlow prints while it starts, dropped unless verbose. Glog-style records are
#: ``<severity>MMDD hh:mm:ss.uuuuuu  thread file:line] message`` (before abseil's logging is
#: initialised the seconds field holds the whole Unix time); INFO and WARNING records
#: are dropped, ERROR records only for the cuInit call that fails on machines without a GPU.
STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] failed call to cuInit: .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Hide TensorFlow's start-up messages from the first import of TensorFlow on.

    Does nothing visible if TensorFlow is already imported (its start-up is over). Calling it
    again only changes ``verbose``. Either way, AutoGraph's generated modules leave no
    bytecode behind (:func:`keep_autograph_bytecode_out`).

    Args:
        verbose: show everything TensorFlow prints (its start-up lines and its C++ INFO and
            WARNING log) instead of hiding it.
    """
    if not verbose:
        os.environ.setdefault(TF_LOG_LEVEL_VARIABLE, QUIET_TF_LOG_LEVEL)   # this process (and children) only
    if TENSORFLOW in sys.modules:
        keep_autograph_bytecode_out()
        return
    finder = next((f for f in sys.meta_path if isinstance(f, _QuietTensorFlowFinder)), None)
    if finder is None:
        finder = _QuietTensorFlowFinder()
        sys.meta_path.insert(0, finder)
    finder.verbose = verbose


def drop_startup_noise(text: str) -> str:
    """``text`` without the lines matching :data:`STARTUP_NOISE`."""
    return "".join(line for line in text.splitlines(keepends=True) if not STARTUP_NOISE.fullmatch(line.rstrip("\r\n")))


@contextlib.contextmanager
def captured_stderr_fd(verbose: bool) -> Iterator[None]:
    """Capture file descriptor 2 (C++ and Python writes alike) for the duration of the block,
    then write back what was captured: all of it if ``verbose`` or if the block raised,
    otherwise all but :data:`STARTUP_NOISE`."""
    try:
        saved = os.dup(2)
    except OSError:                      # no stderr to capture (a daemon): nothing would show anyway
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            shown = text if verbose or failed else drop_startup_noise(text)
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()


def keep_autograph_bytecode_out() -> bool:
    """Make AutoGraph load the modules it generates without caching their bytecode.

    AutoGraph writes each function it converts to a temporary ``.py`` file, imports it, and
    deletes the file at exit; the import caches the bytecode in ``$TMPDIR/__pycache__``,
    which nothing deletes. Its loader (:data:`AUTOGRAPH_LOADER`) is wrapped so that those
    imports, and only those, run with ``sys.dont_write_bytecode`` set. Idempotent.

    Returns:
        whether the loader was found (TensorFlow versions without it cache nothing there).
    """
    try:
        loader = importlib.import_module(AUTOGRAPH_LOADER)
    except ImportError:
        return False
    load_source = getattr(loader, "load_source", None)
    if load_source is None:
        return False
    if not getattr(load_source, "_deepres_no_bytecode", False):
        loader.load_source = _without_bytecode(load_source)
    return True


def _without_bytecode(function: Callable) -> Callable:
    """``function`` run with ``sys.dont_write_bytecode`` set (restored afterwards)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        saved = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            return function(*args, **kwargs)
        finally:
            sys.dont_write_bytecode = saved

    wrapper._deepres_no_bytecode = True
    return wrapper


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with a loader that imports it under :func:`captured_stderr_fd`."""

    verbose = False

    def find_spec(self, fullname, path, target=None):
        if fullname != TENSORFLOW:
            return None
        sys.meta_path.remove(self)           # one import only; the other finders find the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.verbose)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """Wraps TensorFlow's loader: executes the package, and enumerates the devices (which
    initialises CUDA and prints the cuInit error), with stderr captured."""

    def __init__(self, loader: importlib.abc.Loader, verbose: bool):
        self.loader = loader
        self.verbose = verbose

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with captured_stderr_fd(self.verbose):
            self.loader.exec_module(module)
            module.config.list_physical_devices()
        keep_autograph_bytecode_out()

    def __getattr__(self, name):          # get_resource_reader, is_package, ... of the real loader
        return getattr(self.loader, name)
