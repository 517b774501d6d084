"""Density maps simulated from atomic models with electron scattering factors.

The paper (section 2.1) simulates maps with Xmipp's ``xmipp_volume_from_pdb`` (electron
atomic scattering factors, atom B-factors ignored). Here gemmi's electron density
calculator (``gemmi.DensityCalculatorE``, five-Gaussian electron form factors) does the
same job:

* Which atoms: the first model only (NMR ensembles give one map); hydrogens are removed
  (most deposited models have none, so keeping the few that exist would make maps
  inconsistent); waters are removed (ordered solvent is rarely resolved in cryo-EM maps);
  ligands, ions and other hetero groups are kept (they are part of the density). Each
  choice can be reversed with an option. Partial occupancies are honoured.
* Atom B-factors are set to 0 by default, as in the paper's simulator: the map is then
  the molecule at the resolution of the grid, and resolution comes only from the filters
  applied afterwards (low-pass, global B-factor). ``use_atom_bfactors=True`` keeps them.
* Sampling without aliasing: atoms are drawn with an extra Gaussian blur (Refmac's rule for
  the grid spacing) that makes them smooth enough for the grid, and the blur is removed
  exactly in Fourier space afterwards. The result is the model's density band-limited
  at the grid's Nyquist frequency.
* The box is the model's bounding box plus at least ``padding`` A on every side, rounded
  up to an FFT-friendly size, with the model's bounding-box centre on the centre voxel
  (index n // 2). The MRC origin is set so that
  the map overlays the input coordinates.
"""
from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import zlib
from pathlib import Path

import gemmi
import numpy as np
import scipy.fft

from .errors import ParameterError, StructureError
from .filters import (
    add_white_noise,
    apply_bfactor,
    check_resolution,
    lowpass_filter,
    lowpass_zero_frequency,
    scale_to_unit_peak,
)
from .fourier import frequency_magnitude, irfft_map, rfft_map
from .masks import ATOM_MASK_RADIUS_A, mask_from_points
from .mrc import MapGeometry, check_voxel_size

logger = logging.getLogger(__name__)

#: Largest B-factor gain a simulated map may carry: exp(60), 1e26, well inside float32.
MAX_GAIN_EXPONENT = 60.0

#: Empty space around the model's bounding box, in A. It holds the 13-voxel DeepRes box
#: around surface voxels and the spread of the strongest low-pass filter (13 A).
DEFAULT_PADDING_A = 16.0
#: File name endings read as atomic models.
MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")
#: Refuse grids larger than this many voxels (about 1 GB per float64 copy).
MAX_GRID_VOXELS = 128 * 1024 ** 2
#: Seeds of every random stream (simulated noise, datasets, training): whole numbers that
#: NumPy's generators and ``numpy.random.seed`` (which Keras seeds) all take.
SEED_RANGE = (0, 2 ** 32 - 1)


def check_seed(seed: int) -> int:
    """Return ``seed`` if it is a whole number within :data:`SEED_RANGE`.

    Raises:
        ParameterError: another value (NumPy refuses negative seeds).
    """
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not low <= seed <= high:
        raise ParameterError(f"the seed must be a whole number from {low} to {high}, got {seed!r}", option="--seed")
    return int(seed)


@dataclasses.dataclass(frozen=True)
class AtomSelection:
    """Which atoms of a model are simulated (see the module docstring for the defaults)."""

    keep_hydrogens: bool = False
    keep_waters: bool = False
    keep_ligands: bool = True


@dataclasses.dataclass
class SimulatedDensity:
    """A model's density on a grid.

    Attributes:
        density: float32 map indexed [z, y, x] (arbitrary units, electron potential).
        geometry: voxel size (A/px) and the origin that overlays the input coordinates.
        atoms_zyx: (N, 3) atom positions in A in the grid frame (voxel i at i * voxel size).
    """

    density: np.ndarray
    geometry: MapGeometry
    atoms_zyx: np.ndarray

    def atom_mask(self, radius: float = ATOM_MASK_RADIUS_A) -> np.ndarray:
        """Voxels within ``radius`` A of an atom: the molecule."""
        return mask_from_points(self.density.shape, self.geometry.voxel_size, self.atoms_zyx, radius)


def is_model_file(path: str | os.PathLike) -> bool:
    """True for file names that look like PDB/mmCIF models (optionally gzipped)."""
    return str(path).lower().endswith(MODEL_SUFFIXES)


def check_compressed_file(path: Path) -> None:
    """Read a ``.gz`` file to its end: a truncated or corrupt one (which gemmi may read as a
    shorter model without a word) raises :class:`StructureError`."""
    if path.suffix.lower() != ".gz":
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise StructureError(f"{path} is a damaged or truncated .gz file ({exc})") from None


def read_model(path: str | os.PathLike, selection: AtomSelection = AtomSelection()) -> gemmi.Model:
    """Read the first model of a PDB/mmCIF file (``.gz`` too) and select its atoms.

    Raises:
        StructureError: unreadable file or no atoms left after the selection.
    """
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path}: no such file")
    check_compressed_file(path)
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise StructureError(f"{path} is not a readable PDB/mmCIF model ({exc})") from None
    if len(structure) == 0:
        raise StructureError(f"{path} contains no model")
    structure.setup_entities()
    if not selection.keep_hydrogens:
        structure.remove_hydrogens()
    if not selection.keep_ligands:
        structure.remove_ligands_and_waters()
    elif not selection.keep_waters:
        structure.remove_waters()
    structure.remove_empty_chains()
    model = structure[0]
    if model.count_atom_sites() == 0:
        raise StructureError(f"{path} has no atoms to simulate")
    return model


def atom_positions(model: gemmi.Model) -> np.ndarray:
    """(N, 3) atom positions (x, y, z) in A."""
    return np.array([atom.pos.tolist() for chain in model for residue in chain for atom in residue],
                    dtype=np.float64)


def prepare_atoms(model: gemmi.Model, shift_xyz: np.ndarray, use_atom_bfactors: bool) -> None:
    """Move the model by ``shift_xyz`` A and, unless kept, zero its atomic displacement."""
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift_xyz)))
    if use_atom_bfactors:
        return
    no_aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    for chain in model:
        for residue in chain:
            for atom in residue:
                atom.b_iso = 0.0
                atom.aniso = no_aniso


def padded_box(positions_xyz: np.ndarray, voxel_size: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid shape (x, y, z voxels) and shift (A) that put atoms in a padded, centred box.

    The box is the bounding box plus ``padding`` A per side, rounded up to FFT-friendly
    sizes (factors 2, 3, 5: the filters that follow are FFTs of this grid); adding the
    shift puts the bounding-box centre on voxel n // 2.

    Raises:
        StructureError: the grid would exceed :data:`MAX_GRID_VOXELS`.
    """
    low, high = positions_xyz.min(axis=0), positions_xyz.max(axis=0)
    needed = np.ceil((high - low + 2 * padding) / voxel_size).astype(int) + 1
    shape_xyz = np.array([scipy.fft.next_fast_len(int(n), real=True) for n in needed])
    if int(np.prod(shape_xyz)) > MAX_GRID_VOXELS:
        raise StructureError(f"model spans {np.round(high - low, 1)} Å: the {tuple(shape_xyz)} grid at "
                             f"{voxel_size:g} Å/px is too large")
    return shape_xyz, (shape_xyz // 2) * voxel_size - (low + high) / 2


def density_on_grid(model: gemmi.Model, shape_xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Band-limited electron-scattering density of ``model`` (already in the grid's frame,
    voxel i at i * voxel_size) on a periodic grid of ``shape_xyz`` voxels.

    Returns:
        float32 array indexed [z, y, x].
    """
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = 2 * voxel_size       # Nyquist resolution of the grid
    calculator.rate = 1.0                   # grid spacing = d_min / (2 rate) = voxel_size
    calculator.set_refmac_compatible_blur(model)
    calculator.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    calculator.grid.set_unit_cell(gemmi.UnitCell(*(np.asarray(shape_xyz) * voxel_size), 90, 90, 90))
    calculator.grid.set_size(*(int(n) for n in shape_xyz))
    try:
        calculator.add_model_density_to_grid(model)
    except (RuntimeError, ValueError) as exc:
        raise StructureError(f"cannot compute the density of the model ({exc})") from None
    blurred = np.transpose(np.array(calculator.grid, dtype=np.float64, copy=True))  # (x,y,z) -> (z,y,x)
    # Remove the sampling blur: multiply by exp(+blur s^2 / 4) up to Nyquist.
    spectrum = rfft_map(blurred)
    spectrum *= np.exp(0.25 * calculator.blur * frequency_magnitude(blurred.shape, voxel_size) ** 2)
    return irfft_map(spectrum, blurred.shape).astype(np.float32)


def model_density(model: gemmi.Model, voxel_size: float, padding: float = DEFAULT_PADDING_A,
                  use_atom_bfactors: bool = False) -> SimulatedDensity:
    """Electron-scattering density of ``model`` on a padded, centred cubic-voxel grid.

    Args:
        model: a gemmi model (modified in place: moved into the box).
        voxel_size: A/px.
        padding: empty margin around the bounding box, in A.
        use_atom_bfactors: keep the atoms' B-factors instead of setting them to 0.

    Returns:
        the band-limited density (see module docstring) and its geometry.
    """
    voxel_size = check_voxel_size(voxel_size, "simulation")
    if padding < 0:
        raise ParameterError(f"padding must be >= 0 Å, got {padding:g}")
    positions = atom_positions(model)
    shape_xyz, shift_xyz = padded_box(positions, voxel_size, padding)
    prepare_atoms(model, shift_xyz, use_atom_bfactors)
    density = density_on_grid(model, shape_xyz, voxel_size)
    geometry = MapGeometry(voxel_size=voxel_size, origin=tuple(float(v) for v in -shift_xyz))
    return SimulatedDensity(density, geometry, (positions + shift_xyz)[:, ::-1].copy())


def simulate_map(model_path: str | os.PathLike, voxel_size: float, resolution: float | None = None,
                 bfactor: float = 0.0, noise_sd: float = 0.0, seed: int | None = None,
                 padding: float = DEFAULT_PADDING_A, selection: AtomSelection = AtomSelection(),
                 use_atom_bfactors: bool = False) -> tuple[SimulatedDensity, np.ndarray]:
    """A map as a test or training case: model density, B-factor, low-pass, peak 1, noise.

    The order is that of post-processing: a global B-factor (A^2) first, then the
    raised-cosine low-pass at ``resolution`` A; the map is scaled so that its maximum is 1,
    then Gaussian white noise of SD ``noise_sd`` (in those units) is added.

    Returns:
        ``(simulated, final_map)``: the clean density record and the processed map.
    """
    if seed is not None:
        check_seed(seed)
    if resolution is not None:
        check_resolution(resolution, voxel_size)
    # the finest frequency the map keeps: the low-pass's zero, or Nyquist
    kept = 0.5 / voxel_size if resolution is None else min(0.5 / voxel_size,
                                                           lowpass_zero_frequency(resolution, voxel_size))
    if -bfactor * kept ** 2 / 4.0 > MAX_GAIN_EXPONENT:
        raise ParameterError(f"a B-factor of {bfactor:g} Å² multiplies the map by exp({-bfactor * kept ** 2 / 4:.0f}) "
                             f"at {1 / kept:.2f} Å: beyond floating-point range (at most exp({MAX_GAIN_EXPONENT:g}))")
    simulated = model_density(read_model(model_path, selection), voxel_size, padding, use_atom_bfactors)
    volume = simulated.density
    if bfactor:
        volume = apply_bfactor(volume, voxel_size, bfactor)
    if resolution is not None:
        volume = lowpass_filter(volume, voxel_size, resolution)
    volume = scale_to_unit_peak(volume)
    if noise_sd:
        volume = add_white_noise(volume, noise_sd, np.random.default_rng(seed))
    if not np.all(np.isfinite(volume)):
        raise ParameterError(f"the simulated map has non-finite values (B-factor {bfactor:g} Å², noise {noise_sd:g})")
    return simulated, volume
