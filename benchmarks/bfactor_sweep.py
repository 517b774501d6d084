"""Validation of the B-factor sweep on simulated half maps with a known envelope.

For each validation complex (../shared/data/structures/val, never used in training):
the model's density at 1 A/px is blurred with a global B-factor of +80 A^2 (an unsharpened
reconstruction), scaled to a peak of 1, and two half maps get independent Gaussian noise
(SD 0.4 or 0.8: global FSC about 3.5 and 4 A). The sweep (-240 to +40 A^2 in steps of 20,
the atom mask within 3 A as mask, default window and stride, shipped wide network) must
recommend a B-factor within 30 A^2 of -80 (the envelope undone) and flag every B <= -150
as oversharpened.

Usage:
    .venv/bin/python benchmarks/bfactor_sweep.py [--structures 6] [--json out.json]
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

from deepres_plugin.core.filters import apply_bfactor, scale_to_unit_peak  # noqa: E402
from deepres_plugin.core.masks import mask_from_points  # noqa: E402
from deepres_plugin.core.mrc import write_map  # noqa: E402
from deepres_plugin.core.pipeline import SweepOptions, run_bfactor_sweep  # noqa: E402
from deepres_plugin.core.simulate import model_density, read_model  # noqa: E402

DEFAULT_VAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "structures" / "val"
ENVELOPE_B = 80.0
NOISE_SDS = (0.4, 0.8)
SWEEP = "-240:40:20"
TARGET_B, TARGET_TOLERANCE = -80.0, 30.0
OVERSHARPENED_FROM = -150.0
PADDING_A = 12.0
ATOMS = (1500, 6000)
SEED = 2019


def complexes(val_dir: Path, count: int) -> list[Path]:
    """The first ``count`` protein complexes of the validation folder with a moderate size
    (one file per complex: the _l_ and _r_ files of a DIPS pair hold the same complex)."""
    chosen, seen = [], set()
    for path in sorted(val_dir.glob("DIPS_*COMPLEX*")):
        complex_id = path.name.split(".dill")[0]
        if complex_id in seen:
            continue
        seen.add(complex_id)
        atoms = read_model(path).count_atom_sites()
        if ATOMS[0] <= atoms <= ATOMS[1]:
            chosen.append(path)
        if len(chosen) == count:
            break
    return chosen


def run_case(path: Path, noise_sd: float, folder: Path, rng: np.random.Generator) -> dict:
    simulated = model_density(read_model(path), 1.0, PADDING_A)
    envelope = scale_to_unit_peak(apply_bfactor(simulated.density, 1.0, ENVELOPE_B))
    for i in (1, 2):
        write_map(folder / f"half{i}.mrc", envelope + noise_sd * rng.standard_normal(envelope.shape).astype(np.float32), 1.0)
    write_map(folder / "mask.mrc", mask_from_points(envelope.shape, 1.0, simulated.atoms_zyx, 3.0).astype(np.float32), 1.0)
    start = time.perf_counter()
    summary = run_bfactor_sweep(folder / "half1.mrc", folder / "half2.mrc", folder / "out",
                                SweepOptions(mask=folder / "mask.mrc", bfactors=SWEEP)).to_dict()
    rows = summary["sweep"]
    flagged = all(r["verdict"] == "oversharpened" for r in rows if r["bfactor_A2"] <= OVERSHARPENED_FROM)
    recommended = summary["recommended_bfactor_A2"]
    return {"structure": path.name.split(".")[0], "noise_sd": noise_sd, "shape": list(envelope.shape),
            "global_fsc": summary["global_fsc_resolution_A"], "localfsc_p20": summary["localfsc_p20_A"],
            "localfsc_median": summary["localfsc_median_A"], "sweep": rows,
            "recommended_b": recommended, "within_target": abs(recommended - TARGET_B) <= TARGET_TOLERANCE,
            "oversharpened_flagged": flagged,
            "good_range": [r["bfactor_A2"] for r in rows if r["verdict"] == "good"],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val-dir", type=Path, default=Path(os.environ.get("DEEPRES_VAL_DIR", DEFAULT_VAL_DIR)))
    parser.add_argument("--structures", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in complexes(args.val_dir, args.structures):
            for noise_sd in NOISE_SDS:
                results.append(run_case(path, noise_sd, Path(tmp), rng))
                r = results[-1]
                print(f"{r['structure'][:22]:22s} noise {noise_sd:.1f}  FSC {r['global_fsc']:.2f} A  local p20 "
                      f"{r['localfsc_p20']:.2f} A  recommended B {r['recommended_b']:6.0f}  "
                      f"{'ok ' if r['within_target'] else 'MISS'}  B<=-150 oversharpened: "
                      f"{'yes' if r['oversharpened_flagged'] else 'NO'}  ({r['seconds']} s)", flush=True)
    recommended = np.array([r["recommended_b"] for r in results])
    totals = {"cases": len(results), "within_target": int(sum(r["within_target"] for r in results)),
              "oversharpened_flagged": int(sum(r["oversharpened_flagged"] for r in results)),
              "mean_recommended_b": float(recommended.mean()), "median_recommended_b": float(np.median(recommended))}
    print(f"recommended B within {TARGET_TOLERANCE:g} of {TARGET_B:g}: {totals['within_target']}/{len(results)} "
          f"(mean {totals['mean_recommended_b']:.0f}, median {totals['median_recommended_b']:.0f}); "
          f"B <= {OVERSHARPENED_FROM:g} flagged oversharpened: {totals['oversharpened_flagged']}/{len(results)}")
    if args.json:
        args.json.write_text(json.dumps({"cases": results, "totals": totals}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
