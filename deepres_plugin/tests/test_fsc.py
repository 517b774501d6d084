"""Global FSC between half maps: known answers on synthetic halves."""
import numpy as np
import pytest

from deepres_plugin.core.errors import MapFormatError, ParameterError
from deepres_plugin.core.filters import RAISED_COSINE_WIDTH, lowpass_filter
from deepres_plugin.core.fsc import check_half_maps, fsc_curve, fsc_resolution


def halves(rng, shape, voxel, resolution, noise):
    """One signal low-passed at ``resolution`` A plus independent white noise in each half."""
    signal = lowpass_filter(rng.standard_normal(shape).astype(np.float32), voxel, resolution)
    signal /= signal.std()
    return [signal + noise * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("shape, voxel, resolution", [((64, 64, 64), 1.0, 5.0), ((48, 60, 56), 1.3, 6.0)])
def test_fsc_falls_at_the_filter_resolution(rng, shape, voxel, resolution):
    half1, half2 = halves(rng, shape, voxel, resolution, noise=0.1)
    frequency, fsc = fsc_curve(half1, half2, voxel)
    assert frequency[-1] == pytest.approx(0.5 / voxel, abs=1.0 / (max(shape) * voxel))
    assert np.all(fsc[frequency < 0.8 / resolution] > 0.9)               # signal shells: strong correlation
    assert np.all(np.abs(fsc[frequency > 1.2 / resolution]) < 0.2)      # noise-only shells: none
    # the crossing lies in the raised cosine's fall-off, from the pass-band end (resolution) to
    # the filter's zero (digital cut-off + 0.02), give or take the shell width
    shell = 1.0 / (max(shape) * voxel)
    zero = (voxel / resolution + RAISED_COSINE_WIDTH) / voxel                      # 1/A
    assert 1.0 / (zero + shell) <= fsc_resolution(frequency, fsc) <= resolution


def test_fsc_of_noise_with_known_snr(rng):
    """White signal plus white noise of equal power: FSC = S / (S + N) = 0.5 in every shell."""
    signal = rng.standard_normal((64, 64, 64))
    half1, half2 = (signal + rng.standard_normal(signal.shape) for _ in range(2))
    frequency, fsc = fsc_curve(half1, half2, 1.0)
    assert np.mean(fsc[frequency > 0.1]) == pytest.approx(0.5, abs=0.01)
    assert fsc_resolution(frequency, fsc, 0.143) == pytest.approx(2.0, abs=0.05)   # never below: Nyquist


def test_bad_half_maps_are_refused(rng):
    a = rng.standard_normal((8, 8, 8))
    with pytest.raises(MapFormatError, match="shape"):
        check_half_maps(a, a[:, :, :7], 1.0, 1.0)
    with pytest.raises(MapFormatError, match="voxel size"):
        check_half_maps(a, a + 1, 1.0, 1.2)
    with pytest.raises(ParameterError, match="identical"):
        check_half_maps(a, a.copy(), 1.0, 1.0)


def test_fsc_command_writes_curve_and_prints_the_resolution(rng, tmp_path, capsys):
    from deepres_plugin import cli
    from deepres_plugin.core.mrc import write_map

    half1, half2 = halves(rng, (48, 48, 48), 1.0, 6.0, noise=0.1)
    write_map(tmp_path / "h1.mrc", half1, 1.0)
    write_map(tmp_path / "h2.mrc", half2, 1.0)
    assert cli.main(["fsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--out", str(tmp_path / "out")]) == 0
    printed = float(capsys.readouterr().out.strip().splitlines()[-1])
    rows = (tmp_path / "out" / "fsc.csv").read_text().splitlines()
    assert rows[0] == "frequency_inv_A,resolution_A,fsc" and len(rows) == 1 + 24     # 24 shells up to Nyquist
    assert 1.0 / (1.0 / 6.0 + RAISED_COSINE_WIDTH + 1.0 / 48) <= printed <= 6.0   # fall-off, +- one shell
    assert (tmp_path / "out" / "fsc.png").stat().st_size > 5000
    write_map(tmp_path / "h3.mrc", half1, 1.0)
    assert cli.main(["fsc", str(tmp_path / "h1.mrc"), str(tmp_path / "h3.mrc"), "--out", str(tmp_path / "bad")]) == 1
    assert "identical" in capsys.readouterr().err and not (tmp_path / "bad").exists()
