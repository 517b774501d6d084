"""pytest set-up: a private, headless Scipion environment in a temporary folder.

pyworkflow reads its configuration from the environment when first imported, so it is set
here, before any test module imports Scipion (``deepres_plugin`` itself imports Scipion only
when ``deepres_plugin.Plugin`` is used).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent / "data"


def _setup_scipion_environment() -> Path:
    root = Path(tempfile.mkdtemp(prefix="deepres-scipion-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    home, user_data = root / "scipion", root / "user_data"
    (home / "config").mkdir(parents=True)
    user_data.mkdir()
    os.environ.update({
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": str(home),
        "SCIPION_USER_DATA": str(user_data),
        "SCIPION_TESTS": str(root / "tests"),
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_NOTIFY": "False",
        "SCIPION_HOSTS": str(home / "config" / "hosts.conf"),
        "MPLBACKEND": "Agg",
    })
    from pyworkflow.protocol import HostConfig

    HostConfig.writeBasic(os.environ["SCIPION_HOSTS"])
    return root


if "pyworkflow" not in sys.modules:
    SCIPION_ROOT = _setup_scipion_environment()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of the small atomic models shipped for the tests."""
    return DATA_DIR


#: The repository's benchmarks folder (some tests check a benchmark's own helpers).
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def import_benchmark(name: str):
    """A module of the benchmarks folder (benchmarks import their siblings, so the folder is
    on the path while it is imported)."""
    import importlib

    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20191054)


@pytest.fixture(scope="session")
def untrained_models(tmp_path_factory):
    """Freshly initialised networks saved in the model format (clearly labelled untrained).

    The output layer is scaled so that answers spread over several A: agreement tests then
    compare values that differ from voxel to voxel. Returns {(architecture, range): path}.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepres_plugin.core.networks import ModelInfo, build_network, save_model

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for architecture, range_name in [("deepres", "wide"), ("deepres", "high"), ("xmipp", "wide")]:
        network = build_network(architecture, seed=11)
        output = network.get_layer("resolution")
        kernel, bias = output.get_weights()
        output.set_weights([kernel * 200.0, bias + 7.0])
        path = folder / f"untrained_{architecture}_{range_name}.keras"
        save_model(network, ModelInfo.for_range(architecture, range_name, name=f"untrained-{architecture}"), path)
        paths[architecture, range_name] = path
    return paths
