"""Speed and memory of ``deepres localfilter`` (224^3) and ``deepres residues`` (10 000 residues).

Builds, at 1 A/px:

* a 224^3 map (smooth random density in an ellipsoid holding 15 % of the box, low-passed at
  4 A, Gaussian noise of SD 0.08 at unit peak) and a resolution map over that ellipsoid
  rising smoothly from 2.5 A at its centre to 13 A at its edge: the whole wide range, so
  the filter bank has its largest size at this voxel size (66 members);
* a model of 10 000 residues of 8 atoms (four chains of 2 500) inside the ellipsoid.

Then, each in a fresh process limited to two CPUs (peak memory is then its own):

* ``deepres localfilter`` end to end (process start to every output written), and the
  filter alone (:func:`deepres_plugin.core.localfilter.local_lowpass`) with its peak memory
  above that of a process that only read the two maps;
* ``deepres residues`` end to end, and :func:`deepres_plugin.core.pipeline.run_residues`
  alone.

Each measurement is repeated (--repeat, default 3) and the fastest run is kept: on a shared
machine the others measure the neighbours. Prints a Markdown table and, with --json, writes
the figures as JSON.

Usage:
    .venv/bin/python benchmarks/localfilter_speed.py [--repeat N] [--json results.json]
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

EDGE = 224
MASK_FRACTION = 0.15
FINEST_A, COARSEST_A = 2.5, 13.0
RESIDUES = 10_000
CHAINS = 4
ATOMS_PER_RESIDUE = 8
CPUS = 2
#: Time goals: seconds for the 224^3 filter and the 10 000-residue model.
TARGETS = {"localfilter": 10.0, "residues": 5.0}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ellipsoid(edge: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The ellipsoid mask and each voxel's normalised radius (1 on its surface)."""
    z, y, x = np.ogrid[:edge, :edge, :edge]
    c = edge / 2
    axes = np.array([1.0, 1.3, 0.8])
    radius = (fraction * edge ** 3 / (4 / 3 * np.pi * np.prod(np.sqrt(axes)))) ** (1 / 3)
    r2 = ((z - c) ** 2 / axes[0] + (y - c) ** 2 / axes[1] + (x - c) ** 2 / axes[2]) / radius ** 2
    return r2 <= 1, np.sqrt(r2).astype(np.float32)


def make_case(folder: Path) -> None:
    import gemmi

    from deepres_plugin.core.filters import add_white_noise, lowpass_filter, scale_to_unit_peak
    from deepres_plugin.core.masks import gaussian_lowpass
    from deepres_plugin.core.mrc import write_map

    rng = np.random.default_rng(224)
    mask, radius = ellipsoid(EDGE, MASK_FRACTION)
    density = gaussian_lowpass(rng.random((EDGE,) * 3).astype(np.float32), 1.0, 3.0) * mask
    volume = add_white_noise(scale_to_unit_peak(lowpass_filter(density, 1.0, 4.0)), 0.08, rng)
    resolution = np.where(mask, FINEST_A + (COARSEST_A - FINEST_A) * radius ** 2, 0).astype(np.float32)
    write_map(folder / "map.mrc", volume, 1.0)
    write_map(folder / "resolution.mrc", resolution, 1.0)
    inside = np.argwhere(radius < 0.9)[:, ::-1].astype(np.float64)             # (x, y, z), 1 A/px, origin 0
    centres = inside[rng.choice(len(inside), RESIDUES, replace=False)]
    structure, model = gemmi.Structure(), gemmi.Model("1")
    for c in range(CHAINS):
        chain = gemmi.Chain("ABCD"[c])
        for i in range(RESIDUES // CHAINS):
            residue = gemmi.Residue()
            residue.name, residue.seqid = "ALA", gemmi.SeqId(i + 1, " ")
            centre = centres[c * (RESIDUES // CHAINS) + i]
            for a, offset in enumerate(rng.uniform(-2, 2, (ATOMS_PER_RESIDUE, 3))):
                atom = gemmi.Atom()
                atom.name, atom.element = f"C{a}", gemmi.Element("C")
                atom.pos, atom.b_iso, atom.occ = gemmi.Position(*(centre + offset)), 40.0, 1.0
                residue.add_atom(atom)
            chain.add_residue(residue)
        model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    structure.write_pdb(str(folder / "model.pdb"))


def worker(kind: str, folder: Path) -> dict:
    """One measurement in this process (a child: its ru_maxrss is its own)."""
    from deepres_plugin.core.mrc import read_map

    if kind == "prepare":
        make_case(folder)
        return {}
    if kind == "read":                      # the baseline: the maps read, nothing filtered
        import deepres_plugin.core.localfilter  # noqa: F401  (the imports a filter needs)

        read_map(folder / "map.mrc"), read_map(folder / "resolution.mrc")
        return {"peak_mb": peak_rss_mb()}
    if kind == "filter":
        from deepres_plugin.core.localfilter import local_lowpass

        volume, resolution = read_map(folder / "map.mrc")[0], read_map(folder / "resolution.mrc")[0]
        start = time.perf_counter()
        result = local_lowpass(volume, resolution, 1.0)
        return {"seconds": time.perf_counter() - start, "members": len(result.bank), "peak_mb": peak_rss_mb(),
                "map_mb": volume.nbytes / 2 ** 20, "filtered_voxels": int(np.count_nonzero(resolution))}
    if kind == "residues":
        from deepres_plugin.core.pipeline import run_residues

        start = time.perf_counter()
        summary = run_residues(folder / "resolution.mrc", folder / "model.pdb", folder / "residues_core")
        return {"seconds": time.perf_counter() - start, "residues": summary.residues, "atoms": summary.atoms,
                "peak_mb": peak_rss_mb()}
    raise ValueError(kind)


def limit_cpus() -> None:
    """Run the child on at most :data:`CPUS` CPUs."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:CPUS])


def run_worker(kind: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--folder", str(folder)],
                         capture_output=True, text=True, check=True, preexec_fn=limit_cpus)
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(folder: Path, arguments: list[str]) -> dict:
    """Seconds from process start to every output written, for a ``deepres`` command line."""
    deepres = Path(sys.executable).with_name("deepres")
    start = time.perf_counter()
    subprocess.run([str(deepres), *arguments], check=True, capture_output=True, preexec_fn=limit_cpus)
    return {"seconds": time.perf_counter() - start}


def fastest(measure, repeat: int) -> dict:
    """The run with the fewest seconds among ``repeat`` runs of ``measure()``."""
    return min((measure() for _ in range(repeat)), key=lambda figures: figures["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, the fastest kept (default 3)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_worker("prepare", folder)
        repeat = args.repeat
        figures = {
            "cpus": min(CPUS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else CPUS),
            "repeat": repeat,
            "localfilter_e2e": fastest(lambda: end_to_end(folder, [
                "localfilter", str(folder / "map.mrc"), str(folder / "resolution.mrc"), "--out", str(folder / "lf")]),
                repeat),
            "filter": fastest(lambda: run_worker("filter", folder), repeat), "read": run_worker("read", folder),
            "residues_e2e": fastest(lambda: end_to_end(folder, [
                "residues", str(folder / "resolution.mrc"), str(folder / "model.pdb"), "--out", str(folder / "res")]),
                repeat),
            "residues": fastest(lambda: run_worker("residues", folder), repeat),
        }
    filtered = figures["filter"]
    filtered["peak_above_read_mb"] = filtered["peak_mb"] - figures["read"]["peak_mb"]
    filtered["peak_above_read_maps"] = filtered["peak_above_read_mb"] / filtered["map_mb"]
    rows = [
        ("`deepres localfilter` 224³, end to end", figures["localfilter_e2e"]["seconds"], TARGETS["localfilter"],
         f"{filtered['members']} bank members, {filtered['filtered_voxels']} voxels filtered"),
        ("local filter alone (`local_lowpass`)", filtered["seconds"], None,
         f"peak {filtered['peak_mb']:.0f} MB; {filtered['peak_above_read_mb']:.0f} MB "
         f"({filtered['peak_above_read_maps']:.1f} maps of {filtered['map_mb']:.0f} MB) above the maps read"),
        (f"`deepres residues` {RESIDUES} residues, end to end", figures["residues_e2e"]["seconds"],
         TARGETS["residues"], f"{figures['residues']['atoms']} atoms, {EDGE}³ resolution map"),
        ("per-residue run alone (`run_residues`)", figures["residues"]["seconds"], None,
         f"peak {figures['residues']['peak_mb']:.0f} MB"),
    ]
    print(f"{figures['cpus']} CPUs, fastest of {repeat} runs\n")
    print("| measurement | seconds | target | notes |\n|---|---|---|---|")
    for name, seconds, target, notes in rows:
        print(f"| {name} | {seconds:.2f} | {'' if target is None else f'≤ {target:g}'} | {notes} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
