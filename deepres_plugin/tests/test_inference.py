"""Inference: whole-map = box-by-box = Keras on boxes; slabs, resampling, clamping, background."""
import json

import numpy as np
import pytest

from deepres_plugin.core.errors import MaskError, ParameterError
from deepres_plugin.core.filters import lowpass_filter
from deepres_plugin.core.inference import (
    Predictor,
    box_sums,
    clamp_bounds,
    device_label,
    fully_convolutional_weights,
    predict_map,
    tensorflow_device,
)
from deepres_plugin.core.networks import ModelInfo, load_model, read_model_info, save_model, sidecar_path
from deepres_plugin.core.resample import fourier_resample

TOLERANCE_A = 1e-3


@pytest.fixture(scope="module")
def wide(untrained_models):
    return load_model(untrained_models["deepres", "wide"], "wide")


def keras_on_boxes(network, volume, centres, box=13):
    """The definition: the network's answer for the normalised box around each centre."""
    padded = np.pad(volume, box // 2)
    boxes = np.stack([padded[z:z + box, y:y + box, x:x + box] for z, y, x in centres])
    boxes /= np.linalg.norm(boxes.reshape(len(boxes), -1), axis=1)[:, None, None, None]
    return network.predict(boxes[..., None], verbose=0).reshape(-1)


def random_case(rng, shape):
    volume = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < 0.4
    mask[0, :, :] = mask[:, -1, :] = True          # the mask touches the box edges
    return volume, mask


@pytest.mark.parametrize("shape", [(17, 23, 29), (31, 14, 19), (13, 13, 13)])
def test_whole_map_box_and_keras_agree(wide, rng, shape):
    network, info = wide
    volume, mask = random_case(rng, shape)
    whole = Predictor(network, info, path="whole").predict(volume, mask)
    boxes = Predictor(network, info, path="box").predict(volume, mask)
    assert np.ptp(whole[mask]) > 1.0                 # the answers really vary
    assert np.abs(whole - boxes).max() < TOLERANCE_A
    assert not whole[~mask].any() and not boxes[~mask].any()
    centres = np.argwhere(mask)[::7]
    reference = keras_on_boxes(network, volume, centres)
    assert np.abs(whole[tuple(centres.T)] - reference).max() < TOLERANCE_A


def test_slabbed_equals_unslabbed(wide, rng):
    network, info = wide
    volume, mask = random_case(rng, (40, 21, 25))
    one_slab = Predictor(network, info, path="whole", slab_bytes=1 << 30).predict(volume, mask)
    thin = Predictor(network, info, path="whole", slab_bytes=1)          # one plane per slab
    np.testing.assert_allclose(thin.predict(volume, mask), one_slab, atol=1e-5)
    assert thin.voxels_by_path["whole"] == mask.sum()


def test_automatic_rule_uses_boxes_for_sparse_slabs_and_agrees(wide, rng):
    network, info = wide
    volume = rng.standard_normal((30, 30, 30)).astype(np.float32)
    mask = np.zeros(volume.shape, bool)
    mask[2:12] = True                                  # dense part
    mask[15, 3, 3] = mask[18, 27, 27] = True           # two lonely voxels in the next slab
    auto = Predictor(network, info, path="auto", slab_bytes=30 * 30 * 34 * 4 * 10)
    result = auto.predict(volume, mask)
    assert auto.voxels_by_path == {"whole": 10 * 900, "box": 2}
    reference = Predictor(network, info, path="box").predict(volume, mask)
    assert np.abs(result - reference).max() < TOLERANCE_A


def test_xmipp_architecture_is_box_only_and_matches_keras(untrained_models, rng):
    network, info = load_model(untrained_models["xmipp", "wide"])
    assert fully_convolutional_weights(network) is None
    with pytest.raises(ParameterError, match="not fully convolutional"):
        Predictor(network, info, path="whole")
    volume, mask = random_case(rng, (15, 16, 14))
    mask[:] = False
    mask[7, 3:9, 5] = True
    predictor = Predictor(network, info)
    result = predictor.predict(volume, mask)
    assert predictor.voxels_by_path == {"whole": 0, "box": 6}
    centres = np.argwhere(mask)
    np.testing.assert_allclose(result[mask], keras_on_boxes(network, volume, centres), atol=TOLERANCE_A)


def test_box_sums_match_brute_force(rng):
    values = rng.random((9, 10, 11))
    sums = box_sums(values, 5)
    assert sums.shape == (5, 6, 7)
    assert sums[2, 3, 4] == pytest.approx(values[2:7, 3:8, 4:9].sum())


def test_predict_map_on_another_voxel_size_keeps_grid_clamps_and_zeroes_outside(wide, rng):
    network, info = wide
    voxel = 1.34
    volume = rng.standard_normal((24, 27, 22)).astype(np.float32)
    mask = np.zeros(volume.shape, bool)
    mask[5:19, 6:20, 4:18] = True
    prediction = predict_map(volume, voxel, mask, network, info)
    low, high = clamp_bounds(info, voxel)
    assert (low, high) == (2 * voxel, 13.0)
    assert prediction.resolution.shape == volume.shape
    assert prediction.model_shape == (32, 36, 29)
    inside = prediction.resolution[mask]
    assert inside.min() >= low and inside.max() <= high
    assert not prediction.resolution[~mask].any()


def test_background_level_is_removed(wide, rng):
    network, info = wide
    volume = np.zeros((40, 40, 40), np.float32)
    volume[12:28, 12:28, 12:28] = rng.random((16, 16, 16))
    volume += rng.normal(0, 0.05, volume.shape).astype(np.float32)
    mask = np.zeros(volume.shape, bool)
    mask[12:28, 12:28, 12:28] = True
    plain = predict_map(volume, 1.0, mask, network, info)
    offset = predict_map(volume + 3.0, 1.0, mask, network, info)
    assert offset.background == pytest.approx(plain.background + 3.0, abs=1e-3)
    assert np.abs(offset.resolution - plain.resolution).max() < TOLERANCE_A


def test_empty_mask_and_mismatched_mask_are_refused(wide):
    network, info = wide
    with pytest.raises(MaskError, match="empty"):
        predict_map(np.ones((20, 20, 20), np.float32), 1.0, np.zeros((20, 20, 20), bool), network, info)
    with pytest.raises(MaskError, match="shape"):
        predict_map(np.ones((20, 20, 20), np.float32), 1.0, np.ones((20, 20, 21), bool), network, info)


def test_gpu_request_without_gpu_is_a_clear_error():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(ParameterError, match="TensorFlow sees none"):
        with tensorflow_device("gpu"):
            pass


def test_model_file_round_trip_and_range_check(untrained_models, tmp_path):
    path = untrained_models["deepres", "high"]
    network, info = load_model(path, "high")
    assert (info.range_name, info.voxel_size, info.min_resolution, info.max_resolution) == ("high", 0.5, 1.5, 6.0)
    assert info.trained is False
    with pytest.raises(ParameterError, match="is a 'high' model"):
        load_model(path, "wide")


@pytest.mark.parametrize("damage, message", [
    (lambda model: sidecar_path(model).unlink(), "metadata file .* is missing"),
    (lambda model: sidecar_path(model).write_text("{not json"), "unreadable model metadata"),
    (lambda model: model.write_bytes(b"garbage"), "cannot load the Keras model"),
    (lambda model: sidecar_path(model).write_text(json.dumps(
        {**json.loads(sidecar_path(model).read_text()), "voxel_size": 0.7})), "not a DeepRes range"),
    (lambda model: sidecar_path(model).write_text(json.dumps(
        {**json.loads(sidecar_path(model).read_text()), "architecture": "resnet"})), "unknown architecture"),
])
def test_damaged_model_files_are_refused(untrained_models, tmp_path, damage, message):
    import shutil

    model = tmp_path / "model.keras"
    shutil.copy(untrained_models["deepres", "wide"], model)
    shutil.copy(sidecar_path(untrained_models["deepres", "wide"]), sidecar_path(model))
    damage(model)
    with pytest.raises(ParameterError, match=message):
        load_model(model, "wide")


def test_save_model_is_atomic_and_checks_the_suffix(wide, tmp_path):
    network, info = wide
    with pytest.raises(ParameterError, match=".keras"):
        save_model(network, info, tmp_path / "model.h5")
    assert list(tmp_path.iterdir()) == []
    save_model(network, ModelInfo.for_range("deepres", "wide", version="2"), tmp_path / "m.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras"]
    assert read_model_info(tmp_path / "m.keras").version == "2"


@pytest.mark.parametrize("path", ["whole", "box", "auto"])
def test_integer_voxel_ratio_evaluates_only_the_read_voxels_and_agrees(untrained_models, rng, path):
    """A 1 A/px map and the high network (0.5 A/px): the output reads network voxels 2i, so
    only those are evaluated (stride 2, an eighth of the work), with the same values as
    evaluating every network voxel and reading voxel 2i."""
    import deepres_plugin.core.inference as inference

    network, info = load_model(untrained_models["deepres", "high"], "high")
    volume = lowpass_filter(rng.standard_normal((26, 30, 34)).astype(np.float32), 1.0, 4.0)
    mask = np.zeros(volume.shape, bool)
    mask[6:20, 8:22, 5:28] = True
    assert inference.output_stride(1.0, 0.5) == 2 and inference.output_stride(0.834, 0.5) == 1
    assert inference.output_stride(2.0, 1.0) == 2 and inference.output_stride(0.5, 1.0) == 1
    strided = predict_map(volume, 1.0, mask, network, info, path=path)
    assert sum(strided.voxels_by_path.values()) == mask.sum()
    work = fourier_resample(volume - np.float32(strided.background), 1.0, 0.5)
    every = inference.Predictor(network, info, path=path)
    raw = every.predict(work, np.ones(work.shape, bool))
    index = np.argwhere(mask)
    expected = np.clip(raw[tuple((2 * index).T)], *strided.clamp)
    np.testing.assert_allclose(strided.resolution[mask], expected, atol=1e-4)
    assert every.path == path


def test_non_integer_voxel_ratio_reads_back_every_network_voxel_around(untrained_models, rng):
    """0.834 A/px and the high network: each masked voxel's answer is the trilinear read-back
    of the evaluated network grid at i x 1.668, and only the voxels it touches are evaluated."""
    import scipy.ndimage

    import deepres_plugin.core.inference as inference

    network, info = load_model(untrained_models["deepres", "high"], "high")
    voxel = 0.834
    volume = lowpass_filter(rng.standard_normal((22, 24, 26)).astype(np.float32), voxel, 4.0)
    mask = np.zeros(volume.shape, bool)
    mask[5:17, 6:18, 4:22] = True
    result = predict_map(volume, voxel, mask, network, info)
    work = fourier_resample(volume - np.float32(result.background), voxel, 0.5)
    raw = np.clip(inference.Predictor(network, info).predict(work, np.ones(work.shape, bool)), *result.clamp)
    index = np.argwhere(mask)
    expected = scipy.ndimage.map_coordinates(raw, (index * (voxel / 0.5)).T, order=1)
    np.testing.assert_allclose(result.resolution[mask], expected, atol=1e-4)
    assert mask.sum() < sum(result.voxels_by_path.values()) < (1.668 ** 3 + 1) * mask.sum()
    assert np.all(result.resolution[~mask] == 0)


@pytest.mark.parametrize("voxel, stride", [(0.834, 1), (1.0, 2)])
def test_readback_block_by_block_equals_one_block(untrained_models, rng, voxel, stride):
    """The read-back resamples and predicts the network grid in blocks of z-planes (each with
    its half-box halo): thin blocks give what one block gives."""
    import deepres_plugin.core.inference as inference
    from deepres_plugin.core.resample import SlabResampler

    network, info = load_model(untrained_models["deepres", "high"], "high")
    volume = lowpass_filter(rng.standard_normal((30, 20, 22)).astype(np.float32), voxel, 4.0)
    mask = np.zeros(volume.shape, bool)
    mask[2:28, 5:15, 4:18] = True
    index = np.argwhere(mask)
    resampler = SlabResampler(volume, voxel, 0.5)
    bounds = inference.clamp_bounds(info, voxel)
    plane_bytes = resampler.shape[1] * resampler.shape[2] * inference.READBACK_BYTES_PER_VOXEL
    thin = inference.readback(inference.Predictor(network, info), resampler, index, voxel / 0.5, stride, bounds,
                              block_bytes=3 * plane_bytes)
    whole = inference.readback(inference.Predictor(network, info), resampler, index, voxel / 0.5, stride, bounds)
    np.testing.assert_allclose(thin, whole, atol=1e-4)
    assert np.all((thin >= bounds[0]) & (thin <= bounds[1]))


@pytest.mark.parametrize("precision, tolerance_A", [("bfloat16", 0.25), ("float16", 0.05)])
def test_reduced_precision_stays_close_to_float32(wide, rng, precision, tolerance_A):
    """bfloat16 keeps 8 bits of mantissa, float16 11: the answers move by a fraction of an
    Angstrom, never more than the tolerance, and float32 stays the default."""
    network, info = wide
    volume = lowpass_filter(rng.standard_normal((24, 24, 24)).astype(np.float32), 1.0, 5.0)
    mask = np.zeros(volume.shape, bool)
    mask[6:18, 6:18, 6:18] = True
    reference = predict_map(volume, 1.0, mask, network, info, path="whole")
    reduced = predict_map(volume, 1.0, mask, network, info, path="whole", precision=precision)
    difference = np.abs(reduced.resolution - reference.resolution)[mask]
    assert 0 < difference.max() <= tolerance_A
    assert np.all(reduced.resolution[~mask] == 0)


def test_unknown_or_unsupported_precision_is_refused(wide, untrained_models):
    network, info = wide
    with pytest.raises(ParameterError, match="precision must be one of float32, bfloat16, float16"):
        Predictor(network, info, precision="int8")
    xmipp, xmipp_info = load_model(untrained_models["xmipp", "wide"], "wide")
    with pytest.raises(ParameterError, match="only float32"):
        Predictor(xmipp, xmipp_info, precision="bfloat16")


@pytest.mark.parametrize("name, label", [("/CPU:0", "CPU"), ("/device:GPU:0", "GPU:0"),
                                         ("/job:localhost/replica:0/task:0/device:GPU:1", "GPU:1")])
def test_device_label_names_the_device_as_people_write_it(name, label):
    assert device_label(name) == label


def test_prediction_says_which_device_ran_it(untrained_models):
    """``auto`` resolves to the device TensorFlow used (CPU here unless TensorFlow sees a GPU)."""
    import tensorflow as tf

    network, info = load_model(untrained_models["deepres", "wide"], "wide")
    volume = np.random.default_rng(0).normal(size=(24, 24, 24)).astype(np.float32)
    mask = np.zeros(volume.shape, bool)
    mask[8:16, 8:16, 8:16] = True
    expected = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU"
    assert predict_map(volume, 1.0, mask, network, info, device="auto").device == expected
    assert predict_map(volume, 1.0, mask, network, info, device="cpu").device == "CPU"
