"""Batch prediction: one folder per map, batch.csv with the figures of single-map runs, a failing
map reported in its row, reruns that skip finished maps, the CSV format, and a real local
cluster whose workers load the network once each."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from deepres_plugin import cli
from deepres_plugin.core import batch
from deepres_plugin.core.cluster import local_cluster
from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.mrc import read_map
from deepres_plugin.core.outputs import BATCH_FILES, RESOLUTION_FILE, STATISTIC_KEYS, SUMMARY_FILE
from deepres_plugin.core.pipeline import PredictOptions

#: Summary figures of the same map from differently threaded TensorFlows agree to float32 rounding (relative).
FLOAT32_RELATIVE = 1e-6
PROTEIN = "BM5_1GL1_l_u.pdb.gz"


@pytest.fixture(scope="module")
def maps(tmp_path_factory, data_dir):
    """The example map with its mask, the same map under another folder (same name), a map
    simulated from a small protein with its mask, an unreadable file, and a CSV listing them."""
    folder = tmp_path_factory.mktemp("maps")
    shutil.copy(data_dir / "example_map.mrc", folder / "example_map.mrc")
    shutil.copy(data_dir / "example_mask.mrc.gz", folder / "example_mask.mrc.gz")
    (folder / "other").mkdir()
    shutil.copy(data_dir / "example_map.mrc", folder / "other" / "example_map.mrc")
    assert run_cli(["simulate", str(data_dir / PROTEIN), "--sampling", "1.0", "--resolution", "5", "--noise", "0.05",
                     "--seed", "3", "--out", str(folder / "gl1.mrc"), "--mask-out", str(folder / "gl1_mask.mrc")]) == 0
    (folder / "broken.mrc").write_text("not a map\n")
    (folder / "maps.csv").write_text("map,mask,range,sampling\n"
                                     "example_map.mrc,example_mask.mrc.gz,,\n"
                                     "other/example_map.mrc,,wide,\n"
                                     "gl1.mrc,gl1_mask.mrc,,1.0\n"
                                     "broken.mrc,,,\n")
    return folder


@pytest.fixture(scope="module")
def single(maps, tmp_path_factory):
    """Today's one-map runs, the reference of every batch row."""
    out = tmp_path_factory.mktemp("single")
    runs = {"example_map": ["--mask", maps / "example_mask.mrc.gz"], "example_map_2": [],
            "gl1": ["--mask", maps / "gl1_mask.mrc", "--sampling", "1.0"]}
    sources = {"example_map": "example_map.mrc", "example_map_2": "other/example_map.mrc", "gl1": "gl1.mrc"}
    for name, extra in runs.items():
        assert run_cli(["predict", maps / sources[name], "--out", out / name, "--no-progress", *extra]) == 0
    # batch.csv names the figures as ReportSummary does (median, percentile_20, ...)
    summaries = {name: json.loads((out / name / SUMMARY_FILE).read_text()) for name in runs}
    return {name: {**summary, **{field: summary[key] for field, key in STATISTIC_KEYS.items()}, "folder": out / name}
            for name, summary in summaries.items()}


def run_cli(args: list) -> int:
    return cli.main([str(arg) for arg in args])


def read_rows(folder: Path) -> list[dict]:
    with open(folder / BATCH_FILES["csv"], newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_map_keeps_the_single_run_layout(single, tmp_path, maps):
    """`deepres predict MAP --out DIR` writes into DIR itself, no batch files."""
    assert run_cli(["predict", maps / "gl1.mrc", "--mask", maps / "gl1_mask.mrc", "--out", tmp_path / "one",
                     "--no-progress", "--workers", "2"]) == 0
    names = {path.name for path in (tmp_path / "one").iterdir()}
    assert {RESOLUTION_FILE, SUMMARY_FILE} <= names and not names & set(BATCH_FILES.values())
    assert json.loads((tmp_path / "one" / SUMMARY_FILE).read_text())["median_A"] == single["gl1"]["median_A"]


def test_batch_file_rows_match_single_runs_and_report_the_failure(maps, single, tmp_path, capsys, client):
    out = tmp_path / "batch"
    scheduler = ["--scheduler", client.scheduler.address]        # the module's cluster, not one per command
    status = run_cli(["predict", "--batch", maps / "maps.csv", "--out", out, "--no-progress", *scheduler])
    assert status == cli.EXIT_ERROR                              # one map failed, the others done
    rows = read_rows(out)
    assert [row["name"] for row in rows] == ["example_map", "example_map_2", "gl1", "broken"]
    assert [row["status"] for row in rows] == ["done", "done", "done", "failed"]
    for row in rows[:3]:
        reference = single[row["name"]]
        for key in ("median", "percentile_20", "percentile_80", "min", "max", "mean"):
            # float32 rounding: by default the maps run on a local cluster whose workers' TensorFlow
            # has other thread pools than this process's (summation order)
            assert float(row[key]) == pytest.approx(reference[key], rel=FLOAT32_RELATIVE)
        assert int(row["voxels"]) == reference["voxels"] and row["error"] == ""
        resolution = read_map(out / row["name"] / RESOLUTION_FILE)[0]
        values = resolution[resolution > 0]
        assert float(row["percentile_5"]) == pytest.approx(np.percentile(values, 5), abs=1e-5)
    assert rows[0]["mask"] == str(maps / "example_mask.mrc.gz") and rows[1]["mask"] == ""
    assert "broken.mrc is not a readable MRC/CCP4 map" in rows[3]["error"] and "\n" not in rows[3]["error"]
    assert rows[3]["median"] == ""
    assert (out / "example_map_2" / "mask.mrc").is_file()          # no mask in its row: automatic
    assert (out / BATCH_FILES["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "broken.mrc failed" in capsys.readouterr().err

    # a rerun redoes nothing that is complete
    stamp = (out / "gl1" / RESOLUTION_FILE).stat().st_mtime_ns
    assert run_cli(["predict", "--batch", maps / "maps.csv", "--out", out, "--no-progress", *scheduler]) \
        == cli.EXIT_ERROR
    again = read_rows(out)
    assert [row["status"] for row in again] == ["skipped", "skipped", "skipped", "failed"]
    assert [row["median"] for row in again] == [row["median"] for row in rows]
    assert (out / "gl1" / RESOLUTION_FILE).stat().st_mtime_ns == stamp

    # another range is another prediction, not a finished one
    task = batch.batch_tasks([batch.BatchMap(maps / "gl1.mrc")], out, PredictOptions(range_name="high"))[0]
    assert batch.previous_summary(task) is None


def test_several_maps_without_failure_exit_zero(maps, single, tmp_path, client):
    out = tmp_path / "two"
    assert run_cli(["predict", maps / "example_map.mrc", maps / "other" / "example_map.mrc", "--mask",
                     maps / "example_mask.mrc.gz", "--out", out, "--no-progress",
                     "--scheduler", client.scheduler.address]) == cli.EXIT_OK
    rows = read_rows(out)
    assert [row["name"] for row in rows] == ["example_map", "example_map_2"]
    assert [float(row["median"]) for row in rows] == pytest.approx([single["example_map"]["median"]] * 2,
                                                                   rel=FLOAT32_RELATIVE)


@pytest.fixture(scope="module")
def client():
    """The commands' local cluster of two worker processes; closed (processes ended) after the module."""
    with local_cluster(2) as cluster, Client(cluster) as dask_client:
        yield dask_client


def test_batch_on_a_local_cluster_loads_each_network_once_per_worker(maps, single, tmp_path, client):
    """The same maps on two worker processes: the same resolution maps to float32 rounding."""
    rows = batch.run_batch(batch.read_batch_csv(maps / "maps.csv"), tmp_path / "cluster", client=client)
    assert [row["status"] for row in rows] == ["done", "done", "done", "failed"]
    for row in rows[:3]:
        assert row["median"] == pytest.approx(single[row["name"]]["median"], abs=1e-4)
        got = read_map(tmp_path / "cluster" / row["name"] / RESOLUTION_FILE)[0]
        reference = read_map(single[row["name"]]["folder"] / RESOLUTION_FILE)[0]
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-4)
    assert "not a readable MRC/CCP4 map" in rows[3]["error"]
    loads = client.run(batch.loaded_models)
    # three maps on two workers: loading per map would load three times
    assert set(loads.values()) <= {0, 1} and 1 <= sum(loads.values()) <= 2


def test_batch_csv_is_read_relative_to_its_folder(tmp_path):
    (tmp_path / "list.csv").write_text("map,sampling,range,mask\n a.mrc , 1.5 , high, m.mrc\n\nsub/b.map.gz,,,\n")
    entries = batch.read_batch_csv(tmp_path / "list.csv")
    assert entries == [batch.BatchMap(tmp_path / "a.mrc", tmp_path / "m.mrc", "high", 1.5),
                       batch.BatchMap(tmp_path / "sub" / "b.map.gz", None, None, None)]


@pytest.mark.parametrize("text, message", [
    ("map,colour\na.mrc,red\n", "unknown columns colour; the columns are map, mask, range, sampling"),
    ("mask,range\nm.mrc,wide\n", "no 'map' column"),
    ("map,sampling\na.mrc,1\nb.mrc,-1\n", "line 3: sampling must be a positive number of A/px, not '-1'"),
    ("map,sampling\na.mrc,fine\n", "line 2: sampling must be a positive number"),
    ("map,range\na.mrc,medium\n", "line 2: unknown range 'medium'"),
    ("map,mask\n,m.mrc\n", "line 2: no map"),
    ("map\n", "lists no maps"),
])
def test_bad_batch_files_are_refused_in_one_line(tmp_path, text, message, capsys):
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(ParameterError, match=message):
        batch.read_batch_csv(tmp_path / "list.csv")
    status = run_cli(["predict", "--batch", str(tmp_path / "list.csv"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR and err.count("\n") == 0 and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["{maps}/gl1.mrc", "--batch", "{maps}/maps.csv"], "maps or a batch file, not both"),
    ([], "give a map"),
])
def test_maps_and_batch_file_are_exclusive(maps, tmp_path, capsys, args, message):
    status = run_cli(["predict", *[a.format(maps=maps) for a in args], "--out", str(tmp_path / "out")])
    assert status == cli.EXIT_ERROR and message in capsys.readouterr().err


def test_folders_of_maps_with_the_same_name():
    assert batch.batch_folders(["a/m.mrc", "b/m.mrc", "m.map.gz", "x.mrc", "c/m_2.mrc"]) == \
        ["m", "m_2", "m_3", "x", "m_2_2"]


def test_failure_messages_are_one_line():
    assert batch.error_message(ParameterError("bad\n  mask", option="--mask")) == "bad mask (--mask)"
    assert batch.error_message(FileNotFoundError(2, "No such file or directory", "/x.mrc")) == \
        "cannot read or write (/x.mrc): No such file or directory"
    assert batch.error_message(RuntimeError("worker\ndied")) == "RuntimeError: worker died"


def test_batch_figure_for_many_maps_and_for_none():
    figures = {"median": 4.0, "percentile_20": 3.5, "percentile_80": 5.0, "percentile_5": 3.0, "percentile_95": 6.0}
    many = [{"name": f"m{i}", "status": "done", **figures} for i in range(batch.MAX_BOXES + 1)]
    failed = [{"name": "bad", "status": "failed"}]
    for rows in (many, failed, many[:3] + failed):
        assert batch.batch_png(rows)[:8] == b"\x89PNG\r\n\x1a\n"
    assert batch.batch_csv(failed).splitlines() == [",".join(batch.ROW_FIELDS),
                                                    "bad,,,,,failed" + "," * (len(batch.ROW_FIELDS) - 6)]
