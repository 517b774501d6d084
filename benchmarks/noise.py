"""Noise benchmark: does DeepRes read a map FINER when noise is added to it?

Added noise hides detail, so a map's estimated resolution should stay put or get coarser as
the noise grows; a network that reads noise as fine detail gets finer instead. Maps:

- the region maps of ``benchmarks/accuracy.py`` (validation chains only, built by its
  functions): wide network, four chains low-passed at 3/5/7/9 A at 1 A/px; high network,
  2/3/4/5 A at 0.5 A/px; ``--sets`` maps of each, the resolutions rotated between chains.
  Each already holds accuracy.py's white noise (SD 0.08 of its maximum); prediction mask:
  the union of the regions, as accuracy.py's;
- every map of the real-map panel that runs (``deepres_plugin/tests/real_maps.py``; the
  refused ones are left out), wide network, automatic mask.

To each map, noise of SD ``level`` x the map's SD (over the whole box) is added, at each
level of ``--levels`` and in each colour of ``--colours``:

- **white**: independent Gaussian noise;
- **coloured**: the same Gaussian field low-passed with the project's filter (Xmipp's
  raised cosine, :func:`deepres_plugin.core.filters.lowpass_filter`) at
  :data:`COLOURED_FRACTION` x the map's resolution (real maps: the reported resolution;
  region maps: the finest region's), not finer than Nyquist: noise that looks like detail
  a bit finer than the map's.

One field per map (its seed derived from ``--seed`` and the map's name) is scaled to each
level, so the levels of a map differ in the amount of noise only. Each map, colour and
level is predicted as ``deepres predict`` does (:func:`run_predict` in a temporary folder,
one prediction at a time, each network loaded once). A real map's automatic mask is the one
``deepres predict`` makes for the map as given (level 0), then given as the mask at every
noise level, so that all levels are measured on the same voxels.

Figures per map, colour and level: the median of the estimated voxels (resolution > 0), the
share of the mask's voxels left with no estimate (resolution 0 inside the mask; computed from
the mask and ``resolution.mrc``; ``summary.json``'s ``left_out`` is printed where the core
writes one), and for the region maps each region's median and the per-voxel MAE against
the region's filter resolution (estimated voxels only). A median that gets finer by more than
:data:`FINER_TOLERANCE_A` than at any lower level of the same map and colour is flagged;
none should be.

Usage:
    .venv/bin/python benchmarks/noise.py [--seed 2019] [--sets 2] [--levels 0 0.25 0.5 1]
        [--colours white coloured] [--maps NAME ...] [--wide MODEL] [--high MODEL]
        [--json out.json] [--doc docs/noise.md]
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from accuracy import (  # noqa: E402
    HIGH_RESOLUTIONS,
    WIDE_RESOLUTIONS,
    benchmark_arguments,
    chain_files,
    region_map,
    rotated_resolutions,
    side_by_side,
)
from deepres_plugin.core.batch import cached_model  # noqa: E402
from deepres_plugin.core.filters import lowpass_filter  # noqa: E402
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map  # noqa: E402
from deepres_plugin.core.outputs import MASK_FILE, RESOLUTION_FILE  # noqa: E402
from deepres_plugin.core.pipeline import PredictOptions, run_predict  # noqa: E402
from deepres_plugin.tests.real_maps import RUNNABLE  # noqa: E402
from robustness import replace_section  # noqa: E402

#: Noise SDs added, as multiples of the map's SD over the whole box.
DEFAULT_LEVELS = (0.0, 0.25, 0.5, 1.0)
COLOURS = ("white", "coloured")
#: Coloured noise is low-passed at this fraction of the map's resolution (a bit finer).
COLOURED_FRACTION = 0.8
#: A median finer than at a lower noise level by more than this (A) is flagged.
FINER_TOLERANCE_A = 0.05
DEFAULT_SETS = 2
#: Voxel sizes (A/px) of the region maps of each network, as in accuracy.py.
REGION_VOXEL_SIZE = {"wide": 1.0, "high": 0.5}
REGION_RESOLUTIONS = {"wide": WIDE_RESOLUTIONS, "high": HIGH_RESOLUTIONS}
#: Random streams of a map (with the seed and the map's name): its own noise (region maps),
#: the noise added by this benchmark.
BASE_STREAM, ADDED_STREAM = 0, 1
#: The table's markers in the doc file (``<!-- noise:start -->`` ... ``<!-- noise:end -->``).
DOC_KEY = "noise"


@dataclasses.dataclass
class NoiseCase:
    """A map of the benchmark.

    Attributes:
        name: ``wide-1``, ``high-2``, ... or the EMDB entry.
        volume: the map as given (level 0), indexed [z, y, x].
        geometry: where its voxels lie (voxel size in A/px).
        range_name: the network's range (``wide`` or ``high``).
        resolution: the map's resolution (A): reported (real maps), finest region (region maps).
        mask: the prediction mask; None: the automatic mask of the map as given.
        regions: region maps only: truth resolution (A) -> region (boolean map).
        description: what the map is, for the table.
    """

    name: str
    volume: np.ndarray
    geometry: MapGeometry
    range_name: str
    resolution: float
    mask: np.ndarray | None
    regions: dict[float, np.ndarray] | None
    description: str


def case_rng(seed: int, name: str, stream: int) -> np.random.Generator:
    """A generator for one map's stream, the same whichever maps are run (``--maps``)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), stream])


def unit_sd(field: np.ndarray) -> np.ndarray:
    """``field`` minus its mean, divided by its SD over the whole box (float32)."""
    centred = field.astype(np.float64) - field.mean(dtype=np.float64)
    return (centred / centred.std()).astype(np.float32)


def coloured_resolution(resolution: float, voxel_size: float) -> float:
    """The low-pass resolution (A) of the coloured noise of a map of ``resolution`` A:
    :data:`COLOURED_FRACTION` of it, not finer than Nyquist (2 x ``voxel_size`` A/px)."""
    return max(COLOURED_FRACTION * resolution, 2.0 * voxel_size)


def noise_field(white: np.ndarray, voxel_size: float, colour: str, resolution: float) -> np.ndarray:
    """Noise of unit SD over the box made from a drawn Gaussian field ``white``: white as it
    is, or coloured (low-passed at :func:`coloured_resolution` of the map's ``resolution`` A;
    ``voxel_size`` in A/px)."""
    if colour == "white":
        return unit_sd(white)
    if colour == "coloured":
        return unit_sd(lowpass_filter(white, voxel_size, coloured_resolution(resolution, voxel_size)))
    raise ValueError(f"unknown noise colour {colour!r} (choose from {', '.join(COLOURS)})")


def add_noise(volume: np.ndarray, field: np.ndarray, level: float) -> np.ndarray:
    """``volume`` plus ``field`` (unit SD) scaled to ``level`` x the volume's SD over the box."""
    sd = float(np.std(volume, dtype=np.float64))
    return (volume + np.float32(level * sd) * field).astype(np.float32)


def region_cases(chains: list[Path], range_name: str, sets: int, first_set: int, seed: int,
                 wanted: set[str] | None) -> list[NoiseCase]:
    """accuracy.py's region maps of one network (sets ``first_set`` ... of four chains)."""
    voxel_size, resolutions = REGION_VOXEL_SIZE[range_name], REGION_RESOLUTIONS[range_name]
    cases = []
    for k in range(sets):
        name = f"{range_name}-{k + 1}"
        if wanted is not None and name not in wanted:
            continue
        group = chains[4 * (first_set + k):4 * (first_set + k) + 4]
        order = rotated_resolutions(resolutions, k)
        volume, regions = region_map(side_by_side(group), voxel_size, order, case_rng(seed, name, BASE_STREAM))
        description = f"{range_name} regions {' / '.join(f'{r:g}' for r in resolutions)} Å"
        cases.append(NoiseCase(name, volume, MapGeometry(voxel_size), range_name, min(resolutions),
                               np.any(regions, axis=0), dict(zip(order, regions)), description))
    return cases


def real_cases(wanted: set[str] | None) -> list[NoiseCase]:
    """The runnable maps of the real-map panel (wide network, automatic mask)."""
    cases = []
    for real_map in RUNNABLE:
        if wanted is not None and real_map.entry not in wanted:
            continue
        volume, geometry = read_map(real_map.path)
        cases.append(NoiseCase(real_map.entry, volume, geometry, "wide", real_map.reported, None, None,
                               f"{real_map.what}, {real_map.reported:g} Å"))
    return cases


def case_names(sets: int) -> list[str]:
    """Every map's name, in the benchmark's order."""
    return ([f"{r}-{k + 1}" for r in REGION_VOXEL_SIZE for k in range(sets)]
            + [m.entry for m in RUNNABLE])


def predict(volume: np.ndarray, case: NoiseCase, mask_path: Path | None, model: Path | None,
            work_root: Path) -> tuple[np.ndarray, dict, np.ndarray | None, float]:
    """``deepres predict`` on ``volume`` (the case's grid) in a temporary folder: the resolution
    map (A, 0 where there is no estimate), the summary, the automatic mask when no mask was
    given (else None), and the seconds taken."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=work_root) as work:
        map_path, out = Path(work) / "map.mrc", Path(work) / "out"
        write_map(map_path, volume, case.geometry)
        options = PredictOptions(mask=mask_path, range_name=case.range_name, model=model)
        summary = run_predict(map_path, out, options, model_loader=cached_model).to_dict()
        resolution, _ = read_map(out / RESOLUTION_FILE)
        automatic = read_map(out / MASK_FILE)[0] > 0.5 if mask_path is None else None
    return resolution, summary, automatic, time.perf_counter() - start


def measure(resolution: np.ndarray, case: NoiseCase, mask: np.ndarray) -> dict:
    """The figures of one prediction (module docstring); medians and MAE in A."""
    estimated = resolution > 0
    figures = {"median": _median(resolution[estimated]), "no_estimate_share": float(np.mean(~estimated[mask]))}
    if case.regions is not None:
        figures["region_medians"] = {str(truth): _median(resolution[region & estimated])
                                     for truth, region in sorted(case.regions.items())}
        errors = np.concatenate([np.abs(resolution[region & estimated] - truth)
                                 for truth, region in case.regions.items()])
        figures["voxel_mae"] = float(errors.mean()) if errors.size else None
    return figures


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def finer_flags(runs: list[dict]) -> None:
    """Set each run's ``finer_by`` (A; None when not flagged): runs of one map and colour in
    level order, flagged where the median is finer than the coarsest median of the lower
    levels by more than :data:`FINER_TOLERANCE_A`."""
    coarsest = None
    for run in runs:
        median = run["median"]
        run["finer_by"] = None
        if median is not None and coarsest is not None and median < coarsest - FINER_TOLERANCE_A:
            run["finer_by"] = coarsest - median
        if median is not None:
            coarsest = median if coarsest is None else max(coarsest, median)


def record(case: NoiseCase, colour: str, level: float, mask: np.ndarray, resolution: np.ndarray, summary: dict,
           seconds: float) -> dict:
    """One run's figures (printed as they come)."""
    run = {"colour": colour, "level": level, **measure(resolution, case, mask), "left_out": summary.get("left_out"),
           "seconds": round(seconds, 1)}
    median = "no estimate" if run["median"] is None else f"median {run['median']:.2f} A"
    left_out = "" if run["left_out"] is None else f"; summary left_out {json.dumps(run['left_out'])}"
    print(f"{case.name} {colour} {level:g} x SD: {median}, no estimate {100 * run['no_estimate_share']:.1f} % "
          f"of the mask, {seconds:.1f} s{left_out}", flush=True)
    return run


def run_case(case: NoiseCase, levels: list[float], colours: list[str], seed: int, models: dict[str, Path | None],
             work_root: Path) -> dict:
    """Every colour and level of one map, one prediction at a time (level 0, the map as given,
    runs first and serves both colours; it also makes a real map's automatic mask)."""
    model = models[case.range_name]
    mask_path = work_root / f"{case.name}_mask.mrc"
    if case.mask is not None:
        write_map(mask_path, case.mask.astype(np.float32), case.geometry)
    resolution, summary, automatic, seconds = predict(case.volume, case, mask_path if case.mask is not None else None,
                                                      model, work_root)
    mask = case.mask if automatic is None else automatic
    if automatic is not None:
        write_map(mask_path, automatic.astype(np.float32), case.geometry)
    noise_free = record(case, "none", 0.0, mask, resolution, summary, seconds)
    white = case_rng(seed, case.name, ADDED_STREAM).standard_normal(case.volume.shape, dtype=np.float32)
    by_colour = {}
    for colour in colours:
        field = noise_field(white, case.geometry.voxel_size, colour, case.resolution)
        runs = [dict(noise_free, colour=colour)]
        for level in levels:
            resolution, summary, _, seconds = predict(add_noise(case.volume, field, level), case, mask_path, model,
                                                      work_root)
            runs.append(record(case, colour, level, mask, resolution, summary, seconds))
        finer_flags(runs)
        by_colour[colour] = runs
    return {"name": case.name, "description": case.description, "range": case.range_name,
            "resolution": case.resolution,
            "coloured_resolution": coloured_resolution(case.resolution, case.geometry.voxel_size),
            "voxel_size": case.geometry.voxel_size, "shape_zyx": list(case.volume.shape),
            "mask_voxels": int(np.count_nonzero(mask)), "model": summary["model"], "runs": by_colour}


def _cell(run: dict) -> str:
    """A map's median (A) and the share of its mask with no estimate; flagged medians in bold."""
    if run["median"] is None:
        return f"– ({100 * run['no_estimate_share']:.0f} %)"
    median = f"{run['median']:.2f}"
    if run["finer_by"] is not None:
        median = f"**{median} ↓{run['finer_by']:.2f}**"
    return f"{median} ({100 * run['no_estimate_share']:.1f} %)"


def _regions_cell(run: dict) -> str:
    medians = " / ".join("–" if m is None else f"{m:.2f}" for m in run["region_medians"].values())
    mae = "–" if run["voxel_mae"] is None else f"{run['voxel_mae']:.2f}"
    return f"{medians}; {mae}"


def _level_heads(levels: list[float]) -> list[str]:
    return ["as given" if level == 0.0 else f"+ {level:g} × SD" for level in levels]


def flagged(results: list[dict]) -> list[tuple[str, str, float, float]]:
    """(map, colour, level, A finer) of every flagged run."""
    return [(case["name"], colour, run["level"], run["finer_by"]) for case in results
            for colour, runs in case["runs"].items() for run in runs if run["finer_by"] is not None]


def markdown_tables(summary: dict) -> str:
    """The doc's tables: every map's median per colour and level, the region maps' regions."""
    results, levels = summary["maps"], summary["levels"]
    head = ["map", "noise"] + _level_heads(levels)
    lines = ["Median of the estimated voxels (Å) and, in brackets, the share of the mask with no estimate:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in results:
        for colour, runs in case["runs"].items():
            lines.append(f"| {case['name']} ({case['description']}) | {_colour_name(case, colour)} | "
                         + " | ".join(_cell(run) for run in runs) + " |")
    regions = [case for case in results if "region_medians" in next(iter(case["runs"].values()))[0]]
    if regions:
        lines += ["", "Region maps: each region's median (Å), ordered by the region's resolution, and the "
                  "per-voxel MAE against it (Å):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for case in regions:
            for colour, runs in case["runs"].items():
                lines.append(f"| {case['name']} ({case['description']}) | {_colour_name(case, colour)} | "
                             + " | ".join(_regions_cell(run) for run in runs) + " |")
    noisy = sum(len(runs) - 1 for case in results for runs in case["runs"].values())
    lines += ["", f"Finer with more noise (by more than {FINER_TOLERANCE_A} Å than at a lower level: bold, ↓ by how "
              f"much, Å): {len(flagged(results))} of {noisy} noisy runs."]
    networks = sorted({f"{case['range']}: {case['model']['name']} {case['model']['version']}" for case in results})
    lines.append(f"\nNetworks: {'; '.join(networks)}. Noise seed {summary['seed']}; {summary['sets']} region map(s) "
                 f"per network; {summary['runs']} predictions, {summary['seconds']:.0f} s on "
                 f"{os.cpu_count()} CPU cores. Command: `{summary['command']}`.")
    return "\n".join(lines)


def _colour_name(case: dict, colour: str) -> str:
    return "white" if colour == "white" else f"coloured, {case['coloured_resolution']:.2f} Å"


def main() -> int:
    parser = benchmark_arguments(__doc__, sets=DEFAULT_SETS)
    parser.add_argument("--levels", type=float, nargs="+", default=list(DEFAULT_LEVELS), metavar="L",
                        help="noise SDs as multiples of the map's SD (default: %(default)s; 0, the map as given, "
                             "is always run)")
    parser.add_argument("--colours", nargs="+", choices=COLOURS, default=list(COLOURS), help="noise colours")
    parser.add_argument("--maps", nargs="+", metavar="NAME", help="a subset of maps: wide-1 ... high-1 ... EMD-5168 ...")
    parser.add_argument("--doc", type=Path, help=f"replace the table between the {DOC_KEY} markers of this file")
    args = parser.parse_args()
    names = case_names(args.sets)
    unknown = sorted(set(args.maps or ()) - set(names))
    if unknown:
        parser.error(f"unknown map(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if any(level < 0 for level in args.levels):
        parser.error("noise levels must be >= 0")
    logging.basicConfig(level=logging.ERROR)          # per-run warnings are summed up in the figures
    wanted = set(args.maps) if args.maps else None
    levels = sorted(set(args.levels) - {0.0})
    start = time.perf_counter()
    cases = []
    if wanted is None or any(name.split("-")[0] in REGION_VOXEL_SIZE for name in wanted):
        chains = chain_files(args.structures)
        cases += region_cases(chains, "wide", args.sets, 0, args.seed, wanted)
        if not args.skip_high:
            cases += region_cases(chains, "high", args.sets, args.sets, args.seed, wanted)
    cases += real_cases(wanted)
    models = {"wide": args.wide, "high": args.high}
    with tempfile.TemporaryDirectory(prefix="deepres-noise-") as work:
        results = [run_case(case, levels, args.colours, args.seed, models, Path(work)) for case in cases]
    summary = {"maps": results, "levels": [0.0] + levels, "colours": args.colours, "seed": args.seed,
               "sets": args.sets, "runs": len(cases) * (1 + len(levels) * len(args.colours)),
               "seconds": time.perf_counter() - start,
               "command": " ".join([".venv/bin/python benchmarks/noise.py", *sys.argv[1:]])}
    table = markdown_tables(summary)
    print("\n" + table)
    for name, colour, level, by in flagged(results):
        print(f"finer with noise: {name} {colour} + {level:g} x SD, {by:.3f} A finer than at a lower level")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.doc:
        replace_section(args.doc, DOC_KEY, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
