"""TensorFlow's start-up lines are hidden unless verbose; other stderr output is kept."""
import os
import re
import subprocess
import sys

import pytest

from deepres_plugin.core.tfquiet import STARTUP_NOISE, captured_stderr_fd, drop_startup_noise

#: What TensorFlow 2.21 prints on a machine without a GPU (import, then device enumeration).
STARTUP_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795539504.524211   25849 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1795539504.524602   25849 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "I0000 00:00:1795539516.344766   25965 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1795539506.518945   25849 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "W0721 10:11:12.131415   25849 some_file.cc:7] a start-up warning",
]
#: Lines that must still be shown: other errors, Python warnings and tracebacks.
KEPT_LINES = [
    "E0000 00:00:1795539506.518945   25849 gpu_device.cc:12] could not open the CUDA library",
    "/usr/lib/python3/numpy/__init__.py:12: DeprecationWarning: something changed",
    "Traceback (most recent call last):",
]
FRESH_INTERPRETER_TIMEOUT = 300
#: Any record of TensorFlow's C++ logging, or abseil's notice that precedes them.
TENSORFLOW_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] |WARNING: All log messages before absl")


@pytest.mark.parametrize("line", STARTUP_LINES)
def test_startup_lines_are_noise(line):
    assert STARTUP_NOISE.fullmatch(line)


def test_drop_startup_noise_keeps_other_lines():
    text = "\n".join(STARTUP_LINES[:3] + KEPT_LINES[:1] + STARTUP_LINES[3:] + KEPT_LINES[1:]) + "\n"
    assert drop_startup_noise(text) == "\n".join(KEPT_LINES) + "\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_captured_stderr_fd(capfd, verbose):
    """Writes to file descriptor 2 (as TensorFlow's C++ code makes them) are filtered unless verbose."""
    written = "\n".join(STARTUP_LINES + KEPT_LINES) + "\n"
    with captured_stderr_fd(verbose):
        os.write(2, written.encode())
    assert capfd.readouterr().err == (written if verbose else "\n".join(KEPT_LINES) + "\n")


def test_captured_stderr_fd_shows_everything_on_failure(capfd):
    """If the import fails, its start-up lines may explain why: all of them are shown."""
    with pytest.raises(ImportError), captured_stderr_fd(verbose=False):
        os.write(2, (STARTUP_LINES[0] + "\n").encode())
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == STARTUP_LINES[0] + "\n"


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, without a TF_CPP_MIN_LOG_LEVEL of the caller's."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=FRESH_INTERPRETER_TIMEOUT, env=env)


def test_help_does_not_import_tensorflow():
    result = run_fresh("import sys\nfrom deepres_plugin import cli\ncli.main(['--help'])\n"
                       "print('tensorflow' in sys.modules, 'keras' in sys.modules, file=sys.stderr)")
    assert result.returncode == 0 and result.stderr.strip() == "False False"


def test_keras_import_is_quiet():
    """The first import of TensorFlow, made by keras, and its first op print no TensorFlow log line."""
    result = run_fresh("from deepres_plugin.core.tfquiet import quiet_tensorflow\nquiet_tensorflow()\n"
                       "import keras\nimport tensorflow as tf\nprint(tf.constant(2.0).numpy())")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2.0\n"
    assert not [line for line in result.stderr.splitlines() if TENSORFLOW_LOG_LINE.match(line)], result.stderr
