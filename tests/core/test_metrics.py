"""Metrics against hand-computed values."""
import math

import numpy as np
import pytest

from enmap_compress.plugin.core.metrics import (
    MetricsAccumulator,
    per_pixel_errors,
    psnr_from_mse,
    rate_metrics,
    spectral_angles_deg,
    ssim_sum,
)


def test_psnr_of_a_uniform_100_dn_error_is_40_db():
    original = np.full((202, 4, 4), 5000.0)
    acc = MetricsAccumulator()
    acc.update(original, original + 100.0, np.ones((4, 4), bool))
    result = acc.result()
    assert result['psnr'] == pytest.approx(40.0)
    assert result['rmse_dn'] == pytest.approx(100.0)
    assert result['max_abs_error_dn'] == 100.0


def test_psnr_clips_to_the_hyspecnet_range_but_max_error_does_not():
    original = np.full((2, 1, 1), 10000.0)
    reconstructed = np.full((2, 1, 1), 12000.0)  # above 10000: identical after clipping
    acc = MetricsAccumulator()
    acc.update(original, reconstructed, np.ones((1, 1), bool))
    assert acc.result()['psnr'] == math.inf
    assert acc.result()['max_abs_error_dn'] == 2000.0


def test_invalid_pixels_are_ignored():
    original = np.zeros((3, 1, 2))
    reconstructed = np.array([[[0.0, 9999.0]], [[0.0, 9999.0]], [[0.0, 9999.0]]])
    acc = MetricsAccumulator()
    acc.update(original, reconstructed, np.array([[True, False]]))
    assert acc.result()['psnr'] == math.inf
    assert acc.result()['valid_pixels'] == 1


def test_spectral_angle_of_orthogonal_and_scaled_spectra():
    x = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    y = np.array([[0.0, 2.0, 0.0], [1.0, 2.0, 0.0]])
    np.testing.assert_allclose(spectral_angles_deg(x, y), [90.0, 0.0, 0.0], atol=1e-4)


def test_hand_computed_mixed_example():
    # two pixels, two bands; errors of 1000 DN (0.1) in one sample only
    original = np.array([[[1000.0, 2000.0]], [[3000.0, 4000.0]]])
    reconstructed = original.copy()
    reconstructed[0, 0, 0] = 2000.0
    acc = MetricsAccumulator()
    acc.update(original, reconstructed, np.ones((1, 2), bool))
    mse = 0.1 ** 2 / 4
    assert acc.result()['psnr'] == pytest.approx(10 * math.log10(1 / mse))
    angle = math.degrees(math.acos((0.2 * 0.1 + 0.3 * 0.3) / (math.hypot(0.2, 0.3) * math.hypot(0.1, 0.3))))
    assert acc.result()['sa_deg'] == pytest.approx(angle / 2)


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16))
    s, n = ssim_sum(x, x)
    assert s / n == pytest.approx(1.0)
    s2, n2 = ssim_sum(x, np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1))
    assert s2 / n2 < 0.9


def test_rate_from_file_bytes():
    rate = rate_metrics(file_bytes=202 * 1000 // 8 * 2, valid_pixels=1000)
    assert rate['bpppb'] == pytest.approx(2.0)
    assert rate['compression_ratio'] == pytest.approx(8.0)


def test_psnr_of_zero_mse_is_infinite():
    assert psnr_from_mse(0.0) == math.inf


def test_per_pixel_errors():
    original = np.zeros((2, 1, 1))
    reconstructed = np.array([[[300.0]], [[400.0]]])
    rmse, angle, worst = per_pixel_errors(original, reconstructed)
    assert rmse[0, 0] == pytest.approx(math.sqrt((300 ** 2 + 400 ** 2) / 2))
    assert worst[0, 0] == 400.0
    assert angle[0, 0] == pytest.approx(90.0)


def test_ssim_ignores_windows_touching_invalid_pixels():
    rng = np.random.default_rng(1)
    x = rng.random((1, 12, 12))
    y = x.copy()
    y[0, :, :3] = 0.0  # damage only where pixels are invalid
    valid = np.ones((12, 12), bool)
    valid[:, :3] = False
    s, n = ssim_sum(x, y, valid=valid)
    assert n == 6 * 3 and s / n == pytest.approx(1.0)


@pytest.mark.parametrize('dtype', [np.int16, np.float32])
def test_only_the_box_around_the_valid_pixels_is_measured(dtype, monkeypatch):
    """A tile whose valid pixels fill a triangle in one corner (a scene's nodata corner): the measures come from
    the box around them and its SSIM margin alone, and equal those of the whole tile."""
    from enmap_compress.plugin.core import metrics

    rng = np.random.default_rng(4)
    original = rng.integers(0, 9000, (24, 70, 66)).astype(dtype)
    reconstructed = (original + rng.normal(0, 30, original.shape)).astype(dtype)
    rows, columns = np.mgrid[:70, :66]
    valid = (rows < 29) & (columns < 35) & (rows + columns < 45)
    kept = (slice(6, 70), slice(6, 66))  # 6 px of SSIM margin above and left
    whole = metrics.tile_errors(original, reconstructed, valid, kept, hist_limit=3000)
    measured = []
    real = metrics._TilePass.__post_init__
    monkeypatch.setattr(metrics._TilePass, '__post_init__',
                        lambda self: measured.append(self.original.shape) or real(self))
    boxed = metrics.tile_errors(original, reconstructed, valid, kept, hist_limit=3000)
    assert measured == [(24, 29, 35)]  # the box's rows 6..28 and columns 6..34, and 6 px of margin above and left
    everything = ((slice(0, 70), slice(0, 66)), kept, (slice(0, 64), slice(0, 60)))
    monkeypatch.setattr(metrics, '_valid_box', lambda valid, kept, win: everything)
    full = metrics.tile_errors(original, reconstructed, valid, kept, hist_limit=3000)  # every pixel measured
    assert boxed.valid.shape == full.valid.shape == (64, 60) and whole.ssim_count == full.ssim_count > 0
    for name in ('valid', 'unit_sq', 'dn_sq', 'max_abs_dn', 'angle_deg', 'histogram'):
        assert np.array_equal(getattr(boxed, name), getattr(full, name)), name
    assert np.allclose(boxed.band_dn_sq, full.band_dn_sq, rtol=1e-6, atol=0)
    assert boxed.ssim_total == pytest.approx(full.ssim_total, rel=1e-8)
    nothing = metrics.tile_errors(original, reconstructed, np.zeros_like(valid), kept, hist_limit=3000)
    assert nothing.ssim_count == 0 and not nothing.dn_sq.any() and not nothing.histogram.any()


@pytest.mark.parametrize('dtype', [np.int16, np.float32])
def test_one_pass_equals_a_float64_computation_with_samples_out_of_range(dtype):
    """tile_errors (float32 work, SSIM windows ending in the kept part, a clip and a histogram range checked per
    band) against the definitions in float64: DN below 0 and above 10000 clipped, errors beyond +-3000 DN counted
    in the outermost bins, invalid pixels left out, 6 px of margin above and left."""
    from enmap_compress.plugin.core import metrics

    rng = np.random.default_rng(8)
    original = rng.integers(-500, 11000, (17, 40, 37)).astype(dtype)
    reconstructed = (original + rng.normal(0, 40, original.shape)).astype(dtype)
    reconstructed[3, 10:12, 10:20] += 5000  # beyond the histogram's range, both ways
    reconstructed[4, 20:22, 10:20] -= 5000
    valid = np.ones((40, 37), bool)
    valid[30:, :5] = False
    kept = (slice(6, 40), slice(6, 37))
    errors = metrics.tile_errors(original, reconstructed, valid, kept, hist_limit=3000)
    a, b = (np.where(valid, v.astype(np.float64), 0.0) for v in (original, reconstructed))
    diff = (b - a)[:, kept[0], kept[1]]
    inside = valid[kept]
    np.testing.assert_allclose(errors.dn_sq, np.where(inside, (diff ** 2).sum(axis=0), 0), rtol=1e-6)
    np.testing.assert_allclose(errors.max_abs_dn, np.where(inside, np.abs(diff).max(axis=0), 0), rtol=1e-6)
    x, y = (np.clip(v, 0, 10000) / 10000 for v in (a, b))
    unit = ((x - y) ** 2)[:, kept[0], kept[1]].sum(axis=0)
    np.testing.assert_allclose(errors.unit_sq, np.where(inside, unit, 0), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(errors.band_dn_sq, (diff[:, inside] ** 2).sum(axis=1), rtol=1e-6)
    expected = np.bincount((np.clip(np.rint(diff[:, inside]), -3000, 3000) + 3000).astype(int).ravel(),
                           minlength=6001)
    assert np.array_equal(errors.histogram, expected) and expected[0] > 0 and expected[-1] > 0
    total, count = ssim_sum(x, y, valid=valid)  # the whole window: every window ends in the kept part
    assert errors.ssim_count == count > 0
    assert errors.ssim_total == pytest.approx(total, rel=1e-6)
