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
    from deepres_plugin.workflow import scipion_environment

    root = Path(tempfile.mkdtemp(prefix="deepres-scipion-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return scipion_environment(root)


if "pyworkflow" not in sys.modules:
    SCIPION_ROOT = _setup_scipion_environment()

#: The test layers (strict: every test module has one). ``make test-core`` runs ``core``:
#: the science on small synthetic maps, no Scipion, no cluster, no other program.
LAYERS = {
    "core": ("test_bfactor", "test_conditions", "test_dataset", "test_filters", "test_fsc", "test_inference",
             "test_localfilter", "test_localfsc", "test_masks", "test_models", "test_mrc", "test_ranges",
             "test_report", "test_resample", "test_residues", "test_signal", "test_simulate", "test_sweep",
             "test_tfquiet", "test_training"),
    "cli": ("test_cli", "test_bad_inputs", "test_interrupts"),
    "scipion": ("test_plugin", "test_protocols", "test_protocols_environment", "test_protocols_halfmaps",
                "test_protocols_localfilter", "test_protocols_realmaps", "test_protocols_sets",
                "test_workflow_localfilter", "test_workflow_runs"),
    "gui": ("test_gui",),
    "cluster": ("test_batch", "test_cluster", "test_queue", "test_training_replicas"),
    "benchmarks": ("test_noise_benchmark", "test_real_maps", "test_relion_pipeline"),
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def pytest_configure(config):
    for layer in LAYERS:
        config.addinivalue_line("markers", f"{layer}: the {layer} layer of the tests (conftest.LAYERS)")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its module's layer; a module without one is an error."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module not in LAYER_OF:
            raise pytest.UsageError(f"{module} has no test layer: add it to conftest.LAYERS")
        item.add_marker(getattr(pytest.mark, LAYER_OF[module]))


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
