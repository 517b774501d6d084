"""Accuracy of the DeepRes networks on the paper's simulated tests, rebuilt on validation
structures never used for training (../shared/data/structures/val).

Tests (Ramirez-Aportela et al. 2019, sections 3.1, 3.3-3.4):

1. four-region maps, wide model (1 A/px): four chains side by side in one box, each
   low-pass filtered (raised cosine, width 0.02) at 3, 5, 7 and 9 A, summed, scaled so that
   the top of the map is 1, Gaussian noise of SD 0.08. Paper medians 3.2, 5.0, 7.1, 8.9 A.
   Repeated on several sets of four chains, the resolutions rotated between chains.
2. the same at 0.5 A/px with the high model at 2, 3, 4 and 5 A.
3. nucleic acids, high model (0.5 A/px): each validation RNA filtered at 2 and 4 A, same
   noise. Paper medians 2.3 and 4.0 A.
4. phase randomisation: the 2 A RNA maps with Fourier phases randomised beyond 4 A; the
   paper's median moves to about 4 A.
5. B-factor response, wide model: a chain with B = +150, +100, +50, 0, -60, -100 applied,
   then low-passed at 3.5 A (as post-processing does), noise as above. The median must fall
   as the map is sharpened.

Regions are the voxels within 3 A of one chain's atoms and not of another's; the
prediction mask is their union. Per-voxel MAE is against the region's filter resolution.

Usage:
    .venv/bin/python benchmarks/accuracy.py [--wide MODEL] [--high MODEL] [--sets 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import gemmi
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepres_plugin.core.filters import (  # noqa: E402
    add_white_noise,
    apply_bfactor,
    lowpass_filter,
    randomize_phases,
    scale_to_unit_peak,
)
from deepres_plugin.core.inference import predict_map  # noqa: E402
from deepres_plugin.core.masks import mask_from_points  # noqa: E402
from deepres_plugin.core.models import shipped_model_path  # noqa: E402
from deepres_plugin.core.networks import load_model  # noqa: E402
from deepres_plugin.core.simulate import (  # noqa: E402
    atom_positions,
    density_on_grid,
    model_density,
    padded_box,
    prepare_atoms,
    read_model,
)

DEFAULT_VAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "val"
NOISE_SD = 0.08
PADDING_A = 16.0
REGION_RADIUS_A = 3.0
CHAIN_GAP_A = 6.0
#: Chains used for the region tests: single-chain validation files of this many atoms.
CHAIN_ATOMS = (1200, 3500)
WIDE_RESOLUTIONS = (3.0, 5.0, 7.0, 9.0)
HIGH_RESOLUTIONS = (2.0, 3.0, 4.0, 5.0)
PAPER_WIDE_MEDIANS = {3.0: 3.2, 5.0: 5.0, 7.0: 7.1, 9.0: 8.9}
PAPER_RNA_MEDIANS = {2.0: 2.3, 4.0: 4.0}
BFACTORS = (150.0, 100.0, 50.0, 0.0, -60.0, -100.0)
BFACTOR_RESOLUTION = 3.5
PHASE_RESOLUTION = 4.0


def chain_files(val_dir: Path) -> list[Path]:
    """Single-chain protein files of moderate size, in name order (a fixed, seed-free choice)."""
    chosen = []
    for path in sorted(val_dir.glob("DIPS_*")):
        model = read_model(path)
        if len(model) == 1 and CHAIN_ATOMS[0] <= model.count_atom_sites() <= CHAIN_ATOMS[1]:
            chosen.append(path)
    return chosen


def side_by_side(paths: list[Path]) -> gemmi.Model:
    """One model with each file's (first) chain centred on a cell of a 2 x 2 arrangement."""
    models = [read_model(p) for p in paths]
    extents = [np.ptp(atom_positions(m), axis=0) for m in models]
    cell = float(np.max(extents)) + CHAIN_GAP_A
    combined = gemmi.Model("1")
    for i, model in enumerate(models):
        centre = atom_positions(model).mean(axis=0)
        target = np.array([(i % 2) * cell, (i // 2) * cell, 0.0])
        model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(target - centre))))
        chain = model[0]
        chain.name = "ABCD"[i]
        combined.add_chain(chain)
    return combined


def region_map(model: gemmi.Model, voxel_size: float, resolutions, rng,
               padding: float = PADDING_A) -> tuple[np.ndarray, list[np.ndarray]]:
    """Map whose chain i is low-passed at resolutions[i], unit peak plus noise; chain regions."""
    total, regions = region_signal(model, voxel_size, resolutions, padding)
    return add_white_noise(scale_to_unit_peak(total), NOISE_SD, rng), regions


def region_signal(model: gemmi.Model, voxel_size: float, resolutions,
                  padding: float = PADDING_A) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sum of the chains, chain i low-passed at resolutions[i] (no scaling, no noise), and
    the chains' regions (within REGION_RADIUS_A of one chain's atoms and not of another's)."""
    positions = atom_positions(model)
    shape_xyz, shift = padded_box(positions, voxel_size, padding)
    prepare_atoms(model, shift, use_atom_bfactors=False)
    total = np.zeros(tuple(shape_xyz[::-1]), np.float32)
    atoms = []
    for i, resolution in enumerate(resolutions):
        single = gemmi.Model("1")
        single.add_chain(model[i])
        total += lowpass_filter(density_on_grid(single, shape_xyz, voxel_size), voxel_size, resolution)
        atoms.append(atom_positions(single)[:, ::-1])
    near = [mask_from_points(total.shape, voxel_size, a, REGION_RADIUS_A) for a in atoms]
    regions = [near[i] & ~np.any([near[j] for j in range(len(near)) if j != i], axis=0) for i in range(len(near))]
    return total, regions


def rotated_resolutions(resolutions, k: int) -> list[float]:
    """The resolutions (A) of the chains of set ``k``: rotated by ``k`` between chains, so that
    every chain is seen at several resolutions over the sets."""
    return [resolutions[(i + k) % len(resolutions)] for i in range(len(resolutions))]


def predict(volume, voxel_size, mask, model):
    network, info = model
    return predict_map(volume, voxel_size, mask, network, info).resolution


def region_test(paths, model, voxel_size, resolutions, sets, rng) -> dict:
    """Four-region maps on ``sets`` sets of chains; medians and MAE per filter resolution."""
    medians = {r: [] for r in resolutions}
    errors = {r: [] for r in resolutions}
    for k in range(sets):
        group = paths[4 * k:4 * k + 4]
        order = rotated_resolutions(resolutions, k)
        volume, regions = region_map(side_by_side(group), voxel_size, order, rng)
        result = predict(volume, voxel_size, np.any(regions, axis=0), model)
        for resolution, region in zip(order, regions):
            medians[resolution].append(float(np.median(result[region])))
            errors[resolution].append(np.abs(result[region] - resolution))
    return {"medians": {r: float(np.mean(v)) for r, v in medians.items()},
            "median_sd_between_sets": {r: float(np.std(v)) for r, v in medians.items()},
            "worst_median_error": float(max(abs(np.mean(v) - r) for r, v in medians.items())),
            "voxel_mae": float(np.mean(np.concatenate([np.concatenate(e) for e in errors.values()]))),
            "sets": sets}


def rna_tests(val_dir: Path, model, rng) -> dict:
    medians = {2.0: [], 4.0: [], "phase": []}
    errors = []
    for path in sorted(val_dir.glob("NA_*")):
        simulated = model_density(read_model(path), 0.5, PADDING_A)
        mask = simulated.atom_mask(REGION_RADIUS_A)
        for resolution in (2.0, 4.0):
            clean = lowpass_filter(simulated.density, 0.5, resolution)
            result = predict(add_white_noise(scale_to_unit_peak(clean), NOISE_SD, rng), 0.5, mask, model)
            medians[resolution].append(float(np.median(result[mask])))
            errors.append(np.abs(result[mask] - resolution))
            if resolution == 2.0:
                scrambled = randomize_phases(clean, 0.5, PHASE_RESOLUTION, rng)
                result = predict(add_white_noise(scale_to_unit_peak(scrambled), NOISE_SD, rng), 0.5, mask, model)
                medians["phase"].append(float(np.median(result[mask])))
    return {"medians": {str(k): float(np.mean(v)) for k, v in medians.items()},
            "per_structure": {str(k): v for k, v in medians.items()},
            "voxel_mae": float(np.mean(np.concatenate(errors)))}


def bfactor_test(path: Path, model, rng) -> dict:
    simulated = model_density(read_model(path), 1.0, PADDING_A)
    mask = simulated.atom_mask(REGION_RADIUS_A)
    medians = {}
    for bfactor in BFACTORS:
        volume = apply_bfactor(simulated.density, 1.0, bfactor, resolution=BFACTOR_RESOLUTION)
        result = predict(add_white_noise(scale_to_unit_peak(volume), NOISE_SD, rng), 1.0, mask, model)
        medians[bfactor] = float(np.median(result[mask]))
    return {**bfactor_response(medians), "structure": path.name}


def bfactor_response(medians: dict) -> dict:
    """The B-factor test's figures: medians per B, monotone from blurred to sharpened, B+100 - B0."""
    ordered = [medians[b] for b in BFACTORS]
    return {"medians": medians, "monotone": bool(np.all(np.diff(ordered) <= 0)),
            "b100_minus_b0": medians[100.0] - medians[0.0]}


def benchmark_arguments(description: str, sets: int) -> argparse.ArgumentParser:
    """The options shared by the accuracy and robustness benchmarks."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=Path, default=Path(os.environ.get("DEEPRES_VAL_DIR", DEFAULT_VAL_DIR)))
    parser.add_argument("--wide", type=Path, help="wide model (default: shipped)")
    parser.add_argument("--high", type=Path, help="high model (default: shipped)")
    parser.add_argument("--sets", type=int, default=sets, help=f"four-chain sets per region test (default {sets})")
    parser.add_argument("--seed", type=int, default=2019, help="noise seed (default 2019)")
    parser.add_argument("--skip-high", action="store_true", help="run the wide-model tests only")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser


def main() -> int:
    parser = benchmark_arguments(__doc__, sets=5)
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    chains = chain_files(args.structures)
    wide = load_model(args.wide or shipped_model_path("wide"), "wide")
    figures = {"wide_regions": region_test(chains, wide, 1.0, WIDE_RESOLUTIONS, args.sets, rng),
               "bfactor": bfactor_test(chains[-1], wide, rng)}
    if not args.skip_high:
        high = load_model(args.high or shipped_model_path("high"), "high")
        figures["high_regions"] = region_test(chains[4 * args.sets:], high, 0.5, HIGH_RESOLUTIONS, args.sets, rng)
        figures["rna"] = rna_tests(args.structures, high, rng)
    figures["seconds"] = time.perf_counter() - start
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def print_table(f: dict) -> None:
    wide = f["wide_regions"]
    print(f"\nWide model, four-region maps ({wide['sets']} sets of validation chains, 1 A/px, noise SD {NOISE_SD}):")
    print("| filter (A) | paper median (A) | our median (A) | between-set SD (A) |\n|---|---|---|---|")
    for r in WIDE_RESOLUTIONS:
        print(f"| {r:g} | {PAPER_WIDE_MEDIANS[r]:g} | {wide['medians'][r]:.2f} | {wide['median_sd_between_sets'][r]:.2f} |")
    print(f"worst median error {wide['worst_median_error']:.2f} A (target 0.15); per-voxel MAE {wide['voxel_mae']:.2f} A "
          "(target 0.6)")
    if "high_regions" in f:
        high = f["high_regions"]
        print(f"\nHigh model, four-region maps ({high['sets']} sets, 0.5 A/px):")
        print("| filter (A) | our median (A) | between-set SD (A) |\n|---|---|---|")
        for r in HIGH_RESOLUTIONS:
            print(f"| {r:g} | {high['medians'][r]:.2f} | {high['median_sd_between_sets'][r]:.2f} |")
        print(f"worst median error {high['worst_median_error']:.2f} A (target 0.2); per-voxel MAE "
              f"{high['voxel_mae']:.2f} A (target 0.6)")
        rna = f["rna"]
        print("\nHigh model, RNA maps (validation RNAs, 0.5 A/px):")
        print("| map | paper median (A) | our median (A) |\n|---|---|---|")
        print(f"| filtered at 2 A | 2.3 | {rna['medians']['2.0']:.2f} |")
        print(f"| filtered at 4 A | 4.0 | {rna['medians']['4.0']:.2f} |")
        print(f"| 2 A, phases randomised beyond 4 A | about 4 | {rna['medians']['phase']:.2f} |")
        print(f"per-voxel MAE {rna['voxel_mae']:.2f} A; phase randomisation moves the median by "
              f"{rna['medians']['phase'] - rna['medians']['2.0']:+.2f} A (target >= 1.5)")
    b = f["bfactor"]
    print(f"\nB-factor response, wide model ({b['structure']}, low-pass {BFACTOR_RESOLUTION} A after the B-factor):")
    print("| B (A^2) | " + " | ".join(f"{x:+g}" for x in BFACTORS) + " |")
    print("|---" * (len(BFACTORS) + 1) + "|")
    print("| median (A) | " + " | ".join(f"{b['medians'][x]:.2f}" for x in BFACTORS) + " |")
    print(f"monotone: {b['monotone']}; B=+100 minus B=0: {b['b100_minus_b0']:+.2f} A (target >= +1)")
    print(f"\n({f['seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
