"""Training data: labels, unit-norm boxes, coverage, reproducibility, split, resume."""
import json
import shutil

import numpy as np
import pytest

from deepres_plugin.core import dataset as ds
from deepres_plugin.core.conditions import NOISE_REFERENCE_SCALE, SOLVENTS
from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.filters import LowpassShape, lowpass_bank
from deepres_plugin.core.ranges import BOX_SIZE, RANGES
from deepres_plugin.core.simulate import model_density, read_model

SMALL = dict(labels_per_structure=4, boxes_per_label=25)
PROTEIN = "BM5_1PPE_l_u.pdb.gz"


@pytest.fixture(scope="module")
def structures(tmp_path_factory, data_dir):
    """Three small structures, two of them from one complex (1PPE)."""
    folder = tmp_path_factory.mktemp("structures")
    for name in ("BM5_1PPE_l_b-matched.pdb.gz", "BM5_1PPE_l_u.pdb.gz", "BM5_1GL1_l_u.pdb.gz"):
        shutil.copy(data_dir / name, folder / name)
    return folder


@pytest.mark.parametrize("range_name", sorted(RANGES))
def test_examples_have_labels_in_range_and_unit_norm_boxes(data_dir, range_name):
    config = ds.DatasetConfig(range_name, **SMALL)
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    n = SMALL["labels_per_structure"] * SMALL["boxes_per_label"]
    assert examples["boxes"].shape == (n, BOX_SIZE, BOX_SIZE, BOX_SIZE)
    assert examples["boxes"].dtype == np.float16
    norms = np.sqrt((examples["boxes"].astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)          # float16 storage
    labels = examples["labels"]
    resolution_range = RANGES[range_name]
    assert labels.min() >= resolution_range.min_resolution and labels.max() <= resolution_range.max_resolution
    # label jitter: one continuous draw per stratum of the range
    strata = np.linspace(resolution_range.min_resolution, resolution_range.max_resolution, 5)
    distinct = np.unique(labels)
    assert len(distinct) == 4
    np.testing.assert_array_equal(np.digitize(distinct, strata), [1, 2, 3, 4])
    assert examples["noise_sd"].max() <= config.noise_sd_max * max(NOISE_REFERENCE_SCALE.values())


def test_box_centres_cover_the_molecule_without_repetition(data_dir):
    config = ds.DatasetConfig("wide", labels_per_structure=8, boxes_per_label=40)
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    simulated = model_density(read_model(data_dir / PROTEIN), 1.0, config.padding_angstrom())
    mask = simulated.atom_mask()
    centres = examples["centres"]
    assert mask[tuple(centres.T)].all()
    assert len(np.unique(centres, axis=0)) == len(centres)     # 320 < candidates: no repeats
    # spread over the molecule: the centres' spread matches the molecule's
    inside = np.argwhere(mask)
    np.testing.assert_allclose(centres.std(axis=0), inside.std(axis=0), rtol=0.2)


def test_boxes_are_the_normalised_map_around_their_centre(data_dir):
    """Rebuild one noise-free box by hand: low-pass, cut, normalise."""
    config = ds.DatasetConfig("wide", labels_per_structure=2, boxes_per_label=3, noise_sd_max=0.0, dtype="float32",
                              conditions="paper")
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    from deepres_plugin.core.filters import lowpass_filter

    density = model_density(read_model(data_dir / PROTEIN), 1.0, config.padding_angstrom()).density
    filtered = lowpass_filter(density, 1.0, float(examples["labels"][0]))
    z, y, x = examples["centres"][0]
    box = filtered[z - 6:z + 7, y - 6:y + 7, x - 6:x + 7]
    np.testing.assert_allclose(examples["boxes"][0], box / np.linalg.norm(box), atol=1e-5)


def test_varied_boxes_are_the_map_filtered_with_their_shape_and_envelope(data_dir):
    """Noise-free boxes rebuilt by hand from the condition stored with them: the drawn low-pass
    shape and B envelope; masked solvent zeroes the box's far corners, never the centre."""
    config = ds.DatasetConfig("wide", labels_per_structure=12, boxes_per_label=4, noise_sd_max=0.0,
                              dtype="float32")
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    assert len(set(examples["lowpass"])) >= 3 and np.ptp(examples["bfactor"]) > 0
    simulated = model_density(read_model(data_dir / PROTEIN), 1.0, config.padding_angstrom())
    spectrum = np.fft.rfftn(simulated.density)
    checked = 0
    for i in range(0, len(examples["labels"]), config.boxes_per_label):
        shape = LowpassShape.from_label(str(examples["lowpass"][i]))
        filtered = next(lowpass_bank(spectrum, simulated.density.shape, 1.0, [float(examples["labels"][i])],
                                     shapes=[shape], bfactors=[float(examples["bfactor"][i])]))
        z, y, x = examples["centres"][i]
        box = filtered[z - 6:z + 7, y - 6:y + 7, x - 6:x + 7]
        if SOLVENTS[examples["solvent"][i]] == "masked":
            assert examples["boxes"][i][6, 6, 6] != 0
            continue
        np.testing.assert_allclose(examples["boxes"][i], box / np.linalg.norm(box), atol=1e-5)
        checked += 1
    assert checked >= 4


def test_examples_are_reproducible_from_the_seed(data_dir):
    first = ds.structure_examples(data_dir / PROTEIN, ds.DatasetConfig("wide", seed=7, **SMALL))
    again = ds.structure_examples(data_dir / PROTEIN, ds.DatasetConfig("wide", seed=7, **SMALL))
    other = ds.structure_examples(data_dir / PROTEIN, ds.DatasetConfig("wide", seed=8, **SMALL))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["labels"], other["labels"])


def test_names_groups_and_split_by_complex():
    assert ds.structure_name("BM5_1F34_r_b-matched.pdb.gz") == "BM5_1F34_r_b-matched"
    assert ds.structure_name("NA_6las.cif.gz") == "NA_6las"
    assert ds.structure_group("BM5_1F34_r_b-matched") == ds.structure_group("BM5_1F34_l_u") == "BM5_1F34"
    assert ds.structure_group("DIPS_a9_1a95.pdb1_3.dill_l_b_COMPLEX") == "DIPS_a9_1a95.pdb1_3.dill"
    assert ds.structure_group("NA_1f27") == "NA_1f27"
    groups = [f"BM5_{i:04d}" for i in range(2000)]
    val = sum(ds.assign_split(g, 0, 0.1) == "val" for g in groups)
    assert 150 < val < 250                                      # ~10 % of the complexes


def test_small_sets_still_get_both_splits():
    assert sorted(ds.split_groups(["BM5_1AAA", "BM5_2BBB"], 0, 0.1).values()) == ["train", "val"]
    assert set(ds.split_groups(["BM5_1AAA", "BM5_2BBB"], 0, 0.0).values()) == {"train"}
    assert ds.split_groups(["BM5_1AAA"], 0, 0.1) == {"BM5_1AAA": ds.assign_split("BM5_1AAA", 0, 0.1)}
    many = [f"BM5_{i:04d}" for i in range(500)]
    assert ds.split_groups(many, 3, 0.1) == {g: ds.assign_split(g, 3, 0.1) for g in many}


def test_generate_dataset_manifest_split_and_loading(structures, tmp_path):
    config = ds.DatasetConfig("wide", val_fraction=0.5, seed=1, **SMALL)
    manifest = ds.generate_dataset(structures, tmp_path / "data", config, workers=2, progress=False)
    entries = {e["name"]: e for e in manifest["structures"]}
    assert set(entries) == {"BM5_1PPE_l_b-matched", "BM5_1PPE_l_u", "BM5_1GL1_l_u"}
    assert entries["BM5_1PPE_l_u"]["split"] == entries["BM5_1PPE_l_b-matched"]["split"]
    per_structure = SMALL["labels_per_structure"] * SMALL["boxes_per_label"]
    for split in ds.SPLITS:
        expected = per_structure * sum(e["split"] == split for e in entries.values())
        assert manifest["counts"][split]["boxes"] == expected
        assert sum(manifest["label_histogram"][split]) == expected
        boxes, labels = ds.load_split(tmp_path / "data", split)
        assert len(boxes) == len(labels) == expected
    assert manifest["skipped"] == []
    assert json.loads((tmp_path / "data" / ds.MANIFEST_FILE).read_text()) == manifest


def test_interrupted_run_resumes_and_ignores_half_written_files(structures, tmp_path):
    config = ds.DatasetConfig("wide", **SMALL)
    out = tmp_path / "data"
    ds.generate_dataset(structures, out, config, workers=1, progress=False)
    shards = out / ds.SHARD_DIR
    kept = shards / "BM5_1GL1_l_u.npz"
    lost = shards / "BM5_1PPE_l_u.npz"
    reference = dict(np.load(lost))
    kept_mtime = kept.stat().st_mtime_ns
    lost.unlink()                                                  # never finished
    (shards / ".BM5_1PPE_l_u.npz.x1y2.tmp").write_bytes(b"half")   # a killed writer's leftover
    (out / ds.MANIFEST_FILE).unlink()
    manifest = ds.generate_dataset(structures, out, config, workers=1, progress=False)
    assert kept.stat().st_mtime_ns == kept_mtime                   # not redone
    redone = np.load(lost)
    for key in set(reference) - {"seconds"}:
        np.testing.assert_array_equal(redone[key], reference[key])  # same seed, same data
    assert len(manifest["structures"]) == 3


def test_dataset_folder_refuses_other_options(structures, tmp_path):
    ds.generate_dataset(structures, tmp_path / "data", ds.DatasetConfig("wide", **SMALL), progress=False,
                        max_structures=1)
    with pytest.raises(ParameterError, match="other options.*seed"):
        ds.generate_dataset(structures, tmp_path / "data", ds.DatasetConfig("wide", seed=5, **SMALL))


def test_unusable_structures_are_skipped_and_reported(structures, tmp_path):
    folder = tmp_path / "structures"
    shutil.copytree(structures, folder)
    (folder / "broken.pdb").write_text("not a model\n")
    manifest = ds.generate_dataset(folder, tmp_path / "data", ds.DatasetConfig("wide", **SMALL), progress=False)
    assert [s["name"] for s in manifest["skipped"]] == ["broken"]
    assert len(manifest["structures"]) == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(range_name="medium"), "unknown resolution range"),
    (dict(range_name="wide", labels_per_structure=0), "at least 1"),
    (dict(range_name="wide", val_fraction=1.0), "fractions"),
    (dict(range_name="wide", dtype="int8"), "dtype"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        ds.DatasetConfig(**kwargs).validate()


def test_folder_without_models_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="no PDB/mmCIF"):
        ds.find_structures(tmp_path)


def test_labels_may_start_below_the_range_and_noise_may_be_skewed(data_dir):
    config = ds.DatasetConfig("wide", labels_per_structure=8, boxes_per_label=5, label_min=2.0, noise_shape="square")
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    labels = np.unique(examples["labels"])
    strata = np.linspace(2.0, 13.0, 9)
    np.testing.assert_array_equal(np.digitize(labels, strata), np.arange(1, 9))
    assert labels.min() < 2.5
    with pytest.raises(ParameterError, match="Nyquist"):
        ds.DatasetConfig("wide", label_min=1.5).validate()
    with pytest.raises(ParameterError, match="noise shape"):
        ds.DatasetConfig("wide", noise_shape="cubic").validate()
    square, uniform = (ds.structure_examples(data_dir / PROTEIN, ds.DatasetConfig(
        "wide", labels_per_structure=8, boxes_per_label=5, label_min=2.0, noise_shape=shape, conditions="paper"))
        for shape in ("square", "uniform"))
    # same random stream: the square shape squares the uniform draw u = SD / max
    np.testing.assert_allclose(square["noise_sd"], uniform["noise_sd"] ** 2 / config.noise_sd_max, rtol=1e-5)


def test_shell_power_of_a_plane_wave_lies_in_its_shell():
    size, shell = 27, 5
    z = np.arange(size, dtype=np.float32)
    wave = np.broadcast_to(np.cos(2 * np.pi * shell * z / size)[:, None, None], (size,) * 3)[None]
    power = ds.box_shell_power(wave)[0]
    # the Hann window spreads a line over its neighbours (weights 1/4, 1/2, 1/4 in amplitude)
    assert power.argmax() == shell
    assert power[shell - 1:shell + 2].sum() > 0.99 * power.sum()


def test_noise_limited_labels_keep_the_label_where_the_signal_stands_above_the_noise(data_dir, rng):
    """Known answers: no noise keeps every label; no signal gives the range's maximum; more
    noise never gives a finer label; a white-noise level between gives a label between."""
    voxel, size, label = 1.0, 27, 4.0
    simulated = model_density(read_model(data_dir / PROTEIN), voxel, 20.0)
    signal = next(lowpass_bank(np.fft.rfftn(simulated.density), simulated.density.shape, voxel, [label]))
    centres = ds.box_centre_candidates(simulated.atom_mask(3.0), size)[::97][:12]
    windows = ds.extract_boxes(signal / signal.max(), centres, size)
    labels = np.full(len(centres), label)
    white = rng.standard_normal(windows.shape).astype(np.float32)
    assert np.array_equal(ds.noise_limited_labels(windows, 0 * white, labels, voxel, 13.0), labels)
    assert np.all(ds.noise_limited_labels(0 * windows, white, labels, voxel, 13.0) == 13.0)
    previous = labels
    for level in (0.05, 0.2, 0.5, 1.0, 3.0):
        noisy = ds.noise_limited_labels(windows, level * white, labels, voxel, 13.0)
        assert np.all(noisy >= previous - 1e-6) and np.all(noisy <= 13.0)
        previous = noisy
    assert np.all(previous == 13.0)                       # SD 3 of the peak: no signal left
    between = np.median(ds.noise_limited_labels(windows, 1.0 * white, labels, voxel, 13.0))
    assert label < between < 13.0


def test_postprocessed_examples_label_boxes_no_finer_than_their_filter(data_dir):
    config = ds.DatasetConfig("wide", conditions="postprocessed", noise_sd_max=1.0, **SMALL)
    examples = ds.structure_examples(data_dir / PROTEIN, config)
    labels, lowpass = examples["labels"], examples["lowpass_resolution"]
    assert np.all(labels >= lowpass - 1e-5) and np.all(labels <= RANGES["wide"].max_resolution)
    assert np.all(examples["global_resolution"] <= lowpass + 1e-5)          # noise at least as fine as the signal
    assert np.all(examples["global_resolution"] >= 2 * RANGES["wide"].voxel_size - 1e-5)
    norms = np.linalg.norm(examples["boxes"].astype(np.float32).reshape(len(labels), -1), axis=1)
    assert np.allclose(norms, 1, atol=2e-3)
    again = ds.structure_examples(data_dir / PROTEIN, config)
    assert np.array_equal(again["labels"], labels)
