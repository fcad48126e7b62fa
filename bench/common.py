"""Shared helpers of the benchmarks: data loading, pooled metrics, the classical anchors, machine description.

Conventions (the same as /work/shared/checks/holdout_eval.py and the model cards):
* bands: the 202 HySpecNet bands (224 minus 1-based 127-141 and 161-167), in ascending-wavelength order;
  dead bands inside that set are not evaluated;
* PSNR: DN clipped to 0..10000 and divided by 10000, peak 1, over valid pixels; pooled over several rasters by
  the total squared error (not by averaging dB);
* mean SA: per-pixel spectral angle in degrees, averaged over all valid pixels of all rasters;
* max abs error: in DN, unclipped, over the evaluated bands and valid pixels;
* rate: bytes on disk x 8 / (valid pixels x 202) (x 224 for the all-band lossless rows), pooled by total bytes.
"""
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from enmap_compress.plugin.core.bands import hyspecnet_keep_mask
from enmap_compress.plugin.core.codec import valid_pixels
from enmap_compress.plugin.core.enmap import open_spectral

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

gdal.UseExceptions()
BUILD_DIR = os.path.join(PROJECT_ROOT, 'build', 'bench')
DOCS_DIR = os.path.join(PROJECT_ROOT, 'docs')
CODED = 202


# --- data -----------------------------------------------------------------------------------------------------

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


# --- metrics ----------------------------------------------------------------------------------------------------

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
        x, y = np.clip(a, 0, 1e4) / 1e4, np.clip(b, 0, 1e4) / 1e4
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


# --- anchors ----------------------------------------------------------------------------------------------------
# Each anchor codes `bands` (canonical indices) of a scene and returns (bytes, reconstruction (224, H, W)).

def _block(n):
    return int(min(256, max(16, -(-n // 16) * 16)))


def gtiff_roundtrip(scene, bands, options, folder, threads=1):
    """Write the bands with GDAL's GTiff driver (int16, nodata kept) and read them back; rate = file size."""
    data = scene.cube[bands]
    height, width = data.shape[1:]
    path = os.path.join(folder, 'anchor.tif')
    opts = list(options) + ['TILED=YES', f'BLOCKXSIZE={_block(width)}', f'BLOCKYSIZE={_block(height)}',
                            f'NUM_THREADS={threads}']
    started = time.perf_counter()
    ds = gdal.GetDriverByName('GTiff').Create(path, width, height, len(bands), gdal.GDT_Int16, opts)
    for i in range(len(bands)):
        band = ds.GetRasterBand(i + 1)
        if scene.nodata is not None:
            band.SetNoDataValue(float(scene.nodata))
        band.WriteArray(data[i])
    ds = None
    enc = time.perf_counter() - started
    size = os.path.getsize(path)
    started = time.perf_counter()
    ds = gdal.Open(path)
    back = ds.ReadAsArray()
    ds = None
    dec = time.perf_counter() - started
    os.remove(path)
    full = scene.cube.copy()
    full[bands] = back.reshape(len(bands), height, width)
    return size, full, enc, dec


def jpeg2k_roundtrip(scene, bands, level):
    """Each band its own JPEG 2000 codestream (imagecodecs / OpenJPEG; level = target PSNR in dB relative to the
    dtype range, None = reversible lossless). Header bytes of every codestream are counted."""
    import imagecodecs

    full = scene.cube.copy()
    size, enc, dec = 0, 0.0, 0.0
    for b in bands:
        started = time.perf_counter()
        blob = imagecodecs.jpeg2k_encode(np.ascontiguousarray(scene.cube[b]), level=level, codecformat='j2k')
        enc += time.perf_counter() - started
        started = time.perf_counter()
        full[b] = imagecodecs.jpeg2k_decode(blob)
        dec += time.perf_counter() - started
        size += len(blob)
    return size, full, enc, dec


def delta_zstd_roundtrip(scene, bands, level=9):
    """Lossless: spectral delta (band i - band i-1) + byte shuffle + zstd (imagecodecs), one stream per raster."""
    import imagecodecs

    data = scene.cube[bands].astype(np.int16)
    started = time.perf_counter()
    delta = np.diff(data, axis=0, prepend=np.zeros((1,) + data.shape[1:], np.int16)).astype(np.int16)
    shuffled = delta.reshape(-1).view(np.uint8).reshape(-1, 2).T.copy()
    blob = imagecodecs.zstd_encode(shuffled.tobytes(), level=level)
    enc = time.perf_counter() - started
    started = time.perf_counter()
    raw = np.frombuffer(imagecodecs.zstd_decode(blob), np.uint8).reshape(2, -1).T.copy().view(np.int16)
    back = np.cumsum(raw.reshape(data.shape), axis=0, dtype=np.int16)
    dec = time.perf_counter() - started
    full = scene.cube.copy()
    full[bands] = back
    return len(blob), full, enc, dec


LERC_BOUNDS = (0, 1, 2, 5, 10, 25, 50, 100, 200)
JPEG2K_LEVELS = (55, 60, 65, 70, 75, 80, 85, 90, 95, None)


def anchor_runs(bands_count):
    """(method, setting, callable(scene, bands, folder)) of every anchor configuration."""
    runs = []
    for bound in LERC_BOUNDS:
        opts = ['COMPRESS=LERC_ZSTD', f'MAX_Z_ERROR={bound}', 'INTERLEAVE=PIXEL']
        runs.append(('gdal_lerc_zstd', f'MAX_Z_ERROR={bound}',
                     lambda s, b, f, o=opts: gtiff_roundtrip(s, b, o, f)))
    runs.append(('gdal_zstd_pred2', 'ZSTD PREDICTOR=2 INTERLEAVE=PIXEL (lossless)',
                 lambda s, b, f: gtiff_roundtrip(s, b, ['COMPRESS=ZSTD', 'PREDICTOR=2', 'INTERLEAVE=PIXEL'], f)))
    runs.append(('delta_shuffle_zstd', 'spectral delta + byte shuffle + zstd-9 (lossless)',
                 lambda s, b, f: delta_zstd_roundtrip(s, b)))
    for level in JPEG2K_LEVELS:
        runs.append(('jpeg2k_per_band', f'level={level}' if level is not None else 'lossless',
                     lambda s, b, f, lv=level: jpeg2k_roundtrip(s, b, lv)))
    return runs


# --- environment ------------------------------------------------------------------------------------------------

def machine():
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    debian = ''
    try:
        with open('/etc/debian_version', encoding='utf-8') as handle:
            debian = f'Debian {handle.read().strip()}'
    except OSError:
        pass
    mem = ''
    try:
        pages = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
        mem = f'{pages / 2 ** 30:.0f} GiB RAM'
    except (ValueError, OSError):
        pass
    return (f'{os.cpu_count()} vCPU {cpu}, {mem}, {debian or platform.platform()}, '
            f'Python {platform.python_version()}, numpy {np.__version__}, GDAL {gdal.__version__}')


def git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=False).stdout.strip() or 'unknown'
    except OSError:
        return 'unknown'


def scratch_dir(prefix):
    os.makedirs(BUILD_DIR, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=BUILD_DIR)


def replace_section(path, marker, text):
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->` in a markdown file."""
    start, end = f'<!-- {marker}:start -->', f'<!-- {marker}:end -->'
    block = f'{start}\n{text.rstrip()}\n{end}'
    content = ''
    if os.path.exists(path):
        with open(path, encoding='utf-8') as handle:
            content = handle.read()
    if start in content and end in content:
        head, rest = content.split(start, 1)
        tail = rest.split(end, 1)[1]
        content = head + block + tail
    else:
        content = content.rstrip() + '\n\n' + block + '\n'
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(content)
