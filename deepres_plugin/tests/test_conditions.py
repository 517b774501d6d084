"""Map conditions (low-pass shapes, B envelope, noise colour and reference, solvent) and the
map diagnostics (Guinier B-factor, solvent, warnings), against known answers."""
import numpy as np
import pytest

from deepres_plugin.core import conditions as cond
from deepres_plugin.core.diagnostics import (
    AUDIENCE_CLI,
    AUDIENCE_SCIPION,
    SHARP_MAP_BFACTOR,
    UNSHARPENED_MARGIN,
    MapCondition,
    bfactor_sweep_advice,
    check_map_for_range,
    classify_solvent,
    geometry_warnings,
    map_warnings,
    measure_map,
    nyquist_note,
    unsharpened_threshold,
)
from deepres_plugin.core.errors import ParameterError
from deepres_plugin.core.filters import (
    RAISED_COSINE_WIDTH,
    XMIPP_LOWPASS,
    LowpassShape,
    apply_bfactor,
    lowpass_bank,
    lowpass_filter,
    raised_cosine_lowpass,
)
from deepres_plugin.core.fourier import frequency_magnitude, rfft_map
from deepres_plugin.core.ranges import HIGH, WIDE

SHAPES = [LowpassShape("cosine", width=w) for w in (0.02, 0.05, 0.1)] + \
         [LowpassShape("butterworth", order=n) for n in (2, 3, 8)] + [LowpassShape("gaussian")]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.label())
@pytest.mark.parametrize("resolution", [3.0, 9.0])
def test_every_shape_is_half_where_xmipps_filter_is_half(shape, resolution):
    cutoff = 1.0 / resolution
    half = cutoff + RAISED_COSINE_WIDTH / 2
    assert shape.response(np.array([half]), cutoff)[0] == pytest.approx(0.5, abs=1e-9)
    assert shape.response(np.array([0.0]), cutoff)[0] == pytest.approx(1.0)
    f = np.linspace(0, 0.5, 501)
    assert np.all(np.diff(shape.response(f, cutoff)) <= 1e-12)           # never rises
    assert LowpassShape.from_label(shape.label()) == shape


def test_xmipp_shape_is_xmipps_raised_cosine():
    f = np.linspace(0, 0.5, 1001)
    np.testing.assert_array_equal(XMIPP_LOWPASS.response(f, 0.25), raised_cosine_lowpass(f, 0.25))


def test_bfactor_envelope_is_held_beyond_the_half_amplitude_point(rng):
    """A sharpening B boosts the pass band by exp(|B| s^2 / 4) and stops at the half point."""
    shape = (32, 32, 32)
    volume = rng.standard_normal(shape)
    spectrum = rfft_map(volume)
    resolution, bfactor = 4.0, -60.0
    butterworth = LowpassShape("butterworth", order=2)
    plain = next(lowpass_bank(spectrum, shape, 1.0, [resolution], shapes=[butterworth]))
    boosted = next(lowpass_bank(spectrum, shape, 1.0, [resolution], shapes=[butterworth], bfactors=[bfactor]))
    freq = frequency_magnitude(shape)
    ratio = np.abs(rfft_map(boosted)) / np.maximum(np.abs(rfft_map(plain)), 1e-12)
    half = 1 / resolution + RAISED_COSINE_WIDTH / 2
    inside = (freq > 0.05) & (freq < half - 0.02)
    np.testing.assert_allclose(ratio[inside], np.exp(-bfactor * freq[inside] ** 2 / 4), rtol=1e-3)
    beyond = freq > half + 0.02
    np.testing.assert_allclose(ratio[beyond], np.exp(-bfactor * half ** 2 / 4), rtol=1e-3)
    assert cond.MapCondition(bfactor_log_gain=0.5).bfactor(3.0) == pytest.approx(18.0)


@pytest.mark.parametrize("colour, exponent", [("white", 0.0), ("1/f", -2.0)])
def test_noise_colours_have_their_power_law(rng, colour, exponent):
    shape = (64, 64, 64)
    noise = cond.coloured_noise(rng, shape, colour, 0.25)
    assert noise.std() == pytest.approx(1.0, rel=0.01) and abs(noise.mean()) < 0.05
    freq = frequency_magnitude(shape)
    power = np.abs(rfft_map(noise)) ** 2
    shells = [(f, power[(freq > f * 0.95) & (freq < f * 1.05)].mean()) for f in (0.05, 0.1, 0.2, 0.4)]
    slope = np.polyfit(np.log([f for f, _ in shells]), np.log([p for _, p in shells]), 1)[0]
    assert slope == pytest.approx(exponent, abs=0.15)


def test_signal_coloured_noise_follows_the_low_pass(rng):
    shape = (48, 48, 48)
    noise = cond.coloured_noise(rng, shape, "signal", 0.2, XMIPP_LOWPASS)
    power = np.abs(rfft_map(noise)) ** 2
    freq = frequency_magnitude(shape)
    assert power[freq > 0.2 + RAISED_COSINE_WIDTH + 1e-6].max() < 1e-8 * power.max()


def test_solvent_and_noise_reference(rng):
    shape = (40, 40, 40)
    z, y, x = np.indices(shape)
    distance = np.sqrt((z - 20.0) ** 2 + (y - 20.0) ** 2 + (x - 20.0) ** 2).astype(np.float32)
    signal = np.exp(-distance ** 2 / 50).astype(np.float32)
    molecule = distance < 6
    base = dict(noise_level=0.1, mask_radius=8.0, mask_edge=4.0)
    noisy = cond.condition_map(signal, 1.0, 4.0, cond.MapCondition(**base), rng, molecule, distance, 13)
    assert (noisy - signal)[distance > 15].std() == pytest.approx(0.1, rel=0.05)
    flat = cond.condition_map(signal, 1.0, 4.0, cond.MapCondition(solvent="flattened", **base), rng, molecule,
                              distance, 13)
    np.testing.assert_array_equal(flat[distance >= 12], signal[distance >= 12])
    assert (flat - signal)[distance <= 8].std() == pytest.approx(0.1, rel=0.1)
    masked = cond.condition_map(signal, 1.0, 4.0, cond.MapCondition(solvent="masked", **base), rng, molecule,
                                distance, 13)
    assert np.all(masked[distance >= 12] == 0)
    sd = cond.condition_map(signal, 1.0, 4.0, cond.MapCondition(noise_reference="sd", noise_level=0.5), rng,
                            molecule, distance, 13)
    assert (sd - signal)[distance > 15].std() == pytest.approx(0.5 * signal[molecule].std(), rel=0.05)
    soft = cond.soft_mask(np.array([0.0, 8.0, 10.0, 12.0, 13.0]), 8.0, 4.0)
    np.testing.assert_allclose(soft, [1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-7)


def test_draw_condition_stays_in_its_ranges(rng):
    drawn = [cond.draw_condition(rng, 0.35) for _ in range(400)]
    assert {c.lowpass for c in drawn} == {shape for shape, _ in cond.LOWPASS_CHOICES}
    assert {c.solvent for c in drawn} == set(cond.SOLVENTS)
    assert {c.noise_colour for c in drawn} == set(cond.NOISE_COLOURS)
    assert max(abs(c.bfactor_log_gain) for c in drawn) <= cond.BFACTOR_LOG_GAIN_MAX
    for c in drawn:
        assert 0 <= c.noise_level <= 0.35 * cond.NOISE_REFERENCE_SCALE[c.noise_reference]
    with pytest.raises(ParameterError, match="solvent"):
        cond.MapCondition(solvent="dry")


def _simulated(bfactor, rng, noise=0.05):
    """A sphere of Gaussian blobs (atoms) at 1 A/px, low-passed at 3.5 A with a B envelope."""
    shape = (64, 64, 64)
    centres = rng.uniform(20, 44, size=(600, 3))
    seeds = np.zeros(shape)
    index = np.rint(centres).astype(int)
    np.add.at(seeds, tuple(index.T), 1.0)
    volume = apply_bfactor(seeds.astype(np.float32), 1.0, bfactor, resolution=3.5)
    volume /= volume.max()
    mask = np.zeros(shape, bool)
    mask[18:47, 18:47, 18:47] = True
    return volume + noise * rng.standard_normal(shape).astype(np.float32), mask


def _measured(bfactor, rng):
    volume, mask = _simulated(bfactor, rng)
    return measure_map(volume, 1.0, mask)


def test_guinier_bfactor_follows_an_applied_bfactor(rng):
    """Random point atoms (a flat spectrum): the measured B grows with the applied one, slope
    within 25 % of 1 (measured 0.83: 35, 76, 121, 201 A^2 for 0, 60, 120, 200; the mask's
    soft edge adds about 30)."""
    applied = np.array([0.0, 60.0, 120.0, 200.0])
    measured = np.array([_measured(b, rng).bfactor for b in applied])
    slope, intercept = np.polyfit(applied, measured, 1)
    assert slope == pytest.approx(1.0, abs=0.25)
    assert abs(intercept) < 40
    blurred = _measured(200.0, rng)
    assert blurred.sharpened is False and blurred.bfactor > blurred.unsharpened_above
    assert any("unsharpened" in w for w in map_warnings(blurred, 1.0, (64, 64, 64), WIDE))
    sharp = _measured(0.0, rng)
    assert sharp.sharpened is True and map_warnings(sharp, 1.0, (64, 64, 64), WIDE) == []
    assert sharp.solvent == "noisy" and sharp.noise_to_signal > 0


def test_the_unsharpened_warning_names_what_its_reader_runs():
    """The command line is sent to the command, Scipion to the protocol; both hear that the
    check needs the half maps."""
    blurred = MapCondition(bfactor=189.0, guinier_range=(10.0, 3.8), support_resolution=3.8, noise_sd=0.1,
                           noise_to_signal=0.4, solvent="noisy")
    cli_text, = map_warnings(blurred, 1.0, (64, 64, 64), WIDE)
    scipion_text, = map_warnings(blurred, 1.0, (64, 64, 64), WIDE, AUDIENCE_SCIPION)
    assert cli_text.endswith("or check with deepres bfactor-sweep (it needs the map's two half maps)")
    assert scipion_text.endswith("or check with the 'deepres - B-factor sweep' protocol (it needs the map's two "
                                 "half maps)")
    assert cli_text == map_warnings(blurred, 1.0, (64, 64, 64), WIDE, AUDIENCE_CLI)[0]
    assert bfactor_sweep_advice(AUDIENCE_CLI) in cli_text and bfactor_sweep_advice(AUDIENCE_SCIPION) in scipion_text
    with pytest.raises(ValueError, match="unknown audience 'gui'"):
        bfactor_sweep_advice("gui")


def test_solvent_states_are_told_apart(rng):
    assert classify_solvent(np.zeros(5000), 1.0) == "masked"
    assert classify_solvent(np.full(5000, 0.3), 1.0) == "flattened"
    assert classify_solvent(rng.standard_normal(5000) * 0.1, 1.0) == "noisy"


def test_grid_warnings_and_refusal():
    assert geometry_warnings(1.0, (100, 100, 100), WIDE) == []
    assert geometry_warnings(1.742, (100, 100, 100), WIDE) == []          # nothing a user should change
    assert nyquist_note(1.742, WIDE) == ("the finest value reported is the map's Nyquist limit, 3.484 Å (1.742 Å/px; "
                                         "the wide range reaches 2.5 Å)")
    assert nyquist_note(1.0, WIDE) is None
    assert "smaller than the network's box" in geometry_warnings(1.0, (10, 40, 40), WIDE)[0]
    assert geometry_warnings(0.5, (20, 20, 20), HIGH) == []
    with pytest.raises(ParameterError, match=r"Nyquist limit \(22.8 Å\) is coarser than the wide range"):
        check_map_for_range(11.4, (20, 20, 20), WIDE)
    with pytest.raises(ParameterError, match="high range"):
        check_map_for_range(3.0, (20, 20, 20), HIGH)
    check_map_for_range(6.4, (20, 20, 20), WIDE)


def test_the_unsharpened_threshold_follows_the_support():
    """A sharp map's B grows as its support coarsens (the low-pass fills the fit): the
    threshold is that B plus the margin, interpolated, and none beyond the table."""
    (fine, fine_b), (coarse, coarse_b) = SHARP_MAP_BFACTOR[0], SHARP_MAP_BFACTOR[-1]
    assert unsharpened_threshold(fine) == fine_b + UNSHARPENED_MARGIN
    assert unsharpened_threshold(3.5) == pytest.approx((42.0 + 51.0) / 2 + UNSHARPENED_MARGIN)
    assert unsharpened_threshold(coarse) == coarse_b + UNSHARPENED_MARGIN and unsharpened_threshold(coarse + 0.1) is None
    assert unsharpened_threshold(2.0) == fine_b + UNSHARPENED_MARGIN                    # finer: the finest's


def test_a_sharp_map_low_passed_at_6_angstrom_is_not_called_unsharpened(rng):
    """Atoms with B = 0 low-passed at 6 A: the fit from 10 A reads the low-pass's fall-off as a
    B far above 100 Å², which a fixed threshold of 100 Å² called unsharpened."""
    volume, mask = _simulated(0.0, rng, noise=0.0)
    noisy = lowpass_filter(volume, 1.0, 6.0) + 0.05 * rng.standard_normal(volume.shape).astype(np.float32)
    coarse = measure_map(noisy, 1.0, mask)
    assert coarse.bfactor > 150.0 and coarse.sharpened is not False            # 100 Å² fixed: "unsharpened"
    assert map_warnings(coarse, 1.0, (64, 64, 64), WIDE) == []
