"""The range a prediction uses: ``auto`` (the default) reads the map with the wide network
and takes the high one when most of the map reads finer than 4.5 Å; a prediction whose
values pile up at its range's limit warns and names the other range; a voxel too coarse
for a range's finest value is noted, not warned about."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepres_plugin.core.diagnostics import LIMIT_WARNING_SHARE, limit_warnings
from deepres_plugin.core.mrc import MapGeometry, write_map
from deepres_plugin.core.pipeline import PredictOptions, run_predict
from deepres_plugin.core.ranges import (
    AUTO_HIGH_BELOW_A,
    AUTO_HIGH_SHARE,
    AUTO_RANGE,
    HIGH,
    WIDE,
    choose_range,
    first_range_name,
)
from deepres_plugin.core.simulate import simulate_map


def test_choose_range_takes_high_only_when_most_of_the_map_is_fine():
    fine = np.full(100, 3.0)
    fine[:round(100 * (1 - AUTO_HIGH_SHARE))] = 8.0                       # exactly the share needed
    choice = choose_range(fine)
    assert choice.name == "high"
    assert choice.why == (f"range auto: high (1.5-6 Å), because the wide network reads 80 % of the voxels finer than "
                          f"{AUTO_HIGH_BELOW_A:g} Å (median 3.00 Å)")
    fine[round(100 * (1 - AUTO_HIGH_SHARE))] = 8.0                        # one voxel short
    assert choose_range(fine).name == "wide"
    assert choose_range(np.full(10, 8.85)).why.endswith("(median 8.85 Å); the high range needs 80 %")
    assert choose_range(np.array([])).name == "wide"


def test_first_range_is_the_asked_one_or_the_networks_or_wide():
    assert first_range_name("high") == "high"
    assert first_range_name(AUTO_RANGE) == "wide"
    assert first_range_name(AUTO_RANGE, "high") == "high"


def test_limit_warnings_name_the_other_range():
    # the F-actin case: the high network reads a 6.6 Å map at 5.7-5.9 Å, under its 6 Å ceiling
    values = np.linspace(5.7, 5.9, 100)
    (warning,) = limit_warnings(values, (HIGH.min_resolution, HIGH.max_resolution), HIGH)
    assert warning == ("100 % of the estimated voxels read within 10 % of the high range's coarsest resolution (6 Å): "
                       "the map is coarser than this range reads; use the wide range (2.5-13 Å)")
    (warning,) = limit_warnings(np.full(10, 2.6), (2.5, 13.0), WIDE)
    assert warning.startswith("100 % of the estimated voxels read within 10 % of the wide range's finest resolution "
                              "(2.5 Å)") and warning.endswith("use the high range (1.5-6 Å)")
    # nothing a user can change: no range coarser than wide, no range finer than the map's Nyquist limit
    assert limit_warnings(np.full(10, 12.9), (2.5, 13.0), WIDE) == []
    assert limit_warnings(np.full(10, 3.5), (3.484, 13.0), WIDE) == []
    # a few voxels at the limit are the map's own
    few = np.full(100, 4.0)
    few[:int(100 * LIMIT_WARNING_SHARE) - 1] = 5.9
    assert limit_warnings(few, (1.5, 6.0), HIGH) == []


@pytest.mark.parametrize("resolution, expected", [(3.0, "high"), (8.0, "wide")])
def test_auto_range_on_simulated_maps(tmp_path, data_dir, resolution, expected):
    """A protein at 3 Å is read by the high network, at 8 Å by the wide one, and the
    summary says which and why (shipped networks)."""
    _, volume = simulate_map(data_dir / "BM5_1PPE_l_u.pdb.gz", 1.0, resolution, noise_sd=0.02, seed=1)
    path = tmp_path / "map.mrc"
    header = 1.0 if expected == "high" else 1.05          # a pixel size given that differs from the header's
    write_map(path, volume, MapGeometry(header))
    summary = run_predict(path, tmp_path / "out", PredictOptions(device="cpu", sampling=1.0)).to_dict()
    assert any(warning == "the voxel size used for map.mrc, 1 Å/px, differs from its header's, 1.05 Å/px, by 5 %: "
               "resolutions scale with it; check the pixel size" for warning in summary["warnings"]) \
        == (header == 1.05)                                   # a header of 1 Å/px is "not set"
    assert summary["range"]["name"] == expected
    assert summary["range"]["requested"] == AUTO_RANGE
    assert summary["range"]["choice"].startswith(f"range auto: {expected} (")
    assert not any("range's" in warning for warning in summary["warnings"])      # not at a limit
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["range"] == summary["range"]
