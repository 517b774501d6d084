"""Training: end to end on a tiny dataset, exact conversion to the convolutional form, resume."""
import json

import numpy as np
import pytest

from deepres_plugin.core import training
from deepres_plugin.core.dataset import DatasetConfig, generate_dataset
from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.networks import load_model, sidecar_path
from deepres_plugin.core.train_config import TrainConfig


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("tiny") / "wide"
    config = DatasetConfig("wide", labels_per_structure=8, boxes_per_label=40, val_fraction=0.5, seed=3)
    manifest = generate_dataset(data_dir, folder, config, workers=2, progress=False)
    assert manifest["counts"]["train"]["boxes"] and manifest["counts"]["val"]["boxes"]
    return folder


def test_training_runs_end_to_end_and_the_loss_falls(tiny_dataset, tmp_path):
    out = tmp_path / "tiny.keras"
    record = training.train_model(tiny_dataset, out, TrainConfig("wide", epochs=6, batch_size=64, patience=6),
                                  progress=False)
    history = record["history"]
    assert len(history["loss"]) == 6 and history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    network, info = load_model(out, "wide")
    assert info.trained and info.architecture == "deepres" and info.training["epochs_run"] == 6
    assert info.training["dataset_manifest_sha256"] == training.dataset_fingerprint(tiny_dataset)[0]
    assert record["val_mae_A"] == pytest.approx(np.sqrt(record["val_loss_mse"]), rel=0.6)
    assert (tmp_path / "tiny.learning_curve.png").stat().st_size > 1000
    assert not (tmp_path / "tiny.checkpoint").exists()
    assert {"tensorflow", "keras", "numpy", "deepres"} <= set(info.training["versions"])


def test_saved_convolutional_form_is_the_trained_function(rng):
    config = TrainConfig("wide", filters=8, hidden=16)
    box_network = training.box_form_network(config, 13)
    boxes = rng.standard_normal((50, 13, 13, 13, 1)).astype(np.float32)
    boxes /= np.linalg.norm(boxes.reshape(50, -1), axis=1)[:, None, None, None, None]
    conv_network = training.to_convolutional(box_network, config, 13)
    np.testing.assert_allclose(conv_network.predict(boxes, verbose=0).reshape(-1),
                               box_network.predict(boxes, verbose=0).reshape(-1), atol=1e-4)
    assert conv_network.get_layer("conv").get_config()["padding"] == "valid"


def test_interrupted_training_resumes_from_its_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "resumed.keras"
    config = TrainConfig("wide", epochs=2, batch_size=64, patience=5)

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(training, "_save_curve", crash)
    with pytest.raises(RuntimeError):
        training.train_model(tiny_dataset, out, config, progress=False)
    state = json.loads((tmp_path / "resumed.checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2
    monkeypatch.undo()
    with pytest.raises(ParameterError, match="other options"):
        training.train_model(tiny_dataset, out, TrainConfig("wide", epochs=3, batch_size=64, patience=5, seed=9),
                             progress=False)
    record = training.train_model(tiny_dataset, out, TrainConfig("wide", epochs=3, batch_size=64, patience=5),
                                  progress=False)
    assert record["epochs_run"] == 3 and len(record["history"]["loss"]) == 3
    assert record["history"]["loss"][:2] == state["history"]["loss"]


def test_dataset_of_another_range_is_refused(tiny_dataset, tmp_path):
    with pytest.raises(ParameterError, match="'wide' dataset"):
        training.train_model(tiny_dataset, tmp_path / "m.keras", TrainConfig("high"), progress=False)
    with pytest.raises(ParameterError, match="no manifest.json"):
        training.train_model(tmp_path, tmp_path / "m.keras", TrainConfig("wide"), progress=False)
    assert not sidecar_path(tmp_path / "m.keras").exists()
