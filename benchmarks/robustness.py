"""Robustness of the DeepRes networks to how a map was made: the region tests of
``benchmarks/accuracy.py`` repeated under each map condition of
:mod:`deepres_plugin.core.conditions`, one at a time and a few combined, on validation
structures only (../shared/data/structures/val), plus the phase-randomisation and B-factor
tests under each condition.

Every variant changes the baseline (accuracy.py's maps: Xmipp's raised cosine, white noise
of SD 0.08 of the map's maximum, noisy solvent) in the listed way. The truth of a region is
its low-pass resolution d: for every low-pass shape the filter's half-amplitude point sits
where Xmipp's raised cosine at d has it (voxel / d + 0.01 cycles per voxel).

- **regions**: four chains side by side, each low-passed at 3/5/7/9 A (wide, 1 A/px) or
  2/3/4/5 A (high, 0.5 A/px), summed, scaled to a unit maximum, then noise and solvent of
  the variant (noise coloured like the signal uses the map's best resolution).
- **phase**: each validation RNA at 2 A, and the same with Fourier phases randomised
  beyond 4 A, both under the variant (high network); the median must move by >= 1.5 A.
- **B-factor**: a chain with B = +150 ... -100 A^2, low-passed at 3.5 A with the variant's
  shape, noise and solvent (wide network); monotone, B = +100 at least 1 A worse than 0.

Usage:
    .venv/bin/python benchmarks/robustness.py [--wide MODEL] [--high MODEL] [--sets 3]
        [--seed 2019] [--variants NAME ...] [--json out.json] [--doc docs/benchmarks.md | --no-doc]
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import gemmi
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The page whose marked sections (``<!-- key:start -->`` ... ``<!-- key:end -->``) the benchmarks rewrite.
BENCHMARKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

from accuracy import (  # noqa: E402
    BFACTOR_RESOLUTION,
    BFACTORS,
    HIGH_RESOLUTIONS,
    NOISE_SD,
    PADDING_A,
    PHASE_RESOLUTION,
    REGION_RADIUS_A,
    WIDE_RESOLUTIONS,
    benchmark_arguments,
    bfactor_response,
    chain_files,
    predict,
    rotated_resolutions,
    side_by_side,
)
from deepres_plugin.core.conditions import MapCondition, atom_distance, condition_map, filtered_signals  # noqa: E402
from deepres_plugin.core.filters import LowpassShape, randomize_phases, scale_to_unit_peak  # noqa: E402
from deepres_plugin.core.masks import mask_from_points  # noqa: E402
from deepres_plugin.core.models import shipped_model_path  # noqa: E402
from deepres_plugin.core.networks import load_model  # noqa: E402
from deepres_plugin.core.ranges import BOX_SIZE  # noqa: E402
from deepres_plugin.core.simulate import (  # noqa: E402
    atom_positions,
    density_on_grid,
    model_density,
    padded_box,
    prepare_atoms,
    read_model,
)

BASE = MapCondition(noise_level=NOISE_SD)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A map condition, and an affine change of the map's values (scale, offset)."""

    condition: MapCondition
    scale: float = 1.0
    offset: float = 0.0


def _with(**changes) -> Variant:
    return Variant(dataclasses.replace(BASE, **changes))


VARIANTS: dict[str, Variant] = {
    "baseline": Variant(BASE),
    "low-pass: raised cosine 0.05": _with(lowpass=LowpassShape("cosine", width=0.05)),
    "low-pass: raised cosine 0.1": _with(lowpass=LowpassShape("cosine", width=0.1)),
    "low-pass: Butterworth 3": _with(lowpass=LowpassShape("butterworth", order=3)),
    "low-pass: Butterworth 8": _with(lowpass=LowpassShape("butterworth", order=8)),
    "low-pass: Gaussian": _with(lowpass=LowpassShape("gaussian")),
    "B envelope: gain 0.67 at d": _with(bfactor_log_gain=0.4),
    "B envelope: gain 1.5 at d": _with(bfactor_log_gain=-0.4),
    "noise: low-passed like the signal": _with(noise_colour="signal"),
    "noise: 1/f": _with(noise_colour="1/f"),
    "noise: 0.16 of the maximum": _with(noise_level=2 * NOISE_SD),
    "noise: 0.4 of the molecule's SD": _with(noise_reference="sd", noise_level=0.4),
    "noise: 0.3 of the local signal": _with(noise_reference="local", noise_level=0.3),
    "scaling: x1000, offset +5": Variant(BASE, scale=1000.0, offset=5.0),
    "solvent: flattened (mask 4 A + 3 A edge)": _with(solvent="flattened", mask_radius=4.0, mask_edge=3.0),
    "solvent: masked, tight (3 A, hard edge)": _with(solvent="masked", mask_radius=3.0, mask_edge=0.0),
    "solvent: masked, loose (6 A + 6 A edge)": _with(solvent="masked", mask_radius=6.0, mask_edge=6.0),
    "combined: Butterworth 4, signal noise 0.3 local, masked 5+4 A": _with(
        lowpass=LowpassShape("butterworth", order=4), noise_colour="signal", noise_reference="local",
        noise_level=0.3, solvent="masked", mask_radius=5.0, mask_edge=4.0),
    "combined: Gaussian, gain 1.4, 1/f noise 0.4 SD, flattened": _with(
        lowpass=LowpassShape("gaussian"), bfactor_log_gain=-0.35, noise_colour="1/f", noise_reference="sd",
        noise_level=0.4, solvent="flattened", mask_radius=4.0, mask_edge=4.0),
    "combined: cosine 0.1, gain 0.7, noise 0.12, masked 3+2 A": _with(
        lowpass=LowpassShape("cosine", width=0.1), bfactor_log_gain=0.35, noise_level=0.12, solvent="masked",
        mask_radius=3.0, mask_edge=2.0),
}


@dataclasses.dataclass
class Scene:
    """Densities of several chains on one grid, their regions and the distance from the atoms."""

    densities: list[np.ndarray]
    regions: list[np.ndarray]
    distance: np.ndarray
    molecule: np.ndarray


def region_scene(model: gemmi.Model, voxel_size: float) -> Scene:
    positions = atom_positions(model)
    shape_xyz, shift = padded_box(positions, voxel_size, PADDING_A)
    prepare_atoms(model, shift, use_atom_bfactors=False)
    densities, atoms = [], []
    for chain in model:
        single = gemmi.Model("1")
        single.add_chain(chain)
        densities.append(density_on_grid(single, shape_xyz, voxel_size))
        atoms.append(atom_positions(single)[:, ::-1])
    shape = densities[0].shape
    near = [mask_from_points(shape, voxel_size, a, REGION_RADIUS_A) for a in atoms]
    regions = [near[i] & ~np.any([near[j] for j in range(len(near)) if j != i], axis=0) for i in range(len(near))]
    seeds = mask_from_points(shape, voxel_size, np.concatenate(atoms), 0.0)
    return Scene(densities, regions, atom_distance(seeds, voxel_size), np.any(near, axis=0))


def make_map(scene: Scene, voxel_size: float, resolutions, variant: Variant, rng,
             transform=None) -> np.ndarray:
    """The scene's chains low-passed at ``resolutions`` under the variant (module docstring)."""
    condition = variant.condition
    signal = np.zeros_like(scene.densities[0])
    for density, resolution in zip(scene.densities, resolutions):
        signal += next(filtered_signals(density, voxel_size, [resolution], [condition]))
    if transform is not None:
        signal = transform(signal)
    signal = scale_to_unit_peak(signal)
    volume = condition_map(signal, voxel_size, min(resolutions), condition, rng, scene.molecule, scene.distance,
                           BOX_SIZE)
    return (volume * np.float32(variant.scale) + np.float32(variant.offset)).astype(np.float32)


def region_scenes(paths, voxel_size, sets) -> list[Scene]:
    return [region_scene(side_by_side(paths[4 * k:4 * k + 4]), voxel_size) for k in range(sets)]


def region_test(scenes, model, voxel_size, resolutions, variant, rng) -> dict:
    medians = {r: [] for r in resolutions}
    errors = []
    for k, scene in enumerate(scenes):
        order = rotated_resolutions(resolutions, k)
        volume = make_map(scene, voxel_size, order, variant, rng)
        result = predict(volume, voxel_size, np.any(scene.regions, axis=0), model)
        for resolution, region in zip(order, scene.regions):
            medians[resolution].append(float(np.median(result[region])))
            errors.append(np.abs(result[region] - resolution))
    means = {r: float(np.mean(v)) for r, v in medians.items()}
    return {"medians": means, "worst_median_error": float(max(abs(m - r) for r, m in means.items())),
            "voxel_mae": float(np.mean(np.concatenate(errors)))}


def single_scene(path: Path, voxel_size: float) -> Scene:
    simulated = model_density(read_model(path), voxel_size, PADDING_A)
    seeds = simulated.atom_mask(0.0)
    molecule = simulated.atom_mask(REGION_RADIUS_A)
    return Scene([simulated.density], [molecule], atom_distance(seeds, voxel_size), molecule)


def phase_test(scenes, model, variant, rng) -> dict:
    clean, scrambled = [], []
    for scene in scenes:
        volume = make_map(scene, 0.5, [2.0], variant, rng)
        clean.append(float(np.median(predict(volume, 0.5, scene.molecule, model)[scene.molecule])))
        volume = make_map(scene, 0.5, [2.0], variant, rng,
                          transform=lambda v: randomize_phases(v, 0.5, PHASE_RESOLUTION, rng))
        scrambled.append(float(np.median(predict(volume, 0.5, scene.molecule, model)[scene.molecule])))
    return {"clean": float(np.mean(clean)), "scrambled": float(np.mean(scrambled)),
            "shift": float(np.mean(scrambled) - np.mean(clean))}


def bfactor_test(scene, model, variant, rng) -> dict:
    medians = {}
    for bfactor in BFACTORS:
        # the sweep's B replaces the variant's envelope: B = 4 d^2 t at d = 3.5 A
        swept = Variant(dataclasses.replace(variant.condition, bfactor_log_gain=bfactor / (4 * BFACTOR_RESOLUTION ** 2)),
                        variant.scale, variant.offset)
        volume = make_map(scene, 1.0, [BFACTOR_RESOLUTION], swept, rng)
        medians[bfactor] = float(np.median(predict(volume, 1.0, scene.molecule, model)[scene.molecule]))
    return bfactor_response(medians)


def main() -> int:
    parser = benchmark_arguments(__doc__, sets=3)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), metavar="NAME", help="a subset of variants")
    add_doc_arguments(parser, "robustness")
    args = parser.parse_args()
    start = time.perf_counter()
    chains = chain_files(args.structures)
    wide = load_model(args.wide or shipped_model_path("wide"), "wide")
    wide_scenes = region_scenes(chains, 1.0, args.sets)
    b_scene = single_scene(chains[-1], 1.0)
    if not args.skip_high:
        high = load_model(args.high or shipped_model_path("high"), "high")
        high_scenes = region_scenes(chains[4 * args.sets:], 0.5, args.sets)
        rna_scenes = [single_scene(p, 0.5) for p in sorted(args.structures.glob("NA_*"))]
    figures = {}
    for name in args.variants or VARIANTS:
        variant = VARIANTS[name]
        rng = np.random.default_rng(args.seed)
        result = {"wide": region_test(wide_scenes, wide, 1.0, WIDE_RESOLUTIONS, variant, rng),
                  "bfactor": bfactor_test(b_scene, wide, variant, rng)}
        if not args.skip_high:
            result["high"] = region_test(high_scenes, high, 0.5, HIGH_RESOLUTIONS, variant, rng)
            result["phase"] = phase_test(rna_scenes, high, variant, rng)
        figures[name] = result
        print(table_row(name, result), flush=True)
    summary = {"variants": figures, "seconds": time.perf_counter() - start, "sets": args.sets, "seed": args.seed,
               "wide": str(args.wide or "shipped"), "high": str(args.high or "shipped")}
    table = markdown_table(summary)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if not args.no_doc:
        replace_section(args.doc, "robustness", table)
    return 0


WIDE_TARGET, HIGH_TARGET = 0.25, 0.2
WIDE_MAE_TARGET, HIGH_MAE_TARGET = 0.5, 0.3
PHASE_TARGET, BFACTOR_TARGET = 1.5, 1.0


def _mark(value: float, limit: float, larger_is_better: bool = False) -> str:
    ok = value >= limit if larger_is_better else value <= limit
    return f"{value:.2f}" if ok else f"**{value:.2f}**"


def table_row(name: str, r: dict) -> str:
    wide = r["wide"]
    cells = [name, " / ".join(f"{wide['medians'][d]:.2f}" for d in WIDE_RESOLUTIONS),
             _mark(wide["worst_median_error"], WIDE_TARGET), _mark(wide["voxel_mae"], WIDE_MAE_TARGET)]
    if "high" in r:
        high = r["high"]
        cells += [" / ".join(f"{high['medians'][d]:.2f}" for d in HIGH_RESOLUTIONS),
                  _mark(high["worst_median_error"], HIGH_TARGET), _mark(high["voxel_mae"], HIGH_MAE_TARGET),
                  f"{r['phase']['clean']:.2f} → {r['phase']['scrambled']:.2f} "
                  f"({_mark(r['phase']['shift'], PHASE_TARGET, True)})"]
    b = r["bfactor"]
    cells.append(f"{'yes' if b['monotone'] else '**no**'}, {_mark(b['b100_minus_b0'], BFACTOR_TARGET, True)}")
    return "| " + " | ".join(cells) + " |"


def markdown_table(summary: dict) -> str:
    figures = summary["variants"]
    with_high = all("high" in r for r in figures.values())
    head = ["variant", "wide 3 / 5 / 7 / 9 Å", "worst (Å)", "MAE (Å)"]
    if with_high:
        head += ["high 2 / 3 / 4 / 5 Å", "worst (Å)", "MAE (Å)", "phase test: 2 Å → scrambled (shift)"]
    head.append("B response: monotone, B+100 − B0 (Å)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [table_row(name, r) for name, r in figures.items()]
    lines.append(f"\nTargets: worst region median error ≤ {WIDE_TARGET} Å (wide) and ≤ {HIGH_TARGET} Å (high), "
                 f"per-voxel MAE ≤ {WIDE_MAE_TARGET} / {HIGH_MAE_TARGET} Å, phase shift ≥ {PHASE_TARGET} Å, "
                 f"B response monotone with B = +100 Å² ≥ {BFACTOR_TARGET} Å worse than B = 0; misses in bold. "
                 f"{summary['sets']} sets of four validation chains per region test, noise seed {summary['seed']}, "
                 f"{summary['seconds']:.0f} s.")
    return "\n".join(lines)


def add_doc_arguments(parser, key: str) -> None:
    """``--doc FILE`` (default :data:`BENCHMARKS_DOC`) and ``--no-doc``: where the ``key`` table is written."""
    parser.add_argument("--doc", type=Path, default=BENCHMARKS_DOC,
                        help=f"replace the table between the {key} markers of this file (default %(default)s)")
    parser.add_argument("--no-doc", action="store_true", help="do not write --doc")


def replace_section(path: Path, key: str, text: str) -> None:
    """Replace what lies between ``<!-- key:start -->`` and ``<!-- key:end -->`` in ``path``."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    content = path.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    before, rest = content.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(f"{before}{start}\n{text}\n{end}{after}")


if __name__ == "__main__":
    sys.exit(main())
