"""Benchmark inputs and their pooled scores: scenes in canonical band order, mosaics, the synthetic scene, `Pool`.

Conventions (the same as /work/shared/checks/holdout_eval.py and the model cards):
* bands: the HySpecNet band set (bands.py, `hyspecnet202`), in ascending-wavelength order; dead bands inside that
  set are not evaluated;
* PSNR: DN clipped to 0..DN_PEAK and divided by it (peak 1), over valid pixels; pooled over several rasters by the
  total squared error (not by averaging dB);
* mean SA: per-pixel spectral angle in degrees, averaged over all valid pixels of all rasters;
* max abs error: in DN, unclipped, over the evaluated bands and valid pixels;
* rate: bytes on disk x 8 / (valid pixels x CODED) (x 224 for the all-band lossless rows), pooled by total bytes.
"""
import os
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from bench.reporting import BUILD_DIR
from enmap_compress.plugin.core.bands import DN_PEAK, N_HYSPECNET, hyspecnet_keep_mask
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.tiling import valid_pixels

gdal.UseExceptions()  # a benchmark script owns its process
CODED = N_HYSPECNET  # the bands the models code: the denominator of bpppb


@dataclass
class Scene:
    """One raster in canonical band order: int16 DN cube (224, H, W), masks and the file it came from."""

    path: str
    cube: np.ndarray
    valid: np.ndarray
    dead: np.ndarray
    nodata: object

    @property
    def keep(self):
        return hyspecnet_keep_mask()

    @property
    def valid_count(self):
        return int(self.valid.sum())


def load_scene(path):
    with open_spectral(path) as raster:
        cube = raster.read_canonical(0, 0, raster.width, raster.height)
        dead = raster.canonical_dead_bands
        valid = valid_pixels(cube.astype(np.float32), raster.nodata, ~dead)
        nodata = raster.nodata
    return Scene(path, np.asarray(cube).astype(np.int16), valid, dead, nodata)


def write_mosaic(paths, out_path):
    """Put same-height rasters side by side in one GeoTIFF (file band order, metadata of the first kept).

    Used to give the anchors one larger file instead of three 32x32 files (less per-file overhead)."""
    sources = [gdal.Open(p) for p in paths]
    height = sources[0].RasterYSize
    if any(s.RasterYSize != height for s in sources):
        raise ValueError('mosaic inputs must have the same height')
    width = sum(s.RasterXSize for s in sources)
    data = np.concatenate([s.ReadAsArray() for s in sources], axis=2)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    # srcWin beyond the first tile keeps all its band metadata, nodata and pixel size; the data is overwritten
    gdal.Translate(out_path, sources[0], srcWin=[0, 0, width, height], creationOptions=['INTERLEAVE=BAND'])
    out = gdal.Open(out_path, gdal.GA_Update)
    for i in range(out.RasterCount):
        out.GetRasterBand(i + 1).WriteArray(data[i])
    out = None
    return out_path


def synthetic_scene(width, height, seed=0, folder=None):
    """Cached synthetic EnMAP-like scene (tools.synthetic.write_scene)."""
    from tools.synthetic import write_scene

    folder = folder or os.path.join(BUILD_DIR, 'cache')
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'synthetic_{width}x{height}_seed{seed}.tif')
    if not os.path.exists(path):
        write_scene(path, width, height, seed)
    return path


class Pool:
    """Accumulates rate and distortion over several rasters (total bytes, total squared error)."""

    def __init__(self, bands=CODED):
        self.bands = bands
        self.bytes = self.pixels = self.samples = 0
        self.sq = self.angle = 0.0
        self.worst = 0.0
        self.enc_s = self.dec_s = 0.0

    def add(self, nbytes, scene, reconstruction, band_mask, enc_s=0.0, dec_s=0.0):
        """reconstruction: canonical (224, H, W) DN; band_mask: canonical bands evaluated (minus dead ones)."""
        sel = band_mask & ~scene.dead
        a = scene.cube[sel][:, scene.valid].astype(np.float64)
        b = np.asarray(reconstruction)[sel][:, scene.valid].astype(np.float64)
        x, y = np.clip(a, 0, DN_PEAK) / DN_PEAK, np.clip(b, 0, DN_PEAK) / DN_PEAK
        self.sq += float(((x - y) ** 2).sum())
        self.samples += x.size
        nx, ny = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)
        cos = np.where((nx == 0) & (ny == 0), 1.0, (x * y).sum(0) / np.maximum(nx * ny, 1e-12))
        self.angle += float(np.degrees(np.arccos(np.clip(cos, -1, 1))).sum())
        self.worst = max(self.worst, float(np.abs(a - b).max()) if a.size else 0.0)
        self.bytes += int(nbytes)
        self.pixels += scene.valid_count
        self.enc_s += enc_s
        self.dec_s += dec_s

    def result(self):
        mse = self.sq / max(self.samples, 1)
        return {'bytes': self.bytes, 'valid_px': self.pixels, 'bands': self.bands,
                'bpppb': self.bytes * 8 / (self.pixels * self.bands),
                'psnr': float('inf') if mse == 0 else -10 * np.log10(mse),
                'sa_deg': self.angle / max(self.pixels, 1), 'max_abs_dn': self.worst,
                'enc_s': self.enc_s, 'dec_s': self.dec_s}
