"""Inference speed of DeepRes: whole-map path, box path and Xmipp's architecture, one run.

Builds a simulated 224^3 map at 1 A/px (smooth random density in an ellipsoid holding 15 %
of the box, low-passed at 4 A, Gaussian noise of SD 0.08 at unit peak) with that
ellipsoid as mask, and a network with random weights (timing does not depend on the
weights). Then, each in a fresh process so that peak memory is its own:

* ``deepres predict`` end to end (process start to every output written);
* the compute part of the whole-map path, the box path and the automatic rule;
* the ``xmipp`` architecture box by box on a sample of boxes, with Xmipp's checkerboard
  (every other voxel evaluated, the rest filled from neighbours: 2 masked voxels per box);
* the machine's float32 matrix-multiply rate (TensorFlow), hence the floor set by the
  multiply-adds of the masked voxels;
* optionally (``--large``) the whole-map path on a 400^3 map, for peak memory.

With ``--grid``, instead: ``deepres predict`` end to end for both networks on the same
simulated map (15 % masked) written at 1.0, 0.834 and 0.5 A/px, at 224^3 and 400^3, each
in its own process: seconds end to end and of prediction (resampling, network, read-back),
network voxels evaluated, the multiply-add floor of those voxels at the measured
matrix-multiply rate, peak memory; then the 224^3 map at 1 A/px in bfloat16 and float16.

Prints a Markdown table and writes the figures as JSON.

Usage:
    .venv/bin/python benchmarks/inference_speed.py [--large] [--json results.json]
    .venv/bin/python benchmarks/inference_speed.py --grid [--json grid.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepres_plugin.core.networks import DEFAULT_FILTERS  # imports no TensorFlow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EDGE = 224
LARGE_EDGE = 400
GRID_EDGES = (EDGE, LARGE_EDGE)
GRID_VOXEL_SIZES = (1.0, 0.834, 0.5)
GRID_RANGES = ("wide", "high")
REDUCED_PRECISIONS = ("bfloat16", "float16")
MASK_FRACTION = 0.15
XMIPP_SAMPLE_BOXES = 300
MATMUL_SHAPE = (4096, 2197, 512)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ellipsoid_mask(edge: int, fraction: float) -> np.ndarray:
    z, y, x = np.ogrid[:edge, :edge, :edge]
    c = edge / 2
    axes = np.array([1.0, 1.3, 0.8])
    radius = (fraction * edge ** 3 / (4 / 3 * np.pi * np.prod(np.sqrt(axes)))) ** (1 / 3)
    return ((z - c) ** 2 / axes[0] + (y - c) ** 2 / axes[1] + (x - c) ** 2 / axes[2]) <= radius ** 2


def map_name(edge: int, voxel_size: float = 1.0) -> str:
    return f"map{edge}.mrc" if voxel_size == 1.0 else f"map{edge}_{voxel_size:g}.mrc"


def make_case(folder: Path, edge: int, voxel_sizes: tuple[float, ...] = (1.0,)) -> None:
    from deepres_plugin.core.filters import add_white_noise, lowpass_filter, scale_to_unit_peak
    from deepres_plugin.core.masks import gaussian_lowpass
    from deepres_plugin.core.mrc import write_map

    rng = np.random.default_rng(224)
    mask = ellipsoid_mask(edge, MASK_FRACTION)
    density = gaussian_lowpass(rng.random((edge,) * 3).astype(np.float32), 1.0, 3.0) * mask
    volume = add_white_noise(scale_to_unit_peak(lowpass_filter(density, 1.0, 4.0)), 0.08, rng)
    for voxel_size in voxel_sizes:     # the same voxels: a map of the same edge at another voxel size
        write_map(folder / map_name(edge, voxel_size), volume, voxel_size)
        write_map(folder / map_name(edge, voxel_size).replace("map", "mask"), mask.astype(np.float32), voxel_size)


def make_models(folder: Path, filters: int) -> None:
    from deepres_plugin.core.networks import ModelInfo, build_network, save_model

    for architecture in ("deepres", "xmipp"):
        options = {"filters": filters} if architecture == "deepres" else {}
        save_model(build_network(architecture, seed=1, **options),
                   ModelInfo.for_range(architecture, "wide", name=f"random-{architecture}"),
                   folder / f"{architecture}.keras")
    save_model(build_network("deepres", seed=1, filters=filters),
               ModelInfo.for_range("deepres", "high", name="random-deepres-high"), folder / "deepres_high.keras")


def worker(kind: str, folder: Path, edge: int, filters: int = DEFAULT_FILTERS) -> dict:
    """One measurement in this process; returns its figures.

    Peak memory (ru_maxrss) survives fork and exec on Linux, so every measurement runs in
    a child of a small parent.
    """
    if kind == "e2e":
        return end_to_end(folder, edge)
    if kind == "e2e-high":
        return end_to_end(folder, edge, "high")
    if kind.startswith("grid:"):          # grid:RANGE:VOXEL:PRECISION
        _, range_name, voxel_size, precision = kind.split(":")
        return end_to_end(folder, edge, range_name, float(voxel_size), precision)
    if kind == "prepare-grid":
        make_case(folder, edge, GRID_VOXEL_SIZES)
        return {}
    if kind.startswith("prepare"):
        make_case(folder, edge)
        if kind == "prepare":
            make_models(folder, filters)
        return {}
    from deepres_plugin.core.inference import Predictor, fully_convolutional_weights
    from deepres_plugin.core.mrc import read_map
    from deepres_plugin.core.networks import load_model

    volume = read_map(folder / f"map{edge}.mrc")[0]
    mask = read_map(folder / f"mask{edge}.mrc")[0] > 0.5
    if kind == "matmul":
        import tensorflow as tf

        m, k, n = MATMUL_SHAPE
        a, b = tf.random.normal((m, k)), tf.random.normal((k, n))
        tf.matmul(a, b).numpy()
        best = min(_timed(lambda: tf.matmul(a, b).numpy()) for _ in range(5))
        return {"gflops": 2 * m * k * n / best / 1e9}
    if kind == "xmipp":
        network, info = load_model(folder / "xmipp.keras")
        z, y, x = np.nonzero(mask)
        checkerboard = (z + y + x) % 2 == 0
        pick = np.random.default_rng(0).choice(np.flatnonzero(checkerboard), XMIPP_SAMPLE_BOXES, replace=False)
        sample = np.zeros_like(mask)
        sample[z[pick], y[pick], x[pick]] = True
        predictor = Predictor(network, info, path="box")
        warm = np.zeros_like(mask)
        warm[z[pick[:8]], y[pick[:8]], x[pick[:8]]] = True
        predictor.predict(volume, warm)
        seconds = _timed(lambda: predictor.predict(volume, sample))
        boxes_per_second = XMIPP_SAMPLE_BOXES / seconds
        return {"boxes_per_second": boxes_per_second, "masked_voxels_per_second": 2 * boxes_per_second,
                "seconds_whole_map_estimate": mask.sum() / (2 * boxes_per_second), "peak_mb": peak_rss_mb()}
    network, info = load_model(folder / "deepres.keras")
    predictor = Predictor(network, info, path=kind)
    predictor.predict(volume[:20, :40, :40], mask[:20, :40, :40])   # warm-up: graph tracing
    start = time.perf_counter()
    result = predictor.predict(volume, mask)
    seconds = time.perf_counter() - start
    np.save(folder / f"result_{kind}_{edge}.npy", result[mask])
    weights = fully_convolutional_weights(network)
    return {"seconds": seconds, "masked_voxels": int(mask.sum()),
            "masked_voxels_per_second": mask.sum() / seconds, "voxels_by_path": predictor.voxels_by_path,
            "convolved_voxels": predictor.convolved_voxels,
            "multiply_adds_per_voxel": weights.multiply_adds_per_voxel(), "peak_mb": peak_rss_mb()}


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_worker(kind: str, folder: Path, edge: int, filters: int = DEFAULT_FILTERS) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--folder", str(folder), "--edge", str(edge),
                          "--filters", str(filters)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(folder: Path, edge: int, range_name: str = "wide", voxel_size: float = 1.0,
               precision: str = "float32") -> dict:
    """Time `deepres predict` from process start to all outputs written; its peak memory and
    what its summary says of the prediction. The high network reads the 1 A/px map at
    0.5 A/px (on the output's lattice, stride 2)."""
    deepres = Path(sys.executable).with_name("deepres")
    model = "deepres.keras" if range_name == "wide" else "deepres_high.keras"
    name = map_name(edge, voxel_size)
    out = folder / f"e2e_{range_name}_{edge}_{voxel_size:g}_{precision}"
    command = [str(deepres), "predict", str(folder / name), "--mask", str(folder / name.replace("map", "mask")),
               "--range", range_name, "--model", str(folder / model), "--out", str(out),
               "--no-progress", "--precision", precision]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
            "prediction_seconds": summary["prediction_seconds"], "masked_voxels": summary["voxels"],
            "evaluated_voxels": sum(summary["voxels_by_path"].values()),
            "model_grid": summary["model_grid_shape_zyx"]}


def grid(folder: Path, filters: int) -> dict:
    """End to end over networks x voxel sizes x edges, then reduced precisions (224^3, 1 A/px)."""
    from deepres_plugin.core.inference import fully_convolutional_weights
    from deepres_plugin.core.networks import build_network

    rows = []
    run_worker("prepare", folder, EDGE, filters)
    multiply_adds = fully_convolutional_weights(build_network("deepres", seed=1, filters=filters)).multiply_adds_per_voxel()
    gflops = run_worker("matmul", folder, EDGE)["gflops"]
    for edge in GRID_EDGES:
        run_worker("prepare-grid", folder, edge)
        for range_name in GRID_RANGES:
            for voxel_size in GRID_VOXEL_SIZES:
                rows.append({"range": range_name, "edge": edge, "voxel_size": voxel_size, "precision": "float32",
                             **run_worker(f"grid:{range_name}:{voxel_size}:float32", folder, edge)})
                print(rows[-1], file=sys.stderr, flush=True)
    for range_name in GRID_RANGES:
        for precision in REDUCED_PRECISIONS:
            rows.append({"range": range_name, "edge": EDGE, "voxel_size": 1.0, "precision": precision,
                         **run_worker(f"grid:{range_name}:1.0:{precision}", folder, EDGE)})
            print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        row["floor_seconds"] = row["evaluated_voxels"] * multiply_adds * 2 / (gflops * 1e9)
    return {"gflops": gflops, "multiply_adds_per_voxel": multiply_adds, "rows": rows}


def report_grid(figures: dict) -> None:
    print(f"\nmatrix-multiply rate {figures['gflops']:.0f} GFLOPS; {figures['multiply_adds_per_voxel']:,} "
          "multiply-adds per evaluated network voxel\n")
    print("| network | map | A/px | precision | end to end (s) | prediction (s) | network voxels evaluated | "
          "floor (s) | prediction / floor | peak memory (MB) |\n|---|---|---|---|---|---|---|---|---|---|")
    for row in figures["rows"]:
        print(f"| {row['range']} | {row['edge']}³ | {row['voxel_size']:g} | {row['precision']} | "
              f"{row['seconds']:.1f} | {row['prediction_seconds']:.1f} | {row['evaluated_voxels']:,} | "
              f"{row['floor_seconds']:.1f} | {row['prediction_seconds'] / row['floor_seconds']:.2f} | "
              f"{row['peak_mb']:,.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--edge", type=int, default=EDGE)
    parser.add_argument("--filters", type=int, default=DEFAULT_FILTERS,
                        help=f"first-layer filters of the deepres network (default {DEFAULT_FILTERS}, the shipped)")
    parser.add_argument("--large", action="store_true", help=f"also run a {LARGE_EDGE}^3 map (peak memory)")
    parser.add_argument("--grid", action="store_true", help="end to end over networks, voxel sizes, edges, precisions")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.edge, args.filters)))
        return 0
    if args.grid:
        with tempfile.TemporaryDirectory(prefix="deepres-bench-") as tmp:
            figures = grid(Path(tmp), args.filters)
        report_grid(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return 0

    with tempfile.TemporaryDirectory(prefix="deepres-bench-") as tmp:
        folder = Path(tmp)
        run_worker("prepare", folder, EDGE, args.filters)   # in a child: children inherit the parent's peak memory
        figures = {"end_to_end": run_worker("e2e", folder, EDGE),    # a small child timing `deepres predict`
                   "end_to_end_high": run_worker("e2e-high", folder, EDGE)}
        for kind in ("whole", "box", "auto", "xmipp", "matmul"):
            figures[kind] = run_worker(kind, folder, EDGE)
        whole = np.load(folder / f"result_whole_{EDGE}.npy")
        figures["max_difference_whole_box_A"] = float(np.abs(whole - np.load(folder / f"result_box_{EDGE}.npy")).max())
        figures["max_difference_whole_auto_A"] = float(np.abs(whole - np.load(folder / f"result_auto_{EDGE}.npy")).max())
        if args.large:
            run_worker("prepare-map", folder, LARGE_EDGE)
            figures["large_whole"] = run_worker("whole", folder, LARGE_EDGE)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def report(figures: dict) -> None:
    whole, box, auto, xmipp = figures["whole"], figures["box"], figures["auto"], figures["xmipp"]
    masked = whole["masked_voxels"]
    floor = masked * whole["multiply_adds_per_voxel"] * 2 / (figures["matmul"]["gflops"] * 1e9)
    rows = [
        ("deepres predict, end to end", figures["end_to_end"]["seconds"], masked / figures["end_to_end"]["seconds"],
         figures["end_to_end"]["peak_mb"]),
        ("deepres predict --range high, end to end", figures["end_to_end_high"]["seconds"],
         masked / figures["end_to_end_high"]["seconds"], figures["end_to_end_high"]["peak_mb"]),
        ("whole-map path (compute)", whole["seconds"], whole["masked_voxels_per_second"], whole["peak_mb"]),
        ("box path (compute)", box["seconds"], box["masked_voxels_per_second"], box["peak_mb"]),
        ("automatic rule (compute)", auto["seconds"], auto["masked_voxels_per_second"], auto["peak_mb"]),
        ("xmipp architecture, checkerboard (estimate)", xmipp["seconds_whole_map_estimate"],
         xmipp["masked_voxels_per_second"], xmipp["peak_mb"]),
    ]
    print(f"\n{EDGE}^3 map at 1 A/px, {masked} masked voxels ({masked / EDGE ** 3:.1%})\n")
    print("| run | seconds | masked voxels/s | peak memory (MB) |\n|---|---|---|---|")
    for name, seconds, rate, peak in rows:
        print(f"| {name} | {seconds:.2f} | {rate:,.0f} | {peak:,.0f} |")
    print(f"\nmatrix-multiply rate: {figures['matmul']['gflops']:.0f} GFLOPS; floor for "
          f"{whole['multiply_adds_per_voxel']:,} multiply-adds per voxel: {floor:.2f} s; "
          f"whole-map compute / floor = {whole['seconds'] / floor:.2f}")
    print(f"whole-map vs xmipp architecture throughput: "
          f"{whole['masked_voxels_per_second'] / xmipp['masked_voxels_per_second']:,.0f} x; "
          f"box path / whole-map time: {box['seconds'] / whole['seconds']:.2f}; "
          f"automatic rule used {auto['voxels_by_path']}")
    per_box = box["seconds"] / masked
    per_convolved = whole["seconds"] / whole["convolved_voxels"]
    print(f"cost of a box / cost of a convolved voxel = {per_box / per_convolved:.1f} "
          f"(BOX_PATH_COST_RATIO; {whole['convolved_voxels']} voxels convolved for {masked} masked)")
    print(f"max |whole - box| = {figures['max_difference_whole_box_A']:.2e} A, "
          f"max |whole - auto| = {figures['max_difference_whole_auto_A']:.2e} A")
    if "large_whole" in figures:
        large = figures["large_whole"]
        print(f"{LARGE_EDGE}^3 map, whole-map path: {large['seconds']:.1f} s, peak memory {large['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
