"""The networks shipped in the package: metadata, size, and answers on the bundled example map."""
import numpy as np
import pytest

from deepres_plugin.core.inference import fully_convolutional_weights, predict_map
from deepres_plugin.core.models import MODELS_DIR, SHIPPED_MODELS, shipped_model_path
from deepres_plugin.core.mrc import read_map
from deepres_plugin.core.networks import load_model, sidecar_path
from deepres_plugin.core.ranges import RANGES

MAX_MODEL_BYTES = 5 * 1024 ** 2
EXAMPLE_RESOLUTIONS = {1: 4.0, 2: 8.0}      # region label -> filter resolution (benchmarks/make_example_map.py)


@pytest.mark.parametrize("range_name", sorted(SHIPPED_MODELS))
def test_shipped_model_loads_with_matching_metadata(range_name):
    path = shipped_model_path(range_name)
    network, info = load_model(path, range_name)
    assert info.trained and info.range_name == range_name and info.resolution_range == RANGES[range_name]
    assert info.architecture == "deepres" and fully_convolutional_weights(network) is not None
    assert path.stat().st_size + sidecar_path(path).stat().st_size < MAX_MODEL_BYTES
    record = info.training
    assert record["val_mae_A"] < 1.0 and record["best_epoch"] >= 1
    assert record["dataset_counts"]["train"]["structures"] > record["dataset_counts"]["val"]["structures"] > 0
    assert (MODELS_DIR / f"{path.stem}.learning_curve.png").is_file()


def test_shipped_wide_model_on_the_example_map(data_dir):
    volume, geometry = read_map(data_dir / "example_map.mrc")
    regions = read_map(data_dir / "example_regions.mrc.gz")[0].astype(int)
    network, info = load_model(shipped_model_path("wide"), "wide")
    resolution = predict_map(volume, geometry.voxel_size, regions > 0, network, info).resolution
    medians = {label: float(np.median(resolution[regions == label])) for label in EXAMPLE_RESOLUTIONS}
    assert medians[1] < medians[2]
    for label, truth in EXAMPLE_RESOLUTIONS.items():
        assert abs(medians[label] - truth) < 1.0, medians
