"""Quality and rate metrics in the HySpecNet-11k convention, accumulated tile by tile.

PSNR: the coded bands (the 202 HySpecNet bands less dead ones), DN clipped to 0..10000 and divided by 10000,
peak 1, over valid pixels. SA: mean per-pixel spectral angle in degrees on the same values. RMSE and maximum
absolute error are in DN; the maximum is taken on the unclipped values, so it is an honest worst case.
"""
import math

import numpy as np

DN_PEAK = 10000.0


def to_unit(dn):
    """DN -> the HySpecNet [0, 1] scale (float64 for exact sums)."""
    return np.clip(np.asarray(dn, dtype=np.float64), 0.0, DN_PEAK) / DN_PEAK


def psnr_from_mse(mse, peak=1.0):
    return math.inf if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def spectral_angles_deg(x, y):
    """Per-pixel angle in degrees between spectra (bands on axis 0). Two zero spectra have angle 0."""
    nx, ny = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)
    cos = np.where((nx == 0) & (ny == 0), 1.0, (x * y).sum(axis=0) / np.maximum(nx * ny, 1e-12))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _box_mean(img, win):
    """Mean over win x win windows ('valid' region) with summed-area tables; img is (bands, h, w)."""
    c = np.cumsum(np.cumsum(np.pad(img, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
    s = c[:, win:, win:] - c[:, :-win, win:] - c[:, win:, :-win] + c[:, :-win, :-win]
    return s / float(win * win)


def ssim_sum(x, y, win=7, valid=None):
    """Sum and count of SSIM values (uniform win x win window, data range 1) over all bands and windows.

    x, y: (bands, h, w) on the [0, 1] scale; only windows lying wholly on `valid` pixels count.
    Returns (sum, count) so callers can average across tiles.
    """
    if x.shape[1] < win or x.shape[2] < win:
        return 0.0, 0
    inside = None
    if valid is not None:
        inside = _box_mean(valid[None].astype(np.float64), win)[0] > 1.0 - 1e-9
        x, y = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _box_mean(x, win), _box_mean(y, win)
    vx = _box_mean(x * x, win) - mx * mx
    vy = _box_mean(y * y, win) - my * my
    cxy = _box_mean(x * y, win) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    if inside is not None:
        s = s[:, inside]
    return float(s.sum()), int(s.size)


class MetricsAccumulator:
    """Streams tiles of (original, reconstruction) and reports the image-wide metrics."""

    def __init__(self):
        self.sq_err = 0.0
        self.samples = 0
        self.angle_sum = 0.0
        self.pixels = 0
        self.max_abs_dn = 0.0
        self.ssim_total = 0.0
        self.ssim_count = 0

    def update(self, original, reconstructed, valid):
        """original, reconstructed: (bands, h, w) DN of the evaluated bands; valid: (h, w) bool pixel mask."""
        if not valid.any():
            return
        a = np.asarray(original, dtype=np.float64)[:, valid]
        b = np.asarray(reconstructed, dtype=np.float64)[:, valid]
        self.max_abs_dn = max(self.max_abs_dn, float(np.abs(a - b).max()) if a.size else 0.0)
        x, y = to_unit(a), to_unit(b)
        self.sq_err += float(((x - y) ** 2).sum())
        self.samples += x.size
        self.angle_sum += float(spectral_angles_deg(x, y).sum())
        self.pixels += x.shape[1]
        s, n = ssim_sum(to_unit(original), to_unit(reconstructed), valid=valid)
        self.ssim_total += s
        self.ssim_count += n

    @property
    def mse(self):
        return self.sq_err / self.samples if self.samples else 0.0

    def result(self):
        mse = self.mse
        return {
            'psnr': psnr_from_mse(mse),
            'rmse_dn': math.sqrt(mse) * DN_PEAK,
            'sa_deg': self.angle_sum / self.pixels if self.pixels else 0.0,
            'ssim': self.ssim_total / self.ssim_count if self.ssim_count else float('nan'),
            'max_abs_error_dn': self.max_abs_dn,
            'valid_pixels': self.pixels,
        }


def rate_metrics(file_bytes, valid_pixels, coded_bands=202):
    """Real rate from bytes on disk: bpppb over the coded bands, and the ratio against the same samples as int16."""
    bits = 8.0 * file_bytes
    bpppb = bits / (valid_pixels * coded_bands) if valid_pixels else math.inf
    original_bits = 16.0 * valid_pixels * coded_bands
    return {'bpppb': bpppb, 'compression_ratio': original_bits / bits if bits else math.inf}


def per_pixel_errors(original, reconstructed):
    """Per-pixel error bands for the error layer: RMSE in DN, spectral angle in degrees, max abs error in DN."""
    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(reconstructed, dtype=np.float64)
    x, y = to_unit(a), to_unit(b)
    rmse_dn = np.sqrt(((x - y) ** 2).mean(axis=0)) * DN_PEAK
    return rmse_dn, spectral_angles_deg(x, y), np.abs(a - b).max(axis=0)
