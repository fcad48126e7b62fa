"""What the decoder checks in a .ehc file before it uses anything in it (docs/format.md, "What the decoder
validates").

A file whose checksums are right can still be wrong: a buggy writer, or a crafted file. So every header, index and
chunk field is checked for type, range and consistency with the raster and the band table before it is used, and
before anything is allocated from it; a violation is one FormatError that names the file and the field. The
container (container.py) bounds sizes, inflation and JSON nesting; this module checks what the codec's fields mean:
the raster description, the codec description (its fields: codecheader.CodecInfo.from_json), the model it names, and
that the index covers the tile grid exactly once. Memory is then bounded by the tile size (codecheader.MAX_TILE_SIZE),
whatever the file says.
"""
import math
import re
from dataclasses import dataclass

import numpy as np

from .bands import MAX_GAIN, MIN_GAIN, N_BANDS
from .codecheader import BAND_GAINS, FORMAT_NAME, CodecInfo
from .container import EhcReader
from .errors import EnmapCompressError, FormatError
from .geotiff import GDAL_TYPES
from .headerfields import MAX_TEXT, HeaderFields, field_error, is_finite, is_int, shown
from .rasterheader import NAME_TEMPLATES, unpack_raster
from .tiling import Tile, tile_grid

MAX_SIDE = 1 << 20  # pixels per raster side: 31,000 km of EnMAP swath
MIN_CHUNK_BYTES = 8  # the smallest chunk a valid file holds: a 3.x empty tile (5-byte record, head, length, mask)
INDEX_BYTES_PER_TILE = 256  # a chunk's index entry takes about 100 bytes of JSON
INDEX_BASE_BYTES = 1 << 16  # blobs, footer and slack
MAX_BAND_TABLE_MILLI = 10 ** 9  # |delta| of a 0.1 band table in 1/1000 nm
MAX_GCPS = 10000  # ground control points of a raster (GeoTIFF files hold a few to a few thousand)
MAX_RPC_ITEMS = 64  # RPC metadata items (GDAL's RPC domain has 20)
_EPSG = re.compile(r'EPSG:([1-9][0-9]{0,5})')


@dataclass
class CheckedHeader:
    """A header that passed every check: the raster unpacked (rasterheader.unpack_raster), the codec part
    (codecheader.CodecInfo) and the tile grid the index must cover."""

    raster: dict
    codec: CodecInfo
    tiles: list


# --- the header ---------------------------------------------------------------------------------------------------

def checked_header(header, path, payload_bytes):
    """CheckedHeader of a parsed header, or FormatError. payload_bytes: the size of the file's payload area (a file
    cannot hold more tiles than it has bytes for, so the tile count and the index are bounded by the file size)."""
    top = HeaderFields(header, '', path)
    top.text('format', choices=(FORMAT_NAME,))
    for key in ('device', 'software'):
        top.optional_type(key, dict, 'an object')
    top.optional_type('created', str, 'a text')
    packed = _checked_raster(HeaderFields(header.get('raster'), 'raster', path))
    codec = CodecInfo.from_json(header.get('codec'), path)
    if codec.radiometry is not None:
        _check_band_gains(HeaderFields(packed, 'raster', path))
    width, height, size = packed['width'], packed['height'], codec.tile_size
    count = math.ceil(width / size) * math.ceil(height / size)
    if count * MIN_CHUNK_BYTES > payload_bytes:
        raise FormatError(f'{path}: the header fields raster.width, raster.height and codec.tile_size make {count} '
                          f'tiles of {size} px; a file with {payload_bytes} payload bytes cannot hold them')
    try:
        raster = unpack_raster(packed)
    except FormatError as exc:  # it names the field, not the file
        raise FormatError(f'{path}: {exc}') from exc
    except EnmapCompressError:
        raise
    except Exception as exc:  # a field added since these checks were written: still one message
        raise FormatError(f'{path}: the header field raster is malformed ({type(exc).__name__}: {exc})') from exc
    return CheckedHeader(raster, codec, tile_grid(width, height, size))


def _checked_raster(fields):
    fields.integer('width', 1, MAX_SIDE)
    fields.integer('height', 1, MAX_SIDE)
    fields.integer('band_count', N_BANDS, N_BANDS)
    dtype = np.dtype(fields.text('dtype', choices=tuple(GDAL_TYPES)))
    fields.get('nodata')  # present in every file (null: none); a missing one must not read as "no nodata"
    for key in ('nodata', 'fill'):
        _check_fill_value(fields, key, dtype)
    _check_crs(fields)
    geotransform = fields.get('geotransform')
    if not isinstance(geotransform, list) or len(geotransform) != 6 or \
            not all(is_finite(v) for v in geotransform):
        fields.fail('geotransform', f'must be a list of 6 finite numbers, not {shown(geotransform)}')
    fields.optional_type('band_order', str, 'a text')
    order = fields.get('canonical_index')
    if isinstance(order, str):
        fields.text('canonical_index', choices=('identity', 'detector'))
    elif sorted(fields.indices('canonical_index', N_BANDS)) != list(range(N_BANDS)):
        fields.fail('canonical_index', 'must list each band exactly once')
    has_wavelengths = _check_band_table(fields, 'wavelengths', required=True)  # (every writer states them; the
    # decoder and `info` need them)
    _check_band_table(fields, 'fwhm')
    _check_band_names(fields, has_wavelengths)
    for key in ('gains', 'offsets'):
        value = fields.get(key)
        if not (is_finite(value) or (isinstance(value, list) and len(value) == N_BANDS
                                     and all(is_finite(v) for v in value))):
            fields.fail(key, f'must be a finite number or a list of {N_BANDS} of them, not {shown(value)}')
    fields.indices('dead_bands', ascending=True)
    _check_control(fields)
    product = fields.obj.get('product_name')
    if product is not None:
        fields.text('product_name')
    return fields.obj


def _check_control(fields):
    """Optional ground control points (raster.gcps: a CRS as raster.crs and up to MAX_GCPS points of 5 finite
    numbers), RPC metadata (raster.rpc: up to MAX_RPC_ITEMS texts), the pixel-is-point flag (raster.pixel_is_point:
    a boolean) and an ENVI bad band list (raster.bad_bands: band indices, ascending)."""
    if 'gcps' in fields.obj:
        gcps = HeaderFields(fields.obj['gcps'], f'{fields.name}.gcps', fields.path)
        _check_crs(gcps)
        points = gcps.get('points')
        if not isinstance(points, list) or not 0 < len(points) <= MAX_GCPS or not all(
                isinstance(p, list) and len(p) == 5 and all(is_finite(v) for v in p)
                for p in points):
            gcps.fail('points', f'must be a list of 1 to {MAX_GCPS} lists of 5 finite numbers, not {shown(points)}')
    fields.optional_type('pixel_is_point', bool, 'true or false')
    if 'bad_bands' in fields.obj:
        fields.indices('bad_bands', ascending=True)
    if 'rpc' in fields.obj:
        rpc = HeaderFields(fields.obj['rpc'], f'{fields.name}.rpc', fields.path)
        if len(rpc.obj) > MAX_RPC_ITEMS:
            rpc.fail('', f'must have at most {MAX_RPC_ITEMS} items, not {len(rpc.obj)}')
        for key in rpc.obj:
            rpc.text(key)


def _check_fill_value(fields, key, dtype):
    """nodata (and the fill value of nodata pixels): a number the output type can hold, or absent/null."""
    value = fields.obj.get(key)
    if value is None:
        return
    if dtype.kind == 'f':
        fields.number(key, finite=False)
        largest = float(np.finfo(dtype).max)
        if (is_int(value) or math.isfinite(value)) and abs(value) > largest:  # (GDAL reads such a nodata as inf:
            # no writer states it; an integer beyond float range is one too)
            fields.fail(key, f'must be a {dtype.name} value (at most {largest:g} in magnitude, or inf or NaN), '
                        f'not {shown(value)}')
        return
    info = np.iinfo(dtype)
    fields.number(key)
    if not info.min <= value <= info.max:
        fields.fail(key, f'must lie within the range of {dtype.name} ({info.min} to {info.max}), not {shown(value)}')


def _check_crs(fields):
    """'' (none), 'EPSG:<code>' or a WKT that GDAL reads."""
    text = fields.text('crs')
    if not text:
        return
    if '\0' in text:  # (GDAL's bindings raise TypeError on it)
        fields.fail('crs', f'is not a coordinate reference system GDAL knows ({shown(text)}: it holds a NUL)')
    from osgeo import osr

    from .gdalerrors import GdalError, checked

    match = _EPSG.fullmatch(text)
    try:
        with checked():
            srs = osr.SpatialReference()
            status = srs.ImportFromEPSG(int(match.group(1))) if match else srs.ImportFromWkt(text)
            if status != 0:
                raise GdalError(f'OGR error {status}')
    except GdalError as exc:
        fields.fail('crs', f'is not a coordinate reference system GDAL knows ({shown(text)}: {exc})')


def _check_band_table(fields, name, required=False):
    """`<name>_delta` (a delta string, checked when unpacked) or `<name>_milli` (224 integers, 0.1 files), or null
    unless `required`. Returns whether the table is present."""
    for key in (f'{name}_delta', f'{name}_milli'):
        if key not in fields.obj:
            continue
        value = fields.obj[key]
        if value is None:
            if required:
                fields.fail(key, 'must be a band table, not null')
            return False
        if key.endswith('_delta'):
            fields.text(key)
        elif not isinstance(value, list) or len(value) != N_BANDS or \
                not all(is_int(v) and abs(v) <= MAX_BAND_TABLE_MILLI for v in value):
            fields.fail(key, f'must be a list of {N_BANDS} integers within ±{MAX_BAND_TABLE_MILLI}, not '
                             f'{shown(value)}')
        return True
    fields.fail(f'{name}_delta', 'is missing')
    return False


def _check_band_names(fields, has_wavelengths):
    names = fields.get('band_names')
    if is_int(names):
        if not 0 <= names < len(NAME_TEMPLATES) or not has_wavelengths:
            fields.fail('band_names', f'names template {names} does not exist or needs wavelengths')
    elif not isinstance(names, list) or len(names) != N_BANDS or \
            not all(isinstance(n, str) and len(n) <= MAX_TEXT for n in names):
        fields.fail('band_names', f'must be a template number or a list of {N_BANDS} texts, not {shown(names)}')


def _check_band_gains(raster):
    """Files whose models saw DN x gain + offset: gains finite and non-zero, offsets finite."""
    for key, allow_zero in (('gains', False), ('offsets', True)):
        value = raster.obj[key]
        values = value if isinstance(value, list) else [value]
        if not all(is_finite(v) and (allow_zero or MIN_GAIN <= abs(v) <= MAX_GAIN) for v in values):
            raster.fail(key, ('must be finite numbers' if allow_zero else f'must be numbers of magnitude {MIN_GAIN:g} '
                                                                          f'to {MAX_GAIN:g}') +
                        f' when codec.radiometry is {BAND_GAINS!r}, not {shown(value)}')


# --- the model named by the header ----------------------------------------------------------------------------------

def check_coder(checked, coder, path):
    """The header against the model package and coder built from it: quality level, step, kind, band set and
    extra bands must be what that model and the file's raster give."""
    info, meta, model = checked.codec, coder.package.meta, coder.package.model_id
    levels = {q.level: q for q in meta.quality_levels}
    if info.quality not in levels:
        raise field_error(path, 'codec.quality', f'is {info.quality}, but model {model} has levels {sorted(levels)}')
    expected = {'step': levels[info.quality].step, 'model_kind': coder.transform.kind,
                'band_set': meta.band_set, 'extra_step_dn': coder.extra_step_dn}
    for key, value in expected.items():
        stated = getattr(info, key)
        if stated is not None and stated != value:  # None: a file older than the field
            raise field_error(path, f'codec.{key}', f'is {shown(stated)}, but model {model} gives {value!r}')
    dead = np.zeros(N_BANDS, bool)
    dead[checked.raster['dead_bands']] = True
    dead = dead[checked.raster['canonical_index']]
    allowed = set(range(N_BANDS)) - {int(b) for b in coder.coded} - set(np.flatnonzero(dead).tolist())
    extra = set(info.extra_bands)
    if not extra <= allowed:
        raise field_error(path, 'codec.extra_bands', f'lists bands the model codes or that are dead: '
                                                     f'{sorted(extra - allowed)}')
    if coder.lossless and extra != allowed:
        raise field_error(path, 'codec.extra_bands', f'must list every band the model does not code in a lossless '
                                                     f'file (missing: {sorted(allowed - extra)})')


# --- the index ----------------------------------------------------------------------------------------------------

def index_limit(checked):
    """The most bytes the index of a valid file with this header inflates to."""
    return INDEX_BASE_BYTES + INDEX_BYTES_PER_TILE * len(checked.tiles)


def check_index(reader, checked):
    """Every tile of the grid is covered by exactly one chunk, whose meta is that tile; the footer's pixel count
    fits the raster."""
    path, tiles = reader.path, {(t.x, t.y): t for t in checked.tiles}
    raster = checked.raster
    if reader.chunk_count != len(tiles):
        raise FormatError(f'{path}: the index lists {reader.chunk_count} chunks, but the {raster["width"]} x '
                          f'{raster["height"]} raster in tiles of {checked.codec.tile_size} px has {len(tiles)}')
    seen = {}
    for index in range(reader.chunk_count):
        meta = reader.chunk_meta(index)
        tile = _tile_of(meta)
        if tile is None or tiles.get((tile.x, tile.y)) != tile:
            raise FormatError(f'{path}: chunk {index} claims the tile {shown(meta)}, which is not a tile of the '
                              f'{raster["width"]} x {raster["height"]} raster in tiles of '
                              f'{checked.codec.tile_size} px')
        if (tile.x, tile.y) in seen:
            raise FormatError(f'{path}: chunks {seen[(tile.x, tile.y)]} and {index} both claim the tile at '
                              f'({tile.x}, {tile.y})')
        seen[(tile.x, tile.y)] = index
    valid = reader.footer.get('valid_pixels')
    if valid is not None and not (is_int(valid) and 0 <= valid <= raster['width'] * raster['height']):
        raise FormatError(f'{path}: the footer field valid_pixels must be an integer from 0 to the pixel count, '
                          f'not {shown(valid)}')


def _tile_of(meta):
    if set(meta) != {'x', 'y', 'w', 'h'} or not all(is_int(v) for v in meta.values()):
        return None
    return Tile.from_dict(meta)


# --- opening --------------------------------------------------------------------------------------------------------

def open_checked(path):
    """(EhcReader, CheckedHeader) of a .ehc file whose header and index passed every check above; close the reader
    when done. The index is read only after the header, and inflates to at most index_limit(header)."""
    found = {}

    def limit(header, payload_bytes):
        found['header'] = checked_header(header, path, payload_bytes)
        return index_limit(found['header'])

    reader = EhcReader(path, index_limit=limit)
    try:
        check_index(reader, found['header'])
    except BaseException:
        reader.close()
        raise
    return reader, found['header']
