"""Fourier filters checked on plane waves, whose response is known exactly."""
import numpy as np
import pytest

from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.filters import (
    RAISED_COSINE_WIDTH,
    add_white_noise,
    apply_bfactor,
    lowpass_filter,
    raised_cosine_lowpass,
    randomize_phases,
    scale_to_unit_peak,
)

N = 100  # box edge: plane waves with k cycles per box have digital frequency k / N


def plane_wave(cycles: int, shape=(N, N, N)) -> np.ndarray:
    """cos(2 pi k x / N) along x: a single digital frequency k / N."""
    x = np.arange(shape[2])
    return np.broadcast_to(np.cos(2 * np.pi * cycles * x / shape[2]), shape).astype(np.float32)


def test_raised_cosine_response_at_the_cutoff_middle_and_end():
    cutoff = 0.2
    f = np.array([0.0, cutoff, cutoff + RAISED_COSINE_WIDTH / 4, cutoff + RAISED_COSINE_WIDTH / 2,
                  cutoff + RAISED_COSINE_WIDTH, 0.5])
    expected = [1.0, 1.0, (1 + np.cos(np.pi / 4)) / 2, 0.5, 0.0, 0.0]
    np.testing.assert_allclose(raised_cosine_lowpass(f, cutoff), expected, atol=1e-12)


@pytest.mark.parametrize("cycles, gain", [(19, 1.0), (20, 1.0), (21, 0.5), (22, 0.0), (30, 0.0)])
def test_lowpass_passes_attenuates_and_removes_plane_waves(cycles, gain):
    voxel_size = 1.5
    resolution = voxel_size / 0.20          # pass band up to digital frequency 0.20 = 20 cycles
    wave = plane_wave(cycles)
    filtered = lowpass_filter(wave, voxel_size, resolution)
    np.testing.assert_allclose(filtered, gain * wave, atol=1e-5)


def test_bfactor_scales_a_wave_by_exp_minus_b_s2_over_4():
    voxel_size, cycles, bfactor = 2.0, 10, 120.0
    s = cycles / (N * voxel_size)            # 1/A
    wave = plane_wave(cycles)
    np.testing.assert_allclose(apply_bfactor(wave, voxel_size, bfactor), np.exp(-bfactor * s * s / 4) * wave,
                               atol=1e-5)
    sharpened = apply_bfactor(wave, voxel_size, -bfactor)
    np.testing.assert_allclose(sharpened, np.exp(bfactor * s * s / 4) * wave, rtol=1e-5, atol=1e-5)


def test_bfactor_then_lowpass_removes_what_lies_beyond_the_resolution():
    wave = plane_wave(10) + plane_wave(40)
    out = apply_bfactor(wave, 1.0, -50.0, resolution=4.0)   # 0.25 cut-off: 10 passes, 40 goes
    np.testing.assert_allclose(out, np.exp(50.0 * 0.1 ** 2 / 4) * plane_wave(10), rtol=1e-5, atol=1e-5)


def test_phase_randomisation_keeps_amplitudes_and_low_frequencies(rng):
    voxel_size, resolution = 1.0, 4.0
    volume = rng.standard_normal((32, 34, 36)).astype(np.float32)
    out = randomize_phases(volume, voxel_size, resolution, rng)
    before, after = np.fft.rfftn(volume), np.fft.rfftn(out)
    np.testing.assert_allclose(np.abs(after), np.abs(before), rtol=1e-3, atol=1e-3)
    fz, fy, fx = np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(34), np.fft.rfftfreq(36), indexing="ij")
    freq = np.sqrt(fz ** 2 + fy ** 2 + fx ** 2) / voxel_size
    low = freq <= 1 / resolution
    np.testing.assert_allclose(after[low], before[low], rtol=1e-3, atol=1e-3)
    high = freq > 1 / resolution
    phase_corr = np.abs(np.mean(np.exp(1j * (np.angle(after[high]) - np.angle(before[high])))))
    assert phase_corr < 0.05                        # random phases: no memory of the original ones


def test_white_noise_has_the_requested_sd(rng):
    noisy = add_white_noise(np.zeros((64, 64, 64), np.float32), 0.08, rng)
    assert noisy.std() == pytest.approx(0.08, rel=0.01)
    assert abs(noisy.mean()) < 0.001


def test_scale_to_unit_peak():
    assert scale_to_unit_peak(np.array([[[0.5, 2.0, -1.0]]])).max() == 1.0
    with pytest.raises(ParameterError, match="no positive density"):
        scale_to_unit_peak(-np.ones((2, 2, 2)))


@pytest.mark.parametrize("resolution, message", [(0.0, "must be positive"), (-3.0, "must be positive"),
                                                 (1.5, "finer than Nyquist")])
def test_impossible_resolutions_are_refused(resolution, message):
    with pytest.raises(ParameterError, match=message):
        lowpass_filter(np.ones((8, 8, 8), np.float32), 1.0, resolution)
