"""What the decoder checks in a .ehc file before it uses anything in it (docs/format.md, "What the decoder
validates").

A file whose checksums are right can still be wrong: a buggy writer, or a crafted file. So every header, index and
chunk field is checked for type, range and consistency with the raster and the band table before it is used, and
before anything is allocated from it; a violation is one FormatError that names the file and the field. The
container (container.py) bounds sizes, inflation and JSON nesting; this module checks what the codec's fields mean:
the raster description, the codec description, the model it names, and that the index covers the tile grid exactly
once. Memory is then bounded by the tile size (MAX_TILE_SIZE), whatever the file says.
"""
import math
import re
from dataclasses import dataclass

import numpy as np

from .bands import N_BANDS
from .container import EhcReader
from .errors import EnmapCompressError, FormatError
from .geotiff import GDAL_TYPES
from .rasterheader import NAME_TEMPLATES, unpack_raster
from .tiling import Tile, tile_grid

FORMAT_NAME = 'ehc'
MAX_SIDE = 1 << 20  # pixels per raster side: 31,000 km of EnMAP swath
MAX_TILE_SIZE = 256  # the models' tile size; decoding one takes about 0.5 GB (a 512 px one up to 1.6 GB)
MIN_CHUNK_BYTES = 12  # the smallest chunk a valid file holds: payload head, two section lengths and a mask byte
INDEX_BYTES_PER_TILE = 256  # a chunk's index entry takes about 100 bytes of JSON
INDEX_BASE_BYTES = 1 << 16  # blobs, footer and slack
MAX_BAND_TABLE_MILLI = 10 ** 9  # |delta| of a 0.1 band table in 1/1000 nm
MAX_TEXT = 4096  # characters of a band name, product name or model id
MAX_BOUND_DN = 2 ** 53  # error bounds in DN: integers float64 holds exactly (larger ones overflow the residual layer)
ENTROPY_CODER = 'constriction-ans-v1'
RADIOMETRY = 'band-gains'  # codec.radiometry: the models saw DN x gain + offset of each band
_MODEL_ID = re.compile(r'[^/\\\x00]{1,200}')
_SHA256 = re.compile(r'[0-9a-f]{64}')
_EPSG = re.compile(r'EPSG:([1-9][0-9]{0,5})')


@dataclass
class CheckedHeader:
    """A header that passed every check: the raster unpacked (rasterheader.unpack_raster), the codec object and
    the tile grid the index must cover."""

    raster: dict
    codec: dict
    tiles: list


class _Fields:
    """Type and range checks of one JSON object; a failure is a FormatError naming the file and the field."""

    def __init__(self, obj, name, path):
        self.path, self.name = path, name
        if not isinstance(obj, dict):
            self.fail('', f'must be an object, not {_shown(obj)}')
        self.obj = obj

    def fail(self, key, problem):
        field = '.'.join(part for part in (self.name, key) if part)
        raise FormatError(f'{self.path}: the header field {field} {problem}')

    def get(self, key, required=True):
        if key not in self.obj:
            if required:
                self.fail(key, 'is missing')
            return None
        return self.obj[key]

    def integer(self, key, low, high, required=True):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not _is_int(value) or not low <= value <= high:
            self.fail(key, f'must be an integer from {low} to {high}, not {_shown(value)}')
        return value

    def number(self, key, required=True, finite=True):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not _is_number(value) or (finite and not math.isfinite(value)):
            self.fail(key, f'must be a{" finite" if finite else ""} number, not {_shown(value)}')
        return value

    def text(self, key, required=True, choices=None, pattern=None):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.fail(key, f'must be a text of at most {MAX_TEXT} characters, not {_shown(value)}')
        if choices is not None and value not in choices:
            self.fail(key, f'must be one of {", ".join(map(repr, choices))}, not {_shown(value)}')
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(key, f'is not valid ({_shown(value)})')
        return value

    def indices(self, key, length=None, ascending=False):
        """A list of band indices 0..223: `length` of them, or strictly ascending ones."""
        value = self.get(key)
        if not isinstance(value, list) or (length is not None and len(value) != length) or \
                not all(_is_int(v) and 0 <= v < N_BANDS for v in value):
            count = f'{length} ' if length is not None else ''
            self.fail(key, f'must be a list of {count}band indices from 0 to {N_BANDS - 1}, not {_shown(value)}')
        if ascending and any(b <= a for a, b in zip(value, value[1:])):
            self.fail(key, f'must list each band once, in ascending order, not {_shown(value)}')
        return value

    def optional_type(self, key, kind, label):
        value = self.obj.get(key)
        if value is not None and not isinstance(value, kind):
            self.fail(key, f'must be {label}, not {_shown(value)}')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


# --- the header ---------------------------------------------------------------------------------------------------

def checked_header(header, path, payload_bytes):
    """CheckedHeader of a parsed header, or FormatError. payload_bytes: the size of the file's payload area (a file
    cannot hold more tiles than it has bytes for, so the tile count and the index are bounded by the file size)."""
    top = _Fields(header, '', path)
    top.text('format', choices=(FORMAT_NAME,))
    for key in ('device', 'software'):
        top.optional_type(key, dict, 'an object')
    top.optional_type('created', str, 'a text')
    packed = _checked_raster(_Fields(header.get('raster'), 'raster', path))
    codec = _checked_codec(_Fields(header.get('codec'), 'codec', path))
    if codec.get('radiometry') is not None:
        _check_band_gains(_Fields(packed, 'raster', path))
    width, height, size = packed['width'], packed['height'], codec['tile_size']
    count = math.ceil(width / size) * math.ceil(height / size)
    if count * MIN_CHUNK_BYTES > payload_bytes:
        raise FormatError(f'{path}: the header fields raster.width, raster.height and codec.tile_size make {count} '
                          f'tiles of {size} px; a file with {payload_bytes} payload bytes cannot hold them')
    try:
        raster = unpack_raster(packed)
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
            not all(_is_number(v) and math.isfinite(v) for v in geotransform):
        fields.fail('geotransform', f'must be a list of 6 finite numbers, not {_shown(geotransform)}')
    fields.optional_type('band_order', str, 'a text')
    order = fields.get('canonical_index')
    if isinstance(order, str):
        fields.text('canonical_index', choices=('identity', 'detector'))
    elif sorted(fields.indices('canonical_index', N_BANDS)) != list(range(N_BANDS)):
        fields.fail('canonical_index', 'must list each band exactly once')
    has_wavelengths = _check_band_table(fields, 'wavelengths')
    _check_band_table(fields, 'fwhm')
    _check_band_names(fields, has_wavelengths)
    for key in ('gains', 'offsets'):
        value = fields.get(key)
        if not (_is_number(value) or (isinstance(value, list) and len(value) == N_BANDS
                                      and all(_is_number(v) for v in value))):
            fields.fail(key, f'must be a number or a list of {N_BANDS} numbers, not {_shown(value)}')
    fields.indices('dead_bands', ascending=True)
    product = fields.obj.get('product_name')
    if product is not None:
        fields.text('product_name')
    return fields.obj


def _check_fill_value(fields, key, dtype):
    """nodata (and the fill value of nodata pixels): a number the output type can hold, or absent/null."""
    value = fields.obj.get(key)
    if value is None:
        return
    if dtype.kind == 'f':
        fields.number(key, finite=False)
        return
    info = np.iinfo(dtype)
    fields.number(key)
    if not info.min <= value <= info.max:
        fields.fail(key, f'must lie within the range of {dtype.name} ({info.min} to {info.max}), not {_shown(value)}')


def _check_crs(fields):
    """'' (none), 'EPSG:<code>' or a WKT that GDAL reads."""
    text = fields.text('crs')
    if not text:
        return
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
        fields.fail('crs', f'is not a coordinate reference system GDAL knows ({_shown(text)}: {exc})')


def _check_band_table(fields, name):
    """`<name>_delta` (a delta string, checked when unpacked) or `<name>_milli` (224 integers, 0.1 files), or null.
    Returns whether the table is present."""
    for key in (f'{name}_delta', f'{name}_milli'):
        if key not in fields.obj:
            continue
        value = fields.obj[key]
        if value is None:
            return False
        if key.endswith('_delta'):
            fields.text(key)
        elif not isinstance(value, list) or len(value) != N_BANDS or \
                not all(_is_int(v) and abs(v) <= MAX_BAND_TABLE_MILLI for v in value):
            fields.fail(key, f'must be a list of {N_BANDS} integers within ±{MAX_BAND_TABLE_MILLI}, not '
                             f'{_shown(value)}')
        return True
    fields.fail(f'{name}_delta', 'is missing')
    return False


def _check_band_names(fields, has_wavelengths):
    names = fields.get('band_names')
    if _is_int(names):
        if not 0 <= names < len(NAME_TEMPLATES) or not has_wavelengths:
            fields.fail('band_names', f'names template {names} does not exist or needs wavelengths')
    elif not isinstance(names, list) or len(names) != N_BANDS or \
            not all(isinstance(n, str) and len(n) <= MAX_TEXT for n in names):
        fields.fail('band_names', f'must be a template number or a list of {N_BANDS} texts, not {_shown(names)}')


def _checked_codec(fields):
    fields.text('model_id', pattern=_MODEL_ID)
    if fields.obj['model_id'] in ('.', '..') or fields.obj['model_id'].endswith('.onnx'):
        fields.fail('model_id', f'is not a model id ({_shown(fields.obj["model_id"])})')
    fields.text('model_sha256', pattern=_SHA256)
    fields.text('model_path', required=False)
    fields.text('model_kind', required=False, choices=('pixel', 'spatial'))
    fields.integer('quality', 1, 10)
    step = fields.number('step', required=False)
    if step is not None and step <= 0:
        fields.fail('step', f'must be positive, not {step}')
    fields.integer('tile_size', 1, MAX_TILE_SIZE)
    fields.text('band_set', required=False)
    fields.indices('extra_bands', ascending=True)
    extra_step = fields.number('extra_step_dn', required=False)
    if extra_step is not None and extra_step < 1:
        fields.fail('extra_step_dn', f'must be at least 1, not {extra_step}')
    fields.text('entropy_coder', required=False, choices=(ENTROPY_CODER,))
    fields.text('radiometry', required=False, choices=(RADIOMETRY,))
    fields.integer('max_error', 0, MAX_BOUND_DN, required=False)
    _check_error_bound(fields)
    return fields.obj


def _check_error_bound(codec):
    """codec.error_bound (bounds.ErrorBound.from_codec_info reads it): its integers within MAX_BOUND_DN."""
    if codec.obj.get('error_bound') is None:
        return
    bound = _Fields(codec.obj['error_bound'], 'codec.error_bound', codec.path)
    if bound.obj.get('band_max_errors') is not None:
        limits = bound.obj['band_max_errors']
        if not isinstance(limits, list) or len(limits) != N_BANDS or \
                not all(_is_int(v) and 0 <= v <= MAX_BOUND_DN for v in limits):
            bound.fail('band_max_errors', f'must be a list of {N_BANDS} integers from 0 to {MAX_BOUND_DN}, not '
                                          f'{_shown(limits)}')
    bound.number('relative_error', required=False)
    bound.integer('relative_floor', 0, MAX_BOUND_DN, required=False)


def _check_band_gains(raster):
    """Files whose models saw DN x gain + offset: gains finite and non-zero, offsets finite."""
    for key, allow_zero in (('gains', False), ('offsets', True)):
        value = raster.obj[key]
        values = value if isinstance(value, list) else [value]
        if not all(math.isfinite(v) and (allow_zero or v != 0) for v in values):
            raster.fail(key, f'must be finite{"" if allow_zero else ", non-zero"} numbers when codec.radiometry is '
                             f'{RADIOMETRY!r}, not {_shown(value)}')


# --- the model named by the header ----------------------------------------------------------------------------------

def check_coder(checked, coder, path):
    """The header against the model package and coder built from it: quality level, step, kind, band set and
    extra bands must be what that model and the file's raster give."""
    fields, meta = _Fields(checked.codec, 'codec', path), coder.package.meta
    levels = {q.level: q for q in meta.quality_levels}
    quality = checked.codec['quality']
    if quality not in levels:
        fields.fail('quality', f'is {quality}, but model {coder.package.model_id} has levels {sorted(levels)}')
    expected = {'step': levels[quality].step, 'model_kind': coder.transform.kind,
                'band_set': meta.band_set, 'extra_step_dn': coder.extra_step_dn}
    for key, value in expected.items():
        if key in checked.codec and checked.codec[key] != value:
            fields.fail(key, f'is {_shown(checked.codec[key])}, but model {coder.package.model_id} gives {value!r}')
    dead = np.zeros(N_BANDS, bool)
    dead[checked.raster['dead_bands']] = True
    dead = dead[checked.raster['canonical_index']]
    allowed = set(range(N_BANDS)) - {int(b) for b in coder.coded} - set(np.flatnonzero(dead).tolist())
    extra = set(checked.codec['extra_bands'])
    if not extra <= allowed:
        fields.fail('extra_bands', f'lists bands the model codes or that are dead: {sorted(extra - allowed)}')
    if coder.lossless and extra != allowed:
        fields.fail('extra_bands', f'must list every band the model does not code in a lossless file '
                                   f'(missing: {sorted(allowed - extra)})')


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
                          f'{raster["height"]} raster in tiles of {checked.codec["tile_size"]} px has {len(tiles)}')
    seen = {}
    for index in range(reader.chunk_count):
        meta = reader.chunk_meta(index)
        tile = _tile_of(meta)
        if tile is None or tiles.get((tile.x, tile.y)) != tile:
            raise FormatError(f'{path}: chunk {index} claims the tile {_shown(meta)}, which is not a tile of the '
                              f'{raster["width"]} x {raster["height"]} raster in tiles of '
                              f'{checked.codec["tile_size"]} px')
        if (tile.x, tile.y) in seen:
            raise FormatError(f'{path}: chunks {seen[(tile.x, tile.y)]} and {index} both claim the tile at '
                              f'({tile.x}, {tile.y})')
        seen[(tile.x, tile.y)] = index
    valid = reader.footer.get('valid_pixels')
    if valid is not None and not (_is_int(valid) and 0 <= valid <= raster['width'] * raster['height']):
        raise FormatError(f'{path}: the footer field valid_pixels must be an integer from 0 to the pixel count, '
                          f'not {_shown(valid)}')


def _tile_of(meta):
    if set(meta) != {'x', 'y', 'w', 'h'} or not all(_is_int(v) for v in meta.values()):
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
