"""The data behind the report's plots, computed tile by tile from an original and its reconstruction.

Kept apart from evaluate.measure() so the metrics stay one small loop; this second pass runs only when a report
is asked for. Memory stays bounded: per-band sums, a 1-DN histogram of signed errors and a few sample spectra.
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np

from .bands import hyspecnet_keep_mask
from .codec import DEFAULT_TILE, valid_pixels
from .enmap import open_spectral
from .tiling import Progress, tile_grid

HIST_LIMIT_DN = 3000  # signed errors beyond +-this are counted in the outermost bins
HIST_BINS = 61
SAMPLE_FRACTIONS = ((0.3, 0.3), (0.5, 0.5), (0.7, 0.65))  # where sample spectra are picked (x, y of the image)


@dataclass
class SampleSpectrum:
    label: str
    x: int
    y: int
    original: List[float]
    reconstructed: List[float]
    rmse_dn: float


@dataclass
class ReportData:
    wavelengths: List[float]  # canonical (ascending) order, all bands
    evaluated: List[bool]  # bands the metrics cover (HySpecNet set less dead bands)
    band_rmse_dn: List[float]  # NaN for bands not evaluated
    hist_edges: List[float]
    hist_counts: List[int]
    samples: List[SampleSpectrum] = field(default_factory=list)


class _Collector:
    def __init__(self, raster, evaluated):
        self.evaluated = evaluated
        self.sq = np.zeros(evaluated.size, np.float64)
        self.count = 0
        self.hist = np.zeros(2 * HIST_LIMIT_DN + 1, np.int64)
        self.targets = [(int(fx * (raster.width - 1)), int(fy * (raster.height - 1))) for fx, fy in SAMPLE_FRACTIONS]
        self.samples = {}
        self.worst = None

    def update(self, tile, a, b, valid):
        if not valid.any():
            return
        diff = (b - a)[:, valid]
        self.sq[self.evaluated] += (diff[self.evaluated].astype(np.float64) ** 2).sum(axis=1)
        self.count += int(valid.sum())
        clipped = np.clip(np.rint(diff[self.evaluated]), -HIST_LIMIT_DN, HIST_LIMIT_DN).astype(np.int64)
        self.hist += np.bincount((clipped + HIST_LIMIT_DN).ravel(), minlength=self.hist.size)
        self._pick_samples(tile, a, b, valid)
        self._track_worst(tile, a, b, valid)

    def _pick_samples(self, tile, a, b, valid):
        for index, (tx, ty) in enumerate(self.targets):
            inside = tile.x <= tx < tile.x + tile.width and tile.y <= ty < tile.y + tile.height
            if not inside or index in self.samples:
                continue
            rows, cols = np.nonzero(valid)  # nearest valid pixel of this tile
            nearest = int(np.argmin((rows + tile.y - ty) ** 2 + (cols + tile.x - tx) ** 2))
            r, c = int(rows[nearest]), int(cols[nearest])
            self.samples[index] = self._sample(f'pixel {index + 1}', tile, a, b, r, c)

    def _track_worst(self, tile, a, b, valid):
        rmse = np.sqrt(((b - a)[self.evaluated] ** 2).mean(axis=0))
        rmse[~valid] = -1.0
        r, c = np.unravel_index(int(np.argmax(rmse)), rmse.shape)
        if self.worst is None or rmse[r, c] > self.worst.rmse_dn:
            self.worst = self._sample('worst pixel', tile, a, b, int(r), int(c))

    def _sample(self, label, tile, a, b, r, c):
        original, reconstructed = a[:, r, c], b[:, r, c]
        rmse = float(np.sqrt(((reconstructed - original)[self.evaluated] ** 2).mean()))
        return SampleSpectrum(label, tile.x + c, tile.y + r, _listed(original, self.evaluated),
                              _listed(reconstructed, self.evaluated), rmse)

    def result(self, wavelengths):
        band_rmse = np.full(self.evaluated.size, np.nan)
        if self.count:
            band_rmse[self.evaluated] = np.sqrt(self.sq[self.evaluated] / self.count)
        edges, counts = _rebinned(self.hist)
        samples = [self.samples[i] for i in sorted(self.samples)] + ([self.worst] if self.worst else [])
        return ReportData([float(w) for w in wavelengths], [bool(e) for e in self.evaluated],
                          _listed(band_rmse), edges, counts, samples)


def _listed(values, mask=None):
    """A JSON-friendly list; bands outside `mask` become NaN (gaps in the plots)."""
    values = np.asarray(values, np.float64).copy()
    if mask is not None:
        values[~mask] = np.nan
    return [float(v) for v in values]


def _rebinned(hist):
    """Crop the 1-DN histogram to the range holding 99.9 % of the errors (symmetric), then merge to HIST_BINS."""
    total = hist.sum()
    if not total:
        return [-1.0, 1.0], [0]
    centre = HIST_LIMIT_DN
    running = np.concatenate([[0], np.cumsum(hist)])
    radii = np.arange(HIST_LIMIT_DN + 1)
    cumulative = running[centre + radii + 1] - running[centre - radii]  # errors within +-radius
    radius = int(np.searchsorted(cumulative, 0.999 * total)) + 1
    radius = max(radius, HIST_BINS // 2 + 1)
    step = int(np.ceil((2 * radius + 1) / HIST_BINS))
    half = step * (HIST_BINS // 2) + step // 2
    lo, hi = max(0, centre - half), min(hist.size, centre + half + 1)
    window = hist[lo:hi]
    counts = [int(window[i:i + step].sum()) for i in range(0, window.size, step)]
    edges = [float(lo - centre + i * step) - 0.5 for i in range(len(counts) + 1)]
    return edges, counts


def report_data(original_path, reconstructed_path, progress=None, is_cancelled=None, tile_size=DEFAULT_TILE):
    """Per-band RMSE (DN), a histogram of signed errors (DN) and sample spectra, read tile by tile."""
    keep = hyspecnet_keep_mask()
    with open_spectral(original_path) as original, open_spectral(reconstructed_path) as reconstruction:
        dead = original.canonical_dead_bands
        wavelengths = np.asarray(original.wavelengths)[original.canonical_index]
        collector = _Collector(original, keep & ~dead)
        tiles = tile_grid(original.width, original.height, tile_size)
        steps = Progress(len(tiles), progress, is_cancelled)
        for tile in tiles:
            a = original.read_canonical(tile.x, tile.y, tile.width, tile.height).astype(np.float32)
            b = reconstruction.read_canonical(tile.x, tile.y, tile.width, tile.height).astype(np.float32)
            collector.update(tile, a, b, valid_pixels(a, original.nodata, ~dead))
            steps.step()
    return collector.result(wavelengths)
