"""Writing spectral GeoTIFFs window by window, with georeferencing, nodata, wavelengths and scale carried over."""
import contextlib
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .errors import OutputError
from .gdalerrors import GdalError, checked, close, disk_space_message, failure, out_of_space
from .outputs import outer_folder, shown_path

GDAL_TYPES = {'int16': 'Int16', 'uint16': 'UInt16', 'int32': 'Int32', 'float32': 'Float32', 'float64': 'Float64',
              'uint8': 'Byte'}


@dataclass
class BandInfo:
    name: str = ''
    wavelength: Optional[float] = None
    fwhm: Optional[float] = None
    scale: Optional[float] = None
    offset: Optional[float] = None


NO_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # what GDAL reports for a raster without one


@dataclass
class RasterLayout:
    width: int
    height: int
    dtype: str
    nodata: Optional[float]
    crs_wkt: str
    geotransform: tuple
    bands: List[BandInfo]
    bad_bands: Optional[List[int]] = None  # 0-based file bands flagged bad (written as ENVI's bbl list)
    gcps: tuple = ()  # ground control points (pixel, line, x, y, z) in gcp_crs_wkt, for a raster without a geotransform
    gcp_crs_wkt: str = ''
    rpc: dict = field(default_factory=dict)  # RPC metadata items as GDAL's RPC domain holds them
    pixel_is_point: bool = False  # AREA_OR_POINT=Point: the values are samples at the pixels' centres


def _gdal():
    from osgeo import gdal

    return gdal


def _fast_compression():
    """ZSTD level 1 writes about four times faster than DEFLATE; older GDAL builds may lack it."""
    options = _gdal().GetDriverByName('GTiff').GetMetadataItem('DMD_CREATIONOPTIONLIST') or ''
    return ['COMPRESS=ZSTD', 'ZSTD_LEVEL=1'] if 'ZSTD' in options else ['COMPRESS=DEFLATE', 'ZLEVEL=1']


BLOCK = 256  # the side of a TIFF block (tile) unless the writer is given the side of the windows it writes


def block_for(window):
    """The TIFF block side for windows of `window` px a side (a .ehc file's tiles): that side where TIFF allows it
    (a multiple of 16, at most BLOCK), so each window completes its own blocks and is flushed alone; else BLOCK.
    (128 px error-bounded tiles in 256 px blocks left a whole row of blocks in GDAL's cache: 1 GB decompressing a
    6000 px wide mosaic.)"""
    return int(window) if window is not None and 16 <= window <= BLOCK and window % 16 == 0 else BLOCK


def _block(size, block=BLOCK):
    """`block` px, or less for a small raster (TIFF tiles are multiples of 16): a 224-band 8 x 8 px image would
    otherwise write 224 full 256 x 256 tiles."""
    return block if size is None else min(block, -(-int(size) // 16) * 16)


def creation_options(dtype, band_count, width=None, height=None, block=BLOCK):
    predictor = '3' if dtype.startswith('float') else '2'
    return ['TILED=YES', f'BLOCKXSIZE={_block(width, block)}', f'BLOCKYSIZE={_block(height, block)}',
            *_fast_compression(), f'PREDICTOR={predictor}',
            'NUM_THREADS=2', 'BIGTIFF=IF_SAFER', 'INTERLEAVE=PIXEL' if band_count <= 4 else 'INTERLEAVE=BAND']


class GeoTiffWriter:
    """Creates the file at `path` (the caller makes it atomic) and writes (bands, h, w) windows.

    Every GDAL failure is an OutputError (disk full says so), whatever GDAL's exception mode. block: the side of
    its TIFF blocks (block_for).
    """

    def __init__(self, path, layout: RasterLayout, block=BLOCK):
        gdal = _gdal()
        gdal_type = getattr(gdal, 'GDT_' + GDAL_TYPES[layout.dtype])
        self.path, self.ds = path, None
        with self._gdal('create') as recorder:
            self.ds = gdal.GetDriverByName('GTiff').Create(
                path, layout.width, layout.height, len(layout.bands), gdal_type,
                options=creation_options(layout.dtype, len(layout.bands), layout.width, layout.height, block))
            if self.ds is None:
                raise failure(recorder)
            if layout.crs_wkt:
                self.ds.SetProjection(layout.crs_wkt)
            if layout.gcps and tuple(layout.geotransform) == NO_GEOTRANSFORM:  # (a GeoTIFF holds one of them)
                self.ds.SetGCPs([gdal.GCP(x, y, z, pixel, line) for pixel, line, x, y, z in layout.gcps],
                                layout.gcp_crs_wkt)
            elif layout.geotransform and tuple(layout.geotransform) != NO_GEOTRANSFORM:  # (stated, it would say
                self.ds.SetGeoTransform(tuple(layout.geotransform))  # the image is georeferenced, upside down)
            if layout.rpc:
                self.ds.SetMetadata(dict(layout.rpc), 'RPC')
            if layout.pixel_is_point:  # (GDAL then stores the same corners as a PixelIsPoint tie point)
                self.ds.SetMetadataItem('AREA_OR_POINT', 'Point')
            for index, info in enumerate(layout.bands, start=1):
                self._describe(self.ds.GetRasterBand(index), info, layout.nodata)
            if layout.bad_bands is not None:
                bad = set(layout.bad_bands)
                self.ds.SetMetadataItem('bbl', '{' + ', '.join('0' if i in bad else '1'
                                                               for i in range(len(layout.bands))) + '}', 'ENVI')
        self.dtype = np.dtype(layout.dtype)
        self.width, self.height = layout.width, layout.height
        self.block_columns = _block(layout.width, block)
        self.block_rows = _block(layout.height, block)  # rows of a TIFF block: flush() after whole rows of them

    @contextlib.contextmanager
    def _gdal(self, action):
        try:
            with checked() as recorder:
                yield recorder
        except GdalError as exc:
            self._release()
            target = shown_path(self.path)
            folder = outer_folder(os.path.dirname(os.path.abspath(self.path)))
            first = str(exc).split('; ')[0]  # GDAL's first complaint is the cause
            if out_of_space(os.path.dirname(self.path), exc):
                raise OutputError(f'Cannot {action} {target}: {disk_space_message(folder)} ({first}).') from None
            raise OutputError(f'Cannot {action} {target} ({first}).') from None

    def _release(self):
        """Close the file (Windows cannot move or delete open files); after a failure GDAL's complaints about the
        last flush repeat the first one and are dropped."""
        dataset, self.ds = self.ds, None
        with contextlib.suppress(GdalError), checked():
            close(dataset)

    @staticmethod
    def _describe(band, info, nodata):
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
        if info.name:
            band.SetDescription(info.name)
        if info.wavelength is not None:
            band.SetMetadataItem('wavelength', band_value(info.wavelength))
            band.SetMetadataItem('wavelength_units', 'Nanometers')
        if info.fwhm is not None:
            band.SetMetadataItem('fwhm', band_value(info.fwhm))
        if info.scale is not None:
            band.SetScale(float(info.scale))
        if info.offset is not None:
            band.SetOffset(float(info.offset))

    def write(self, x, y, cube):
        cube = np.asarray(cube, dtype=self.dtype)
        with self._gdal('write') as recorder:
            for index in range(cube.shape[0]):
                if self.ds.GetRasterBand(index + 1).WriteArray(cube[index], xoff=x, yoff=y) != 0:
                    raise failure(recorder)

    def completes_blocks(self, x, y, width, height):
        """Whether a window written in one piece covers whole TIFF blocks (its edges on the block grid or the
        raster's): once it is written its blocks are complete, and flush() can encode them without a block that a
        later window would fill (GDAL would read it back)."""
        right, bottom = x + width, y + height
        return x % self.block_columns == 0 and y % self.block_rows == 0 and \
            (right % self.block_columns == 0 or right == self.width) and \
            (bottom % self.block_rows == 0 or bottom == self.height)

    def ends_block_row(self, x, y, width, height):
        """Whether a window is the last of a row of tiles that completes a row of blocks (its right edge the
        raster's, its bottom on the block grid or the raster's): flush() then encodes that row."""
        bottom = y + height
        return x + width == self.width and (bottom % self.block_rows == 0 or bottom == self.height)

    def set_metadata(self, items):
        """Dataset-level metadata items (for example the error bound and the achieved maximum error)."""
        with self._gdal('write'):
            for key, value in items.items():
                self.ds.SetMetadataItem(str(key), str(value))

    def flush(self, progress=None):
        """Write the blocks held in GDAL's cache to the file and drop them (decoding keeps its memory bounded
        whatever the process-wide GDAL_CACHEMAX): call it when whole blocks are complete (a row of them, or a
        window's: completes_blocks). With progress band by band, in band order as GDAL's own flush goes, calling
        progress(fraction done) after each: a row of blocks of 224 bands takes seconds to encode. Without, all bands
        in one call (a tile's blocks: a full-tile rdnet decompress measured a few percent faster so)."""
        with self._gdal('write'):
            if progress is not None:
                count = self.ds.RasterCount
                for index in range(1, count + 1):
                    self.ds.GetRasterBand(index).FlushCache()
                    progress(index / count)
            self.ds.FlushCache()

    def close(self):
        """Flush and close; a failure (the last blocks did not fit on the disk) is an OutputError."""
        if self.ds is not None:
            with self._gdal('finish writing'):
                self.ds.FlushCache()
                self._release()  # the file's last bytes are written here


def band_value(value):
    """A wavelength or FWHM as band metadata: the shortest decimal that reads back as the same number (418.2,
    2257.8823, 1000; six significant digits, as earlier versions wrote them, cut 2257.8823 nm to 2257.88)."""
    return np.format_float_positional(float(value), trim='-')


def output_values(values, dtype, nodata=None, exact=False, overwrite=False):
    """Reconstructed DN (any float array) rounded and clipped into the output type.

    Integer outputs never wrap around; a lossy reconstruction never collides with the nodata value
    (rounded_values), while an `exact` (error-bounded) one keeps every value (its encoder listed the samples
    whose value would read as nodata, or would not where the input said nodata, in the tile's sample section).
    overwrite: the rounding may reuse `values` (a tile-sized array fewer).
    """
    dtype = np.dtype(dtype)
    return np.asarray(rounded_values(values, dtype, nodata, exact, overwrite), dtype=dtype)


def rounded_values(values, dtype, nodata=None, exact=False, overwrite=False):
    """output_values before its cast: for an integer output type the values rounded and clipped into its range,
    still floats (in place with `overwrite`); for a float type `values` as they are. A lossy (not `exact`) value
    that would equal nodata in the output type moves off it by the least step: one DN towards the inside of the
    type's range, or the nearest float (a valid sample must not read as no data; 0.5.3 let it when nodata was
    not the type's minimum, for example nodata 0 and dark water)."""
    dtype = np.dtype(dtype)
    writable = overwrite and values.flags.writeable
    if dtype.kind not in 'iu':
        return values if exact else _off_nodata(values, dtype, nodata, writable)
    info = np.iinfo(dtype)
    low = info.min + 1 if nodata is not None and nodata == info.min and not exact else info.min
    rounded = np.rint(values, out=values if writable else None)
    if not (rounded.size and low <= rounded.min() and rounded.max() <= info.max):  # (NaN fails both)
        np.clip(rounded, low, info.max, out=rounded)  # in place: one tile-sized array fewer
    # (when the clip would change nothing, two reductions cost a third of its pass)
    if not exact and nodata is not None and low <= nodata <= info.max and float(nodata).is_integer():
        rounded[rounded == nodata] = nodata - 1 if nodata == info.max else nodata + 1
    return rounded


def _off_nodata(values, dtype, nodata, writable):
    """Float `values` with each one equal to nodata in the output `dtype` moved to the nearest normal float of
    their own type (towards +inf, or -inf from the largest finite float; no subnormal: a reader that flushes
    them to zero, as onnxruntime's threads may, would see nodata 0 again)."""
    if nodata is None or not np.isfinite(nodata) or not values.size:
        return values
    marker = dtype.type(nodata)
    hit = values == marker
    if not hit.any():
        return values
    values = values if writable else values.copy()
    own, info = values.dtype.type(marker), np.finfo(values.dtype)
    step = np.nextafter(own, values.dtype.type(np.inf if own < info.max else -np.inf))  # (in their type)
    values[hit] = np.copysign(info.tiny, step) if abs(step) < info.tiny else step
    return values
