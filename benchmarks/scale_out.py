"""Scale-out throughput: dataset generation on 1 and 2 Dask workers, and batch
prediction against one `deepres predict` process per map.

(a) Dataset generation, for each range: the first ``--structures`` files (name order) of
    ../shared/data/structures/train (``--wide-structures`` for wide, whose structures take
    a tenth of the time; never the val folder), default options (16 labels x 100 boxes):

    * 1 worker: in this process, as `deepres dataset --workers 1`;
    * 2 workers, cold: a local cluster of 2 processes started for the run (start-up, imports
      and the first structures included), as `deepres dataset --workers 2`;
    * 2 workers, warm: a cluster already started, its workers warmed up by one structure.

    Figures: structures per second, per worker, the speed-up over 1 worker, and a check that
    every shard of every run is byte-identical to the 1-worker run's.

(b) Batch prediction: ``--maps`` simulated maps of ``--edge``^3 voxels at 1 A/px, each as
    benchmarks/inference_speed.py makes its map (smooth random density in an ellipsoid of
    15 % of the box, low-passed at 4 A, noise SD 0.08) with its own seed, the ellipsoid as
    mask, the shipped wide network:

    * one `deepres predict MAP --mask MASK` process per map, one after the other (each
      process starts TensorFlow and loads the network), and two at a time;
    * `deepres predict --batch maps.csv` with --workers 1 (one process) and --workers 2
      (a local cluster).

    Figures: wall time from the first process start to the last output, maps per second,
    and the largest difference of any resolution map from the separate runs' (A).

Timing on a shared machine is noisy: the load average (`uptime`) before and after each
measurement is printed with it. Prints a Markdown table; --json writes every figure.

Usage:
    .venv/bin/python benchmarks/scale_out.py [--json scale_out.json]
    .venv/bin/python benchmarks/scale_out.py --structures 2 --wide-structures 4 --maps 3 --edge 64   # quick check
"""
from __future__ import annotations

import argparse
import concurrent.futures
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepres_plugin.core.cluster import ClusterOptions
from deepres_plugin.core.dataset import SHARD_DIR, DatasetConfig, generate_dataset, shard_task
from deepres_plugin.core.outputs import BATCH_FILES, RESOLUTION_FILE
from inference_speed import MASK_FRACTION, ellipsoid_mask

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRAIN_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "train"
RANGES = ("wide", "high")
#: Largest difference (A) of a batch's resolution map from a separate run's that counts as the
#: same result: float32 rounding of values of a few A, with room for a different thread count.
SAME_RESULT_A = 1e-3
WARM_UP_STRUCTURE = Path(__file__).resolve().parents[1] / "deepres_plugin" / "tests" / "data" / "BM5_1GL1_l_u.pdb.gz"


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def subset(folder: Path, count: int) -> Path:
    """A folder of links to the first ``count`` training structures (name order)."""
    chosen = sorted(p for p in TRAIN_DIR.iterdir() if p.name.endswith((".pdb.gz", ".cif.gz", ".pdb", ".cif")))[:count]
    folder.mkdir(parents=True)
    for path in chosen:
        (folder / path.name).symlink_to(path)
    return folder


def same_shards(first: Path, second: Path) -> bool:
    names = sorted(p.name for p in (first / SHARD_DIR).iterdir())
    return names == sorted(p.name for p in (second / SHARD_DIR).iterdir()) and all(
        filecmp.cmp(first / SHARD_DIR / name, second / SHARD_DIR / name, shallow=False) for name in names)


def dataset_runs(work: Path, range_name: str, count: int) -> list[dict]:
    """1 worker, 2 workers cold, 2 workers warm, on the same structures."""
    from distributed import Client

    from deepres_plugin.core.cluster import local_cluster

    structures = subset(work / f"structures_{range_name}", count)
    config = DatasetConfig(range_name)
    warm_up = (str(WARM_UP_STRUCTURE), str(work / f"warm_{range_name}.npz"), config)
    shard_task(warm_up)                                   # this process's imports and caches
    runs = []

    def timed(label: str, workers: int, **where) -> None:
        out = work / f"data_{range_name}_{label}"
        before = load()
        start = time.perf_counter()
        manifest = generate_dataset(structures, out, config, progress=False, **where)
        seconds = time.perf_counter() - start
        runs.append({"benchmark": "dataset", "range": range_name, "run": label, "workers": workers,
                     "items": count, "seconds": round(seconds, 2), "items_per_second": round(count / seconds, 3),
                     "per_worker": round(count / seconds / workers, 3),
                     "task_seconds_mean": round(manifest["timing"]["structure_seconds_total"] / count, 2),
                     "load_before": before, "load_after": load()})

    timed("1 worker", 1, cluster=ClusterOptions(workers=1))
    timed("2 workers, cold", 2, cluster=ClusterOptions(workers=2))
    with local_cluster(2) as cluster, Client(cluster) as client:
        client.gather([client.submit(shard_task, (warm_up[0], str(work / f"warm_{range_name}_{i}.npz"), config),
                                     pure=False) for i in range(2)])
        timed("2 workers, warm", 2, client=client)
    reference = work / f"data_{range_name}_1 worker"
    for run in runs:
        run["speed_up"] = round(run["items_per_second"] / runs[0]["items_per_second"], 2)
        run["check"] = "shards identical" if same_shards(reference, work / f"data_{range_name}_{run['run']}") \
            else "SHARDS DIFFER"
    return runs


def make_maps(folder: Path, count: int, edge: int) -> list[tuple[Path, Path]]:
    """``count`` maps of ``edge``^3 voxels as inference_speed.make_case makes its map, seed i."""
    from deepres_plugin.core.filters import add_white_noise, lowpass_filter, scale_to_unit_peak
    from deepres_plugin.core.masks import gaussian_lowpass
    from deepres_plugin.core.mrc import write_map

    folder.mkdir(parents=True)
    mask = ellipsoid_mask(edge, MASK_FRACTION)
    pairs = []
    for i in range(count):
        rng = np.random.default_rng(1000 + i)
        density = gaussian_lowpass(rng.random((edge,) * 3).astype(np.float32), 1.0, 3.0) * mask
        volume = add_white_noise(scale_to_unit_peak(lowpass_filter(density, 1.0, 4.0)), 0.08, rng)
        pairs.append((folder / f"map{i:03d}.mrc", folder / f"mask{i:03d}.mrc"))
        write_map(pairs[-1][0], volume, 1.0)
        write_map(pairs[-1][1], mask.astype(np.float32), 1.0)
    return pairs


def deepres(*args: str | Path) -> list[str]:
    return [str(Path(sys.executable).with_name("deepres")), *map(str, args)]


def largest_difference(first: Path, second: Path) -> float:
    from deepres_plugin.core.mrc import read_map

    return float(np.max(np.abs(read_map(first)[0] - read_map(second)[0])))


def batch_runs(work: Path, count: int, edge: int) -> list[dict]:
    pairs = make_maps(work / "maps", count, edge)
    table = work / "maps" / "maps.csv"               # paths relative to the table's folder
    table.write_text("map,mask\n" + "".join(f"{m.name},{k.name}\n" for m, k in pairs))
    runs = []

    def record(label: str, workers: int, seconds: float, before: float, folders: list[Path]) -> None:
        runs.append({"benchmark": "batch", "run": label, "workers": workers, "items": count,
                     "seconds": round(seconds, 2), "items_per_second": round(count / seconds, 3),
                     "per_worker": round(count / seconds / workers, 3), "load_before": before,
                     "load_after": load(), "folders": [str(f) for f in folders]})

    def separate(parallel: int) -> None:
        out = work / f"separate_{parallel}"
        commands = [deepres("predict", m, "--mask", k, "--out", out / m.name.split(".")[0], "--no-progress")
                    for m, k in pairs]
        before, start = load(), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda command: subprocess.run(command, check=True, capture_output=True), commands))
        label = "separate processes" + (f", {parallel} at a time" if parallel > 1 else "")
        record(label, parallel, time.perf_counter() - start, before, [out / m.name.split(".")[0] for m, _ in pairs])

    def batched(workers: int) -> None:
        out = work / f"batch_{workers}"
        before, start = load(), time.perf_counter()
        subprocess.run(deepres("predict", "--batch", table, "--out", out, "--no-progress", "--workers", workers),
                       check=True, capture_output=True)
        seconds = time.perf_counter() - start
        record(f"batch, {workers} worker{'s' if workers > 1 else ''}", workers, seconds, before,
               [out / m.name.split(".")[0] for m, _ in pairs])
        rows = (out / BATCH_FILES["csv"]).read_text().splitlines()[1:]
        runs[-1]["statuses"] = sorted({row.split(",")[5] for row in rows})

    separate(1)
    separate(2)
    batched(1)
    batched(2)
    reference, folders = runs[0], runs[0]["folders"]
    for run in runs:
        run["speed_up"] = round(run["items_per_second"] / reference["items_per_second"], 2)
        difference = max(largest_difference(Path(a) / RESOLUTION_FILE, Path(b) / RESOLUTION_FILE)
                         for a, b in zip(folders, run["folders"]))
        run["max_difference_A"] = difference
        run["check"] = (f"same (max {difference:.1e} A)" if difference < SAME_RESULT_A
                        else f"DIFFERENT (max {difference:.3g} A)")
        del run["folders"]
    return runs


def markdown(runs: list[dict], edge: int) -> str:
    lines = ["| benchmark | run | items | wall (s) | items/s | per worker | speed-up | load before/after | check |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        what = (f"dataset {run['range']}" if run["benchmark"] == "dataset" else f"predict {edge}^3 maps")
        lines.append(f"| {what} | {run['run']} | {run['items']} | {run['seconds']:.1f} | {run['items_per_second']:.3f} "
                     f"| {run['per_worker']:.3f} | {run['speed_up']:.2f} | {run['load_before']:.2f}/"
                     f"{run['load_after']:.2f} | {run['check']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=10, help="high structures (default 10)")
    parser.add_argument("--wide-structures", type=int, default=40, help="wide structures (default 40)")
    parser.add_argument("--maps", type=int, default=20, help="maps to predict (default 20)")
    parser.add_argument("--edge", type=int, default=128, help="map edge in voxels (default 128)")
    parser.add_argument("--skip", choices=("dataset", "batch"), action="append", default=[],
                        help="leave out a benchmark")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deepres-scale-out-"))
    try:
        runs = []
        if "dataset" not in args.skip:
            for range_name in RANGES:
                count = args.wide_structures if range_name == "wide" else args.structures
                runs += dataset_runs(work, range_name, count)
        if "batch" not in args.skip:
            runs += batch_runs(work, args.maps, args.edge)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    figures = {"cpus": os.cpu_count(), "uptime": uptime, "runs": runs}
    print(markdown(runs, args.edge))
    print(f"\n{figures['cpus']} CPUs; uptime at the end: {figures['uptime']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
