"""Regenerate the bundled example map (deepres_plugin/tests/data/example_*.mrc).

Two copies of the small bundled model BM5_1AVX_l_u side by side at 1 A/px, the first
low-passed at 4 A and the second at 8 A (raised cosine, width 0.02), scaled to a maximum
of 1, with Gaussian noise of SD 0.08 (seed 4). Writes the map (float16, mode 12), the
mask of both molecules (voxels within 3 A of an atom) and a region map, both gzipped, (1: the 4 A copy,
2: the 8 A copy, 0: elsewhere). Used by `make demo`, the tests of the shipped networks
and the Scipion tests.

Usage:
    .venv/bin/python benchmarks/make_example_map.py
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from accuracy import region_map, side_by_side
from deepres_plugin.core.mrc import MapGeometry, write_map

DATA = Path(__file__).resolve().parents[1] / "deepres_plugin" / "tests" / "data"
MODEL = DATA / "BM5_1AVX_l_u.pdb.gz"
RESOLUTIONS = (4.0, 8.0)
PADDING_A = 10.0
SEED = 4


def main() -> int:
    volume, regions = region_map(side_by_side([MODEL, MODEL]), 1.0, RESOLUTIONS, np.random.default_rng(SEED),
                                 padding=PADDING_A)
    labels = np.zeros(volume.shape, np.float32)
    for index, region in enumerate(regions, start=1):
        labels[region] = index
    geometry = MapGeometry(voxel_size=1.0)
    write_map(DATA / "example_map.mrc", volume.astype(np.float16), geometry)
    for name, values in (("example_mask", labels > 0), ("example_regions", labels)):
        plain = DATA / f"{name}.mrc"
        write_map(plain, values.astype(np.int8), geometry)
        with open(plain, "rb") as raw, gzip.GzipFile(DATA / f"{name}.mrc.gz", "wb", mtime=0) as packed:
            packed.write(raw.read())      # mostly zeros: 2 % of the size
        plain.unlink()
    print(f"example map {volume.shape[::-1]} voxels (x, y, z); regions of {[int(r.sum()) for r in regions]} voxels "
          f"at {RESOLUTIONS} A")
    return 0


if __name__ == "__main__":
    sys.exit(main())
