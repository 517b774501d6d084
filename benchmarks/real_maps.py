"""DeepRes on real EMDB maps (the panel of ``deepres_plugin/tests/real_maps.py``:
../shared/data/realmaps and ../shared/data/maps), against the resolutions their publications
report.

For every map: ``deepres predict`` with the shipped networks and ``--range auto`` (or a
given wide network: ``--wide``; automatic mask), the range used, the
median and 20th/80th percentiles against the reported resolution, the map's B-factor
estimate (Guinier, :mod:`deepres_plugin.core.diagnostics`), its solvent and the run time. A
map whose B-factor says it is unsharpened is also sharpened as post-processing would do it
(B brought to :data:`SHARPENED_TARGET_BFACTOR`, the value maps simulated from atoms measure,
then low-passed at the reported resolution) and predicted again: DeepRes reads unsharpened
maps worse (paper 3.3), and the second figure shows how much of a deviation that explains.
Where the panel has a placed atomic model, the FSC between the map and the model's density
(simulated on the map's grid, atoms with B = 0, both under a soft mask 4 A around the atoms)
gives an independent resolution of that region at the 0.5 threshold (map-model FSC).
Maps that must be refused are run too, and their one-line message is reported.

Writes a markdown table (printed, and into docs/benchmarks.md between the ``real-maps``
markers; ``--doc`` names another file, ``--no-doc`` writes none) and one figure with every
map's histogram (``--figure``).

Usage:
    .venv/bin/python benchmarks/real_maps.py [--wide MODEL] [--figure docs/real_maps.png]
        [--json out.json] [--doc docs/benchmarks.md | --no-doc]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from deepres_plugin.core.diagnostics import UNSHARPENED_MARGIN  # noqa: E402
from deepres_plugin.core.errors import DeepResError  # noqa: E402
from deepres_plugin.core.filters import apply_bfactor  # noqa: E402
from deepres_plugin.core.fsc import fsc_curve, fsc_mask_weights, fsc_resolution  # noqa: E402
from deepres_plugin.core.masks import mask_from_points  # noqa: E402
from deepres_plugin.core.mrc import read_map, write_map  # noqa: E402
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.core.pipeline import PredictOptions, run_predict  # noqa: E402
from deepres_plugin.core.simulate import atom_positions, density_on_grid, prepare_atoms, read_model  # noqa: E402
from deepres_plugin.tests.real_maps import PANEL  # noqa: E402
from robustness import add_doc_arguments, replace_section  # noqa: E402

#: B-factor (A^2) a map is brought to when sharpened here: what maps simulated from atoms
#: with B = 0 and low-passed at 3.5 A measure with the same Guinier fit (diagnostics module).
SHARPENED_TARGET_BFACTOR = 35.0
#: Map-model FSC: mask radius around the atoms (A) and threshold.
MODEL_MASK_RADIUS_A = 4.0
MODEL_FSC_THRESHOLD = 0.5
#: A median within this fraction of the reported resolution agrees with it (larger deviations in bold).
TARGET_FRACTION = 0.2


def predict(path: Path, out: Path, model: Path | None) -> tuple[dict, np.ndarray, float]:
    start = time.perf_counter()
    summary = run_predict(path, out, PredictOptions(model=model)).to_dict()
    seconds = time.perf_counter() - start
    resolution, _ = read_map(out / RESOLUTION_FILE)
    return summary, resolution[resolution > 0], seconds


def sharpened_copy(path: Path, bfactor: float, resolution: float, target: Path) -> float:
    """Write ``path`` sharpened to :data:`SHARPENED_TARGET_BFACTOR` and low-passed at ``resolution``."""
    volume, geometry = read_map(path)
    change = SHARPENED_TARGET_BFACTOR - bfactor
    resolution = max(resolution, 2.0 * geometry.voxel_size)
    write_map(target, apply_bfactor(volume, geometry.voxel_size, change, resolution=resolution), geometry)
    return change


def map_model_fsc(map_path: Path, model_path: Path) -> float:
    """Resolution (A) where the FSC between the map and the placed model's density falls to 0.5."""
    volume, geometry = read_map(map_path)
    model = read_model(model_path)
    prepare_atoms(model, -np.array(geometry.first_voxel_xyz()), use_atom_bfactors=False)
    shape_xyz = np.array(volume.shape[::-1])
    density = density_on_grid(model, shape_xyz, geometry.voxel_size)
    atoms = mask_from_points(volume.shape, geometry.voxel_size, atom_positions(model)[:, ::-1], MODEL_MASK_RADIUS_A)
    weights = fsc_mask_weights(atoms, geometry.voxel_size)
    frequency, fsc = fsc_curve(volume - np.median(volume[~atoms]), density, geometry.voxel_size, weights)
    return fsc_resolution(frequency, fsc, MODEL_FSC_THRESHOLD)


def run(model: Path | None, work: Path) -> list[dict]:
    rows = []
    for real_map in PANEL:
        row = {"entry": real_map.entry, "file": real_map.file, "what": real_map.what, "reported": real_map.reported,
               "fsc_threshold": real_map.fsc_threshold}
        try:
            summary, values, seconds = predict(real_map.path, work / real_map.entry, model)
        except DeepResError as exc:
            row["refused"] = str(exc).replace(str(real_map.path), real_map.path.name)
            rows.append(row)
            print(f"{real_map.entry}: refused: {exc}", flush=True)
            continue
        condition = summary["map_condition"]
        row.update(median=summary["median_A"], p20=summary["percentile_20_A"], p80=summary["percentile_80_A"],
                   range=summary["range"]["name"],
                   seconds=round(seconds, 1), condition=condition, warnings=summary["warnings"],
                   voxel_size=summary["input_voxel_size_A"], values=values)
        if real_map.model_path is not None:
            row["map_model_fsc"] = map_model_fsc(real_map.path, real_map.model_path)
        if condition["sharpened"] is False and condition["bfactor_A2"] is not None:
            target = work / f"{real_map.entry}_sharpened.mrc"
            row["sharpening_bfactor"] = sharpened_copy(real_map.path, condition["bfactor_A2"], real_map.reported, target)
            sharp, sharp_values, _ = predict(target, work / f"{real_map.entry}_sharpened", model)
            row.update(sharpened_median=sharp["median_A"], sharpened_p20=sharp["percentile_20_A"],
                       sharpened_p80=sharp["percentile_80_A"], sharpened_values=sharp_values)
        rows.append(row)
        print(f"{real_map.entry}: median {row['median']:.2f} A (reported {real_map.reported}), "
              f"B {condition['bfactor_A2']}, {seconds:.1f} s", flush=True)
    return rows


def deviation(median: float, reported: float) -> str:
    value = median / reported - 1
    text = f"{100 * value:+.0f} %"
    return text if abs(value) <= TARGET_FRACTION else f"**{text}**"


def markdown_table(rows: list[dict], model: str) -> str:
    head = ["map", "voxel (Å)", "reported (Å)", "map-model FSC 0.5 (Å)", "range", "median (p20–p80) (Å)", "deviation",
            "map B (Å²)", "solvent",
            "sharpened to B = 35 Å²: median (p20–p80)", "deviation", "time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['entry']} ({r['what']}) | | | | | refused: {r['refused']} |"
                         + " |" * (len(head) - 6))
            continue
        c = r["condition"]
        fsc = "" if r["fsc_threshold"] == 0.143 else f" (FSC {r['fsc_threshold']:g})"
        sharp = ("–", "–")
        if "sharpened_median" in r:
            sharp = (f"{r['sharpened_median']:.2f} ({r['sharpened_p20']:.2f}–{r['sharpened_p80']:.2f}), "
                     f"ΔB {r['sharpening_bfactor']:+.0f}", deviation(r["sharpened_median"], r["reported"]))
        bfactor = f"{c['bfactor_A2']:.0f}" + {False: " (unsharpened)", None: " (not judged)"}.get(c["sharpened"], "")
        model_fsc = f"{r['map_model_fsc']:.2f}" if "map_model_fsc" in r else "–"
        lines.append(f"| {r['entry']} ({r['what']}) | {r['voxel_size']:g} | {r['reported']:g}{fsc} | {model_fsc} | "
                     f"{r['range']} | "
                     f"{r['median']:.2f} ({r['p20']:.2f}–{r['p80']:.2f}) | {deviation(r['median'], r['reported'])} | "
                     f"{bfactor} | {c['solvent']} | {sharp[0]} | {sharp[1]} | {r['seconds']:.1f} |")
    lines.append(f"\nNetwork: {model}; automatic masks. Deviations beyond ±{100 * TARGET_FRACTION:.0f} % in bold; "
                 "unsharpened: Guinier B above a sharpened map's at the same support plus "
                 f"{UNSHARPENED_MARGIN:g} Å² (`core/diagnostics.py`); not judged: a support too coarse to tell.")
    return "\n".join(lines)


def draw(rows: list[dict], path: Path) -> None:
    shown = [r for r in rows if "values" in r]
    columns = 3
    lines = -(-len(shown) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.0 * lines), squeeze=False)
    for ax, r in zip(axes.ravel(), shown):
        bins = np.arange(2.0, 13.25, 0.25)
        ax.hist(r["values"], bins=bins, density=True, color="#4c72b0", alpha=0.8, label="as given")
        if "sharpened_values" in r:
            ax.hist(r["sharpened_values"], bins=bins, density=True, color="#dd8452", alpha=0.6,
                    label=f"sharpened (ΔB {r['sharpening_bfactor']:+.0f} Å²)")
        ax.axvline(r["reported"], color="black", linestyle="--", label=f"reported {r['reported']:g} Å")
        ax.set_title(f"{r['entry']}: median {r['median']:.2f} Å", fontsize=10)
        ax.set_xlabel("local resolution (Å)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wide", type=Path, help="wide model (default: shipped)")
    parser.add_argument("--figure", type=Path, help="histograms of every map (PNG)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    add_doc_arguments(parser, "real-maps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deepres-real-") as work:
        rows = run(args.wide, Path(work))
    table = markdown_table(rows, str(args.wide or "shipped networks, `--range auto`"))
    print("\n" + table)
    if args.figure:
        draw(rows, args.figure)
    if args.json:
        clean = [{k: v for k, v in r.items() if not k.endswith("values")} for r in rows]
        args.json.write_text(json.dumps(clean, indent=2))
    if not args.no_doc:
        replace_section(args.doc, "real-maps", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
