"""`deepres predict` and `deepres report` outputs: content checked against numpy, bad inputs."""
import csv
import dataclasses
import json

import mrcfile
import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.mapscale import unit_scale
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map
from deepres_plugin.core.outputs import (
    MASK_FILE,
    OLD_SUMMARY_KEYS,
    RESOLUTION_FILE,
    ReportSummary,
    SweepSummary,
    current_summary,
)
from deepres_plugin.core.report import histogram, palette_stops, summary_statistics
from deepres_plugin.core.signal import select_signal

PREDICT_FILES = {RESOLUTION_FILE, "summary.json", "histogram.png", "histogram.csv", "slices.png",
                 "chimerax.cxc", "chimera.cmd"}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A small map with an unusual geometry, and a mask touching one face."""
    folder = tmp_path_factory.mktemp("case")
    rng = np.random.default_rng(5)
    volume = np.zeros((30, 34, 27), np.float32)
    volume[6:24, 8:26, 5:22] = rng.random((18, 18, 17))
    volume += rng.normal(0, 0.05, volume.shape).astype(np.float32)
    geometry = MapGeometry(voxel_size=1.1, origin=(12.0, -4.5, 30.25))
    write_map(folder / "map.mrc", volume, geometry)
    mask = np.zeros(volume.shape, np.float32)
    mask[0:26, 7:27, 4:23] = 1
    write_map(folder / "mask.mrc", mask, geometry)
    write_map(folder / "wrong_shape.mrc", mask[:, :, :-1], geometry)
    write_map(folder / "wrong_voxel.mrc", mask, geometry.with_voxel_size(1.3))
    write_map(folder / "empty.mrc", np.zeros_like(mask), geometry)
    return folder


@pytest.fixture(scope="module")
def predicted(case, untrained_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("predicted") / "out"
    status = cli.main(["predict", str(case / "map.mrc"), "--mask", str(case / "mask.mrc"), "--model",
                       str(untrained_models["deepres", "wide"]), "--out", str(out), "--no-progress"])
    assert status == 0
    return out


def test_predict_writes_every_output_on_the_input_grid(case, predicted):
    assert {p.name for p in predicted.iterdir()} == PREDICT_FILES
    resolution, geometry = read_map(predicted / RESOLUTION_FILE)
    volume, map_geometry = read_map(case / "map.mrc")
    assert resolution.shape == volume.shape and geometry == map_geometry
    mask = read_map(case / "mask.mrc")[0] > 0.5
    estimated = resolution > 0                     # the mask where the map shows density
    assert (resolution[estimated] >= 2.5).all() and (resolution[estimated] <= 13.0).all()
    expected = select_signal(unit_scale(volume), map_geometry.voxel_size, mask).estimated
    assert np.array_equal(estimated, expected) and 0.5 < expected.sum() / mask.sum() < 1


def test_summary_numbers_are_numpy_s(predicted):
    summary = json.loads((predicted / "summary.json").read_text())
    resolution = read_map(predicted / RESOLUTION_FILE)[0]
    values = resolution[resolution > 0].astype(np.float64)
    assert summary["voxels"] == values.size
    for key, expected in [("median_A", np.median(values)), ("mean_A", values.mean()), ("std_A", values.std()),
                          ("min_A", values.min()), ("max_A", values.max()),
                          ("percentile_20_A", np.percentile(values, 20)),
                          ("percentile_80_A", np.percentile(values, 80))]:
        assert summary[key] == pytest.approx(expected, rel=1e-6), key
    assert summary["clamp"]["low_A"] == pytest.approx(2.5) and summary["clamp"]["high_A"] == 13.0
    assert "clamped" in summary["clamp"]["note"]
    assert summary["range"]["min_resolution_A"] == 2.5 and summary["range"]["max_resolution_A"] == 13.0
    assert summary["model"]["trained"] is False and summary["input_voxel_size_A"] == pytest.approx(1.1)
    assert summary["model_voxel_size_A"] == 1.0 and summary["colour_range_A"] == [2.5, 13.0]
    assert summary["mask"].endswith("mask.mrc") and "mask" not in summary["files"]     # the user's mask: not written
    # the device TensorFlow ran on, not the option (this machine's GPU, if it has one)
    assert summary["device_requested"] == "auto" and summary["device"] in ("CPU", "GPU:0")
    typed = ReportSummary.read(predicted)                  # what the protocols and viewers read
    assert (typed.median, typed.percentile_20, typed.voxels) == (summary["median_A"], summary["percentile_20_A"],
                                                                  summary["voxels"])
    assert typed.device == summary["device"] and typed.mask_file is None
    assert typed.colour_range == (2.5, 13.0) and typed.network == f"{summary['model']['name']} 0"
    assert typed.input_voxel_size == pytest.approx(1.1) and typed.map_path(predicted).endswith("map.mrc")


def test_histogram_csv_sums_to_the_masked_voxels_in_quarter_angstrom_bins(predicted):
    rows = list(csv.DictReader((predicted / "histogram.csv").open()))
    summary = json.loads((predicted / "summary.json").read_text())
    assert sum(int(r["voxels"]) for r in rows) == summary["voxels"]
    widths = {round(float(r["resolution_to_A"]) - float(r["resolution_from_A"]), 6) for r in rows}
    assert widths == {0.25}


def test_chimerax_script_names_both_files_geometry_and_palette(case, predicted):
    script = (predicted / "chimerax.cxc").read_text()
    opened = [json.loads(line.split(" ", 1)[1].rsplit(" format", 1)[0])
              for line in script.splitlines() if line.startswith("open ")]
    assert [(predicted / name).resolve() for name in opened] == [(case / "map.mrc").resolve(),
                                                                 (predicted / RESOLUTION_FILE).resolve()]
    assert "voxelSize 1.1 origin 12,-4.5,30.25" in script
    stops = palette_stops("jet", 2.5, 13.0)
    assert f"palette {stops[0][0]:.3g},{stops[0][1]}" in script and stops[0][1] == "#000080"  # blue = 2.5 A
    assert "color sample #1 map #2" in script and "key " in script
    chimera = (predicted / "chimera.cmd").read_text()
    assert "scolor #0 volume #1 cmap 2.5,#000080" in chimera and "colorkey" in chimera


def test_report_rebuilds_outputs_with_another_scale(case, predicted, tmp_path):
    status = cli.main(["report", str(predicted / RESOLUTION_FILE), "--map", str(case / "map.mrc"),
                       "--out", str(tmp_path / "report"), "--palette", "viridis",
                       "--range-min", "3", "--range-max", "9"])
    assert status == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    original = json.loads((predicted / "summary.json").read_text())
    assert summary["median_A"] == pytest.approx(original["median_A"])
    assert summary["colour_range_A"] == [3.0, 9.0] and summary["palette"] == "viridis"
    assert f"palette 3,{palette_stops('viridis', 3, 9)[0][1]}" in (tmp_path / "report" / "chimerax.cxc").read_text()


def test_automatic_mask_is_written_when_none_is_given(case, untrained_models, tmp_path):
    status = cli.main(["predict", str(case / "map.mrc"), "--model", str(untrained_models["deepres", "wide"]),
                       "--out", str(tmp_path / "auto"), "--no-progress"])
    assert status == 0
    mask = read_map(tmp_path / "auto" / "mask.mrc")[0] > 0.5
    resolution = read_map(tmp_path / "auto" / RESOLUTION_FILE)[0]
    np.testing.assert_array_equal(resolution > 0, mask)
    assert 0.1 < mask.mean() < 0.8
    summary = ReportSummary.read(tmp_path / "auto")         # the mask is listed with the run's files
    assert summary.fields["files"]["mask"] == MASK_FILE and summary.mask_file == MASK_FILE
    assert all((tmp_path / "auto" / name).is_file() for name in summary.fields["files"].values())


def test_summary_statistics_and_histogram_known_values():
    values = np.array([3.0, 3.1, 3.3, 4.0, 4.2])
    stats = summary_statistics(values)
    assert stats["median"] == 3.3 and stats["voxels"] == 5 and stats["min"] == 3.0
    edges, counts = histogram(values)
    np.testing.assert_allclose(edges, [3.0, 3.25, 3.5, 3.75, 4.0, 4.25])
    np.testing.assert_array_equal(counts, [2, 1, 0, 0, 2])


@pytest.mark.parametrize("extra, message", [
    (["--mask", "{case}/wrong_shape.mrc"], "shape"),
    (["--mask", "{case}/wrong_voxel.mrc"], "voxel size"),
    (["--mask", "{case}/empty.mrc"], "empty"),
    (["--model", "{case}/map.mrc"], "metadata file"),
    (["--model", "{case}/missing.keras"], "no such model"),
    (["--model", "{high}", "--range", "wide"], "not a 'wide' one"),
])
def test_bad_predict_inputs_give_one_line_and_leave_nothing(case, untrained_models, tmp_path, capsys, extra, message):
    args = ["predict", str(case / "map.mrc"), "--out", str(tmp_path / "out"), "--no-progress"]
    if "--model" not in extra:
        args += ["--model", str(untrained_models["deepres", "wide"])]
    args += [a.format(case=case, high=untrained_models["deepres", "high"]) for a in extra]
    assert cli.main(args) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("deepres predict: error:")
    assert not (tmp_path / "out").exists()


def write_nan_map(path, volume, voxel_size, nan_voxels):
    """Write ``volume`` with NaN at ``nan_voxels`` (indices into the flat array) with mrcfile
    itself: :func:`write_map` refuses NaN."""
    data = volume.astype(np.float32)
    data.reshape(-1)[list(nan_voxels)] = np.nan
    with mrcfile.new(path, overwrite=True) as mrc, pytest.warns(RuntimeWarning, match="NaN"):
        mrc.set_data(data)
        mrc.voxel_size = voxel_size


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_nan_map_and_non_map_are_refused(case, predicted, tmp_path, capsys, untrained_models):
    volume, geometry = read_map(case / "map.mrc")
    resolution = read_map(predicted / RESOLUTION_FILE)[0]
    nan_voxels = [5, 777, volume.size - 1]
    write_nan_map(tmp_path / "nan_map.mrc", volume, geometry.voxel_size, nan_voxels)
    write_nan_map(tmp_path / "nan_resolution.mrc", resolution, geometry.voxel_size, nan_voxels)
    (tmp_path / "text.mrc").write_text("no map here\n" * 200)

    status = cli.main(["report", str(tmp_path / "nan_resolution.mrc"), "--map", str(case / "map.mrc"),
                       "--out", str(tmp_path / "out")])
    assert status == cli.EXIT_ERROR
    assert one_error_line(capsys) == (f"deepres report: error: {tmp_path / 'nan_resolution.mrc'} contains "
                                      f"{len(nan_voxels)} NaN or infinite values")
    status = cli.main(["report", str(predicted / RESOLUTION_FILE), "--map", str(tmp_path / "nan_map.mrc"),
                       "--out", str(tmp_path / "out")])
    assert status == cli.EXIT_ERROR
    assert one_error_line(capsys).endswith(f"nan_map.mrc contains {len(nan_voxels)} NaN or infinite values")
    for name, message in [("nan_map.mrc", f"contains {len(nan_voxels)} NaN or infinite values"),
                          ("text.mrc", "not a readable MRC")]:
        assert cli.main(["predict", str(tmp_path / name), "--model", str(untrained_models["deepres", "wide"]),
                         "--out", str(tmp_path / "out")]) == cli.EXIT_ERROR
        line = one_error_line(capsys)
        assert line.startswith("deepres predict: error:") and message in line
    assert not (tmp_path / "out").exists()


#: A summary.json as DeepRes 0.1.0 wrote it (a run folder made before the units were part of the key names).
OLD_PREDICT_SUMMARY = {
    "median": 5.27, "mean": 5.92, "std": 2.16, "min": 2.5, "max": 11.9, "percentile_20": 3.78, "percentile_80": 8.16,
    "voxels": 82191, "range": {"name": "wide", "min_resolution": 2.5, "max_resolution": 13.0},
    "model": {"name": "deepres-wide", "version": "1.1", "architecture": "deepres", "trained": True, "file": "x"},
    "input_voxel_size": 1.0, "model_voxel_size": 1.0, "clamp": {"low": 2.5, "high": 13.0, "note": "clamped"},
    "mask": "automatic", "map_condition": {"bfactor_A2": 57.4, "solvent": "noisy"}, "device": "auto",
    "run_seconds": 3.9, "colour_range": [2.5, 13.0], "palette": "jet",
    "files": {"map": "../map.mrc", "resolution": "resolution.mrc", "summary": "summary.json"},
}
OLD_SWEEP_SUMMARY = {
    "recommended_bfactor": -40.0, "recommended_verdict": "good", "global_fsc_resolution": 3.8, "lowpass_A": 3.8,
    "threshold": 0.143, "localfsc_p20": 3.9, "localfsc_median": 4.2, "range": "wide", "input_voxel_size": 1.0,
    "sweep": [{"bfactor": b, "deepres_median": 4.0, "deepres_p20": 3.5 + b / 100, "deepres_p80": 4.5,
               "localfsc_p20": 3.9, "difference": b / 100 - 0.4, "verdict": "good"} for b in (-80.0, -40.0, 0.0)],
    "files": {"sharpened_map": "sharpened_map.mrc"},
}


def test_summaries_of_the_previous_version_are_read_with_the_present_keys(tmp_path):
    """A run folder made by DeepRes 0.1.0 (keys without units) reads as one made now: the typed
    summaries and ``fields`` carry the present keys; a present summary is left as it is."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps(OLD_PREDICT_SUMMARY))
    summary = ReportSummary.read(old)
    assert (summary.median, summary.percentile_20, summary.percentile_80, summary.min, summary.max) == (
        5.27, 3.78, 8.16, 2.5, 11.9)
    assert summary.colour_range == (2.5, 13.0) and summary.input_voxel_size == 1.0 and summary.model_voxel_size == 1.0
    assert summary.fields["clamp"] == {"low_A": 2.5, "high_A": 13.0, "note": "clamped"}
    assert summary.fields["range"] == {"name": "wide", "min_resolution_A": 2.5, "max_resolution_A": 13.0}
    assert summary.map_bfactor == 57.4 and summary.range_name == "wide"
    assert ReportSummary.from_dict(OLD_PREDICT_SUMMARY) == summary
    assert current_summary(summary.fields) == summary.fields                    # present keys: unchanged
    (old / "summary.json").write_text(json.dumps(OLD_SWEEP_SUMMARY))
    sweep = SweepSummary.read(old)
    assert (sweep.recommended_bfactor, sweep.global_fsc_resolution, sweep.localfsc_p20, sweep.localfsc_median) == (
        -40.0, 3.8, 3.9, 4.2)
    assert sweep.recommended.deepres_p20 == pytest.approx(3.1) and [row.bfactor for row in sweep.rows] == [-80, -40, 0]
    assert sweep.fields["input_voxel_size_A"] == 1.0 and sweep.fields["range"] == "wide"


def test_predict_summary_keys_carry_their_units(predicted):
    """Every figure with a unit says it in its key (_A, _A2, _seconds); what has none is a
    count, a ratio, a name or a map value."""
    summary = json.loads((predicted / "summary.json").read_text())
    unitless = {"voxels", "range", "model", "input_shape_zyx", "model_grid_shape_zyx", "clamp", "background_level",
                "mask", "left_out", "map_condition", "warnings", "voxels_by_path", "device", "device_requested",
                "precision", "deepres_version", "python", "map", "palette", "files"}
    numbers = {key for key, value in summary.items() if isinstance(value, (int, float, list)) and key not in unitless}
    assert numbers and all(key.endswith(("_A", "_A2", "_seconds")) for key in numbers), numbers
    assert not set(summary) & set(OLD_SUMMARY_KEYS)


def test_every_summary_is_written_and_read_through_one_definition_of_its_keys():
    from deepres_plugin.core import outputs

    report = outputs.ReportSummary(median=4.0, mean=4.2, std=0.5, min=3.0, max=6.0, percentile_20=3.6, percentile_80=4.8,
                           voxels=10, colour_range=(3.0, 6.0), palette="jet",
                           fields={"files": {"map": "../map.mrc"}, "run_seconds": 1.5})
    row = outputs.SweepRow(bfactor=-50.0, deepres_median=4.0, deepres_p20=3.5, deepres_p80=4.5, localfsc_p20=3.6,
                   difference=-0.1, verdict="good")
    sweep = outputs.SweepSummary(recommended_bfactor=-50.0, recommended_verdict="good", global_fsc_resolution=3.8,
                         localfsc_p20=3.6, localfsc_median=4.0, threshold=0.143, rows=(row,), fields={})
    local = outputs.LocalFilterSummary(bank_resolutions=(2.0, 3.0), bfactor=0.0, bfactor_source="none", map_bfactor=None,
                               voxels=7, colour_range=(2.0, 3.0), palette="viridis", fields={})
    chain = outputs.ChainResolution(chain="A", residues=3, residues_estimated=2, atoms=20, atoms_outside_map=0,
                            atoms_outside_region=1, median=4.0, percentile_20=3.5, percentile_80=4.5)
    residues = outputs.ResiduesSummary(residues=3, residues_estimated=2, median=4.0, percentile_20=3.5, percentile_80=4.5,
                               atoms=20, atoms_outside_map=0, atoms_outside_region=1, chains=(chain,),
                               colour_range=(3.0, 5.0), palette="jet", fields={})
    for summary in (report, sweep, local, residues):
        written = json.loads(summary.to_json())
        again = type(summary).from_dict(written)
        assert again.to_dict() == written and again == dataclasses.replace(summary, fields=written)
    assert json.loads(report.to_json())["median_A"] == 4.0 and report.map_file == "../map.mrc"
    assert json.loads(sweep.to_json())["sweep"][0]["bfactor_A2"] == -50.0
    assert json.loads(residues.to_json())["chains"][0]["median_A"] == 4.0
    # a per-residue summary of DeepRes 0.1.0 (figures without their unit)
    old = {**{key: value for key, value in json.loads(residues.to_json()).items()
              if key not in ("median_A", "percentile_20_A", "percentile_80_A", "colour_range_A", "chains")},
           "median": 4.0, "percentile_20": 3.5, "percentile_80": 4.5, "colour_range": [3.0, 5.0],
           "chains": [{**dataclasses.asdict(chain)}]}
    assert outputs.ResiduesSummary.from_dict(old).chains == (chain,) and outputs.ResiduesSummary.from_dict(old).median == 4.0
