"""The project's own synthetic EnMAP L2A scenes, for tests and the demo (code only, no third-party data).

A scene looks like a real ortho tile: int16 DN (reflectance x 10000, gain 1e-4, offset 0), nodata -32768 outside
a rotated footprint, the six dead bands of the real product (detector-order bands 130-135, 1331-1391 nm), smooth
analytic spectra of common materials mixed over fields, forest, a town, a lake and a river, residual atmospheric
absorption and a few DN of sensor noise. Everything is computed per row block from global coordinates, so a block
does not depend on how the scene is split, and a full 1200 x 1200 x 224 scene is written with bounded memory.
"""
import functools
import html
import os
import zipfile
from dataclasses import dataclass
from typing import Optional

import numpy as np
from osgeo import gdal, osr

from enmap_compress.plugin.core import bands as _bands
from enmap_compress.plugin.core.errors import OutputError
from enmap_compress.plugin.core.outputs import atomic_output

NODATA = -32768
GAIN = _bands.ENMAP_GAIN
EPSG_UTM33N = 32633
PIXEL_SIZE = 30.0
ORIGIN = (360015.0, 5829975.0)  # upper-left corner, south-west of Berlin (UTM 33N)
DEAD_DETECTOR_BANDS_1BASED = tuple(range(130, 136))
PRODUCT_NAME = 'ENMAP01-____L2A-DT0000999999_20240101T101010Z_001_V010400_20240102T000000Z'
BLOCK_BYTES = 32 * 1024 * 1024  # float32 working set per block, about 5x this at peak
MATERIALS = ('vegetation', 'conifer', 'soil', 'dry_grass', 'water', 'asphalt', 'concrete', 'roof_tile')
_QUALITY_LAND, _QUALITY_WATER, _QUALITY_BACKGROUND = 1, 2, 3


# ----------------------------------------------------------------------------------------------------------------
# Spectra (reflectance 0..1 at the EnMAP wavelengths, analytic shapes)

def _gauss(wl, centre, width):
    return np.exp(-0.5 * ((wl - centre) / width) ** 2)


def _sigmoid(wl, centre, width):
    return 1.0 / (1.0 + np.exp(-(wl - centre) / width))


def _liquid_water(wl, depth):
    """Absorption by water in leaves or soil (multiplicative)."""
    return 1.0 - depth * (0.08 * _gauss(wl, 975, 30) + 0.15 * _gauss(wl, 1200, 45) + 0.45 * _gauss(wl, 1450, 70)
                          + 0.6 * _gauss(wl, 1940, 90) + 0.35 * _sigmoid(wl, 2350, 60))


def _green_leaf(wl, nir, visible_scale=1.0):
    visible = visible_scale * (0.035 + 0.055 * _gauss(wl, 553, 32) - 0.012 * _gauss(wl, 675, 22)
                               + 0.01 * _gauss(wl, 420, 30))
    edge = _sigmoid(wl, 718, 13)
    shape = visible * (1 - edge) + nir * edge
    shape *= 1 - 0.38 * _sigmoid(wl, 1320, 90)  # leaf structure and water: SWIR lower than NIR
    shape *= 1 - 0.4 * _sigmoid(wl, 1900, 80)
    return shape * _liquid_water(wl, 1.0)


def _soil(wl):
    base = 0.07 + 0.26 * _sigmoid(wl, 760, 260) + 0.04 * _sigmoid(wl, 1500, 250)
    iron = 0.025 * _gauss(wl, 890, 90)
    clay = 0.045 * _gauss(wl, 2205, 25)
    return (base - iron - clay) * _liquid_water(wl, 0.25)


def _dry_grass(wl):
    base = 0.09 + 0.24 * _sigmoid(wl, 680, 120) + 0.05 * _sigmoid(wl, 1200, 200)
    cellulose = 0.06 * _gauss(wl, 2100, 40) + 0.02 * _gauss(wl, 1730, 25) + 0.02 * _gauss(wl, 2300, 30)
    return (base - cellulose) * _liquid_water(wl, 0.35)


def _water(wl):
    return (0.018 + 0.035 * _gauss(wl, 565, 55) + 0.012 * _gauss(wl, 450, 40)
            + 0.006 * _gauss(wl, 810, 25)) * (1 - 0.85 * _sigmoid(wl, 720, 25)) + 0.002


def _asphalt(wl):
    return 0.045 + 0.06 * (wl - 400) / 2100 - 0.008 * _gauss(wl, 1730, 25) - 0.01 * _gauss(wl, 2310, 30)


def _concrete(wl):
    base = 0.2 + 0.12 * _sigmoid(wl, 520, 70) - 0.06 * _sigmoid(wl, 1900, 250)
    return base - 0.04 * _gauss(wl, 2340, 35) - 0.01 * _gauss(wl, 1450, 50)  # carbonate, bound water


def _roof_tile(wl):
    base = 0.06 + 0.26 * _sigmoid(wl, 585, 22) + 0.06 * _sigmoid(wl, 1100, 200)
    return base - 0.05 * _gauss(wl, 880, 70) - 0.03 * _sigmoid(wl, 2000, 150)


def material_spectra(wavelengths=None):
    """(len(MATERIALS), bands) float32 reflectance of the synthetic materials at the given wavelengths (nm)."""
    wl = _bands.standard_wavelengths() if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    spectra = [_green_leaf(wl, 0.48), _green_leaf(wl, 0.30, 0.75), _soil(wl), _dry_grass(wl), _water(wl),
               _asphalt(wl), _concrete(wl), _roof_tile(wl)]
    return np.clip(np.asarray(spectra), 0.001, 1.0).astype(np.float32)


def _atmosphere_shapes(wl):
    """Residual absorption after atmospheric correction: a fixed part and a part scaled by the water vapour."""
    fixed = (0.03 * _gauss(wl, 762, 4) + 0.015 * _gauss(wl, 2010, 10) + 0.012 * _gauss(wl, 2060, 10)
             + 0.01 * _gauss(wl, 1268, 5))
    vapour = (0.04 * _gauss(wl, 940, 18) + 0.05 * _gauss(wl, 1135, 22) + 0.3 * _gauss(wl, 1380, 35)
              + 0.35 * _gauss(wl, 1880, 55))
    return fixed.astype(np.float32), vapour.astype(np.float32)


def _noise_sigma(wl):
    """Sensor noise in DN: a few DN, more where the atmosphere leaves little signal."""
    sigma = np.where(wl < 1000, 2.5, 4.0) + 20 * _gauss(wl, 1380, 35) + 25 * _gauss(wl, 1880, 50)
    sigma += 4 * _sigmoid(wl, 2380, 30) + 3 * _gauss(wl, 420, 8)
    return sigma.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Scene layout (depends only on size and seed; cached)

@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    seed: int
    footprint: tuple  # centre x, centre y, cos, sin, half width, half height
    city: tuple  # centre x, centre y, radius
    lake: tuple  # centre x, centre y, radius x, radius y
    river: tuple  # base y, amplitude, period, half width
    parcel_angle: float
    grids: dict  # coarse random grids for the smooth fields


def _footprint(width, height, angle_deg):
    """A rotated rectangle as large as fits in the image, like the valid area of an ortho tile."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    half_w, half_h = width / 2.0, height / 2.0
    scale = min(half_w / (c * half_w + s * half_h), half_h / (s * half_w + c * half_h)) * 0.97
    return half_w, half_h, c, s, scale * half_w, scale * half_h


_FIELD_CELLS = {'forest': 48, 'lake': 96, 'texture': 5, 'vigor': 20, 'moisture': 64, 'vapour': 80,
                'light': 24, 'city': 40}


@functools.lru_cache(maxsize=4)
def _layout(width, height, seed):
    rng = np.random.default_rng([int(seed), 0x51E7])
    size = min(width, height)
    grids = {name: rng.random((height // cell + 3, width // cell + 3)).astype(np.float32)
             for name, cell in sorted(_FIELD_CELLS.items())}
    return _Layout(
        width=width, height=height, seed=int(seed),
        footprint=_footprint(width, height, 12.0 + rng.uniform(-2, 2)),
        city=(width * rng.uniform(0.3, 0.45), height * rng.uniform(0.3, 0.5), size * rng.uniform(0.14, 0.2)),
        lake=(width * rng.uniform(0.6, 0.75), height * rng.uniform(0.2, 0.35), size * 0.09, size * 0.06),
        river=(height * rng.uniform(0.7, 0.8), height * 0.05, width * rng.uniform(0.5, 0.8), max(0.8, size * 0.005)),
        parcel_angle=np.radians(rng.uniform(10, 30)),
        grids=grids)


def _smooth(layout, name, ys, xs):
    """Smooth random field in 0..1: a coarse random grid interpolated with smoothstep weights."""
    grid, cell = layout.grids[name], _FIELD_CELLS[name]
    gy, gx = ys / cell, xs / cell
    iy, ix = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
    fy, fx = gy - iy, gx - ix
    fy, fx = (fy * fy * (3 - 2 * fy))[:, None], fx * fx * (3 - 2 * fx)
    top = grid[iy][:, ix] * (1 - fx) + grid[iy][:, ix + 1] * fx
    bottom = grid[iy + 1][:, ix] * (1 - fx) + grid[iy + 1][:, ix + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _hash01(i, j, seed, salt):
    """Deterministic pseudo-random 0..1 per integer cell (i, j): gives each parcel or building block its type."""
    h = i.astype(np.uint64) * np.uint64(0x9E3779B1) ^ j.astype(np.uint64) * np.uint64(0x85EBCA77)
    h ^= np.uint64((seed * 0x27D4EB2F + salt * 0x165667B1) & 0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    h *= np.uint64(0x297A2D39)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(2 ** 24)


# ----------------------------------------------------------------------------------------------------------------
# Abundances per pixel

def _inside_footprint(layout, px, py):
    cx, cy, c, s, half_w, half_h = layout.footprint
    u = (px - cx) * c + (py - cy) * s
    v = -(px - cx) * s + (py - cy) * c
    return (np.abs(u) <= half_w) & (np.abs(v) <= half_h)


def _water_fraction(layout, px, py, ys, xs):
    lx, ly, rx, ry = layout.lake
    wobble = 0.25 * (_smooth(layout, 'lake', ys, xs) - 0.5)
    r = np.sqrt(((px - lx) / rx) ** 2 + ((py - ly) / ry) ** 2) + wobble
    lake = np.clip((1.0 - r) / 0.08, 0, 1)
    base, amplitude, period, half_width = layout.river
    centre = base + amplitude * np.sin(2 * np.pi * px / period) + 0.3 * amplitude * np.sin(2 * np.pi * px / 97.0)
    river = np.clip(half_width + 0.5 - np.abs(py - centre), 0, 1)
    return np.maximum(lake, river)


def _field_weights(layout, px, py, ys, xs, w):
    """Agricultural parcels: green crops, bare soil, stubble, grassland; hedges along some parcel borders."""
    a = layout.parcel_angle
    u = (px * np.cos(a) + py * np.sin(a)) / 27.0
    v = (-px * np.sin(a) + py * np.cos(a)) / 41.0
    iu, iv = np.floor(u), np.floor(v)
    kind = _hash01(iu.astype(np.int64), iv.astype(np.int64), layout.seed, 1)
    vigor = 0.55 + 0.4 * _hash01(iu.astype(np.int64), iv.astype(np.int64), layout.seed, 2)
    vigor = np.clip(vigor + 0.25 * (_smooth(layout, 'vigor', ys, xs) - 0.5), 0, 1)
    texture = 0.15 * (_smooth(layout, 'texture', ys, xs) - 0.5)
    veg = np.select([kind < 0.35, kind < 0.55, kind < 0.75], [vigor, 0.05 + texture * 0.3, 0.1], 0.55 + texture)
    grass = np.select([kind < 0.35, kind < 0.55, kind < 0.75], [0.0, 0.05, 0.65 + texture], 0.15)
    veg, grass = np.clip(veg, 0, 1), np.clip(grass, 0, 1)
    hedge = ((u - iu) < 0.06) & (_hash01(iu.astype(np.int64), iv.astype(np.int64), layout.seed, 3) < 0.4)
    veg = np.where(hedge, 0.85, veg)
    w[..., 0] = veg
    w[..., 3] = grass * (1 - veg)
    w[..., 2] = 1 - w[..., 0] - w[..., 3]


def _urban_weights(layout, px, py, ys, xs, w):
    """Town: streets every 8 pixels, blocks of roofs, flat concrete roofs, paved squares and parks."""
    street = ((px % 8) < 1.0) | ((py % 8) < 1.0)
    bx, by = (px // 8).astype(np.int64), (py // 8).astype(np.int64)
    kind = _hash01(bx, by, layout.seed, 4)
    share = 0.5 + 0.35 * _smooth(layout, 'texture', ys, xs)
    roof = np.where(kind < 0.5, share, 0.0)
    flat = np.where((kind >= 0.5) & (kind < 0.75), share, 0.0)
    park = np.where(kind >= 0.9, 0.8, 0.25 * (1 - share))
    w[..., 7] = np.where(street, 0, roof)
    w[..., 6] = np.where(street, 0.1, flat + 0.15)
    w[..., 0] = np.where(street, 0.25, park)
    w[..., 5] = np.clip(1 - w[..., 0] - w[..., 6] - w[..., 7], 0, 1)


def _forest_weights(layout, ys, xs, w):
    conifer = 0.4 + 0.5 * _smooth(layout, 'vigor', ys, xs)
    w[..., 1] = conifer
    w[..., 0] = 1 - conifer


def _weights(layout, ys, xs):
    """Per-pixel material fractions (rows, width, materials) and the water fraction."""
    px, py = np.meshgrid(xs, ys)
    w = np.zeros(px.shape + (len(MATERIALS),), dtype=np.float32)
    _field_weights(layout, px, py, ys, xs, w)
    cx, cy, radius = layout.city
    city = np.hypot(px - cx, py - cy) < radius * (0.8 + 0.5 * _smooth(layout, 'city', ys, xs))
    forest = (_smooth(layout, 'forest', ys, xs) > 0.6) & ~city
    other = np.zeros_like(w)
    _urban_weights(layout, px, py, ys, xs, other)
    w[city] = other[city]
    other[:] = 0
    _forest_weights(layout, ys, xs, other)
    w[forest] = other[forest]
    water = _water_fraction(layout, px, py, ys, xs)
    w *= (1 - water)[..., None]
    w[..., 4] += water
    return w, water


# ----------------------------------------------------------------------------------------------------------------
# Blocks

@functools.lru_cache(maxsize=1)
def _spectral_constants():
    wl = _bands.standard_wavelengths()
    fixed, vapour = _atmosphere_shapes(wl)
    table = _bands.standard_band_table()
    dead = np.isin(table.detector_order_band, DEAD_DETECTOR_BANDS_1BASED)
    return material_spectra(wl), fixed, vapour, _noise_sigma(wl), dead


def _reflectance(layout, ys, xs, weights, water):
    """(bands, pixels) float32 reflectance: mixture x illumination x residual atmosphere."""
    spectra, fixed, vapour, _, _ = _spectral_constants()
    refl = spectra.T @ weights.reshape(-1, weights.shape[-1]).T  # (bands, pixels)
    light = 0.9 + 0.2 * _smooth(layout, 'light', ys, xs)
    light = np.where(water > 0.5, 1.0, light).reshape(-1)  # no topographic shading on water
    moisture = 0.6 + 0.8 * _smooth(layout, 'vapour', ys, xs).reshape(-1)
    atmosphere = 1.0 - fixed[:, None] - vapour[:, None] * moisture[None, :]
    refl *= atmosphere
    refl *= light[None, :]
    return refl


def _add_noise(dn, seed, row0, sigma):
    """Add Gaussian noise drawn per image row, so the result does not depend on the block split."""
    for r in range(dn.shape[1]):
        rng = np.random.default_rng([int(seed), 0x5EED, row0 + r])
        dn[:, r, :] += rng.standard_normal((dn.shape[0], dn.shape[2]), dtype=np.float32) * sigma[:, None]


def _scene_block(width, height, row0, nrows, seed):
    """(int16 DN (224, nrows, width) canonical order, uint8 quality classes (nrows, width))."""
    if width < 1 or height < 1 or row0 < 0 or nrows < 1 or row0 + nrows > height:
        raise ValueError(f'Rows {row0}..{row0 + nrows} do not fit a {width} x {height} scene.')
    layout = _layout(int(width), int(height), int(seed))
    ys = np.arange(row0, row0 + nrows, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    weights, water = _weights(layout, ys, xs)
    refl = _reflectance(layout, ys, xs, weights, water)
    refl *= np.float32(1.0 / GAIN)
    dn = refl.reshape(-1, nrows, width)
    _, _, _, sigma, dead = _spectral_constants()
    _add_noise(dn, seed, row0, sigma)
    np.rint(dn, out=dn)
    np.clip(dn, -32767, 32767, out=dn)
    out = dn.astype(np.int16)
    px, py = np.meshgrid(xs, ys)
    inside = _inside_footprint(layout, px, py)
    out[:, ~inside] = NODATA
    out[dead] = NODATA
    classes = np.where(inside, np.where(water > 0.5, _QUALITY_WATER, _QUALITY_LAND), _QUALITY_BACKGROUND)
    return out, classes.astype(np.uint8)


def synthetic_block(width, height, row0, nrows, seed):
    """int16 DN (224, nrows, width), canonical order, of rows row0..row0+nrows of a width x height scene."""
    return _scene_block(width, height, row0, nrows, seed)[0]


def _block_rows(width):
    return max(1, min(256, BLOCK_BYTES // (width * _bands.N_BANDS * 4)))


# ----------------------------------------------------------------------------------------------------------------
# Writing rasters

_GTIFF_INTERLEAVE = {'BAND': 'BAND', 'PIXEL': 'PIXEL'}
_ENVI_INTERLEAVE = {'BAND': 'BSQ', 'LINE': 'BIL', 'PIXEL': 'BIP'}
_DTYPES = {'int16': (gdal.GDT_Int16, np.int16), 'float32': (gdal.GDT_Float32, np.float32)}


def _creation_options(driver, interleave):
    table = _GTIFF_INTERLEAVE if driver == 'GTiff' else _ENVI_INTERLEAVE
    if driver not in ('GTiff', 'ENVI') or interleave not in table:
        raise ValueError(f'Unsupported driver/interleave {driver}/{interleave}: GTiff supports BAND or PIXEL, '
                         'ENVI supports BAND, LINE or PIXEL.')
    return [f'INTERLEAVE={table[interleave]}']


def _create(path, driver, width, height, count, gdal_type, options):
    try:
        ds = gdal.GetDriverByName(driver).Create(path, width, height, count, gdal_type, options)
    except RuntimeError as exc:  # GDAL raises instead of returning None after gdal.UseExceptions()
        raise OutputError(f'GDAL could not create {path} ({exc}).') from exc
    if ds is None:
        raise OutputError(f'GDAL could not create {path} ({gdal.GetLastErrorMsg() or "unknown error"}).')
    return ds


def _write_rows(ds, row0, data):
    """Write a (bands, rows, width) block at row0; any GDAL failure becomes an OutputError."""
    bands_, nrows, width = data.shape
    try:
        failed = ds.WriteRaster(0, row0, width, nrows, data.tobytes(), band_list=list(range(1, bands_ + 1))) != 0
        message = gdal.GetLastErrorMsg()
    except RuntimeError as exc:
        failed, message = True, str(exc)
    if failed:
        raise OutputError(f'Writing rows {row0}..{row0 + nrows} failed ({message}); is the disk full?')


def _georeference(ds):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG_UTM33N)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform((ORIGIN[0], PIXEL_SIZE, 0.0, ORIGIN[1], 0.0, -PIXEL_SIZE))


def _envi_list(values):
    return '{' + ', '.join(f'{v:g}' for v in values) + '}'


def _set_band_info(ds, driver, wavelengths, fwhm, spectral):
    """Nodata, scale and (when `spectral`) wavelength metadata for every band."""
    for i, (wl, fw) in enumerate(zip(wavelengths, fwhm)):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(NODATA)
        band.SetScale(GAIN)
        band.SetOffset(0.0)
        if spectral:
            band.SetDescription(f'band {i + 1} ({wl:.1f} Nanometers)')
            if driver == 'GTiff':  # ENVI keeps these in its header (below); band items would add an .aux.xml
                band.SetMetadata({'wavelength': f'{wl:g}', 'fwhm': f'{fw:g}', 'wavelength_units': 'Nanometers'})
    if spectral and driver == 'ENVI':
        ds.SetMetadataItem('wavelength', _envi_list(wavelengths), 'ENVI')
        ds.SetMetadataItem('fwhm', _envi_list(fwhm), 'ENVI')
        ds.SetMetadataItem('wavelength_units', 'Nanometers', 'ENVI')
    if driver == 'ENVI':
        ds.SetDescription('EnMAP Compress synthetic scene')  # else ENVI's header names the temporary file


class _BandStats:
    """Per-band mean and standard deviation of the valid reflectance, accumulated block by block."""

    def __init__(self, n):
        self.count = np.zeros(n)
        self.total = np.zeros(n)
        self.squares = np.zeros(n)

    def add(self, dn):
        valid = dn != NODATA
        refl = np.where(valid, dn.astype(np.float64) * GAIN, 0.0).reshape(dn.shape[0], -1)
        self.count += valid.reshape(dn.shape[0], -1).sum(axis=1)
        self.total += refl.sum(axis=1)
        self.squares += (refl * refl).sum(axis=1)

    def mean_std(self):
        n = np.maximum(self.count, 1)
        mean = self.total / n
        std = np.sqrt(np.maximum(self.squares / n - mean * mean, 0))
        return mean, std, self.count > 0


def _write_blocks(ds, width, height, seed, perm, np_type, stats=None, classes_ds=None):
    """Generate the scene block by block, write it in file band order `perm` (canonical index per file band)."""
    step = _block_rows(width)
    for row0 in range(0, height, step):
        nrows = min(step, height - row0)
        dn, classes = _scene_block(width, height, row0, nrows, seed)
        if stats is not None:
            stats.add(dn)
        _write_rows(ds, row0, np.ascontiguousarray(dn[perm].astype(np_type)))
        if classes_ds is not None:
            classes_ds.GetRasterBand(1).WriteArray(classes, 0, row0)
        ds.FlushCache()  # keeps GDAL's block cache from holding the whole scene


def _file_order(band_order):
    if band_order == 'wavelength':
        return np.arange(_bands.N_BANDS)
    if band_order == 'detector':
        return _bands.detector_order_permutation()
    raise ValueError(f"band_order must be 'wavelength' or 'detector', got {band_order!r}.")


def write_scene(path, width=128, height=128, seed=0, band_order='wavelength', driver='GTiff', interleave='BAND',
                dtype='int16', spectral_metadata=True):
    """Write a synthetic EnMAP-like raster (UTM 33N, 30 m, nodata -32768, scale 1e-4) atomically; return its path.

    `spectral_metadata=False` leaves out wavelengths, FWHM and band descriptions (a plain 224-band raster).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'int16' or 'float32', got {dtype!r}.")
    options = _creation_options(driver, interleave)
    perm = _file_order(band_order)
    gdal_type, np_type = _DTYPES[dtype]
    table = _bands.standard_band_table()
    with atomic_output(path) as tmp:
        ds = _create(tmp, driver, width, height, _bands.N_BANDS, gdal_type, options)
        try:
            _georeference(ds)
            _set_band_info(ds, driver, table.wavelength_nm[perm], table.fwhm_nm[perm], spectral_metadata)
            _write_blocks(ds, width, height, seed, perm, np_type)
        finally:
            ds = None  # close before atomic_output moves the file (needed on Windows)
        if driver == 'ENVI':
            _drop_pam_copy(tmp)
    return os.fspath(path)


def _drop_pam_copy(path):
    """GDAL mirrors the ENVI header items into an .aux.xml; the header alone must carry them, as in real data."""
    aux = path + '.aux.xml'
    if os.path.exists(aux):
        os.remove(aux)


# ----------------------------------------------------------------------------------------------------------------
# A complete L2A product

@dataclass
class SyntheticProduct:
    """Paths of a written synthetic product."""

    product_name: str
    folder: str
    xml: str
    image: str
    quality_classes: Optional[str]
    zip: Optional[str]


class _Node:
    """A minimal XML element for WRITING metadata (no xml.etree import in shipped code; parsing uses defusedxml)."""

    def __init__(self, tag, attrib=None, text=None):
        self.tag, self.attrib, self.text, self.children = tag, attrib or {}, text, []

    def lines(self, depth=0):
        pad = '  ' * depth
        attrs = ''.join(f' {k}="{html.escape(v)}"' for k, v in self.attrib.items())
        if self.children:
            yield f'{pad}<{self.tag}{attrs}>'
            for child in self.children:
                yield from child.lines(depth + 1)
            yield f'{pad}</{self.tag}>'
        elif self.text is None:
            yield f'{pad}<{self.tag}{attrs}/>'
        else:
            yield f'{pad}<{self.tag}{attrs}>{html.escape(self.text, quote=False)}</{self.tag}>'


def _sub(parent, tag, text=None, **attrib):
    el = _Node(tag, {k: str(v) for k, v in attrib.items()}, None if text is None else str(text))
    parent.children.append(el)
    return el


def _corner_lonlats(width, height, seed):
    """Lon/lat of the footprint corners (upper_left, lower_left, lower_right, upper_right) and centre."""
    cx, cy, c, s, hw, hh = _layout(width, height, seed).footprint
    local = [(-hw, -hh), (-hw, hh), (hw, hh), (hw, -hh)]
    pixels = [(cx + u * c - v * s, cy + u * s + v * c) for u, v in local] + [(cx, cy)]
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(EPSG_UTM33N)
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(utm, wgs)
    points = []
    for px, py in pixels:
        lon, lat, _ = transform.TransformPoint(ORIGIN[0] + px * PIXEL_SIZE, ORIGIN[1] - py * PIXEL_SIZE)
        points.append((lon, lat))
    return points


def _xml_coverage(parent, width, height, seed):
    polygon = _sub(_sub(parent, 'spatialCoverage'), 'boundingPolygon')
    frames = ('upper_left', 'lower_left', 'lower_right', 'upper_right')
    points = _corner_lonlats(width, height, seed)
    for frame, (lon, lat) in zip(frames + ('upper_left', 'center'), points[:4] + points[:1] + points[4:]):
        point = _sub(polygon, 'point')
        _sub(point, 'frame', frame)
        _sub(point, 'latitude', f'{lat:.7f}', unit='DEG')
        _sub(point, 'longitude', f'{lon:.7f}', unit='DEG')
        _sub(point, 'utcTime', '2024-01-01T10:10:12.000000Z')


def _xml_header(root, name, image_format):
    meta = _sub(root, 'metadata')
    schema = _sub(meta, 'schema')
    _sub(schema, 'versionSchema', '01.04.00')
    _sub(schema, 'processingLevel', 'L2A')
    _sub(meta, 'name', f'{name}-METADATA.XML')
    _sub(meta, 'comment', 'Synthetic EnMAP Level 2A product written by EnMAP Compress (not DLR data)')
    processing = _sub(root, 'processing')
    _sub(processing, 'productFormat', 'GeoTIFF+Metadata' if image_format == 'GTiff' else 'ENVI+Metadata')
    _sub(processing, 'mapProjection', 'UTM_Zone_of_Scene_Center')
    _sub(processing, 'correctionType', 'Land_Mode')


def _xml_base(root, width, height, seed):
    base = _sub(root, 'base')
    _xml_coverage(base, width, height, seed)
    temporal = _sub(base, 'temporalCoverage')
    _sub(temporal, 'startTime', '2024-01-01T10:10:10.000000Z')
    _sub(temporal, 'stopTime', '2024-01-01T10:10:14.000000Z')
    _sub(base, 'format', 'ENMAP_L2A')
    _sub(base, 'level', 'L2A')


def _xml_detector_quality(specific, tag, numbers):
    quality = _sub(specific, tag)
    _sub(quality, 'numChannelsExpected', len(numbers))
    _sub(quality, 'expectedChannelsList', ','.join(str(n) for n in numbers))
    _sub(quality, 'numChannelsMissing', 0)
    _sub(quality, 'missingChannelsList')


def _xml_specific(root, width, height):
    table = _bands.standard_band_table()
    specific = _sub(root, 'specific')
    flags = _sub(specific, 'qualityFlag')
    for tag, value in (('cloudCover', 0), ('sceneWV', 1800), ('sceneAOT', 150)):
        _sub(flags, tag, value)
    _xml_detector_quality(specific, 'vnirProductQuality', table.product_band[table.detector == 'VNIR'])
    _xml_detector_quality(specific, 'swirProductQuality', table.product_band[table.detector == 'SWIR'])
    _sub(specific, 'widthOfScene', 1000)
    _sub(specific, 'heightOfScene', 1024)
    characterisation = _sub(specific, 'bandCharacterisation')
    for number, wl, fw in zip(table.product_band, table.wavelength_nm, table.fwhm_nm):
        band = _sub(characterisation, 'bandID', number=number)
        _sub(band, 'wavelengthCenterOfBand', f'{wl:g}')
        _sub(band, 'FWHMOfBand', f'{fw:g}')
        _sub(band, 'GainOfBand', '0.0001')
        _sub(band, 'OffsetOfBand', '0')
    _sub(specific, 'pixelSizeOfOrthoScene', 30)
    _sub(specific, 'widthOfOrthoScene', width)
    _sub(specific, 'heightOfOrthoScene', height)


def _xml_product(root, name, files, width, height, stats):
    table = _bands.standard_band_table()
    product = _sub(root, 'product')
    merge = _sub(_sub(product, 'image'), 'merge')
    _sub(merge, 'channels', _bands.N_BANDS)
    _sub(merge, 'name', os.path.basename(files[0]))
    _sub(merge, 'format', 'binary')
    dimension = _sub(merge, 'dimension')
    _sub(dimension, 'columns', width)
    _sub(dimension, 'rows', height)
    ortho = _sub(product, 'ortho')
    _sub(ortho, 'projection', 'UTM_Zone33_North')
    _sub(ortho, 'resolution', 30)
    _sub(ortho, 'resampling', 'bilinear')
    info = _sub(product, 'productFileInformation')
    for number, path in enumerate([f'{name}-METADATA.XML'] + files, start=1):
        entry = _sub(info, 'file', number=number)
        _sub(entry, 'name', os.path.basename(path))
        _sub(entry, 'format', 'xml' if path.endswith('.XML') else 'binary')
    _xml_band_statistics(product, table, stats)


def _xml_band_statistics(product, table, stats):
    mean, std, valid = stats.mean_std()
    statistics = _sub(product, 'bandStatistics')
    for i, (number, wl) in enumerate(zip(table.product_band, table.wavelength_nm)):
        band = _sub(statistics, 'bandID', number=number)
        _sub(band, 'waveLength', f'{wl:g}')
        # dead bands: the DLR convention the EnMAP-Box reads (mean -1000000, stdDeviation 0)
        _sub(band, 'mean', f'{mean[i]:.6g}' if valid[i] else '-1000000')
        _sub(band, 'stdDeviation', f'{std[i]:.6g}' if valid[i] else '0')


def _write_metadata_xml(path, name, files, size, seed, image_format, stats):
    width, height = size
    root = _Node('level_X')
    _xml_header(root, name, image_format)
    _xml_base(root, width, height, seed)
    _xml_specific(root, width, height)
    _xml_product(root, name, files, width, height, stats)
    text = "<?xml version='1.0' encoding='UTF-8'?>\n" + '\n'.join(root.lines()) + '\n'
    with atomic_output(path) as tmp, open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)


def _write_product_image(image_path, classes_path, width, height, seed, image_format):
    """The spectral image as DLR delivers it: int16, ascending wavelengths, no band metadata (that is in the XML)."""
    stats = _BandStats(_bands.N_BANDS)
    driver = 'GTiff' if image_format == 'GTiff' else 'ENVI'
    options = ['INTERLEAVE=BAND'] if driver == 'GTiff' else ['INTERLEAVE=BSQ']
    with atomic_output(image_path) as tmp, atomic_output(classes_path) as tmp_classes:
        ds = _create(tmp, driver, width, height, _bands.N_BANDS, gdal.GDT_Int16, options)
        classes = _create(tmp_classes, 'GTiff', width, height, 1, gdal.GDT_Byte, [])
        try:
            for target in (ds, classes):
                _georeference(target)
            if driver == 'ENVI':
                ds.SetDescription('EnMAP Compress synthetic scene')
            _write_blocks(ds, width, height, seed, np.arange(_bands.N_BANDS), np.int16, stats, classes)
        finally:
            ds = classes = None
    return stats


def _rename_envi_header(image_path):
    """GDAL writes `x.hdr`; DLR delivers `<PRODUCT>-SPECTRAL_IMAGE.HDR`."""
    lower = os.path.splitext(image_path)[0] + '.hdr'
    upper = os.path.splitext(image_path)[0] + '.HDR'
    if os.path.exists(lower) and lower != upper:
        os.replace(lower, upper)
    return upper


def _write_zip(zip_path, name, files):
    with atomic_output(zip_path) as tmp:
        with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            zf.writestr(zipfile.ZipInfo(f'{name}/'), b'')
            for path in files:
                zf.write(path, f'{name}/{os.path.basename(path)}')


def write_product(folder, width=128, height=128, seed=0, make_zip=False, image_format='GTiff',
                  product_name=PRODUCT_NAME):
    """Write a complete synthetic L2A product folder `<folder>/<PRODUCT>/` (and optionally `<folder>/<PRODUCT>.ZIP`).

    image_format 'GTiff' writes -SPECTRAL_IMAGE.TIF, 'ENVI' writes -SPECTRAL_IMAGE.BSQ + .HDR.
    """
    if image_format not in ('GTiff', 'ENVI'):
        raise ValueError(f"image_format must be 'GTiff' or 'ENVI', got {image_format!r}.")
    product_dir = os.path.join(os.fspath(folder), product_name)
    prefix = os.path.join(product_dir, product_name)
    image = prefix + ('-SPECTRAL_IMAGE.TIF' if image_format == 'GTiff' else '-SPECTRAL_IMAGE.BSQ')
    classes = prefix + '-QL_QUALITY_CLASSES.TIF'
    stats = _write_product_image(image, classes, width, height, seed, image_format)
    files = [image] + ([_rename_envi_header(image)] if image_format == 'ENVI' else []) + [classes]
    xml = prefix + '-METADATA.XML'
    _write_metadata_xml(xml, product_name, files, (width, height), seed, image_format, stats)
    zip_path = None
    if make_zip:
        zip_path = os.path.join(os.fspath(folder), product_name + '.ZIP')
        _write_zip(zip_path, product_name, [xml] + files)
    return SyntheticProduct(product_name=product_name, folder=product_dir, xml=xml, image=image,
                            quality_classes=classes, zip=zip_path)
