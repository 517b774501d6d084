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
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core import fileio
from deepres_plugin.core.errors import ParameterError, StructureError
from deepres_plugin.core.filters import lowpass_filter
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.simulate import read_model
from deepres_plugin.core.sweep import check_sharpening, monotone_verdicts, parse_bfactors, recommend

PROTEIN = "BM5_1PPE_l_u.pdb.gz"
SHAPE = (40, 40, 40)


def _truncated_at_a_line_break(source: Path, target: Path) -> None:
    """A .gz whose text ends cleanly at a line break but whose stream has no end (a copy cut short)."""
    lines = gzip.open(source).read().split(b"\n")
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    target.write_bytes(compressor.compress(b"\n".join(lines[:len(lines) // 3]) + b"\n")
                       + compressor.flush(zlib.Z_SYNC_FLUSH))


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
    signal = lowpass_filter(rng.standard_normal(SHAPE).astype(np.float32), 1.0, 5.0)
    signal[:8] = signal[-8:] = 0
    mask = np.zeros(SHAPE, np.float32)
    mask[10:30, 10:30, 10:30] = 1
    files = {"data": data_dir, "protein": data_dir / PROTEIN, "tmp": folder}
    for name, data, geometry in [
        ("map", signal + 0.02 * rng.standard_normal(SHAPE).astype(np.float32), MapGeometry(1.0)),
        ("half1", signal + 0.3 * rng.standard_normal(SHAPE).astype(np.float32), MapGeometry(1.0)),
        ("half2", signal + 0.3 * rng.standard_normal(SHAPE).astype(np.float32), MapGeometry(1.0)),
        ("mask", mask, MapGeometry(1.0)),
        ("zeros", np.zeros(SHAPE, np.float32), MapGeometry(1.0)),
        ("constant", np.full(SHAPE, 3.0, np.float32), MapGeometry(1.0)),
        ("coarse", signal, MapGeometry(7.0)),
        ("placed_map", signal, MapGeometry(1.0, origin=(10.0, 10.0, 10.0))),
        ("placed_mask", mask, MapGeometry(1.0, origin=(30.0, 10.0, 10.0))),
        ("resolution", np.where(mask > 0, np.where(signal > 0, 4.0, 8.0), 0.0).astype(np.float32), MapGeometry(1.0)),
        ("resolution_flagged", np.where(mask > 0, 4.0, 1e30).astype(np.float32), MapGeometry(1.0)),
    ]:
        files[name] = folder / f"{name}.mrc"
        write_map(files[name], data, geometry)
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
    status = cli.main(["simulate", str(inputs["protein"]), "--sampling", "1", "--out", "/proc/deepres_test.mrc"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and "(/proc/deepres_test.mrc)" in err and ".tmp" not in err, err


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
