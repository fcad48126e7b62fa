"""Compact tile framing of container 3.x files (docs/format.md, "Compact framing"): a head byte and varint section
lengths instead of the u8 / u16 / u32 framing, a learned-prior latent stream without magic and CRC. The chunk CRC
covers every byte that moved out of an inner check; the decoded image is the one the old framing gives."""
import os

import numpy as np
import pytest
from ehc_forge import Chunk, EhcParts, _inflate, index_span, join_payload, read_index, split_payload, uvarint
from osgeo import gdal

from enmap_compress.plugin.core import codec, container, latent_basis, prior, tilepayload
from enmap_compress.plugin.core.codec import compress, decode_tile, decoder_for, decompress
from enmap_compress.plugin.core.codecheader import CodecInfo
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.runtime import list_models
from enmap_compress.plugin.core.tilepayload import TileSections
from enmap_compress.plugin.core.tiling import Tile, tile_grid
from tools import synthetic


@pytest.mark.parametrize('sections, extended, head, order', [
    (TileSections(b'\x01', b'L'), False, 18, ['mask', 'latent']),
    (TileSections(b'\x01', b'L' * 300, extra=b'EE'), False, 19, ['mask', 'latent', 'extra']),
    (TileSections(b'\x00', b'', samples=b'SSS'), False, 26, ['mask', 'latent', 'samples']),
    (TileSections(b'\x01', b'L', residual=b'R', checksum=b'CCCC'), False, 20, ['mask', 'latent', 'residual',
                                                                               'checksum']),
    (TileSections(b'\x01', b'L', b'EE', b'R', b'CCCC'), True, 21, ['mask', 'latent', 'extra', 'residual',
                                                                   'checksum']),
    (TileSections(b'\x01', b'L', None, b'R', b'CCCC', b'SS'), True, 28, ['mask', 'latent', 'residual', 'checksum',
                                                                         'samples']),
])
def test_compact_framing_is_the_documented_one(sections, extended, head, order):
    """Head byte COMPACT + 8 * (sample section) + other sections, a varint length per section but the last."""
    parts = [getattr(sections, name) for name in order]
    payload = tilepayload.pack(sections, extended, compact=True)
    lengths = b''.join(bytes([len(p)]) if len(p) < 128 else bytes([len(p) & 0x7F | 0x80, len(p) >> 7])
                       for p in parts[:-1])
    assert payload == bytes([head]) + lengths + b''.join(parts)
    assert tilepayload.unpack(payload, sections.extra is not None, sections.residual is not None, True) == sections
    with pytest.raises(FormatError, match=f'tile payload version {head} is not supported'):
        tilepayload.unpack(payload, sections.extra is not None, sections.residual is not None)


def test_a_compact_learned_prior_stream_drops_magic_and_crc_and_expands_back():
    rng = np.random.default_rng(3)
    tables = [prior.LaplaceTable(b, 0.15) for b in (0.06, 0.8, 900.0)]
    rows = [np.rint(rng.laplace(0, b, n)).astype(np.int32) for b, n in zip((0.06, 0.8, 900.0), (5000, 3000, 700))]
    rows[0][17] = 250  # escaped: the escaped values follow the words
    stream = prior.encode_groups(rows, tables, prior.CONTEXT_VERSION)
    words = int.from_bytes(stream[7:11], 'little')
    small = prior.compact_stream(stream)
    assert small == bytes([prior.CONTEXT_VERSION, 3]) + uvarint(words) + stream[15:-4]
    assert len(uvarint(words)) == 2 and len(stream) - len(small) == 19 - 4  # 15-byte head and CRC: 4 bytes
    assert prior.expand_stream(small) == stream
    assert prior.compact_stream(b'') == b'' == prior.expand_stream(b'')  # a tile without valid pixels
    for cut in (small[:1], small[:2] + b'\x80', small[:-1], small[:3] + b'\xff\xff\xff\xff\x0f' + small[4:]):
        with pytest.raises(FormatError, match='learned-prior latent stream'):
            prior.expand_stream(cut)


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """(folder, a new rdnet file in 6 tiles with edge tiles and nodata corners, its decoded image)."""
    if 'rdnet' not in [p.model_id for p in list_models()]:
        pytest.skip('rdnet is not installed')
    folder = tmp_path_factory.mktemp('compact')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), width=40, height=24, seed=7)
    path = str(folder / 'fresh.ehc')
    compress(scene, path, 'rdnet', 2, 'cpu', tile_size=16)
    decompress(path, str(folder / 'fresh.tif'), 'cpu')
    return folder, path, gdal.Open(str(folder / 'fresh.tif')).ReadAsArray()


def _coder(parts, compact):
    return decoder_for(CodecInfo.from_json(parts.header['codec'], 'x.ehc'), 'cpu', 1, compact=compact)[0]


def _refused(data, folder, name, message):
    path = str(folder / f'{name}.ehc')
    with open(path, 'wb') as handle:
        handle.write(data)
    with pytest.raises(FormatError, match=message):
        decompress(path, str(folder / f'{name}.tif'), 'cpu')
    assert not os.path.exists(str(folder / f'{name}.tif'))


def test_new_files_frame_tiles_compactly_and_decode_as_the_old_framing_does(fresh):
    folder, path, image = fresh
    parts = EhcParts.read(path)
    assert parts.version >= codec.COMPACT_SINCE
    new, old = _coder(parts, True), _coder(parts, False)
    reframed = parts.copy()
    for i, chunk in enumerate(parts.chunks):
        head, sections = split_payload(chunk.payload)
        assert head == tilepayload.COMPACT + 2 and len(sections) == 2  # mask and latent, no sample section
        latent = sections[1]
        if latent:
            assert latent[0] == latent_basis.STREAM_VERSION  # no "EP" magic, no CRC-32 (lossy: a tile basis)
            assert prior.expand_stream(latent)[:2] == prior.MAGIC
        old_payload = old.pack(new.unpack(chunk.payload))
        assert old_payload[0] == tilepayload.VERSION
        assert len(old_payload) - len(chunk.payload) == 9 + 16 * bool(latent) - (len(sections[0]) > 127)
        assert old.unpack(old_payload) == new.unpack(chunk.payload)
        reframed.chunks[i] = Chunk(chunk.meta, old_payload)
    old_path = str(folder / 'old_framing.ehc')
    with open(old_path, 'wb') as handle:
        handle.write(reframed.build())  # the old framing in a 3.0 file (what 3.0 files written before wrote)
    decompress(old_path, str(folder / 'old_framing.tif'), 'cpu')
    assert np.array_equal(gdal.Open(str(folder / 'old_framing.tif')).ReadAsArray(), image)


def test_the_chunk_crc_covers_the_bytes_that_lost_their_own_check(fresh, tmp_path):
    """Each byte of a compact tile's framing and latent head (and its last byte), flipped in the file: the chunk
    CRC, computed over the whole stored record, refuses it and names the chunk."""
    _folder, path, _image = fresh
    data = open(path, 'rb').read()
    parts = EhcParts.read(path)
    entry = read_index(data, parts.version, parts.header)['chunks'][1]
    start = entry['offset'] + len(container.meta_record(parts.chunks[1].meta))
    framing = 2 + len(split_payload(parts.chunks[1].payload)[1][0])  # head byte, mask length, mask
    latent_head = 3  # version, row count, the first byte of the word count
    for pos in [*range(start, start + framing + latent_head), entry['offset'] + entry['length'] - 1]:
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        _refused(bytes(damaged), tmp_path, f'flip{pos}', r'chunk 1 is corrupt \(checksum mismatch\)')


def _edit_latent(parts, index, change):
    head, sections = split_payload(parts.chunks[index].payload)
    sections[1] = change(sections[1])
    edited = parts.copy()
    edited.chunks[index] = Chunk(parts.chunks[index].meta, join_payload(head, sections))
    return edited.build()


@pytest.mark.parametrize('name, change, message', [
    ('version', lambda s: bytes([prior.VERSION]) + s[1:], 'learned-prior stream version 1 is not supported'),
    ('rows', lambda s: s[:1] + bytes([s[1] + 1]) + s[2:], 'learned-prior latent stream'),
    ('words', lambda s: s[:1] + bytes([s[1]]) + b'\xff\xff\xff\xff\x0f' + s[3:], 'inconsistent length'),
    ('cut varint', lambda s: s[:1] + b'\x80', 'truncated'),
    ('cut words', lambda s: s[:-1], 'learned-prior latent stream'),
])
def test_crafted_compact_latent_heads_are_refused_naming_the_tile(fresh, tmp_path, name, change, message):
    _folder, path, _image = fresh
    parts = EhcParts.read(path)
    index = next(i for i, c in enumerate(parts.chunks) if split_payload(c.payload)[1][1][1:2] < b'\x80')
    tile = parts.chunks[index].meta
    _refused(_edit_latent(parts, index, change), tmp_path, name,
             rf'chunk {index} \(the tile at {tile["x"]}, {tile["y"]}\): .*{message}')


def _with_empty_samples(payload):
    mask, latent = split_payload(payload)[1]
    return bytes([tilepayload.COMPACT + 8 + 2]) + uvarint(len(mask)) + uvarint(len(latent)) + mask + latent


@pytest.mark.parametrize('name, edit, message', [
    ('head beyond compact', lambda p: bytes([2 * tilepayload.COMPACT]) + p[1:], 'compact tile payload head 32'),
    ('one section', lambda p: bytes([tilepayload.COMPACT + 1]) + p[1:], 'compact tile payload head 17'),
    ('mask length past the end', lambda p: p[:1] + b'\xff\xff\x7f' + p[2:], 'inconsistent length'),
    ('cut', lambda p: p[:1] + b'\x81', 'truncated'),
    ('samples marked but absent', lambda p: _with_empty_samples(p), 'marks a sample section'),
    ('a section too many', lambda p: bytes([tilepayload.COMPACT + 3]) + p[1:2] + b'\x00' + p[2:], 'holds 3 sections'),
])
def test_crafted_compact_framing_is_refused_naming_the_tile(fresh, tmp_path, name, edit, message):
    _folder, path, _image = fresh
    parts = EhcParts.read(path)
    edited = parts.copy()
    edited.chunks[0] = Chunk(parts.chunks[0].meta, edit(parts.chunks[0].payload))
    _refused(edited.build(), tmp_path, name.replace(' ', '_'), rf'chunk 0 \(the tile at 0, 0\): .*{message}')


def test_compact_tiles_are_refused_where_no_crc_covers_them(fresh):
    """A 1.x / 2.x file's or a Zarr chunk's coder (compact=False) refuses a compact tile instead of trusting it."""
    _folder, path, _image = fresh
    parts = EhcParts.read(path)
    loose = _coder(parts, compact=False)
    tile = Tile.from_dict(parts.chunks[0].meta)
    with pytest.raises(FormatError, match='tile payload version 18 is not supported'):
        decode_tile(loose, parts.chunks[0].payload, tile, loose.transform.window(tile, 40, 24), np.int16,
                    -32768, np.zeros(224, bool))


# --- the index (3.x): offsets and tile metas that the reader derives are left out ---------------------------------

@pytest.mark.parametrize('width, height, size', [(1, 1, 1), (32, 32, 32), (40, 24, 16), (1200, 1200, 256),
                                                 (7, 300, 8)])
def test_grid_meta_is_the_codec_tile_grid(width, height, size):
    header = {'raster': {'width': width, 'height': height}, 'codec': {'tile_size': size}}
    grid = [tile.as_dict() for tile in tile_grid(width, height, size)]
    assert [container.grid_meta(header, i) for i in range(len(grid))] == grid
    assert container.grid_meta(header, len(grid)) is None
    assert container.grid_meta({'raster': {'width': width, 'height': True}, 'codec': {'tile_size': size}}, 0) is None


def test_a_new_index_leaves_out_the_offsets_and_metas_its_reader_derives(fresh):
    _folder, path, _image = fresh
    data = open(path, 'rb').read()
    parts = EhcParts.read(path)
    offset, length = index_span(data, parts.version)
    stored = _inflate(data[offset:offset + length], parts.version)
    assert [set(entry) for entry in stored['chunks']] == [{'length', 'crc32'}] * 6
    with container.EhcReader(path) as reader:
        metas = [reader.chunk_meta(i) for i in range(reader.chunk_count)]
        assert metas == [tile.as_dict() for tile in tile_grid(40, 24, 16)]
        assert [reader.read_chunk(i) for i in range(6)] == [c.payload for c in parts.chunks]
    assert parts.build() == data  # the forge leaves out what the writer leaves out


def test_an_offset_or_meta_that_differs_from_the_derived_one_stays_in_the_index(tmp_path):
    header = {'raster': {'width': 8, 'height': 4}, 'codec': {'tile_size': 4}}
    path = str(tmp_path / 'kept.ehc')
    with container.EhcWriter(path, header) as writer:
        writer.add_chunk(b'a', {'x': 0, 'y': 0, 'w': 4, 'h': 4})
        writer.add_blob('between', b'blob')
        writer.add_chunk(b'b', {'x': 4, 'y': 0, 'w': 4, 'h': 4})
        writer.add_chunk(b'c', {'x': 9})  # not a tile of the grid
    data = open(path, 'rb').read()
    offset, length = index_span(data, container.VERSION)
    stored = _inflate(data[offset:offset + length], container.VERSION)['chunks']
    assert [sorted(entry) for entry in stored] == [['crc32', 'length'], ['crc32', 'length', 'offset'],
                                                    ['crc32', 'length', 'meta']]
    with container.EhcReader(path) as reader:
        assert [reader.read_chunk(i) for i in range(3)] == [b'a', b'b', b'c'] and reader.chunk_meta(2) == {'x': 9}


def test_a_left_out_meta_the_header_cannot_give_is_refused(fresh, tmp_path):
    _folder, path, _image = fresh
    parts = EhcParts.read(path)
    edited = parts.copy()
    edited.header['codec']['tile_size'] = 8  # the grid now has other tiles: chunk 1's record is not tile 1 of it
    _refused(edited.build(), tmp_path, 'regrid', 'chunk|tile')
    with_extra = parts.copy()
    with_extra.chunks.append(Chunk({'x': 0}, b''))  # a 7th chunk: the grid has no 7th tile to derive it from
    data = with_extra.build(index_edit=lambda index: index['chunks'][6].pop('meta'))
    with pytest.raises(FormatError, match=r'chunk 6: meta must be an object'):
        container.EhcReader(_written(tmp_path / 'seven.ehc', data))


def _written(path, data):
    with open(path, 'wb') as handle:
        handle.write(data)
    return str(path)


def test_a_file_of_almost_only_empty_compact_tiles_decodes(tmp_path):
    """An rdnet tile without a valid pixel takes 8 stored bytes in a 3.x file (record, head byte, one length, mask):
    the reader's tiles-per-payload-byte bound must admit it (it once assumed 12, the 1.x / 2.x minimum)."""
    side = 128
    sparse = synthetic.write_scene(str(tmp_path / 'sparse.tif'), width=side, height=side, seed=3)
    ds = gdal.Open(sparse, gdal.GA_Update)
    empty = np.full((side, side), -32768, np.int16)
    for i in range(ds.RasterCount):  # nodata everywhere but 2 x 2 pixels in the middle (inside the swath)
        band = ds.GetRasterBand(i + 1)
        keep = band.ReadAsArray(64, 64, 2, 2)
        band.WriteArray(empty)
        band.WriteArray(keep, 64, 64)
    ds = None
    ehc, out = str(tmp_path / 'sparse.ehc'), str(tmp_path / 'sparse_out.tif')
    compress(sparse, ehc, 'rdnet', 1, 'cpu', threads=1, tile_size=8)
    with container.EhcReader(ehc) as reader:
        stored = [reader.stored_size(i) for i in range(reader.chunk_count)]
        smallest, payload = min(stored), sum(stored)
        assert reader.chunk_count * 12 > payload  # the old bound would have refused it
    assert smallest == 8
    decompress(ehc, out, 'cpu', threads=1)
    decoded = gdal.Open(out).ReadAsArray()
    decoded[:, 64:66, 64:66] = -32768
    assert (decoded == -32768).all()
