"""The data behind the report's plots, computed tile by tile from an original and its reconstruction.

Collected in the same pass over the tiles as the metrics (compare.compare), from the same per-tile sums. Memory
stays bounded: per-band sums, a 1-DN histogram of signed errors and a few sample spectra.
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np

from .codec import DEFAULT_TILE
from .quicklook import QuickLookCollector

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
    quicklook: object = None  # quicklook.QuickLook: the report's image panels, from the same tiles


class ReportCollector:
    """Gathers the report's data from the TileErrors of each tile (compare.compare feeds it)."""

    def __init__(self, width, height, evaluated):
        self.evaluated = evaluated
        self.sq = np.zeros(int(evaluated.sum()), np.float64)
        self.count = 0
        self.hist = np.zeros(2 * HIST_LIMIT_DN + 1, np.int64)
        self.targets = [(int(fx * (width - 1)), int(fy * (height - 1))) for fx, fy in SAMPLE_FRACTIONS]
        self.samples = {}
        self.worst = None
        self.quicklook = QuickLookCollector(width, height)

    def update(self, tile, a, b, errors):
        """a, b: (all bands, h, w) DN of the tile in canonical order; errors: metrics.TileErrors of the tile."""
        valid = errors.valid
        self.quicklook.update(tile, a, b, valid, errors.rmse_dn)
        if not valid.any():
            return
        self.sq += errors.band_dn_sq
        self.count += int(valid.sum())
        self.hist += errors.histogram
        self._pick_samples(tile, a, b, valid)
        self._track_worst(tile, a, b, errors)

    def _pick_samples(self, tile, a, b, valid):
        for index, (tx, ty) in enumerate(self.targets):
            inside = tile.x <= tx < tile.x + tile.width and tile.y <= ty < tile.y + tile.height
            if not inside or index in self.samples:
                continue
            rows, cols = np.nonzero(valid)  # nearest valid pixel of this tile
            nearest = int(np.argmin((rows + tile.y - ty) ** 2 + (cols + tile.x - tx) ** 2))
            r, c = int(rows[nearest]), int(cols[nearest])
            self.samples[index] = self._sample(f'pixel {index + 1}', tile, a, b, r, c)

    def _track_worst(self, tile, a, b, errors):
        rmse = np.where(errors.valid, errors.dn_sq, -1.0)
        r, c = np.unravel_index(int(np.argmax(rmse)), rmse.shape)
        if self.worst is None or np.sqrt(rmse[r, c] / max(1, errors.bands)) > self.worst.rmse_dn:
            self.worst = self._sample('worst pixel', tile, a, b, int(r), int(c))

    def _sample(self, label, tile, a, b, r, c):
        original, reconstructed = a[:, r, c].astype(np.float64), b[:, r, c].astype(np.float64)
        # a NaN or +-Inf sample that came back as it was carries no error, as in the metrics (TileErrors.dn_sq):
        # else one such sample made the pixel's RMSE NaN, and a NaN worst pixel was never replaced
        kept = (original == reconstructed) | (np.isnan(original) & np.isnan(reconstructed))
        error = np.subtract(reconstructed, original, out=np.zeros_like(original), where=~kept)
        rmse = float(np.sqrt((error[self.evaluated] ** 2).mean()))
        return SampleSpectrum(label, tile.x + c, tile.y + r, _listed(original, self.evaluated),
                              _listed(reconstructed, self.evaluated), rmse)

    def result(self, wavelengths):
        band_rmse = np.full(self.evaluated.size, np.nan)
        if self.count:
            band_rmse[self.evaluated] = np.sqrt(self.sq / self.count)
        edges, counts = _rebinned(self.hist)
        samples = [self.samples[i] for i in sorted(self.samples)] + ([self.worst] if self.worst else [])
        return ReportData([float(w) for w in wavelengths], [bool(e) for e in self.evaluated],
                          _listed(band_rmse), edges, counts, samples, self.quicklook.result())


def _listed(values, mask=None):
    """A JSON-friendly list; bands outside `mask` become NaN (gaps in the plots)."""
    values = np.asarray(values, np.float64).copy()
    if mask is not None:
        values[~mask] = np.nan
    return [float(v) for v in values]


def _rebinned(hist):
    """Crop the 1-DN histogram to the range holding 99.9 % of the errors (symmetric), then merge to HIST_BINS bins
    of an odd number of DN each, the middle one centred on 0 (an even width put 0 DN with -1 DN and drew a
    bit-exact image's errors half a bin left of 0); the errors beyond that range are counted in the outermost bins
    (every evaluated sample is in the chart)."""
    total = hist.sum()
    if not total:
        return [-1.0, 1.0], [0]
    centre = HIST_LIMIT_DN
    running = np.concatenate([[0], np.cumsum(hist)])
    radii = np.arange(HIST_LIMIT_DN + 1)
    cumulative = running[centre + radii + 1] - running[centre - radii]  # errors within +-radius
    radius = int(np.searchsorted(cumulative, 0.999 * total)) + 1
    radius = max(radius, HIST_BINS // 2)  # at least 1-DN bins over -30..30
    step = int(np.ceil((2 * radius + 1) / HIST_BINS)) | 1  # odd
    half = HIST_BINS * step // 2  # HIST_BINS x step DN from -half to +half
    lo, hi = max(0, centre - half), min(hist.size, centre + half + 1)
    window = np.zeros(HIST_BINS * step, np.int64)  # beyond +-HIST_LIMIT_DN: nothing (the outer bins say the rest)
    window[lo - (centre - half):hi - (centre - half)] = hist[lo:hi]
    counts = [int(c) for c in window.reshape(HIST_BINS, step).sum(axis=1)]
    counts[0] += int(hist[:lo].sum())
    counts[-1] += int(hist[hi:].sum())
    edges = [float(i * step - half) - 0.5 for i in range(HIST_BINS + 1)]
    return edges, counts


def report_data(original_path, reconstructed_path, progress=None, is_cancelled=None, tile_size=DEFAULT_TILE):
    """Per-band RMSE (DN), a histogram of signed errors (DN) and sample spectra, read tile by tile."""
    from .compare import compare  # compare builds on this module

    return compare(original_path, reconstructed_path, progress=progress, is_cancelled=is_cancelled,
                   tile_size=tile_size, with_report=True).report
