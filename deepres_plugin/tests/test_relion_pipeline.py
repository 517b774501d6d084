"""The RELION pipeline of ``benchmarks/relion_pipeline.py`` reproduces its input: a tiny map
(a compact piece of a shipped model, 40^3 voxels at 1 A/px, low-passed at 3 A) projected by
``relion_project --ctf`` in random orientations, without noise, and reconstructed by
``relion_reconstruct --ctf``. Skipped where RELION is not installed."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from deepres_plugin.core.filters import lowpass_filter, scale_to_unit_peak
from deepres_plugin.core.simulate import model_density
from deepres_plugin.tests.conftest import import_benchmark

RELION_PROGRAMS = ("relion_project", "relion_reconstruct")
MISSING = [p for p in RELION_PROGRAMS if shutil.which(p) is None]
#: The tiny case: 40^3 voxels, a few hundred particles, content up to 3 A.
EDGE, PARTICLES, RESOLUTION_A, PADDING_A = 40, 300, 3.0, 8.0
#: Well under a minute on 2 cores (measured: about 5 s for the RELION part).
SECONDS_LIMIT = 45.0

pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"RELION is not installed (no {', '.join(MISSING)}): "
                                "`make install` as root installs Debian's relion, or apt-get install relion")


@pytest.fixture(scope="module")
def pipeline():
    return import_benchmark("relion_pipeline")


def tiny_map(pipeline, data_dir: Path) -> np.ndarray:
    piece = pipeline.compact_piece(data_dir / "BM5_1AVX_l_u.pdb.gz")
    volume, _ = pipeline.cubic(model_density(piece, 1.0, PADDING_A).density)
    assert volume.shape == (EDGE,) * 3
    return scale_to_unit_peak(lowpass_filter(volume, 1.0, RESOLUTION_A))


def test_noise_free_round_trip_reproduces_the_input(pipeline, data_dir, tmp_path):
    volume = tiny_map(pipeline, data_dir)
    start = time.perf_counter()
    figures = pipeline.validate_map(volume, RESOLUTION_A, tmp_path, PARTICLES, seed=1)
    seconds = time.perf_counter() - start
    assert figures["correlation"] >= pipeline.VALIDATION_CORRELATION, figures
    assert figures["min_fsc_to_finest"] >= pipeline.VALIDATION_FSC, figures
    assert figures["passed"]
    assert seconds < SECONDS_LIMIT


def test_the_check_rejects_a_map_that_is_not_the_input(pipeline, data_dir):
    """The figures have teeth: the input moved by 2 voxels, or its fine detail replaced by
    noise, fails them."""
    volume = tiny_map(pipeline, data_dir)
    assert pipeline.fsc_with_input(volume, volume, RESOLUTION_A)["passed"]
    moved = pipeline.fsc_with_input(np.roll(volume, 2, axis=0), volume, RESOLUTION_A)
    assert not moved["passed"]
    noise = 0.05 * np.random.default_rng(1).standard_normal(volume.shape)
    noisy = lowpass_filter(volume, 1.0, 2 * RESOLUTION_A) + noise
    assert pipeline.fsc_with_input(noisy.astype(np.float32), volume, RESOLUTION_A)["min_fsc_to_finest"] < 0.5
