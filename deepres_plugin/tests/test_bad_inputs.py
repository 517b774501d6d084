"""Every failure clean: the bad-input matrix over every ``deepres`` command.

Each row of :data:`CASES` is a command line (``{name}`` stands for a prepared file, see
:func:`inputs`), the fragment its one-line message must hold and the output it must not
leave. A new command or option joins the matrix by adding rows. The tests after the
matrix check what cannot be a row: inputs at extreme scales that must give the usual
answer, interrupted and killed writes, stale files of earlier runs, the sweep's verdicts.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core import fileio
from deepres_plugin.core.errors import MapFormatError, ParameterError, StructureError
from deepres_plugin.core.fsc import check_half_map_placement
from deepres_plugin.core.mrc import MapGeometry, check_map_file, read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.report import HISTOGRAM_BIN_A, MAX_HISTOGRAM_BINS, histogram
from deepres_plugin.core.simulate import SEED_RANGE, check_seed, read_model
from deepres_plugin.core.sweep import check_sharpening, monotone_verdicts, parse_bfactors, recommend
from deepres_plugin.tests.synthetic import SHAPE, noisy, signal_and_mask

PROTEIN = "BM5_1PPE_l_u.pdb.gz"


def _truncated_at_a_line_break(source: Path, target: Path) -> None:
    """A .gz whose text ends cleanly at a line break but whose stream has no end (a copy cut short)."""
    lines = gzip.open(source).read().split(b"\n")
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    target.write_bytes(compressor.compress(b"\n".join(lines[:len(lines) // 3]) + b"\n")
                       + compressor.flush(zlib.Z_SYNC_FLUSH))


#: Voxel sizes (x, y, z, Å/px) of a header that states a unit cell other than the box's.
ANISOTROPIC_VOXEL_XYZ = (1.0, 1.0, 1.3)


def _anisotropic_map(path: Path, data: np.ndarray) -> None:
    """A map whose header gives :data:`ANISOTROPIC_VOXEL_XYZ`."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.voxel_size = ANISOTROPIC_VOXEL_XYZ


def _nan_model(path: Path) -> None:
    from deepres_plugin.core.networks import ModelInfo, build_network, save_model

    network = build_network("deepres", seed=0)
    network.set_weights([np.full_like(w, np.nan) for w in network.get_weights()])
    save_model(network, ModelInfo.for_range("deepres", "wide", name="nan", trained=True), path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir):
    """The prepared files, by name (``{name}`` in the command lines)."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(12)
    signal, mask = signal_and_mask(rng)
    files = {"data": data_dir, "protein": data_dir / PROTEIN, "tmp": folder}
    for name, data, geometry in [
        ("map", noisy(signal, 0.02, rng), MapGeometry(1.0)),
        ("half1", noisy(signal, 0.3, rng), MapGeometry(1.0)),
        ("half2", noisy(signal, 0.3, rng), MapGeometry(1.0)),
        ("mask", mask, MapGeometry(1.0)),
        ("zeros", np.zeros(SHAPE, np.float32), MapGeometry(1.0)),
        ("constant", np.full(SHAPE, 3.0, np.float32), MapGeometry(1.0)),
        ("coarse", signal, MapGeometry(7.0)),
        ("placed_map", signal, MapGeometry(1.0, origin=(10.0, 10.0, 10.0))),
        ("placed_mask", mask, MapGeometry(1.0, origin=(30.0, 10.0, 10.0))),
        ("resolution", np.where(mask > 0, np.where(signal > 0, 4.0, 8.0), 0.0).astype(np.float32), MapGeometry(1.0)),
        ("resolution_flagged", np.where(mask > 0, 4.0, 1e30).astype(np.float32), MapGeometry(1.0)),
        ("resolution_1e6", np.where(mask > 0, 4.0, 1e6).astype(np.float32), MapGeometry(1.0)),
        ("tiny_voxels", signal, MapGeometry(1e-6)),
        ("thin_y", signal[:, :1, :], MapGeometry(1.0)),
        ("thin_x", signal[:, :, :1], MapGeometry(1.0)),
        ("placed_half1", noisy(signal, 0.3, rng), MapGeometry(1.0, origin=(10.0, 10.0, 10.0))),
        ("placed_half2", noisy(signal, 0.3, rng), MapGeometry(1.0, origin=(30.0, 10.0, 10.0))),
    ]:
        files[name] = folder / f"{name}.mrc"
        write_map(files[name], data, geometry)
    for name in ("anisotropic_half1", "anisotropic_half2"):
        files[name] = folder / f"{name}.mrc"
        _anisotropic_map(files[name], noisy(signal, 0.3, rng))
    files["corrupt_gz"] = folder / "corrupt.pdb.gz"
    files["corrupt_gz"].write_bytes(b"not gzip at all\n\x1f\x8b")
    files["truncated_gz"] = folder / "truncated.pdb.gz"
    _truncated_at_a_line_break(data_dir / PROTEIN, files["truncated_gz"])
    files["a_file"] = folder / "a_file"
    files["a_file"].write_text("not a folder")
    files["a_dir"] = folder / "a_dir"
    files["a_dir"].mkdir()
    garbage = folder / "garbage_dataset"
    garbage.mkdir()
    (garbage / "config.json").write_text("{not json")
    files["garbage_dataset"] = garbage
    for name, manifest in (("bad_manifest", "[1, 2]"), ("empty_manifest", "")):
        (folder / name).mkdir()
        (folder / name / "manifest.json").write_text(manifest)
        files[name] = folder / name
    missing = folder / "missing_shard"
    missing.mkdir()
    (missing / "manifest.json").write_text(json.dumps({
        "config": {"range_name": "wide", "box_size": 13, "dtype": "float16"}, "counts": {},
        "structures": [{"split": "train", "shard": "shards/gone.npz"}, {"split": "val", "shard": "shards/gone.npz"}]}))
    files["missing_shard"] = missing
    files["nan_model"] = folder / "nan.keras"
    _nan_model(files["nan_model"])
    return files


SIM = ["simulate", "{protein}", "--sampling", "1", "--out", "{tmp}/out.mrc"]
PRED = ["predict", "{map}", "--mask", "{mask}", "--no-progress"]
HALVES = ["{half1}", "{half2}", "--mask", "{mask}", "--no-progress"]

#: (case, command line, fragment of the one-line message). Every row must end with exit
#: status 1, one line on stderr, no traceback and nothing written where the output was asked.
CASES = [
    ("simulate corrupt gz", ["simulate", "{corrupt_gz}", "--sampling", "1", "--out", "{tmp}/out.mrc"],
     "damaged or truncated .gz"),
    ("simulate truncated gz", ["simulate", "{truncated_gz}", "--sampling", "1", "--out", "{tmp}/out.mrc"],
     "damaged or truncated .gz"),
    ("simulate noise nan", SIM + ["--noise", "nan"], "--noise: must be a finite number"),
    ("simulate bfactor inf", SIM + ["--bfactor", "inf"], "--bfactor: must be a finite number"),
    ("simulate bfactor -5000", SIM + ["--bfactor=-5000"], "--bfactor: must be at least -1000"),
    ("simulate bfactor overflow", ["simulate", "{protein}", "--sampling", "0.5", "--bfactor=-1000",
                                   "--out", "{tmp}/out.mrc"], "beyond floating-point range"),
    ("simulate out is a folder", ["simulate", "{protein}", "--sampling", "1", "--out", "{a_dir}"], "is a directory"),
    ("simulate sampling zero", ["simulate", "{protein}", "--sampling", "0", "--out", "{tmp}/out.mrc"],
     "--sampling: must be more than 0"),
    ("dataset noise-max nan", ["dataset", "{data}", "--range", "wide", "--out", "{tmp}/out", "--noise-max", "nan"],
     "--noise-max: must be a finite number"),
    ("dataset noise-max inf", ["dataset", "{data}", "--range", "wide", "--out", "{tmp}/out", "--noise-max", "inf"],
     "--noise-max: must be a finite number"),
    ("dataset workers 0", ["dataset", "{data}", "--range", "wide", "--out", "{tmp}/out", "--workers", "0"],
     "--workers: must be at least 1"),
    ("dataset garbage config", ["dataset", "{data}", "--range", "wide", "--out", "{garbage_dataset}"],
     "config.json is unreadable"),
    ("train bad manifest", ["train", "{bad_manifest}", "--range", "wide", "--out", "{tmp}/out.keras"],
     "is not a DeepRes dataset manifest"),
    ("train empty manifest", ["train", "{empty_manifest}", "--range", "wide", "--out", "{tmp}/out.keras"],
     "is not a DeepRes dataset manifest"),
    ("train missing shard", ["train", "{missing_shard}", "--range", "wide", "--out", "{tmp}/out.keras"],
     "damaged or missing shard"),
    ("train learning rate nan", ["train", "{missing_shard}", "--range", "wide", "--out", "{tmp}/out.keras",
                                 "--learning-rate", "nan"], "--learning-rate: must be a finite number"),
    ("predict nan model", PRED + ["--model", "{nan_model}", "--out", "{tmp}/out"], "weights are not finite"),
    ("predict zero map", ["predict", "{zeros}", "--mask", "{mask}", "--out", "{tmp}/out"], "is flat"),
    ("predict constant map", ["predict", "{constant}", "--out", "{tmp}/out"], "is flat"),
    ("predict coarse voxel", ["predict", "{coarse}", "--out", "{tmp}/out"], "Nyquist limit"),
    ("predict mask placed elsewhere", ["predict", "{placed_map}", "--mask", "{placed_mask}", "--out", "{tmp}/out"],
     "lie on different grids"),
    ("predict out is a file", PRED + ["--out", "{a_file}"], "is a file"),
    ("predict a resolution map", ["predict", "{resolution}", "--out", "{tmp}/out"],
     "looks like a local-resolution map, not a density map (every voxel is 0 or between 4.00 and 8.00 Å)"),
    ("localfilter resolution map as map", ["localfilter", "{resolution}", "{resolution}", "--out", "{tmp}/out"],
     "looks like a local-resolution map, not a density map"),
    ("localfilter map as resolution map", ["localfilter", "{map}", "{map}", "--out", "{tmp}/out"],
     "holds negative values (down to"),
    ("residues map as resolution map", ["residues", "{map}", "{protein}", "--out", "{tmp}/out"],
     "it is not a local-resolution map in Å (0 = no estimate); is it the density map?"),
    ("report map as resolution map", ["report", "{map}", "--map", "{map}", "--out", "{tmp}/out"],
     "holds negative values"),
    ("report resolution map as map", ["report", "{resolution}", "--map", "{resolution}", "--out", "{tmp}/out"],
     "looks like a local-resolution map"),
    ("report resolution map with a flag value", ["report", "{resolution_flagged}", "--map", "{map}", "--out",
                                                 "{tmp}/out"], "holds values up to 1e+30"),
    ("predict out under a file", PRED + ["--out", "{a_file}/sub"], "is a file"),
    ("predict sampling nan", PRED + ["--sampling", "nan", "--out", "{tmp}/out"], "--sampling: must be a finite"),
    ("localfsc window 0", ["localfsc"] + HALVES + ["--method", "window", "--window", "0", "--out", "{tmp}/out"],
     "--window: must be more than 0"),
    ("localfsc window beyond the map", ["localfsc"] + HALVES + ["--method", "window", "--window", "500",
                                                                "--out", "{tmp}/out"], "larger than the map"),
    ("localfsc window with bands", ["localfsc"] + HALVES + ["--window", "30", "--out", "{tmp}/out"],
     "window method only"),
    ("localfsc stride 0", ["localfsc"] + HALVES + ["--stride", "0", "--out", "{tmp}/out"],
     "--stride: must be at least 1"),
    ("localfsc flat halves", ["localfsc", "{zeros}", "{half2}", "--out", "{tmp}/out"], "is flat"),
    ("localfsc out under a file", ["localfsc"] + HALVES + ["--out", "{a_file}/sub"], "is a file"),
    ("sweep nan range", ["bfactor-sweep"] + HALVES + ["--bfactors", "nan:0:20", "--out", "{tmp}/out"],
     "must be finite numbers"),
    ("sweep inf", ["bfactor-sweep"] + HALVES + ["--bfactors", "inf", "--out", "{tmp}/out"], "must be finite numbers"),
    ("sweep overflowing range", ["bfactor-sweep"] + HALVES + ["--bfactors", "-1e308:1e308:1", "--out", "{tmp}/out"],
     "between 1 and 200 values"),
    ("sweep absurd sharpening", ["bfactor-sweep"] + HALVES + ["--bfactors=-1e6", "--out", "{tmp}/out"],
     "multiplies the map by exp"),
    ("report range nan", ["report", "{map}", "--map", "{map}", "--out", "{tmp}/out", "--range-min", "nan"],
     "--range-min: must be a finite number"),
    ("fsc flat half", ["fsc", "{constant}", "{half2}", "--out", "{tmp}/out"], "is flat"),
    ("fsc out is a file", ["fsc", "{half1}", "{half2}", "--out", "{a_file}"], "is a file"),
    ("unknown option", ["predict", "{map}", "--no-such-option"], "unrecognized arguments"),
    ("report resolution map holding 1e6", ["report", "{resolution_1e6}", "--map", "{map}", "--out", "{tmp}/out"],
     "holds values up to 1e+06"),
    ("predict voxel size 1e-6", ["predict", "{tiny_voxels}", "--out", "{tmp}/out"],
     "has voxel size 1e-06 Å/px, outside the plausible 0.1-100 Å/px; give the real pixel size (--sampling)"),
    ("localfsc voxel size 1e-6", ["localfsc", "{tiny_voxels}", "{half2}", "--out", "{tmp}/out"],
     "has voxel size 1e-06 Å/px, outside the plausible 0.1-100 Å/px"),
    ("predict sampling 1e-6", PRED + ["--sampling", "1e-6", "--out", "{tmp}/out"],
     "--sampling: must be at least 0.1 Å/px, got 1e-6"),
    ("localfsc sampling 500", ["localfsc"] + HALVES + ["--sampling", "500", "--out", "{tmp}/out"],
     "--sampling: must be at most 100 Å/px, got 500"),
    ("simulate negative seed", SIM + ["--seed=-1"], "--seed: must be at least 0, got -1"),
    ("dataset seed beyond NumPy's", ["dataset", "{data}", "--range", "wide", "--out", "{tmp}/out", "--seed",
                                     "4294967296"], "--seed: must be at most 4294967295, got 4294967296"),
    ("predict unknown palette", PRED + ["--palette", "nope", "--out", "{tmp}/out"],
     "argument --palette: unknown palette 'nope'"),
    ("report unknown palette", ["report", "{resolution}", "--map", "{map}", "--out", "{tmp}/out", "--palette", "nope"],
     "argument --palette: unknown palette 'nope'"),
    ("localfsc unknown palette", ["localfsc"] + HALVES + ["--palette", "nope", "--out", "{tmp}/out"],
     "argument --palette: unknown palette 'nope'"),
    ("sweep unknown palette", ["bfactor-sweep"] + HALVES + ["--palette", "nope", "--out", "{tmp}/out"],
     "argument --palette: unknown palette 'nope'"),
    ("localfilter unknown palette", ["localfilter", "{map}", "{resolution}", "--palette", "nope", "--out", "{tmp}/out"],
     "argument --palette: unknown palette 'nope'"),
    ("residues unknown palette", ["residues", "{resolution}", "{protein}", "--palette", "nope", "--out", "{tmp}/out"],
     "argument --palette: unknown palette 'nope'"),
    ("predict map one voxel thick along y", ["predict", "{thin_y}", "--out", "{tmp}/out"],
     "is a 2D image (40x1x40 voxels, at most one along y); a single 3D volume is required"),
    ("predict map one voxel thick along x", ["predict", "{thin_x}", "--out", "{tmp}/out"],
     "is a 2D image (1x40x40 voxels, at most one along x)"),
    ("localfsc anisotropic halves", ["localfsc", "{anisotropic_half1}", "{anisotropic_half2}", "--out", "{tmp}/out"],
     "has anisotropic voxels (1.0, 1.0, 1.3) Å/px"),
    ("fsc halves placed apart", ["fsc", "{placed_half1}", "{placed_half2}", "--out", "{tmp}/out"],
     "placed_half2.mrc start at (10, 10, 10) Å and (30, 10, 10) Å: they lie on different grids"),
    ("localfsc halves placed apart", ["localfsc", "{placed_half1}", "{placed_half2}", "--out", "{tmp}/out"],
     "placed_half2.mrc start at (10, 10, 10) Å and (30, 10, 10) Å: they lie on different grids"),
]


@pytest.mark.parametrize("case, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_matrix(inputs, capsys, case, argv, message):
    folder = inputs["tmp"]
    before = {p for p in folder.rglob("*")}
    status = cli.main([a.format(**inputs) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR, (case, err)
    assert "\n" not in err and err.startswith("deepres") and message in err, (case, err)
    assert "Traceback" not in err
    after = {p for p in folder.rglob("*")}
    assert after == before, (case, sorted(str(p) for p in after - before))     # nothing written, nothing left


def test_os_errors_at_write_time_are_one_line_naming_the_output(inputs, tmp_path, capsys):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))            # a full disk, as far as we know
    try:
        status = cli.main(["simulate", str(inputs["protein"]), "--sampling", "0.5", "--out", str(tmp_path / "big.mrc")])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and "\n" not in err and f"({tmp_path / 'big.mrc'})" in err, err
    assert list(tmp_path.iterdir()) == []
    # a folder where nothing can be made, though its permission bits let root in: found before
    # the computation, by writing a probe file there
    status = cli.main(["simulate", str(inputs["protein"]), "--sampling", "1", "--out", "/proc/deepres_test.mrc"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and err == "deepres simulate: error: output directory /proc is not writable", err


def test_a_truncated_model_is_never_read_as_a_shorter_one(inputs):
    with pytest.raises(StructureError, match="truncated"):
        read_model(inputs["truncated_gz"])
    assert read_model(inputs["protein"]).count_atom_sites() > 0


def test_maps_at_extreme_scales_give_the_usual_answer(inputs, tmp_path):
    volume, geometry = read_map(inputs["map"])
    answers = []
    for scale in (1.0, 1e-30, 1e38 / float(np.abs(volume).max())):
        write_map(tmp_path / "scaled.mrc", volume * np.float32(scale), geometry)
        assert cli.main(["predict", str(tmp_path / "scaled.mrc"), "--mask", str(inputs["mask"]), "--out",
                         str(tmp_path / f"out{scale:g}"), "--no-progress"]) == 0
        answers.append(read_map(tmp_path / f"out{scale:g}" / RESOLUTION_FILE)[0])
    np.testing.assert_allclose(answers[1], answers[0], atol=1e-3)
    np.testing.assert_allclose(answers[2], answers[0], atol=1e-3)


def test_half_maps_at_extreme_scales_give_the_usual_answer(inputs, tmp_path):
    halves = [read_map(inputs[name])[0] for name in ("half1", "half2")]
    medians = []
    for scale in (1.0, 1e17, 1e-20):
        for i, half in enumerate(halves):
            write_map(tmp_path / f"h{i}.mrc", half * np.float32(scale), read_map(inputs["half1"])[1])
        assert cli.main(["localfsc", str(tmp_path / "h0.mrc"), str(tmp_path / "h1.mrc"), "--mask", str(inputs["mask"]),
                         "--out", str(tmp_path / f"out{scale:g}"), "--no-progress"]) == 0
        medians.append(json.loads((tmp_path / f"out{scale:g}" / "summary.json").read_text())["median_A"])
    assert medians[1] == pytest.approx(medians[0], abs=1e-3) and medians[2] == pytest.approx(medians[0], abs=1e-3)


def test_sampling_applies_to_the_mask(inputs, tmp_path):
    mask, _ = read_map(inputs["mask"])
    write_map(tmp_path / "mask0.mrc", mask, MapGeometry(1.0))
    with open(tmp_path / "mask0.mrc", "r+b") as handle:      # cella = 0: a header with no voxel size
        handle.seek(40)
        handle.write(np.zeros(3, "<f4").tobytes())
    assert cli.main(["predict", str(inputs["map"]), "--mask", str(tmp_path / "mask0.mrc"), "--sampling", "1",
                     "--out", str(tmp_path / "out"), "--no-progress"]) == 0


def test_interrupted_writes_leave_nothing_and_killed_ones_are_cleaned_next_time(tmp_path):
    target = tmp_path / "a.bin"
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_outputs(target, tmp_path / "b.bin") as (tmp_a, tmp_b):
            tmp_a.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    gone = subprocess.Popen(["true"])
    gone.wait()                                                # a process that no longer runs
    host = fileio._owner_tag().rpartition("-")[0]
    temporaries = {
        "killed": f".a.bin.{host}-{gone.pid}.x1.tmp",              # a SIGKILLed run of this machine, just now
        "running": f".a.bin.{host}-{os.getppid()}.x2.tmp",         # a run of this machine writing now
        "elsewhere_now": ".a.bin.node7-12.x3.tmp",                 # a run of another machine writing now
        "elsewhere_old": ".a.bin.node7-13.x4.tmp",                 # another machine's, long ago
    }
    for name in temporaries.values():
        (tmp_path / name).write_bytes(b"partial")
    staging = tmp_path / f"{fileio.STAGING_PREFIX}{host}-{gone.pid}.x5"    # a killed run's staged files
    staging.mkdir()
    (staging / "summary.json").write_text("{}")
    old = time.time() - 2 * fileio.STALE_TEMPORARY_SECONDS
    os.utime(tmp_path / temporaries["elsewhere_old"], (old, old))
    with fileio.atomic_outputs(target) as (tmp,):
        tmp.write_bytes(b"new")
    fileio.write_files(tmp_path, {"b.bin": b"new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [temporaries["running"], temporaries["elsewhere_now"], "a.bin", "b.bin"])


def test_summary_is_renamed_last_and_an_old_one_removed_first(tmp_path, monkeypatch):
    (tmp_path / "summary.json").write_text("old")
    (tmp_path / RESOLUTION_FILE).write_bytes(b"old")
    (tmp_path / "sub").mkdir()
    renamed = []
    real_replace = os.replace

    def replace(source, target):
        name = str(Path(target).relative_to(tmp_path))
        if not name.startswith("."):                               # not the old files set aside
            renamed.append(name)
        if Path(target).name == RESOLUTION_FILE:
            assert not (tmp_path / "summary.json").exists()          # the old summary went first
        real_replace(source, target)

    monkeypatch.setattr(fileio.os, "replace", replace)
    fileio.write_files(tmp_path, {"summary.json": b"new", RESOLUTION_FILE: b"new", "sub/summary.json": b"new",
                                  "mask.mrc": b"new"})
    assert renamed == [RESOLUTION_FILE, "mask.mrc", "sub/summary.json", "summary.json"]
    assert (tmp_path / "summary.json").read_text() == "new"


def test_an_automatic_mask_of_an_earlier_run_is_removed(inputs, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["predict", str(inputs["map"]), "--out", str(out), "--no-progress"]) == 0
    assert (out / "mask.mrc").exists()
    assert cli.main(["predict", str(inputs["map"]), "--mask", str(inputs["mask"]), "--out", str(out),
                     "--no-progress"]) == 0
    assert not (out / "mask.mrc").exists()
    assert json.loads((out / "summary.json").read_text())["mask"] == str(inputs["mask"].resolve())


def test_sweep_verdicts_are_monotone_and_absurd_sharpening_is_refused():
    bfactors = [-1500.0, -160.0, -60.0, 0.0, 40.0]
    raw = ["good", "oversharpened", "good", "under-sharpened", "good"]
    assert monotone_verdicts(bfactors, raw) == ["oversharpened", "oversharpened", "good", "under-sharpened",
                                                "under-sharpened"]
    verdicts = monotone_verdicts(bfactors, raw)
    assert recommend(bfactors, [3.5, 2.5, 3.4, 4.4, 5.0], 3.5, verdicts) == 2     # never the -1500 map
    assert recommend(bfactors, [3.5, 2.5, 3.4, 4.4, 5.0], 3.5, ["oversharpened"] * 5) == 4
    with pytest.raises(ParameterError, match="most negative B allowed here is -980"):
        check_sharpening([-1500.0, 0.0], 3.5)
    check_sharpening([-900.0, 0.0], 3.5)
    with pytest.raises(ParameterError, match="finite"):
        parse_bfactors("0:nan:20")


@pytest.mark.parametrize("values, width", [
    (np.array([2.3, 4.0, 7.9]), HISTOGRAM_BIN_A),             # a usual map: the usual bins
    (np.array([4.0, 4.0, 1e6]), 1001.0),                      # a flag value: 0.25 Å bins would be 4 million
    (np.array([4.0, 1e30]), None),
])
def test_histograms_have_at_most_the_bins_one_can_draw(values, width):
    edges, counts = histogram(values)
    assert len(counts) <= MAX_HISTOGRAM_BINS and counts.sum() == values.size
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    step = np.diff(edges)
    if width is not None:
        np.testing.assert_allclose(step, width)
    assert np.allclose(step / HISTOGRAM_BIN_A, np.round(step / HISTOGRAM_BIN_A))   # whole multiples of the bin


def test_seeds_outside_numpys_range_are_refused_by_the_core():
    assert check_seed(SEED_RANGE[1]) == SEED_RANGE[1]
    for seed in (-1, SEED_RANGE[1] + 1, 1.5, True):
        with pytest.raises(ParameterError, match=f"whole number from 0 to {SEED_RANGE[1]}"):
            check_seed(seed)


def test_a_volume_stack_of_one_volume_is_read_as_a_volume(tmp_path, rng):
    volume = rng.standard_normal((6, 7, 8)).astype(np.float32)
    with mrcfile.new(tmp_path / "one.mrc") as mrc:
        mrc.set_data(volume[np.newaxis])                      # space group 401, mz = nz
        mrc.voxel_size = 1.5
    with mrcfile.open(tmp_path / "one.mrc", header_only=True) as mrc:
        assert int(mrc.header.ispg) == 401 and int(mrc.header.mz) == int(mrc.header.nz) == 6
    assert check_map_file(tmp_path / "one.mrc")[0] == (6, 7, 8)
    data, geometry = read_map(tmp_path / "one.mrc")
    np.testing.assert_array_equal(data, volume)
    assert geometry.voxel_size == 1.5


def test_sampling_overrides_an_anisotropic_header(inputs, tmp_path):
    with pytest.raises(MapFormatError, match="anisotropic voxels"):
        read_map(inputs["anisotropic_half1"])
    assert read_map(inputs["anisotropic_half1"], voxel_size=1.0)[1].voxel_size == 1.0
    assert check_map_file(inputs["anisotropic_half1"], voxel_size=1.0)[1] == pytest.approx(ANISOTROPIC_VOXEL_XYZ)
    assert cli.main(["localfsc", str(inputs["anisotropic_half1"]), str(inputs["anisotropic_half2"]), "--mask",
                     str(inputs["mask"]), "--sampling", "1", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert read_map(tmp_path / "out" / RESOLUTION_FILE)[1].voxel_size == 1.0


def test_half_maps_stating_one_origin_or_none_stay_accepted():
    unset, placed = MapGeometry(1.0), MapGeometry(1.0, origin=(10.0, 10.0, 10.0))
    check_half_map_placement(unset, unset, "a.mrc", "b.mrc")
    check_half_map_placement(placed, unset, "a.mrc", "b.mrc")                      # one states none
    check_half_map_placement(placed, placed, "a.mrc", "b.mrc")
    check_half_map_placement(placed, MapGeometry(1.0, origin=(10.4, 10.0, 10.0)), "a.mrc", "b.mrc")  # < half a voxel
    with pytest.raises(MapFormatError, match=r"the half maps a.mrc and b.mrc start at \(10, 10, 10\) Å and "
                                             r"\(10, 12, 10\) Å: they lie on different grids"):
        check_half_map_placement(placed, MapGeometry(1.0, origin=(10.0, 12.0, 10.0)), "a.mrc", "b.mrc")


def test_simulate_compresses_the_maps_its_names_ask_to(inputs, tmp_path):
    common = ["simulate", str(inputs["protein"]), "--sampling", "1", "--noise", "0.1"]
    assert cli.main(common + ["--out", str(tmp_path / "plain.mrc")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "map.mrc.gz"), "--mask-out", str(tmp_path / "mask.bz2")]) == 0
    assert (tmp_path / "map.mrc.gz").read_bytes()[:2] == b"\x1f\x8b"                # gzip's magic number
    assert (tmp_path / "mask.bz2").read_bytes()[:3] == b"BZh"
    plain, geometry = read_map(tmp_path / "plain.mrc")
    packed, packed_geometry = read_map(tmp_path / "map.mrc.gz")
    np.testing.assert_array_equal(packed, plain)
    assert packed_geometry == geometry
    assert read_map(tmp_path / "mask.bz2")[0].shape == plain.shape


#: A tf.function whose Python ``if`` on a tensor only AutoGraph can run (it generates a module).
AUTOGRAPH_SCRIPT = """
from deepres_plugin.core.tfquiet import quiet_tensorflow
quiet_tensorflow()
import tensorflow as tf

@tf.function
def double_if_positive(x):
    if x > 0:
        return 2 * x
    return x

print(float(double_if_positive(tf.constant(3.0))))
"""


def _environment(**changes: str) -> dict[str, str]:
    """This process's environment with bytecode writing and block-buffered output as by default."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    return {**environment, **changes}


def test_tensorflow_runs_leave_no_bytecode_in_tmpdir(tmp_path):
    (tmp_path / "script").mkdir()
    (tmp_path / "tmp").mkdir()
    script = tmp_path / "script" / "autograph.py"
    script.write_text(AUTOGRAPH_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=_environment(TMPDIR=str(tmp_path / "tmp")))
    assert done.returncode == 0 and done.stdout.strip() == "6.0", done.stderr
    assert list((tmp_path / "tmp").rglob("*")) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_full_stdout_is_one_line_and_a_closed_one_is_silent():
    command = [sys.executable, "-m", "deepres_plugin.cli", "--version"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=_environment())
    assert (done.returncode, done.stderr) == (
        cli.EXIT_ERROR, "deepres: error: cannot write the standard output: No space left on device\n")
    read_end, write_end = os.pipe()
    os.close(read_end)                                        # the reader left before anything was written
    try:
        done = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                              env=_environment())
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (cli.EXIT_ERROR, "")
