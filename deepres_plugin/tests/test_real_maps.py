"""Real EMDB maps as users have them (../shared/data/realmaps, ../shared/data/maps): each runs
end to end with the shipped wide network, keeps its geometry and reads near its reported
resolution, or is refused with one precise line."""
import json

import numpy as np
import pytest

from deepres_plugin import cli
from deepres_plugin.core.mrc import read_map
from deepres_plugin.core.outputs import RESOLUTION_FILE
from deepres_plugin.tests.real_maps import REFUSED, RUNNABLE, SHARED_DATA_ENV, shared_data_dir

#: A median further than this fraction from the reported resolution is a regression (the
#: benchmark, benchmarks/real_maps.py, reports the figures; unsharpened maps read coarser).
MEDIAN_TOLERANCE = 0.5

pytestmark = pytest.mark.skipif(not shared_data_dir().is_dir(),
                                reason=f"no shared data at {shared_data_dir()} (set {SHARED_DATA_ENV})")


@pytest.mark.parametrize("real_map", RUNNABLE, ids=lambda m: m.entry)
def test_real_map_runs_end_to_end_and_keeps_its_geometry(real_map, tmp_path):
    status = cli.main(["predict", str(real_map.path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert status == 0
    volume, geometry = read_map(real_map.path)
    resolution, out_geometry = read_map(tmp_path / "out" / RESOLUTION_FILE)
    assert resolution.shape == volume.shape
    assert out_geometry == geometry                                    # voxel size, origin, nstart, axis order
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    estimated = resolution[resolution > 0]
    assert summary["median_A"] == pytest.approx(float(np.median(estimated)), abs=1e-4)
    assert abs(summary["median_A"] / real_map.reported - 1) < MEDIAN_TOLERANCE, summary["median_A"]
    condition = summary["map_condition"]
    assert condition["bfactor_A2"] is not None and np.isfinite(condition["bfactor_A2"])
    assert condition["solvent"] in ("noisy", "flattened", "masked")
    threshold = condition["unsharpened_above_A2"]            # None: a support too coarse to judge
    assert condition["sharpened"] == (None if threshold is None else condition["bfactor_A2"] <= threshold)
    assert any("unsharpened" in w for w in summary["warnings"]) == (condition["sharpened"] is False)


@pytest.mark.parametrize("real_map", REFUSED, ids=lambda m: m.entry)
def test_unreadable_real_map_is_refused_in_one_line(real_map, tmp_path, capsys):
    status = cli.main(["predict", str(real_map.path), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_ERROR
    assert err.count("\n") == 0 and real_map.refusal in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
