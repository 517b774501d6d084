"""Local resolution of maps made by a real reconstruction pipeline (RELION 3.1), against the
truth, on validation structures only (../shared/data/structures/val).

Every map of the other benchmarks is a simulated density plus noise added in 3D; here the
noise goes through projection, CTF and reconstruction as in a real data set, and the
post-processing and the peer method are RELION's own.

Per case:

1. truth: a validation structure's density (``deepres_plugin.core.simulate``), each region
   low-passed at a known resolution (``accuracy.region_signal``: Xmipp's raised cosine),
   the sum blurred by a global B-factor of +70 A^2 (an unsharpened reconstruction), scaled
   to a peak of 1 and put in a cubic box (RELION needs one), 1 A/px;
2. particles: ``relion_project --ctf`` in uniformly random orientations (a STAR file of
   random Euler angles, defoci 0.8-2.5 um with up to 300 A of astigmatism, 300 kV, Cs 2.7
   mm, amplitude contrast 0.1), then white Gaussian noise added to every image (SD = the SD
   of the clean CTF-modulated projections / sqrt(SNR)); particles alternate between the
   two random subsets;
3. half maps: ``relion_reconstruct --ctf --subset 1`` and ``--subset 2``;
4. ``relion_postprocess --auto_bfac`` with the LOOSE mask (below): RELION's FSC resolution,
   B-factor and post-processed map; ``relion_postprocess --locres`` with the same mask, at
   RELION's default sampling (25 A) and at 15 A: the peer local resolution;
5. ours, as subprocesses of the ``deepres`` command: ``predict`` on RELION's post-processed
   map, ``predict`` on the map restored with the known B (the halves' average, B = -70 A^2
   applied, low-passed at RELION's FSC resolution), ``localfsc`` on the halves, and
   ``bfactor-sweep`` on the halves; each reads its ``summary.json`` and ``resolution.mrc``.

Masks: TIGHT, the voxels within 3 A of an atom (binary; the region tests' mask); LOOSE, the
atoms dilated by 7 A with a 6 A raised-cosine soft edge, as RELION users make them.
Regions: the voxels within 3 A of one domain's atoms and of no other's; the truth of a
region is its low-pass resolution. The "molecule" is every voxel within 3 A of an atom;
"solvent" every voxel 6 A or more from every atom.

Validation (``--validate``, and at the start of every case): the same particles without
noise, all reconstructed together, must reproduce the input map: the correlation with the
input over the box and the FSC with it in every shell up to the finest low-pass.

Cases: ``one``: a validation complex (2A9W) low-passed at 4 A; ``four``: four compact pieces
(about 20-25 A across: the residues within 9 A of the most buried atom of a validation chain) at the
corners of a tetrahedron, at least 12 A apart, low-passed at 3.5 / 5 / 7 / 9.5 A.

Usage:
    .venv/bin/python benchmarks/relion_pipeline.py [--seed 1] [--cases one four]
        [--particles 6000] [--snr 0.02] [--workdir DIR] [--json out.json] [--doc docs/relion_pipeline.md]
    .venv/bin/python benchmarks/relion_pipeline.py --validate [--particles 6000]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import scipy.ndimage
import scipy.spatial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from accuracy import DEFAULT_VAL_DIR, REGION_RADIUS_A, chain_files, region_signal  # noqa: E402
from deepres_plugin.core.filters import apply_bfactor, scale_to_unit_peak  # noqa: E402
from deepres_plugin.core.fsc import fsc_curve, fsc_resolution  # noqa: E402
from deepres_plugin.core.masks import mask_from_points  # noqa: E402
from deepres_plugin.core.mrc import read_map, write_map  # noqa: E402
from deepres_plugin.core.simulate import atom_positions, read_model  # noqa: E402

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DOC = REPOSITORY / "docs" / "relion_pipeline.md"

VOXEL_SIZE_A = 1.0
#: Global B-factor of the truth's envelope (A^2): an unsharpened reconstruction. The B that
#: restores the map, the sweep's target, is its opposite.
ENVELOPE_B = 70.0
TRUE_SHARPENING_B = -ENVELOPE_B
#: Empty space around the atoms before the box is made cubic (A): holds the loose mask.
PADDING_A = 16.0

#: The one-resolution case: a validation complex low-passed at this resolution (A).
ONE_STRUCTURE = "DIPS_a9_2a9w.pdb1_0.dill_l_b_COMPLEX.pdb.gz"
ONE_RESOLUTION = 4.0
#: The four-domain case: pieces of the first validation chains of four different entries
#: (the two chains of a DIPS pair may be copies of one protein), one resolution each (A).
FOUR_RESOLUTIONS = (3.5, 5.0, 7.0, 9.5)
#: A piece is every residue whose CA lies within this distance (A) of its chain's most buried atom.
PIECE_RADIUS_A = 9.0
#: The piece's centre is the atom with the most atoms within this distance (A).
BURIED_WITHIN_A = 10.0
#: Smallest distance between two pieces' atoms (A).
PIECE_GAP_A = 12.0
#: Unit vectors to the corners of a regular tetrahedron (the most compact four-domain box).
TETRAHEDRON = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3.0)

#: Microscope and CTF of the simulated data set.
VOLTAGE_KV = 300.0
SPHERICAL_ABERRATION_MM = 2.7
AMPLITUDE_CONTRAST = 0.1
DEFOCUS_RANGE_A = (8000.0, 25000.0)
ASTIGMATISM_A = 300.0
#: Particles in all (half per subset) and their signal-to-noise ratio (variance of the clean
#: CTF-modulated projections over the variance of the added noise).
DEFAULT_PARTICLES = 6000
DEFAULT_SNR = 0.02

#: Masks (A): tight = atoms + 3; loose = atoms + 7 with a 6 A raised-cosine edge; solvent is
#: 6 A or more from every atom.
TIGHT_MASK_A = REGION_RADIUS_A
LOOSE_DILATION_A = 7.0
LOOSE_EDGE_A = 6.0
SOLVENT_FROM_A = 6.0
#: RELION's local-resolution sampling (A): its default, and a finer one.
LOCRES_SAMPLINGS = (25.0, 15.0)
SWEEP_BFACTORS = "-200:40:20"
#: The noise-free round trip passes when the reconstruction correlates with the input at
#: least this well, and its FSC with the input stays above this in every shell up to the
#: finest low-pass.
VALIDATION_CORRELATION = 0.99
VALIDATION_FSC = 0.9

CASES = ("one", "four")


@dataclasses.dataclass
class Case:
    """A map with known local resolution.

    Attributes:
        name: ``one`` or ``four``.
        description: what it is, for the tables.
        volume: the truth map [z, y, x] (envelope applied, peak 1), cubic.
        regions: boolean masks, one per domain.
        truths: each region's low-pass resolution (A).
        atoms_zyx: (N, 3) atom positions in A in the grid frame.
        sources: the structure files used.
        notes: how the domains were made, for the report.
    """

    name: str
    description: str
    volume: np.ndarray
    regions: list[np.ndarray]
    truths: list[float]
    atoms_zyx: np.ndarray
    sources: list[str]
    notes: str = ""


# ---------------------------------------------------------------------------- truth maps

def compact_piece(path: Path, radius: float = PIECE_RADIUS_A) -> gemmi.Model:
    """The residues of a chain whose CA (or first atom) lies within ``radius`` A of its most
    buried atom (the one with the most atoms within :data:`BURIED_WITHIN_A`): a compact,
    domain-sized piece."""
    model = read_model(path)
    positions = atom_positions(model)
    neighbours = scipy.spatial.cKDTree(positions).query_ball_point(positions, BURIED_WITHIN_A, return_length=True)
    centre = positions[np.argmax(neighbours)]
    anchors = np.array([(residue.find_atom("CA", "*") or residue[0]).pos.tolist() for residue in model[0]])
    keep = np.flatnonzero(np.linalg.norm(anchors - centre, axis=1) <= radius)
    piece, chain = gemmi.Model("1"), gemmi.Chain("A")
    for index in keep:
        chain.add_residue(model[0][int(index)])
    piece.add_chain(chain)
    return piece


def smallest_gap(clouds: list[np.ndarray]) -> float:
    """Smallest distance (A) between atoms of two different clouds."""
    trees = [scipy.spatial.cKDTree(c) for c in clouds]
    return min(float(trees[i].query(clouds[j])[0].min()) for i in range(len(clouds)) for j in range(i + 1, len(clouds)))


def tetrahedral_assembly(pieces: list[gemmi.Model], gap: float = PIECE_GAP_A) -> gemmi.Model:
    """The four pieces centred on the corners of a tetrahedron just large enough that no two
    come closer than ``gap`` A (bisection on the corner distance); chains A-D."""
    centred = [atom_positions(p) - atom_positions(p).mean(axis=0) for p in pieces]
    radius = max(float(np.linalg.norm(c, axis=1).max()) for c in centred)
    low, high = 0.0, (2 * radius + gap) / np.sqrt(8.0 / 3.0)       # edge = corner distance x sqrt(8/3)
    for _ in range(30):
        middle = 0.5 * (low + high)
        if smallest_gap([c + middle * TETRAHEDRON[i] for i, c in enumerate(centred)]) >= gap:
            high = middle
        else:
            low = middle
    combined = gemmi.Model("1")
    for i, piece in enumerate(pieces):
        shift = high * TETRAHEDRON[i] - atom_positions(piece).mean(axis=0)
        piece.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
        chain = piece[0]
        chain.name = "ABCD"[i]
        combined.add_chain(chain)
    return combined


def cubic(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``volume`` zero-padded, centred, to a cube of an even edge; the offset (voxels, z y x)."""
    edge = int(max(volume.shape)) + int(max(volume.shape)) % 2
    before = (edge - np.array(volume.shape)) // 2
    pad = [(int(b), int(edge - s - b)) for b, s in zip(before, volume.shape)]
    return np.pad(volume, pad), before


def truth_case(name: str, description: str, model: gemmi.Model, resolutions: list[float],
               sources: list[str], notes: str = "") -> Case:
    """The regions' density (``region_signal``), the envelope, peak 1, a cubic box."""
    signal, regions = region_signal(model, VOXEL_SIZE_A, resolutions, PADDING_A)
    atoms = atom_positions(model)[:, ::-1]            # region_signal moved the model into its box
    volume, offset = cubic(scale_to_unit_peak(apply_bfactor(signal, VOXEL_SIZE_A, ENVELOPE_B)))
    regions = [cubic(r)[0] for r in regions]
    return Case(name, description, volume.astype(np.float32), regions, list(resolutions),
                atoms + offset * VOXEL_SIZE_A, sources, notes)


def one_resolution_case(val_dir: Path) -> Case:
    path = val_dir / ONE_STRUCTURE
    model = read_model(path)
    return truth_case("one", f"{entry(path).upper()} at {ONE_RESOLUTION:g} Å", model, [ONE_RESOLUTION], [path.name],
                      f"{entry(path).upper()}: {model.count_atom_sites()} atoms, one region")


def entry(path: Path) -> str:
    """The PDB code of a validation file (``DIPS_a9_2a9w.pdb1_0...`` -> ``2a9w``)."""
    return path.name.split(".")[0].split("_")[-1]


def distinct_entries(paths: list[Path]) -> list[Path]:
    """The first file of each PDB entry (``DIPS_a9_2a9w...``), in the given order."""
    chosen: dict[str, Path] = {}
    for path in paths:
        chosen.setdefault(path.name.split(".")[0], path)
    return list(chosen.values())


def four_domain_case(val_dir: Path) -> Case:
    paths = distinct_entries(chain_files(val_dir))[:len(FOUR_RESOLUTIONS)]
    pieces = [compact_piece(p) for p in paths]
    described = []
    for path, piece, resolution in zip(paths, pieces, FOUR_RESOLUTIONS):
        positions = atom_positions(piece)
        described.append(f"{entry(path).upper()} piece at {resolution:g} Å ({len(positions)} atoms, "
                         f"{float(scipy.spatial.distance.pdist(positions).max()):.1f} Å across)")
    model = tetrahedral_assembly(pieces)
    notes = "; ".join(described) + f"; at least {smallest_gap(chain_positions(model)):.1f} Å apart"
    logger.info("four domains: %s", notes)
    return truth_case("four", "four domains at " + " / ".join(f"{r:g}" for r in FOUR_RESOLUTIONS) + " Å",
                      model, list(FOUR_RESOLUTIONS), [p.name for p in paths], notes)


def chain_positions(model: gemmi.Model) -> list[np.ndarray]:
    """(N, 3) atom positions (x, y, z) in A of each chain."""
    return [np.array([atom.pos.tolist() for residue in chain for atom in residue]) for chain in model]


def make_case(name: str, val_dir: Path) -> Case:
    return {"one": one_resolution_case, "four": four_domain_case}[name](val_dir)


def soft_mask(core: np.ndarray, voxel_size: float, edge: float) -> np.ndarray:
    """1 inside ``core``, a raised cosine over ``edge`` A outside it, 0 beyond."""
    distance = scipy.ndimage.distance_transform_edt(~core) * voxel_size
    ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip(distance / edge, 0.0, 1.0)))
    return np.where(core, 1.0, ramp).astype(np.float32)


@dataclasses.dataclass
class Masks:
    """Tight (binary) and loose (soft) masks, the molecule and the solvent."""

    tight: np.ndarray
    loose: np.ndarray
    molecule: np.ndarray
    solvent: np.ndarray


def case_masks(case: Case) -> Masks:
    shape = case.volume.shape
    molecule = mask_from_points(shape, VOXEL_SIZE_A, case.atoms_zyx, TIGHT_MASK_A)
    loose = soft_mask(mask_from_points(shape, VOXEL_SIZE_A, case.atoms_zyx, LOOSE_DILATION_A), VOXEL_SIZE_A,
                      LOOSE_EDGE_A)
    solvent = ~mask_from_points(shape, VOXEL_SIZE_A, case.atoms_zyx, SOLVENT_FROM_A)
    return Masks(molecule.astype(np.float32), loose, molecule, solvent)


# ------------------------------------------------------------------------ the data set

def random_particles(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniformly random orientations (degrees), defoci and astigmatism (A), alternate subsets."""
    defocus = rng.uniform(*DEFOCUS_RANGE_A, count)
    return {"rlnAngleRot": rng.uniform(0.0, 360.0, count),
            "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1.0, 1.0, count))),
            "rlnAnglePsi": rng.uniform(0.0, 360.0, count),
            "rlnOriginXAngst": np.zeros(count), "rlnOriginYAngst": np.zeros(count),
            "rlnDefocusU": defocus + rng.uniform(0.0, ASTIGMATISM_A, count),
            "rlnDefocusV": defocus,
            "rlnDefocusAngle": rng.uniform(0.0, 180.0, count),
            "rlnOpticsGroup": np.ones(count, int),
            "rlnRandomSubset": 1 + np.arange(count) % 2}


def particles_star(particles: dict[str, np.ndarray], box: int, voxel_size: float) -> str:
    """A RELION 3.1 particle STAR file (optics group and particle table) for ``relion_project --ang``."""
    optics = ["rlnOpticsGroupName", "rlnOpticsGroup", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
              "rlnImagePixelSize", "rlnImageSize", "rlnImageDimensionality"]
    lines = ["# version 30001", "", "data_optics", "", "loop_"]
    lines += [f"_{label} #{i + 1}" for i, label in enumerate(optics)]
    group = f"{VOLTAGE_KV:g} {SPHERICAL_ABERRATION_MM:g} {AMPLITUDE_CONTRAST:g} {voxel_size:g} {box}"
    lines += [f"opticsGroup1 1 {group} 2",
              "", "# version 30001", "", "data_particles", "", "loop_"]
    lines += [f"_{label} #{i + 1}" for i, label in enumerate(particles)]
    columns = [np.char.mod("%d" if values.dtype.kind == "i" else "%.4f", values) for values in particles.values()]
    lines += [" ".join(row) for row in zip(*columns)]
    return "\n".join(lines) + "\n"


def add_noise_to_stack(clean: Path, noisy: Path, snr: float, rng: np.random.Generator) -> float:
    """Write ``clean`` plus white Gaussian noise of SD (clean SD / sqrt(snr)); the noise SD."""
    with mrcfile.mmap(clean, permissive=True) as source:
        images = np.asarray(source.data, np.float32)
        voxel = float(source.voxel_size.x)
    noise_sd = float(images.std()) / np.sqrt(snr)
    with mrcfile.new(noisy, overwrite=True) as target:
        target.set_data(images + rng.standard_normal(images.shape, dtype=np.float32) * np.float32(noise_sd))
        target.set_image_stack()
        target.voxel_size = voxel
    return noise_sd


# ------------------------------------------------------------------------- programs

def run_program(command: list[str], log: Path) -> float:
    """Run ``command`` (stdout and stderr to ``log``); its wall time in seconds.

    Raises:
        RuntimeError: non-zero exit status (with the end of the log).
    """
    start = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status}): {log.read_text()[-2000:]}")
    logger.info("%s: %.1f s", Path(command[0]).name + " " + command[1], seconds)
    return seconds


def deepres_executable() -> str:
    """The ``deepres`` command of this environment (next to the interpreter), else on PATH."""
    local = Path(sys.executable).parent / "deepres"
    found = str(local) if local.exists() else shutil.which("deepres")
    if not found:
        raise RuntimeError("no deepres command: install the project (make install)")
    return found


def relion_star_value(star: Path, label: str) -> float:
    """A number of a RELION STAR file's general block (``_rlnLabel value``)."""
    match = re.search(rf"^_{label}\s+(\S+)", star.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{star} has no _{label}")
    return float(match.group(1))


def reconstruct(star: Path, out: Path, logs: Path, subset: int | None = None) -> float:
    command = ["relion_reconstruct", "--i", str(star), "--o", str(out), "--ctf", "--angpix", f"{VOXEL_SIZE_A:g}"]
    if subset is not None:
        command += ["--subset", str(subset)]
    return run_program(command, logs / f"reconstruct_{out.stem}.log")


@dataclasses.dataclass
class DataSet:
    """The particles of one case: the clean (noise-free) and noisy stacks' STAR files."""

    clean_star: Path
    count: int
    project_seconds: float


def project(case: Case, folder: Path, count: int, rng: np.random.Generator) -> DataSet:
    """Write the truth map and project it with CTF in random orientations (no noise)."""
    write_map(folder / "truth.mrc", case.volume, VOXEL_SIZE_A)
    angles = folder / "angles.star"
    angles.write_text(particles_star(random_particles(count, rng), case.volume.shape[0], VOXEL_SIZE_A))
    seconds = run_program(["relion_project", "--i", str(folder / "truth.mrc"), "--o", str(folder / "clean"),
                           "--ang", str(angles), "--ctf", "--angpix", f"{VOXEL_SIZE_A:g}"],
                          folder / "logs" / "project.log")
    return DataSet(folder / "clean.star", count, seconds)


def fsc_with_input(reconstruction: np.ndarray, truth: np.ndarray, finest: float) -> dict:
    """How well a reconstruction reproduces its input: correlation over the box, the lowest
    FSC over the shells up to ``finest`` A, and the FSC 0.5 crossing (A)."""
    frequency, fsc = fsc_curve(reconstruction, truth, VOXEL_SIZE_A)
    kept = frequency <= 1.0 / finest
    correlation = float(np.corrcoef(reconstruction.ravel(), truth.ravel())[0, 1])
    return {"correlation": correlation, "min_fsc_to_finest": float(fsc[kept].min()), "finest_A": finest,
            "fsc_05_A": fsc_resolution(frequency, fsc, 0.5),
            "passed": bool(correlation >= VALIDATION_CORRELATION and fsc[kept].min() >= VALIDATION_FSC)}


def round_trip(case: Case, data: DataSet, folder: Path) -> dict:
    """Reconstruct every noise-free particle and compare with the input map."""
    seconds = reconstruct(data.clean_star, folder / "noise_free.mrc", folder / "logs")
    reconstruction, _ = read_map(folder / "noise_free.mrc")
    figures = fsc_with_input(reconstruction, case.volume, min(case.truths))
    logger.info("%s noise-free round trip (%d particles): correlation %.4f, FSC with the input >= %.3f up to "
                "%.1f A, FSC 0.5 at %.2f A (%.1f s)", case.name, data.count, figures["correlation"],
                figures["min_fsc_to_finest"], figures["finest_A"], figures["fsc_05_A"], seconds)
    return {**figures, "particles": data.count, "reconstruct_seconds": seconds}


def validate_map(volume: np.ndarray, finest: float, folder: Path, count: int, seed: int) -> dict:
    """The noise-free round trip for any cubic map (1 A/px) whose finest content is ``finest`` A."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    case = Case("map", "map", volume.astype(np.float32), [], [finest], np.zeros((0, 3)), [])
    data = project(case, folder, count, np.random.default_rng(seed))
    return round_trip(case, data, folder)


# -------------------------------------------------------------------------- one case

def deepres(command: list[str], out: Path, logs: Path) -> tuple[np.ndarray, dict, float]:
    """Run a ``deepres`` sub-command into ``out``; its resolution map, summary and seconds."""
    seconds = run_program([deepres_executable(), *command, "--out", str(out), "--no-progress"],
                          logs / f"deepres_{out.name}.log")
    summary = json.loads((out / "summary.json").read_text())
    # bfactor-sweep writes the recommended map's prediction in deepres/
    resolution = out / "resolution.mrc" if (out / "resolution.mrc").exists() else out / "deepres" / "resolution.mrc"
    return read_map(resolution)[0], summary, seconds


def region_figures(resolution: np.ndarray, case: Case) -> dict:
    """Each region's median (A) and the per-voxel MAE (A) over all regions against their truths."""
    medians = [float(np.median(resolution[r])) for r in case.regions]
    errors = np.concatenate([np.abs(resolution[r] - t) for r, t in zip(case.regions, case.truths)])
    return {"medians": medians, "mae": float(errors.mean()),
            "no_estimate": float(np.mean(np.concatenate([resolution[r] <= 0 for r in case.regions])))}


def mask_figures(resolution: np.ndarray, weights: np.ndarray, masks: Masks, summary: dict) -> dict:
    """What a mask does to ``deepres predict``: its summary median, the molecule's median and
    20th percentile, the share of the mask's solvent voxels that read finer than that
    percentile (None when the mask holds no solvent), the share of the mask (weight > 0)
    with no estimate."""
    inside = weights > 0
    estimated = resolution > 0
    molecule = resolution[masks.molecule & estimated]
    p20 = float(np.percentile(molecule, 20))
    solvent = inside & masks.solvent
    finer = np.count_nonzero(estimated & solvent & (resolution < p20))
    return {"summary_median": float(summary["median_A"]), "molecule_median": float(np.median(molecule)),
            "molecule_p20": p20, "mask_voxels": int(inside.sum()), "solvent_voxels": int(solvent.sum()),
            "solvent_finer": finer / solvent.sum() if solvent.any() else None,
            "no_estimate": float(np.count_nonzero(inside & ~estimated) / inside.sum())}


def run_case(case: Case, folder: Path, particles: int, snr: float, seed: int) -> dict:
    """The whole pipeline for one case; every figure of the tables."""
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, CASES.index(case.name)])
    masks = case_masks(case)
    write_map(folder / "tight_mask.mrc", masks.tight, VOXEL_SIZE_A)
    write_map(folder / "loose_mask.mrc", masks.loose, VOXEL_SIZE_A)
    times: dict[str, float] = {}
    data = project(case, folder, particles, rng)
    times["relion_project"] = data.project_seconds
    validation = round_trip(case, data, folder)

    start = time.perf_counter()
    noise_sd = add_noise_to_stack(folder / "clean.mrcs", folder / "noisy.mrcs", snr, rng)
    noisy_star = folder / "noisy.star"
    noisy_star.write_text(data.clean_star.read_text().replace(str(folder / "clean.mrcs"), str(folder / "noisy.mrcs")))
    times["noise (numpy)"] = time.perf_counter() - start
    times["relion_reconstruct x2"] = sum(reconstruct(noisy_star, folder / f"half{h}.mrc", logs, h) for h in (1, 2))
    halves = [str(folder / "half1.mrc"), str(folder / "half2.mrc")]

    relion_common = ["relion_postprocess", "--i", halves[0], "--i2", halves[1],
                     "--mask", str(folder / "loose_mask.mrc"), "--angpix", f"{VOXEL_SIZE_A:g}"]
    (folder / "postprocess").mkdir(exist_ok=True)
    times["relion_postprocess --auto_bfac"] = run_program(
        relion_common + ["--auto_bfac", "--o", str(folder / "postprocess" / "postprocess")], logs / "postprocess.log")
    relion_star = folder / "postprocess" / "postprocess.star"
    relion_resolution = relion_star_value(relion_star, "rlnFinalResolution")
    relion_b = relion_star_value(relion_star, "rlnBfactorUsedForSharpening")
    locres = {}
    for sampling in LOCRES_SAMPLINGS:
        out = folder / f"locres_{sampling:g}"
        out.mkdir(exist_ok=True)
        times[f"relion --locres {sampling:g} Å"] = run_program(
            relion_common + ["--locres", "--locres_sampling", f"{sampling:g}", "--o", str(out / "relion")],
            logs / f"locres_{sampling:g}.log")
        locres[sampling] = read_map(out / "relion_locres.mrc")[0]

    average = 0.5 * (read_map(halves[0])[0] + read_map(halves[1])[0])
    restored = apply_bfactor(average, VOXEL_SIZE_A, TRUE_SHARPENING_B, resolution=relion_resolution)
    write_map(folder / "restored.mrc", restored, VOXEL_SIZE_A)
    tight, loose = ["--mask", str(folder / "tight_mask.mrc")], ["--mask", str(folder / "loose_mask.mrc")]
    postprocessed, _, times["deepres predict (post-processed)"] = deepres(
        ["predict", str(folder / "postprocess" / "postprocess.mrc"), *tight], folder / "predict_postprocessed", logs)
    restored_tight, summary_tight, times["deepres predict (restored, tight)"] = deepres(
        ["predict", str(folder / "restored.mrc"), *tight], folder / "predict_restored_tight", logs)
    restored_loose, summary_loose, times["deepres predict (restored, loose)"] = deepres(
        ["predict", str(folder / "restored.mrc"), *loose], folder / "predict_restored_loose", logs)
    local_fsc, local_summary, times["deepres localfsc"] = deepres(
        ["localfsc", *halves, *tight], folder / "localfsc", logs)
    sweeps = {}
    for name, option in (("tight", tight), ("loose", loose)):
        _, sweep, times[f"deepres bfactor-sweep ({name})"] = deepres(
            ["bfactor-sweep", *halves, *option, "--bfactors", SWEEP_BFACTORS], folder / f"sweep_{name}", logs)
        sweeps[name] = {"recommended_b": sweep["recommended_bfactor_A2"],
                        "verdicts": {str(r["bfactor_A2"]): r["verdict"] for r in sweep["sweep"]}}

    estimators = {"predict_postprocessed": postprocessed, "predict_restored": restored_tight, "localfsc": local_fsc,
                  **{f"relion_locres_{s:g}": locres[s] for s in LOCRES_SAMPLINGS}}
    return {"case": case.name, "description": case.description, "sources": case.sources, "notes": case.notes,
            "truths": case.truths,
            "box": case.volume.shape[0], "particles": particles, "snr": snr, "noise_sd": noise_sd,
            "validation": validation, "relion_resolution_A": relion_resolution, "relion_bfactor_A2": relion_b,
            "localfsc_global_A": local_summary.get("global_fsc_resolution_A"),
            "regions": {name: region_figures(result, case) for name, result in estimators.items()},
            "masks": {"tight": mask_figures(restored_tight, masks.tight, masks, summary_tight),
                      "loose": mask_figures(restored_loose, masks.loose, masks, summary_loose)},
            "sweep": sweeps, "true_b": TRUE_SHARPENING_B, "seconds": times}


# ---------------------------------------------------------------------------- report

ESTIMATOR_COLUMNS = {
    "predict_postprocessed": "(i) predict, RELION's postprocess.mrc",
    "predict_restored": f"(ii) predict, restored (B {TRUE_SHARPENING_B:g}, FSC low-pass)",
    "localfsc": "(iii) deepres localfsc",
    "relion_locres_25": "(iv) RELION --locres 25 Å",
    "relion_locres_15": "(iv) RELION --locres 15 Å",
}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def pipeline_section(results: list[dict]) -> list[str]:
    """The data sets: box, particles, SNR, the noise-free round trip, RELION's FSC and B."""
    lines = ["## The pipeline", "",
             "| case | box (voxels) | particles | SNR per image | noise-free round trip: correlation | FSC with the "
             "input, lowest up to the finest low-pass | RELION FSC (Å) | RELION auto B (Å²) | deepres localfsc "
             "global FSC (Å) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = r["validation"]
        global_fsc = "–" if r["localfsc_global_A"] is None else f"{r['localfsc_global_A']:.2f}"
        lines.append(f"| {r['description']} | {r['box']} | {r['particles']} | {r['snr']:g} | {v['correlation']:.4f} | "
                     f"{v['min_fsc_to_finest']:.3f} (to {v['finest_A']:g} Å) | {r['relion_resolution_A']:.2f} | "
                     f"{r['relion_bfactor_A2']:.1f} | {global_fsc} |")
    lines += ["", "Round trip: the same particles without noise, all of them reconstructed together; the "
              f"reconstruction must correlate with the input map (≥ {VALIDATION_CORRELATION}) and its FSC with the "
              f"input stay ≥ {VALIDATION_FSC} in every shell up to the finest low-pass. SNR: variance of the clean "
              "CTF-modulated projections over the variance of the white noise added to each image. RELION FSC: "
              "`rlnFinalResolution` of `relion_postprocess` (loose mask, 0.143). deepres localfsc global FSC: its "
              "`summary.json` (tight mask).", ""]
    return lines + [f"- {r['description']}: {r['notes']}." for r in results] + [""]


def regions_section(results: list[dict]) -> list[str]:
    """Each region's median by every estimator, and the per-voxel MAE."""
    lines = ["## Region medians against the truth", "",
             "| case | region truth (Å) | " + " | ".join(ESTIMATOR_COLUMNS.values()) + " |",
             "|---|---|" + "---|" * len(ESTIMATOR_COLUMNS)]
    for r in results:
        for i, truth in enumerate(r["truths"]):
            cells = [f"{r['regions'][k]['medians'][i]:.2f}" for k in ESTIMATOR_COLUMNS]
            lines.append(f"| {r['description']} | {truth:g} | " + " | ".join(cells) + " |")
        cells = [f"**{r['regions'][k]['mae']:.2f}**" for k in ESTIMATOR_COLUMNS]
        lines.append(f"| {r['description']} | per-voxel MAE | " + " | ".join(cells) + " |")
    return lines + ["", "Each cell is the median (Å) of the estimate over a region's voxels (within "
                    f"{TIGHT_MASK_A:g} Å of that domain's atoms and of no other's); the MAE row is the mean "
                    "absolute difference from the region's truth over every region voxel. (i)–(iii) ran with the "
                    "tight mask, (iv) with the loose mask (RELION's own input). (i) is RELION's sharpened, "
                    "FSC-weighted, unmasked map (its auto B). (ii) is the halves' average with B = "
                    f"{TRUE_SHARPENING_B:g} Å² applied and low-passed at RELION's FSC resolution: the map restored "
                    "as it should be.", ""]


def masks_section(results: list[dict]) -> list[str]:
    """``deepres predict`` on the restored map with both masks, and the sweep's B with both."""
    lines = ["## Masks and the B-factor sweep", "",
             "| case | mask | voxels (weight > 0) | predict summary median (Å) | molecule median (Å) | molecule p20 "
             "(Å) | solvent voxels finer than the molecule's p20 | mask voxels with no estimate | bfactor-sweep "
             f"recommended B (Å²; truth {TRUE_SHARPENING_B:g}) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name in ("tight", "loose"):
            m = r["masks"][name]
            lines.append(f"| {r['description']} | {name} | {m['mask_voxels']} | {m['summary_median']:.2f} | "
                         f"{m['molecule_median']:.2f} | {m['molecule_p20']:.2f} | {_percent(m['solvent_finer'])} | "
                         f"{_percent(m['no_estimate'])} | {r['sweep'][name]['recommended_b']:g} |")
    return lines + ["", f"`deepres predict` on the restored map (ii). Tight: the voxels within {TIGHT_MASK_A:g} Å of "
                    f"an atom. Loose: the atoms dilated by {LOOSE_DILATION_A:g} Å with a {LOOSE_EDGE_A:g} Å "
                    "raised-cosine soft edge. The summary median is `summary.json`'s (over the voxels it estimated); "
                    f"the molecule is every voxel within {TIGHT_MASK_A:g} Å of an atom; solvent is every mask voxel "
                    f"{SOLVENT_FROM_A:g} Å or more from any atom (share of them, estimated, that read finer than the "
                    "molecule's 20th percentile; – when the mask holds none); no estimate: share of the mask's "
                    "voxels (weight > 0) where resolution.mrc is 0. The sweep (`deepres bfactor-sweep` on the halves, "
                    f"`--bfactors {SWEEP_BFACTORS}`) recommends the B to apply to sharpen; the truth undoes the "
                    f"+{ENVELOPE_B:g} Å² envelope.", ""]


def times_section(results: list[dict]) -> list[str]:
    """Each program's wall time, one column per case."""
    lines = ["## Run times (s, 2 cores, one program at a time)", "",
             "| program | " + " | ".join(r["description"] for r in results) + " |", "|---|" + "---|" * len(results)]
    for program in results[0]["seconds"]:
        lines.append(f"| {program} | " + " | ".join(f"{r['seconds'][program]:.1f}" for r in results) + " |")
    return lines + ["", "Wall time of each program as a subprocess (the `deepres` times include starting Python and "
                    "TensorFlow); the noise-free reconstruction of the round trip is not included."]


def markdown(results: list[dict], command: str, seed: int, total: float) -> str:
    """docs/relion_pipeline.md: what was done, the command and seed, the four tables."""
    defocus_um = [d / 1e4 for d in DEFOCUS_RANGE_A]
    intro = ["# Local resolution of maps made by RELION 3.1 (`benchmarks/relion_pipeline.py`)", "",
             "Maps made by a real reconstruction pipeline: a validation structure's density (regions low-passed at "
             f"known resolutions, a global B = +{ENVELOPE_B:g} Å² envelope, {VOXEL_SIZE_A:g} Å/px) is projected by "
             f"`relion_project --ctf` in random orientations (random defoci {defocus_um[0]:g}–{defocus_um[1]:g} µm, "
             f"{VOLTAGE_KV:g} kV), white noise is added to the images, the two random halves are reconstructed by "
             "`relion_reconstruct --ctf`, post-processed by `relion_postprocess --auto_bfac` with the loose mask, and "
             "RELION's `--locres` is the peer. The `deepres` commands run as subprocesses. Validation structures "
             "only (../shared/data/structures/val); see the module docstring for every detail.", "",
             f"Command: `{command}` (seed {seed}: orientations, defoci and noise; {total:.0f} s in all on 2 cores; "
             "`--validate` runs the noise-free round trip alone, `--json FILE` writes every figure).", ""]
    sections = intro + pipeline_section(results) + regions_section(results) + masks_section(results)
    return "\n".join(sections + times_section(results)) + "\n"


# ------------------------------------------------------------------------------ main

#: Options that say where outputs go, not what is computed: left out of the reported command.
OUTPUT_OPTIONS = ("--json", "--workdir", "--doc")


def reproducing_command(argv: list[str]) -> str:
    """The command line that reproduces the figures: ``argv`` without the output options."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in OUTPUT_OPTIONS:
            skip = True
        elif word != "--no-doc" and not word.startswith(tuple(f"{o}=" for o in OUTPUT_OPTIONS)):
            kept.append(word)
    return " ".join([".venv/bin/python benchmarks/relion_pipeline.py", *kept])


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=Path, default=Path(os.environ.get("DEEPRES_VAL_DIR", DEFAULT_VAL_DIR)))
    parser.add_argument("--seed", type=int, default=1, help="orientation, defocus and noise seed (default 1)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--particles", type=int, default=DEFAULT_PARTICLES,
                        help=f"particles per case, both halves (default {DEFAULT_PARTICLES})")
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR, help=f"SNR per image (default {DEFAULT_SNR:g})")
    parser.add_argument("--workdir", type=Path, help="keep every file here (default: a temporary folder)")
    parser.add_argument("--validate", action="store_true", help="only the noise-free round trip of each case")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="write the tables here (default %(default)s)")
    parser.add_argument("--no-doc", action="store_true", help="do not write --doc")
    return parser


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = arguments().parse_args()
    if shutil.which("relion_project") is None:
        raise SystemExit("RELION is not installed (apt-get install relion; `make install` does it as root)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="relion_pipeline_") as scratch:
        root = (args.workdir or Path(scratch)).resolve()
        results = []
        for name in args.cases:
            case = make_case(name, args.structures)
            folder = root / name
            logger.info("case %s: %s, box %d", name, case.description, case.volume.shape[0])
            if args.validate:
                results.append({"case": name, "validation": validate_map(case.volume, min(case.truths), folder,
                                                                         args.particles, args.seed)})
            else:
                results.append(run_case(case, folder, args.particles, args.snr, args.seed))
    total = time.perf_counter() - start
    if args.validate:
        for r in results:
            v = r["validation"]
            verdict = "passed" if v["passed"] else "FAILED"
            print(f"{r['case']}: correlation {v['correlation']:.4f}, FSC with the input >= "
                  f"{v['min_fsc_to_finest']:.3f} up to {v['finest_A']:g} A, FSC 0.5 at {v['fsc_05_A']:.2f} A: "
                  f"{verdict}")
    else:
        text = markdown(results, reproducing_command(sys.argv[1:]), args.seed, total)
        print(text)
        if not args.no_doc:
            args.doc.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "seconds": total, "cases": results}, indent=2) + "\n")
    return 0 if all(r["validation"]["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
