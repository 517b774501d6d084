"""Training on several devices: the strategy follows the visible GPUs (one device: the default
strategy and the batch as given, the CPU path unchanged); mirrored over two devices, a step
takes the batch on each and learns what one device learns from the doubled batch."""
import json
import subprocess
import sys
import textwrap

import pytest

from deepres_plugin.core import training
from deepres_plugin.core.dataset import DatasetConfig, generate_dataset
from deepres_plugin.core.train_config import TrainConfig


class FakeDevice:
    def __init__(self, name):
        self.name = name


def test_replicas_are_every_gpu_when_there_are_several():
    assert training.replica_devices([]) == []
    assert training.replica_devices(["/device:GPU:0"]) == []
    assert training.replica_devices(["/device:GPU:0", "/device:GPU:1"]) == ["/device:GPU:0", "/device:GPU:1"]
    assert training.global_batch_size(512, 1) == 512 and training.global_batch_size(512, 4) == 2048


def test_strategy_mirrors_over_the_visible_gpus(monkeypatch):
    import tensorflow as tf

    made = []
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind: [FakeDevice(f"/device:{kind}:{i}") for i in range(3)])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda devices: made.append(devices) or "mirrored")
    assert training.training_strategy() == "mirrored"
    assert made == [["/device:GPU:0", "/device:GPU:1", "/device:GPU:2"]]
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: [FakeDevice(f"/device:{kind}:0")])
    assert training.training_strategy() is tf.distribute.get_strategy() and len(made) == 1


def test_without_gpus_training_runs_on_one_device_with_the_batch_given(tmp_path, data_dir):
    import tensorflow as tf

    assert tf.config.list_logical_devices("GPU") == []            # this machine: the CPU path
    assert training.training_strategy().num_replicas_in_sync == 1
    generate_dataset(data_dir, tmp_path / "data", DatasetConfig("wide", labels_per_structure=4, boxes_per_label=10,
                                                                 val_fraction=0.5, seed=3), progress=False)
    record = training.train_model(tmp_path / "data", tmp_path / "m.keras",
                                  TrainConfig("wide", epochs=1, batch_size=16, filters=4, hidden=8), progress=False)
    assert record["replicas"] == 1 and record["global_batch_size"] == 16


MIRRORED = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from deepres_plugin.core.training import train_model
from deepres_plugin.core.train_config import TrainConfig
from deepres_plugin.core.networks import load_model
folder = sys.argv[1]
cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
out = {}
for name, devices, batch in (("mirrored", cpus, 16), ("single", cpus[:1], 32)):
    config = TrainConfig("wide", epochs=2, batch_size=batch, filters=4, hidden=8)
    record = train_model(folder + "/data", f"{folder}/{name}.keras", config, progress=False, devices=devices)
    network, info = load_model(f"{folder}/{name}.keras", "wide")
    out[name] = {key: record[key] for key in ("replicas", "global_batch_size", "history")}
    out[name]["layers"] = [layer.name for layer in network.layers]
print(json.dumps(out))
"""


def test_mirrored_over_two_devices_learns_as_one_device_with_the_doubled_batch(tmp_path, data_dir):
    """Two logical CPUs stand in for two GPUs (TensorFlow must be configured before it starts:
    a fresh interpreter)."""
    generate_dataset(data_dir, tmp_path / "data", DatasetConfig("wide", labels_per_structure=4, boxes_per_label=16,
                                                                 val_fraction=0.5, seed=3), progress=False)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MIRRORED), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    mirrored, single = result["mirrored"], result["single"]
    assert (mirrored["replicas"], mirrored["global_batch_size"]) == (2, 32)
    assert (single["replicas"], single["global_batch_size"]) == (1, 32)
    # the same global batches from the same start: the same losses up to rounding (which Adam's
    # normalisation of tiny gradients amplifies a little)
    assert mirrored["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=0.05)
    assert mirrored["history"]["val_loss"] == pytest.approx(single["history"]["val_loss"], rel=0.05)
    assert mirrored["layers"] == single["layers"] and "conv" in mirrored["layers"]   # saved in its convolutional form
