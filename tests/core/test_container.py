"""The .ehc container: round trips, streaming, atomic writing, versioning and every kind of damage."""
import gc
import json
import os
import struct
import zlib

import numpy as np
import pytest

from enmap_compress.plugin.core import container
from enmap_compress.plugin.core.container import EhcReader, EhcWriter, file_size_bits
from enmap_compress.plugin.core.errors import FormatError, OutputError
from enmap_compress.plugin.core.headerdict import DICTIONARIES, DICTIONARY, DICTIONARY_3

HEADER_DICTIONARY_SHA256 = 'f47e9f9398a87cb0edcf38dc4eca172f276dbea6d280630920819054c0b00b71'
HEADER_DICTIONARY_3_SHA256 = 'd6bb28078848d0a0603937813de2505169d6ea15eac3ffaaf13f805dd41a11fc'

HEADER = {
    'format': 'enmap-compress',
    'raster': {'width': np.int64(1000), 'height': 1200, 'crs_wkt': 'PROJCS["WGS 84 / UTM zone 33N"]',
               'geotransform': (300000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0), 'nodata': float('nan'),
               'wavelengths': np.linspace(418.4, 2445.5, 224, dtype=np.float32), 'dtype': 'int16',
               'names': [f'band {i}' for i in range(224)], 'dead_bands': np.array([True, False])},
    'codec': {'model_id': 'pca', 'quality': np.int32(3), 'step': np.float32(0.5), 'unicode': 'Größe µm'},
}


def _write(path, chunks=((b'first', {'x': 0}), (b'', {'x': 1}), (b'third chunk', {'x': 2})), blobs=None,
           footer=None):
    with EhcWriter(path, HEADER) as writer:
        for payload, meta in chunks:
            writer.add_chunk(payload, meta)
        for name, payload in (blobs or {'mask': b'\x01\x02\x03'}).items():
            writer.add_blob(name, payload)
        writer.footer_meta = footer if footer is not None else {'valid_pixels': 123}
    return path


def _read_all(path):
    with EhcReader(path) as reader:
        reader.verify()
        return reader.header, reader.footer, [reader.read_chunk(i) for i in range(reader.chunk_count)]


def test_header_chunks_blobs_and_footer_round_trip(tmp_path):
    path = _write(tmp_path / 'a.ehc')
    with EhcReader(path) as reader:
        assert reader.version == container.VERSION
        header = reader.header
        assert header['raster']['width'] == 1000 and header['codec']['quality'] == 3
        assert header['codec']['step'] == 0.5 and header['codec']['unicode'] == 'Größe µm'
        assert np.isnan(header['raster']['nodata'])
        assert header['raster']['geotransform'] == [300000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0]
        np.testing.assert_array_equal(np.float32(header['raster']['wavelengths']), HEADER['raster']['wavelengths'])
        assert header['raster']['dead_bands'] == [True, False]
        assert reader.footer == {'valid_pixels': 123}
        assert reader.chunk_count == 3
        assert [reader.chunk_meta(i) for i in range(3)] == [{'x': 0}, {'x': 1}, {'x': 2}]
        assert reader.read_chunk(2) == b'third chunk' and reader.read_chunk(1) == b''
        assert list(reader.iter_chunks()) == [({'x': 0}, b'first'), ({'x': 1}, b''), ({'x': 2}, b'third chunk')]
        assert reader.blob_names == ['mask'] and reader.blob('mask') == b'\x01\x02\x03'
    assert file_size_bits(path) == 8 * os.path.getsize(path)


def test_many_chunks_stream_and_read_back_in_any_order(tmp_path):
    rng = np.random.default_rng(1)
    payloads = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 1500)]
    path = tmp_path / 'many.ehc'
    with EhcWriter(path, HEADER) as writer:
        for i, payload in enumerate(payloads):
            assert writer.add_chunk(memoryview(payload), {'x': i * 256, 'y': 0, 'w': 256, 'h': 256}) == i
        assert writer.chunk_count == 1500
    with EhcReader(path) as reader:
        for i in rng.permutation(len(payloads))[:300]:
            assert reader.read_chunk(int(i)) == payloads[i]
            assert reader.chunk_meta(int(i))['x'] == i * 256
    overhead = os.path.getsize(path) - sum(map(len, payloads))
    # the compressed index, about 20 bytes a chunk (CRCs do not compress), and the meta each chunk records (9 bytes)
    assert overhead < 40 * 1500


def test_container_overhead_for_a_scene_is_a_few_kilobytes(tmp_path):
    path = _write(tmp_path / 's.ehc', chunks=[(b'x' * 1000, {'x': 256 * i, 'y': 0, 'w': 256, 'h': 256})
                                              for i in range(16)])
    assert os.path.getsize(path) - 16 * 1000 - 3 < 4096


def test_memoryview_payloads_are_stored_by_bytes_not_items(tmp_path):
    values = np.arange(10, dtype=np.int32)
    path = _write(tmp_path / 'm.ehc', chunks=[(memoryview(values), {})])
    with EhcReader(path) as reader:
        assert reader.read_chunk(0) == values.tobytes()


def test_header_that_is_not_json_is_a_type_error_naming_the_key(tmp_path):
    for bad, where in [({'a': {'b': b'bytes'}}, "header['a']['b']"), ({'s': {1, 2}}, "header['s']"),
                       ({'k': {1: 'int key'}}, "header['k']"), ({'o': object()}, "header['o']")]:
        with pytest.raises(TypeError, match=where.replace('[', r'\[').replace(']', r'\]')):
            EhcWriter(tmp_path / 'bad.ehc', bad)
    with pytest.raises(TypeError, match='add_blob'):
        EhcWriter(tmp_path / 'bad.ehc', {'mask': np.zeros(3, dtype=object)})
    assert os.listdir(tmp_path) == []
    with EhcWriter(tmp_path / 'ok.ehc', {}) as writer:
        with pytest.raises(TypeError, match='meta of chunk 0'):
            writer.add_chunk(b'', {'when': object()})
        with pytest.raises(TypeError, match='bytes'):
            writer.add_chunk('text', {})


def test_exception_inside_the_with_block_leaves_no_file_and_no_temp(tmp_path):
    with pytest.raises(RuntimeError), EhcWriter(tmp_path / 'x.ehc', HEADER) as writer:
        writer.add_chunk(b'data', {})
        raise RuntimeError('boom')
    assert os.listdir(tmp_path) == []


def test_abandoned_writer_leaves_nothing(tmp_path):
    writer = EhcWriter(tmp_path / 'x.ehc', HEADER)
    writer.add_chunk(b'data', {})
    assert not (tmp_path / 'x.ehc').exists()  # only the temporary file exists until finalize()
    del writer
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_abort_and_finalize_rules(tmp_path):
    writer = EhcWriter(tmp_path / 'x.ehc', HEADER)
    writer.abort()
    writer.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match='already finalised or aborted'):
        writer.add_chunk(b'', {})
    with EhcWriter(tmp_path / 'y.ehc', HEADER) as writer:
        writer.add_blob('mask', b'1')
        with pytest.raises(ValueError, match='already added'):
            writer.add_blob('mask', b'2')
        assert writer.finalize() == str(tmp_path / 'y.ehc')  # explicit finalize inside `with` is fine
    assert os.listdir(tmp_path) == ['y.ehc']


def test_an_existing_file_is_replaced_only_when_complete(tmp_path):
    path = _write(tmp_path / 'a.ehc', footer={'run': 1})
    with pytest.raises(RuntimeError), EhcWriter(path, HEADER) as writer:
        writer.footer_meta['run'] = 2
        raise RuntimeError('cancelled')
    assert _read_all(path)[1] == {'run': 1}
    _write(path, footer={'run': 3})
    assert _read_all(path)[1] == {'run': 3}
    assert os.listdir(tmp_path) == ['a.ehc']


def test_missing_folder_is_created_but_a_file_in_the_way_is_an_output_error(tmp_path):
    _write(tmp_path / 'new' / 'deeper' / 'a.ehc')
    assert (tmp_path / 'new' / 'deeper' / 'a.ehc').exists()
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('x')
    with pytest.raises(OutputError, match='not_a_folder'):
        EhcWriter(blocker / 'a.ehc', HEADER)
    with pytest.raises(OutputError, match='is a folder'):
        EhcWriter(tmp_path / 'new', HEADER)


def test_a_full_disk_is_an_output_error_and_leaves_nothing(tmp_path):
    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            raise OSError(28, 'No space left on device')

        def close(self):
            self.file.close()

    writer = EhcWriter(tmp_path / 'full.ehc', HEADER)
    writer._file = FullDisk(writer._file)
    with pytest.raises(OutputError, match=r'full\.ehc: not enough disk space in '):
        writer.add_chunk(b'data', {})
    assert os.listdir(tmp_path) == []


def test_every_truncation_is_a_format_error(tmp_path):
    path = _write(tmp_path / 'a.ehc')
    data = path.read_bytes()
    cut = tmp_path / 'cut.ehc'
    for size in range(len(data)):
        cut.write_bytes(data[:size])
        with pytest.raises(FormatError, match='truncated|not an EnMAP Compress|corrupt'):
            _read_all(cut)


def test_truncated_file_says_it_was_not_written_completely(tmp_path):
    path = _write(tmp_path / 'a.ehc', chunks=[(b'x' * 5000, {})])
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(FormatError, match='truncated or incomplete .no end marker.'):
        EhcReader(path)


def test_every_flipped_byte_is_a_format_error(tmp_path):
    path = _write(tmp_path / 'a.ehc')
    data = path.read_bytes()
    bad = tmp_path / 'bad.ehc'
    for pos in range(len(data)):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x10
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(FormatError):
            _read_all(bad)


def test_a_corrupt_chunk_is_named_and_the_others_still_read(tmp_path):
    chunks = [(bytes([i]) * 100, {'i': i}) for i in range(5)]
    path = _write(tmp_path / 'a.ehc', chunks=chunks)
    with EhcReader(path) as reader:
        offset = reader._chunks[3]['offset']
    data = bytearray(path.read_bytes())
    data[offset + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    with EhcReader(path) as reader:
        assert reader.read_chunk(4) == chunks[4][0]
        with pytest.raises(FormatError, match='chunk 3 is corrupt .checksum mismatch.'):
            reader.read_chunk(3)
        with pytest.raises(IndexError, match='no chunk 5'):
            reader.read_chunk(5)
        with pytest.raises(KeyError, match='no blob named'):
            reader.blob('missing')


@pytest.mark.parametrize('content', [b'', b'GIF89a', b'\x89PNG\r\n\x1a\n' + b'\0' * 100, b'{"json": true}'])
def test_other_files_are_not_ehc_files(tmp_path, content):
    path = tmp_path / 'other.ehc'
    path.write_bytes(content)
    with pytest.raises(FormatError, match='not an EnMAP Compress .ehc file'):
        EhcReader(path)


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match='Cannot open'):
        EhcReader(tmp_path / 'nothing.ehc')


def _with_version(data, major, minor):
    """Change the version and reseal the header CRC, as a writer of that version would."""
    head = bytearray(data)
    struct.pack_into('<HH', head, 8, major, minor)
    header_len = struct.unpack_from('<I', head, 12)[0]
    crc = zlib.crc32(bytes(head[20:20 + header_len]), zlib.crc32(bytes(head[8:16])))
    struct.pack_into('<I', head, 16, crc)
    return bytes(head)


def test_a_future_major_version_is_refused_naming_both_versions(tmp_path):
    path = _write(tmp_path / 'a.ehc')
    path.write_bytes(_with_version(path.read_bytes(), 4, 1))
    with pytest.raises(FormatError, match=r'version 4\.1 .ehc file; this EnMAP Compress reads versions 1\.x, 2\.x, '
                                          r'3\.x only\. Update the plugin to read it\.'):
        EhcReader(path)


def test_a_newer_minor_version_is_still_read(tmp_path):
    path = _write(tmp_path / 'a.ehc')
    path.write_bytes(_with_version(path.read_bytes(), 3, 7))
    with EhcReader(path) as reader:
        assert reader.version == (3, 7) and reader.read_chunk(0) == b'first'


def test_the_layout_is_the_documented_one(tmp_path):
    """Decode a file by hand, as docs/format.md describes it, without the reader."""
    data = _write(tmp_path / 'a.ehc').read_bytes()
    magic, major, minor, header_len, _crc = struct.unpack_from('<8sHHII', data, 0)
    assert (magic, major, minor) == (b'\x89EHC\r\n\x1a\n', 3, 0)
    header = json.loads(zlib.decompressobj(-15, DICTIONARY_3).decompress(data[20:20 + header_len]))
    assert header['format'] == 'enmap-compress'
    index_len, index_crc, trailer_crc, end = struct.unpack_from('<QII8s', data, len(data) - 24)
    assert end == b'\x89EHCEND\n' and trailer_crc == zlib.crc32(data[-24:-12])
    index_offset = len(data) - 24 - index_len  # 3.x: the index ends where the trailer starts
    index = json.loads(zlib.decompressobj(-15, DICTIONARY_3).decompress(data[index_offset:index_offset + index_len]))
    first, second = index['chunks'][:2]
    assert 'offset' not in first and 'offset' not in second  # 3.x: each starts where the one before ends
    record = data[20 + header_len:20 + header_len + first['length']]  # the first where the payload area starts
    assert first['meta'] == {'x': 0} and record == b'\x01\x00first'  # one meta value, x = 0 (zigzag varint 0)
    assert zlib.crc32(record) == first['crc32'] and index['footer'] == {'valid_pixels': 123}
    assert index['blobs']['mask']['length'] == 3 and zlib.crc32(data[index_offset:-24]) == index_crc


def test_the_preset_dictionaries_never_change():
    """Every 2.x (3.x) file's header and index inflate with this dictionary: changing it would break them all."""
    import hashlib

    assert hashlib.sha256(DICTIONARY).hexdigest() == HEADER_DICTIONARY_SHA256
    assert hashlib.sha256(DICTIONARY_3).hexdigest() == HEADER_DICTIONARY_3_SHA256
    assert DICTIONARIES == {2: DICTIONARY, 3: DICTIONARY_3}


def test_a_2_0_file_still_reads_with_its_own_dictionary(tmp_path):
    """A 2.x reader would call a 3.x header corrupt, hence the major version; this reader reads both."""
    header = container.to_json_bytes(HEADER)
    head, index = container.deflate_json(header, (2, 0)), container.deflate_json(b'{"chunks":[],"footer":{}}', (2, 0))
    prefix = struct.pack('<8sHHI', container.MAGIC, 2, 0, len(head))
    data = prefix + struct.pack('<I', zlib.crc32(head, zlib.crc32(prefix[8:16]))) + head + index
    offset = len(data) - len(index)
    head_crc = struct.pack('<QQI', offset, len(index), zlib.crc32(index))
    path = tmp_path / 'v2.ehc'
    path.write_bytes(data + head_crc + struct.pack('<I', zlib.crc32(head_crc)) + container.END_MAGIC)
    with EhcReader(path) as reader:
        assert reader.version == (2, 0) and reader.header == json.loads(header) and reader.chunk_count == 0
    assert container.deflate_json(header, (2, 0)) != container.deflate_json(header)


def test_a_version_1_0_file_still_reads(tmp_path):
    """Files of 0.1.0: zlib header and index, bare chunk payloads."""
    header = json.dumps({'format': 'enmap-compress'}).encode()
    head = zlib.compress(header, 6)
    prefix = struct.pack('<8sHHII', container.MAGIC, 1, 0, len(head), 0)
    prefix = struct.pack('<8sHHII', container.MAGIC, 1, 0, len(head), zlib.crc32(head, zlib.crc32(prefix[8:16])))
    payload = b'first'
    start = len(prefix) + len(head)
    index = zlib.compress(json.dumps({'chunks': [{'offset': start, 'length': 5, 'crc32': zlib.crc32(payload),
                                                  'meta': {'x': 0}}], 'blobs': {}, 'footer': {}}).encode(), 6)
    offset = start + len(payload)
    trailer_head = struct.pack('<QQI', offset, len(index), zlib.crc32(index))
    trailer = struct.pack('<QQII8s', offset, len(index), zlib.crc32(index), zlib.crc32(trailer_head),
                          container.END_MAGIC)
    path = tmp_path / 'old.ehc'
    path.write_bytes(prefix + head + payload + index + trailer)
    with EhcReader(path) as reader:
        assert reader.version == (1, 0) and reader.header == {'format': 'enmap-compress'}
        assert reader.read_chunk(0) == b'first' and reader.chunk_meta(0) == {'x': 0}

