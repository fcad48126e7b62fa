"""The decoder trusts nothing it has not checked (issue 12, findings 3-5): files whose checksums were recomputed
after an edit, zlib bombs, and missing, empty, duplicated or swapped chunks are one FormatError naming the field,
with no output file and no traceback. Files are edited with ehc_forge, which recomputes every CRC as the writer does.
"""
import copy
import json
import os
import struct
import subprocess
import sys
import zlib

import pytest
from ehc_forge import Chunk, EhcParts, index_span, join_payload, nested_json, split_payload, split_record, zlib_bomb

from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.codecheader import MAX_TILE_SIZE
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.errors import FormatError, InputError, ModelNotFoundError
from enmap_compress.plugin.core.headerdict import DICTIONARIES
from tools import synthetic

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'corpus')
OLD_FILE = os.path.join(CORPUS, 'pca_q5_t16_hole.ehc')  # written by 0.1.0: container 1.0, 9 tiles


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """A file of the current writer: MAX_ERROR (residual and checksum sections), 9 tiles of 8 px, nodata."""
    folder = tmp_path_factory.mktemp('fresh')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), width=24, height=20, seed=31)
    ehc = str(folder / 'fresh.ehc')
    compress(scene, ehc, 'pca', None, 'cpu', max_error=3, tile_size=8)
    return ehc


def _refused(data, tmp_path, match):
    """`data` as a .ehc file is refused with one FormatError matching `match`, leaving nothing behind."""
    path, out = tmp_path / 'hostile.ehc', tmp_path / 'out' / 'hostile.tif'
    path.write_bytes(data)
    with pytest.raises(FormatError, match=match):
        decompress(str(path), str(out), 'cpu')
    assert not out.parent.exists() or os.listdir(out.parent) == []


def _with(parts, edit):
    edited = parts.copy()
    edit(edited)
    return edited


def _set(path_keys, value):
    def edit(parts):
        target = parts.header
        for key in path_keys[:-1]:
            target = target[key]
        target[path_keys[-1]] = value
    return edit


def _drop(path_keys):
    def edit(parts):
        target = parts.header
        for key in path_keys[:-1]:
            target = target[key]
        target.pop(path_keys[-1])
    return edit


def test_the_forge_rebuilds_files_byte_for_byte(fresh):
    for path in (OLD_FILE, fresh):
        assert EhcParts.read(path).build() == open(path, 'rb').read()


def test_a_chunk_records_its_tile(fresh):
    """Container 1.1: the stored chunk starts with its meta's values (keys sorted: h, w, x, y) as varints."""
    with EhcReader(fresh) as reader:
        assert reader.version >= (1, 1)
        for i in range(reader.chunk_count):
            meta = reader.chunk_meta(i)
            stored = open(fresh, 'rb').read()[reader._chunks[i]['offset']:][:reader.stored_size(i)]
            values, payload = split_record(stored)
            assert values == [meta['h'], meta['w'], meta['x'], meta['y']] and payload == reader.read_chunk(i)


WAVELENGTHS_BAD = 'the header field raster.wavelengths_delta is not a valid band table'
HEADER_CASES = [
    (('raster', 'width'), '24', 'raster.width'), (('raster', 'width'), -5, 'raster.width'),
    (('raster', 'width'), 10 ** 12, 'raster.width'), (('raster', 'width'), True, 'raster.width'),
    (('raster', 'height'), 4.5, 'raster.height'), (('raster', 'band_count'), 300, 'raster.band_count'),
    (('raster', 'band_count'), 10, 'raster.band_count'), (('raster', 'dtype'), 'complex64', 'raster.dtype'),
    (('raster', 'nodata'), 'x', 'raster.nodata'), (('raster', 'nodata'), 1e30, 'raster.nodata'),
    (('raster', 'nodata'), float('nan'), 'raster.nodata'), (('raster', 'geotransform'), [1, 2], 'raster.geotransform'),
    (('raster', 'geotransform'), [0, 30, 0, 0, 0, float('inf')], 'raster.geotransform'),
    (('raster', 'canonical_index'), 'other', 'raster.canonical_index'),
    (('raster', 'canonical_index'), [0] * 224, 'raster.canonical_index'),
    (('raster', 'canonical_index'), list(range(223)), 'raster.canonical_index'),
    (('raster', 'band_names'), 99, 'raster.band_names'), (('raster', 'band_names'), ['a'], 'raster.band_names'),
    (('raster', 'band_names'), ['\ud800'] * 224, 'header is corrupt'),
    (('raster', 'gains'), [1, 2], 'raster.gains'), (('raster', 'dead_bands'), [1000], 'raster.dead_bands'),
    (('raster', 'dead_bands'), [5, 5], 'raster.dead_bands'), (('raster', 'crs'), 'EPSG:999999', 'raster.crs'),
    (('raster', 'crs'), 'garbage', 'raster.crs'), (('raster', 'crs'), 5, 'raster.crs'),
    (('codec', 'model_id'), '../../elsewhere', 'codec.model_id'), (('codec', 'model_id'), 5, 'codec.model_id'),
    (('codec', 'model_sha256'), 'abc', 'codec.model_sha256'), (('codec', 'quality'), '5', 'codec.quality'),
    (('codec', 'quality'), 5.5, 'codec.quality'), (('codec', 'step'), 0.5, 'codec.step'),
    (('codec', 'model_kind'), 'spatial', 'codec.model_kind'), (('codec', 'tile_size'), 0, 'codec.tile_size'),
    (('codec', 'tile_size'), MAX_TILE_SIZE + 1, 'codec.tile_size'), (('codec', 'tile_size'), 4, 'index lists'),
    (('codec', 'extra_bands'), [130, 130], 'codec.extra_bands'), (('codec', 'extra_bands'), [0], 'codec.extra_bands'),
    (('codec', 'extra_step_dn'), 7, 'codec.extra_step_dn'), (('codec', 'max_error'), -1, 'codec.max_error'),
    (('codec', 'max_error'), 10 ** 30, 'codec.max_error'), (('codec', 'entropy_coder'), 'zstd', 'codec.entropy_coder'),
    (('format',), 'zip', 'field format'), (('raster',), [], 'raster must be an object'),
    # the compact forms of 3.x headers
    (('codec', 'model_sha256'), '0' * 16, 'hostile.ehc: this file was made with a different version of model'),
    (('codec', 'latent_coder'), 'context-v9', 'hostile.ehc: latents coded as "context-v9" are not supported'),
    (('codec', 'model_sha256'), 'g' * 16, 'codec.model_sha256 is not valid'),
    (('codec', 'model_sha256'), '0' * 17, 'codec.model_sha256 is not valid'),
    (('raster', 'wavelengths_delta'), '2s' + 'A' * 74, f'hostile.ehc: {WAVELENGTHS_BAD}: it is truncated'),
    (('raster', 'wavelengths_delta'), '2s' + 'A' * 74 + 'B', WAVELENGTHS_BAD + r': it is corrupt \(more values'),
    (('raster', 'wavelengths_delta'), '2s' + 'A' * 76, WAVELENGTHS_BAD + r': it is corrupt \(more values'),
    (('raster', 'wavelengths_delta'), '2s' + 'A' * 74 + '_', f'{WAVELENGTHS_BAD}: it is truncated'),
    (('raster', 'wavelengths_delta'), '2s' + 'A' * 74 + '_g', f'{WAVELENGTHS_BAD}: it is truncated'),
    (('raster', 'wavelengths_delta'), '2s' + 'z' * 75, WAVELENGTHS_BAD + r": it is corrupt \(the character 'z'\)"),
    (('raster', 'fwhm_delta'), '3s' + 'A' * 224, 'raster.fwhm_delta is not a valid band table: it starts with'),
    (('raster', 'fwhm_delta'), '0x' + 'A' * 224, 'raster.fwhm_delta is not a valid band table: it starts with'),
    (('raster', 'fwhm_delta'), '0s' + 'A' * 223, 'raster.fwhm_delta is not a valid band table: it has 223'),
    (('raster', 'geotransform'), [0, 30, 0, 0, 0, '-30'], 'raster.geotransform'),
    # ground control points and RPCs (since 0.5.4)
    (('raster', 'gcps'), 5, 'raster.gcps must be an object'),
    (('raster', 'gcps'), {'crs': '', 'points': []}, 'raster.gcps.points'),
    (('raster', 'gcps'), {'crs': '', 'points': [[0, 0, 1, 2]]}, 'raster.gcps.points'),
    (('raster', 'gcps'), {'crs': '', 'points': [[0, 0, 1, 2, float('nan')]]}, 'raster.gcps.points'),
    (('raster', 'gcps'), {'crs': 'garbage', 'points': [[0, 0, 1, 2, 0]]}, 'raster.gcps.crs'),
    (('raster', 'gcps'), {'points': [[0, 0, 1, 2, 0]]}, 'raster.gcps.crs is missing'),
    (('raster', 'rpc'), {'LINE_OFF': 5}, 'raster.rpc.LINE_OFF'), (('raster', 'rpc'), [], 'raster.rpc'),
    (('raster', 'rpc'), {f'K{i}': '1' for i in range(65)}, 'raster.rpc must have at most 64'),
    # the pixel-is-point flag and an ENVI bad band list
    (('raster', 'pixel_is_point'), 1, 'raster.pixel_is_point must be true or false'),
    (('raster', 'pixel_is_point'), 'Point', 'raster.pixel_is_point must be true or false'),
    (('raster', 'bad_bands'), [224], 'raster.bad_bands'), (('raster', 'bad_bands'), [7, 3], 'raster.bad_bands'),
    (('raster', 'bad_bands'), {}, 'raster.bad_bands'),
    # integers beyond float range (JSON has no limit: math.isfinite raised OverflowError) and NUL in a CRS
    (('raster', 'geotransform'), [0, 30, 0, 0, 0, 10 ** 400], 'raster.geotransform'),
    (('raster', 'nodata'), 10 ** 400, 'raster.nodata'), (('raster', 'fill'), -10 ** 400, 'raster.fill'),
    (('raster', 'offsets'), [10 ** 400] * 224, 'raster.offsets'), (('raster', 'gains'), 10 ** 400, 'raster.gains'),
    (('raster', 'gcps'), {'crs': '', 'points': [[0, 0, 1, 2, 10 ** 400]]}, 'raster.gcps.points'),
    (('raster', 'crs'), 'EPSG:4326\x00junk', 'it holds a NUL'),
    (('raster', 'gcps'), {'crs': 'GEOGCS["x\x00"]', 'points': [[0, 0, 1, 2, 0]]}, 'gcps.crs is not a coordinate'),
]


@pytest.mark.parametrize('keys, value, field', HEADER_CASES, ids=[f'{".".join(k)}={v!r:.20}' for k, v, _f in
                                                                   HEADER_CASES])
def test_a_hostile_header_field_is_one_format_error_naming_it(fresh, tmp_path, keys, value, field):
    parts = EhcParts.read(fresh)
    _refused(_with(parts, _set(keys, value)).build(), tmp_path, field.replace('.', r'\.'))


def test_a_file_whose_model_is_not_installed_is_named(fresh, tmp_path):
    """The decoder's own refusals (a model missing or of another version, a coding this version lacks) name the
    file like every other field's (0.7.3 said "this file" only)."""
    path, out = tmp_path / 'hostile.ehc', tmp_path / 'out' / 'hostile.tif'
    path.write_bytes(_with(EhcParts.read(fresh), _set(('codec', 'model_id'), 'nosuch')).build())
    with pytest.raises(ModelNotFoundError, match=r'hostile\.ehc: this file needs the model "nosuch"'):
        decompress(str(path), str(out), 'cpu')
    assert not out.parent.exists() or os.listdir(out.parent) == []


@pytest.mark.parametrize('gain', [1e-320, 1e-31, 1e31])
def test_band_gains_beyond_any_radiometry_are_refused(fresh, tmp_path, gain):
    """A gain of 1e-320 (finite, non-zero) made the DN step of the extra bands infinite: an OverflowError."""
    parts = EhcParts.read(fresh)
    edited = _with(_with(parts, _set(('codec', 'radiometry'), 'band-gains')), _set(('raster', 'gains'), gain))
    _refused(edited.build(), tmp_path, r'raster\.gains must be numbers of magnitude 1e-30 to 1e\+30')


@pytest.mark.parametrize('keys', [('raster',), ('codec',), ('raster', 'width'), ('raster', 'dead_bands'),
                                  ('codec', 'quality'), ('codec', 'extra_bands')])
def test_a_missing_header_field_is_named(fresh, tmp_path, keys):
    _refused(_with(EhcParts.read(fresh), _drop(keys)).build(), tmp_path, rf'{keys[-1]}.*(missing|object)')


@pytest.mark.parametrize('key', ['nodata', 'fill'])
def test_a_float32_file_s_nodata_must_be_a_float32_value(tmp_path, key):
    """1e300 is finite, but float32 cannot hold it: 0.7.0 decoded such a header with overflow warnings and wrote
    inf as nodata."""
    path = os.path.join(os.path.dirname(CORPUS), 'corpus-0.7', 'rdnet_lossless_float_nan_t8.ehc')
    parts = EhcParts.read(path)
    assert parts.header['raster']['dtype'] == 'float32'
    _refused(_with(parts, _set(('raster', key), 1e300)).build(), tmp_path, rf'raster\.{key} must be a float32 value')
    held = tmp_path / 'held.ehc'  # inf and NaN remain values a float32 holds
    held.write_bytes(_with(EhcParts.read(path), _set(('raster', key), float('inf'))).build())
    decompress(str(held), str(tmp_path / 'held.tif'), 'cpu')


def test_a_lossless_file_must_restore_every_band(tmp_path):
    parts = EhcParts.read(os.path.join(CORPUS, 'pca_lossless_t8.ehc'))
    _refused(_with(parts, _set(('codec', 'extra_bands'), [])).build(), tmp_path, r'codec\.extra_bands.*lossless')


def test_a_number_of_thousands_of_digits_is_refused_before_it_is_read(fresh, tmp_path):
    # before: on a Python without the digit limit (QGIS 3.22's 3.9) a header of one 1 MiB integer took 5 s a file
    # to read, in an unknown key too (ignored after it was read); 3.11 and 3.9.14 refuse it in json.loads
    limited = hasattr(sys, 'set_int_max_str_digits')
    if limited:
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # as that Python
    try:
        parts = EhcParts.read(fresh)
        header = json.dumps(dict(parts.header, padding=0)).replace('"padding": 0', '"padding": ' + '7' * 5000)
        _refused(parts.build(header_json=header.encode()), tmp_path, 'header is corrupt .a number of 5000 digits')
        parts.header['padding'] = int('7' * 4300)  # (as long as the limit allows: read, and ignored)
        (tmp_path / 'long.ehc').write_bytes(parts.build())
        decompress(str(tmp_path / 'long.ehc'), str(tmp_path / 'long.tif'), 'cpu')
    finally:
        if limited:
            sys.set_int_max_str_digits(limit)


def test_deep_json_nesting_is_refused_before_parsing(fresh, tmp_path):
    parts = EhcParts.read(fresh)
    _refused(parts.build(header_json=nested_json(100_000)), tmp_path, 'header is corrupt .nested more than')
    _refused(parts.build(index_json=b'{"chunks":' + nested_json(5000) + b'}'), tmp_path,
             'chunk index is corrupt .nested more than')
    footer = parts.copy()
    footer.footer = {'valid_pixels': json.loads(nested_json(20))}  # within the limit: parsed, then refused
    _refused(footer.build(), tmp_path, 'footer field valid_pixels')


def test_duplicate_json_keys_are_refused(fresh, tmp_path):
    parts = EhcParts.read(fresh)
    header = json.dumps(parts.header, separators=(',', ':'))
    doubled = header.replace('"quality":', '"quality":1,"quality":', 1).encode()
    _refused(parts.build(header_json=doubled), tmp_path, "key 'quality' appears twice")


def test_a_tile_of_100000_px_allocates_nothing(fresh, tmp_path):
    """0.1.0 allocated 10 GB for a 3.8 KB file whose index said a tile is 100000 x 100000 px."""
    def huge(index):
        index['chunks'][0]['meta'].update(w=100_000, h=100_000)

    parts = EhcParts.read(fresh)
    parts.chunks[0].meta = dict(parts.chunks[0].meta, w=100_000, h=100_000)  # the record agrees with the index
    _refused(parts.build(), tmp_path, 'chunk 0 claims the tile')
    _refused(EhcParts.read(OLD_FILE).build(index_edit=huge), tmp_path, 'chunk 0 claims the tile')


@pytest.mark.parametrize('meta, match', [({'x': -8}, 'claims the tile'), ({'x': 4000}, 'claims the tile'),
                                         ({'x': 'a'}, 'claims the tile'), ({'x': True}, 'claims the tile'),
                                         ({'w': 7}, 'claims the tile'), ({'extra': 1}, 'claims the tile')])
def test_tile_positions_outside_the_grid_are_refused(tmp_path, meta, match):
    _refused(EhcParts.read(OLD_FILE).build(index_edit=lambda index: index['chunks'][3]['meta'].update(meta)),
             tmp_path, match)


@pytest.mark.parametrize('edit, match', [
    ('offset', 'malformed .chunk 2: offset'), ('length', 'malformed|runs past|corrupt'),
    ('crc32', 'malformed .chunk 2: crc32'), ('overlap', 'share bytes'), ('meta', 'meta must be an object'),
])
def test_hostile_index_entries_are_refused(fresh, tmp_path, edit, match):
    def broken(index):
        entry = index['chunks'][2]
        if edit == 'offset':
            entry['offset'] = -1
        elif edit == 'length':
            entry['length'] = 2 ** 62
        elif edit == 'crc32':
            entry['crc32'] = 2 ** 40
        elif edit == 'overlap':
            entry['offset'] = index['chunks'][1]['offset'] + 1
        else:
            entry['meta'] = [1, 2]
    _refused(EhcParts.read(fresh).build(index_edit=broken), tmp_path, match)


def _dropped(parts):
    parts.chunks.pop(4)


def _duplicated(parts):
    parts.chunks.insert(4, copy.deepcopy(parts.chunks[4]))


def _emptied(parts):
    parts.chunks[4] = Chunk(parts.chunks[4].meta, b'')


def _duplicated_tile(parts):
    """Two chunks claiming one tile (the count still matches: tile 5 is missing)."""
    parts.chunks[5] = Chunk(dict(parts.chunks[4].meta), parts.chunks[4].payload)


@pytest.mark.parametrize('edit, match', [(_dropped, 'lists 8 chunks'), (_duplicated, 'lists 10 chunks'),
                                         (_emptied, 'payload is truncated|corrupt'),
                                         (_duplicated_tile, 'both claim the tile')])
@pytest.mark.parametrize('which', ['old', 'fresh'])
def test_missing_duplicated_and_empty_chunks_are_refused(fresh, tmp_path, edit, match, which):
    """0.1.0 decoded these 'successfully': missing tiles came out as nodata."""
    _refused(_with(EhcParts.read(OLD_FILE if which == 'old' else fresh), edit).build(), tmp_path, match)


def test_swapped_chunks_are_refused_because_each_chunk_records_its_tile(fresh, tmp_path):
    """Swap the stored records of two chunks (the index and its CRCs recomputed): the index no longer matches the
    tile each chunk says it is."""
    parts = EhcParts.read(fresh)
    data = parts.build()
    with EhcReader(fresh) as reader:
        entries = reader._chunks
    stored = [data[e['offset']:e['offset'] + e['length']] for e in entries]
    parts.chunks[2].record, parts.chunks[3].record = stored[3], stored[2]
    _refused(parts.build(), tmp_path, 'chunk 2 is stored as .* but the index lists it as')


def test_a_chunk_of_the_old_layout_in_a_new_file_is_refused(tmp_path):
    """A 1.0 payload relabelled as 1.1 (no recorded tile) does not pass as a chunk record."""
    parts = EhcParts.read(OLD_FILE)
    for chunk in parts.chunks:
        chunk.record = chunk.payload
    _refused(parts.build(minor=1), tmp_path, 'chunk 0 is stored as')


def test_header_and_index_zlib_bombs_stop_at_their_limit(fresh, tmp_path):
    parts = EhcParts.read(fresh)
    _refused(parts.build(header_raw=zlib_bomb(256 << 20, version=parts.version)), tmp_path,
             'header inflates to more than')
    _refused(parts.build(index_raw=zlib_bomb(256 << 20, version=parts.version)), tmp_path,
             'chunk index takes .* bytes, more than')
    # 8 KB stored passes the stored-size check of a 9-tile index and stops while inflating
    _refused(parts.build(index_raw=zlib_bomb(8 << 20, version=parts.version)), tmp_path,
             'chunk index inflates to more than')




def _chunk_edit(parts, index, change):
    version, sections = split_payload(parts.chunks[index].payload)
    change(sections)
    parts.chunks[index] = Chunk(parts.chunks[index].meta, join_payload(version, sections))
    return parts


def test_bombs_inside_a_chunk_stop_at_the_tile_size(fresh, tmp_path):
    """A tile's mask and prediction modes inflate to at most what its size needs."""
    bomb = zlib_bomb(64 << 20)

    def mask_bomb(sections):
        sections[0] = b'\x02' + bomb

    def modes_bomb(sections):
        sections[1] = struct.pack('<H', len(bomb[:60000])) + bomb[:60000] + sections[1][2:]

    _refused(_chunk_edit(EhcParts.read(fresh), 0, mask_bomb).build(), tmp_path, 'chunk 0 .*mask is corrupt')
    _refused(_chunk_edit(EhcParts.read(fresh), 0, modes_bomb).build(), tmp_path, 'chunk 0 .*prediction modes')


@pytest.mark.parametrize('change, match', [
    (lambda s: s.pop(), 'holds 3 sections'), (lambda s: s.append(b''), 'holds 5 sections'),
    (lambda s: s.__setitem__(3, b'\x00\x01'), 'checksum section'), (lambda s: s.__setitem__(0, b'\x07'), 'mask'),
])
def test_hostile_sections_are_refused(fresh, tmp_path, change, match):
    _refused(_chunk_edit(EhcParts.read(fresh), 1, change).build(), tmp_path, f'chunk 1 .*{match}')


def test_the_encoder_refuses_tiles_the_decoder_would(fresh, tmp_path):
    scene = synthetic.write_scene(str(tmp_path / 's.tif'), width=8, height=8, seed=1)
    with pytest.raises(InputError, match=f'tile size must be from 1 to {MAX_TILE_SIZE}'):
        compress(scene, str(tmp_path / 'x.ehc'), 'pca', 5, 'cpu', tile_size=MAX_TILE_SIZE + 1)
    assert not (tmp_path / 'x.ehc').exists()


BOMB_SCRIPT = r'''
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from enmap_compress.plugin.core.codec import decompress
from enmap_compress.plugin.core.errors import FormatError
try:
    decompress(sys.argv[1], sys.argv[2], 'cpu')
except FormatError as exc:
    print('refused:', exc)
with open('/proc/self/status') as status:  # VmHWM: this process's own peak (ru_maxrss starts at the parent's)
    print('peak MB', next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024)
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='RLIMIT_AS is enforced on Linux')
def test_a_3_mb_file_whose_index_inflates_to_3_gib_is_refused_in_little_memory(fresh, tmp_path):
    """0.1.0 took 6.5 GB before its clean error; now the process cannot even reach 2 GiB of address space."""
    path = tmp_path / 'bomb.ehc'
    parts = EhcParts.read(fresh)
    path.write_bytes(parts.build(index_raw=zlib_bomb(3 << 30, version=parts.version)))
    assert 3e6 < os.path.getsize(path) < 4e6
    proc = subprocess.run([sys.executable, '-c', BOMB_SCRIPT, str(path), str(tmp_path / 'o.tif'), str(2 << 30)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'refused:' in proc.stdout and 'more than a valid file of this size needs' in proc.stdout, proc.stdout
    assert float(proc.stdout.split('peak MB')[1]) < 500
    assert not (tmp_path / 'o.tif').exists()


def test_every_frozen_file_still_passes_the_checks():
    """The checks refuse nothing a released version wrote (the corpus test decodes each bit for bit)."""
    from enmap_compress.plugin.core.validation import open_checked

    for name in sorted(os.listdir(CORPUS)):
        if name.endswith('.ehc'):
            reader, checked = open_checked(os.path.join(CORPUS, name))
            reader.close()
            assert len(checked.tiles) > 1


def test_the_index_limit_follows_the_tile_count(fresh):
    from enmap_compress.plugin.core.validation import index_limit, open_checked

    reader, checked = open_checked(fresh)
    reader.close()
    data = open(fresh, 'rb').read()
    offset, length = index_span(data, (3, 0))
    index = zlib.decompressobj(-15, DICTIONARIES[3]).decompress(data[offset:offset + length])
    assert len(index) < index_limit(checked) < 100_000
