"""Where DeepRes gives an estimate: density envelope inside the mask, the map mirrored at its
edges, and the summary's account of the voxels left out."""
import json

import numpy as np
import pytest

from deepres_plugin.core.filters import lowpass_filter
from deepres_plugin.core.inference import edge_padding, predict_map
from deepres_plugin.core.masks import automatic_mask, dilate
from deepres_plugin.core.models import chosen_model_path
from deepres_plugin.core.mrc import MapGeometry, read_map, write_map
from deepres_plugin.core.networks import load_model
from deepres_plugin.core.outputs import left_out_line
from deepres_plugin.core.pipeline import PredictOptions, run_predict
from deepres_plugin.core.signal import LEFT_OUT_REASONS, select_signal


@pytest.fixture(scope="module")
def shipped_wide():
    return load_model(chosen_model_path(None, "wide"), "wide")


def blob_map(rng, shape=(48, 48, 48), noise=0.05):
    """Smooth density (random points low-passed at 6 A, 1 A/px) in a sphere of radius 10 voxels
    at the box centre, plus white noise; returns the map and the sphere."""
    grid = np.indices(shape).transpose(1, 2, 3, 0) - np.array(shape) // 2
    sphere = np.linalg.norm(grid, axis=-1) <= 10
    points = np.zeros(shape, np.float32)
    points[sphere & (rng.random(shape) < 0.05)] = 1.0
    density = lowpass_filter(points, 1.0, 6.0)
    density /= density.max()
    return density + noise * rng.standard_normal(shape).astype(np.float32), sphere


def test_a_loose_mask_keeps_the_density_and_leaves_out_the_solvent(rng):
    volume, sphere = blob_map(rng)
    loose = np.ones(volume.shape, bool)
    selection = select_signal(volume, 1.0, loose)
    envelope = automatic_mask(volume, 1.0)
    assert np.array_equal(selection.estimated, envelope)
    assert selection.left_out == {"no_density": int(loose.sum() - envelope.sum())}
    # the density is kept; solvent 8 A beyond it is not
    assert selection.estimated[sphere].mean() > 0.95
    assert not selection.estimated[~dilate(sphere, 1.0, 8.0)].any()
    entry = selection.as_dict()
    assert entry["mask_voxels"] == loose.sum() and entry["estimated_voxels"] == envelope.sum()
    assert entry["reasons"] == {"no_density": LEFT_OUT_REASONS["no_density"]}
    share = 100 * (loose.sum() - envelope.sum()) / loose.sum()
    assert left_out_line(entry) == (f"{loose.sum() - envelope.sum()} of {loose.sum()} mask voxels ({share:.1f} %) "
                                    f"have no estimate: {loose.sum() - envelope.sum()} {LEFT_OUT_REASONS['no_density']}")
    assert selection.warnings() and "the median and percentiles describe the remaining" in selection.warnings()[0]


def test_a_mask_inside_the_density_is_estimated_whole(rng):
    volume, sphere = blob_map(rng)
    inner = np.linalg.norm(np.indices(volume.shape).transpose(1, 2, 3, 0) - 24, axis=-1) <= 6     # 6 A around the centre
    selection = select_signal(volume, 1.0, inner)
    assert np.array_equal(selection.estimated, inner)
    assert selection.left_out == {"no_density": 0}
    assert selection.describe() is None and selection.warnings() == []
    assert left_out_line(None) is None


def test_a_mask_off_the_density_is_estimated_as_given(rng):
    volume, _ = blob_map(rng)
    corner = np.zeros(volume.shape, bool)
    corner[:5, :5, :5] = True
    selection = select_signal(volume, 1.0, corner)
    assert np.array_equal(selection.estimated, corner) and selection.left_out == {"no_density": 0}


def test_edge_padding_only_where_the_mask_reaches_an_edge():
    mask = np.zeros((40, 30, 20), bool)
    mask[10:30, 10:20, 8:12] = True
    assert edge_padding(mask, 1.0, 13.0) == [(0, 0)] * 3
    mask[0, 15, 10] = mask[35, 15, 10] = True        # 35 is within half a box (7 voxels) of 39
    assert edge_padding(mask, 1.0, 13.0) == [(13, 13), (0, 0), (0, 0)]
    assert edge_padding(mask, 2.0, 13.0) == [(7, 0), (0, 0), (0, 0)]          # 35 is 4 voxels of 2 A from the edge
    thin = np.ones((5, 5, 5), bool)
    assert edge_padding(thin, 1.0, 13.0) == [(4, 4)] * 3                     # capped below the axis length


def test_density_through_the_box_edge_reads_as_inside(shipped_wide, rng):
    """A rod of 8 A density running through the box along z: the planes at the edge read as
    the planes inside (zero padding read them 1-3 A finer: a step is fine detail)."""
    network, info = shipped_wide
    shape = (40, 40, 40)
    points = np.zeros(shape, np.float32)
    z, y, x = np.indices(shape)
    rod = (y - 20) ** 2 + (x - 20) ** 2 <= 36
    points[rod & (rng.random(shape) < 0.08)] = 1.0
    volume = np.tile(lowpass_filter(points, 1.0, 8.0), (3, 1, 1))[40:80]       # periodic along z: no seam
    mask = np.broadcast_to(rod, shape).copy()
    resolution = predict_map(volume, 1.0, mask, network, info).resolution
    edge = np.median(resolution[[0, 1, -2, -1]][mask[[0, 1, -2, -1]]])
    inside = np.median(resolution[15:25][mask[15:25]])
    assert abs(edge / inside - 1) < 0.10, (edge, inside)      # zero padding: 0.84


def test_predict_with_a_loose_mask_counts_only_the_density(tmp_path, rng):
    volume, sphere = blob_map(rng)
    geometry = MapGeometry(1.0, (0.0, 0.0, 0.0))
    write_map(tmp_path / "map.mrc", volume, geometry)
    write_map(tmp_path / "mask.mrc", np.ones(volume.shape, np.float32), geometry)
    summary = run_predict(tmp_path / "map.mrc", tmp_path / "out", PredictOptions(mask=tmp_path / "mask.mrc")).to_dict()
    resolution, _ = read_map(tmp_path / "out" / "resolution.mrc")
    envelope = automatic_mask(volume / volume.std(), 1.0)
    assert np.array_equal(resolution > 0, envelope)
    assert summary["voxels"] == envelope.sum() == summary["left_out"]["estimated_voxels"]
    assert summary["left_out"]["voxels"]["no_density"] == volume.size - envelope.sum()
    assert summary["median_A"] == pytest.approx(float(np.median(resolution[envelope])), abs=1e-4)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["left_out"] == summary["left_out"]
    assert any("have no estimate" in warning for warning in written["warnings"])
