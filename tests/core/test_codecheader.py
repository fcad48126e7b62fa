"""The codec part of the header and the tile payload as named types: CodecInfo writes the bytes every version wrote
and reads back what it wrote, naming a bad field; TileSections frame a tile as docs/format.md describes."""
import os
import shutil
import struct

import pytest

from enmap_compress.plugin.core import tilepayload
from enmap_compress.plugin.core.codec import compress
from enmap_compress.plugin.core.codecheader import SHA256_PREFIX, CodecInfo
from enmap_compress.plugin.core.container import EhcReader, to_json_bytes
from enmap_compress.plugin.core.errors import FormatError
from enmap_compress.plugin.core.runtime import find_model
from enmap_compress.plugin.core.tilepayload import TileSections
from enmap_compress.plugin.paths import MODELS_DIR
from tools import synthetic

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'corpus')
MODES = {'lossy': {}, 'max_error': {'max_error': 3}, 'lossless': {'max_error': 0},
         'relative': {'relative_error': 0.02, 'relative_floor': 2}, 'per_band': {'band_max_errors': [4] * 223 + [0]}}


def _codec_object(path):
    with EhcReader(path) as reader:
        return reader.header['codec']


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """A file of each coding mode, and one of a custom package (its header names the folder)."""
    folder = tmp_path_factory.mktemp('codec_info')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), width=20, height=12, seed=7)
    files = {}
    for name, bound in MODES.items():
        files[name] = str(folder / f'{name}.ehc')
        compress(scene, files[name], 'pca', 4, 'cpu', tile_size=8, **bound)
    custom = str(folder / 'custom' / 'pca')
    shutil.copytree(os.path.join(MODELS_DIR, 'pca'), custom)
    files['custom'] = str(folder / 'custom.ehc')
    compress(scene, files['custom'], custom, 4, 'cpu', tile_size=8)
    return files


def _compact(stored):
    """The codec object of a 1.x / 2.x file as a 3.x writer states it: no step, no extra_step_dn, a short sha256."""
    out = {key: value for key, value in stored.items() if key not in ('step', 'extra_step_dn')}
    return dict(out, model_sha256=stored['model_sha256'][:SHA256_PREFIX])


def test_codec_info_reads_back_to_the_same_json_bytes(written):
    """New files: the bytes read; frozen ones: the same keys in the same order, but for what 3.0 leaves out."""
    for path in written.values():
        stored = _codec_object(path)
        assert to_json_bytes(CodecInfo.from_json(stored, path).to_json()) == to_json_bytes(stored), path
        assert len(stored['model_sha256']) == SHA256_PREFIX and 'step' not in stored
    frozen = [os.path.join(CORPUS, n) for n in sorted(os.listdir(CORPUS)) if n.endswith('.ehc')]
    for path in frozen:
        stored = _codec_object(path)
        assert to_json_bytes(CodecInfo.from_json(stored, path).to_json()) == to_json_bytes(_compact(stored)), path


def test_the_short_sha256_names_only_its_decoder(written):
    stored = _codec_object(written['lossy'])
    full = find_model('pca').decoder_sha256()
    info = CodecInfo.from_json(stored, 'x.ehc')
    assert info.made_with(full) and not info.made_with(('f' if full[0] != 'f' else '0') + full[1:])
    assert CodecInfo.from_json(dict(stored, model_sha256=full), 'x.ehc').made_with(full)  # a 2.x file's digest
    for bad in (full[:15], full[:17], 'g' * 16, full + '0'):
        with pytest.raises(FormatError, match=r'x\.ehc: the header field codec\.model_sha256 is not valid'):
            CodecInfo.from_json(dict(stored, model_sha256=bad), 'x.ehc')


def test_codec_info_states_each_mode(written):
    infos = {name: CodecInfo.from_json(_codec_object(path), path) for name, path in written.items()}
    assert infos['lossy'].bound is None and infos['max_error'].bound.uniform == 3
    assert infos['max_error'].error_bound is None  # a plain MAX_ERROR keeps 0.1.0's layout
    assert infos['lossless'].bound.lossless and infos['lossless'].extra_coder == 'spectral-v1'
    assert infos['relative'].max_error is None and infos['relative'].bound.relative_error == 0.02
    assert infos['per_band'].residual_coder == 'predicted-v2' and infos['per_band'].bound.band_max_errors[-1] == 0
    assert infos['custom'].model_path == os.path.join(os.path.dirname(written['custom']), 'custom', 'pca')
    assert all(info.model_path is None for name, info in infos.items() if name != 'custom')


@pytest.mark.parametrize('key, value, message', [
    ('step', None, r'codec\.step must be a number, not None'),
    ('extra_coder', 5, r'codec\.extra_coder must be a text'),
    ('residual_coder', None, r'codec\.residual_coder must be a text, not None'),
    ('quality', 11, r'codec\.quality must be an integer from 1 to 10'),
    ('error_bound', {'relative_error': 5}, r'x\.ehc: .*relative error bound 5 is out of range'),
    ('error_bound', {'band_max_errors': [1, 2]}, r'codec\.error_bound\.band_max_errors must be a list of 224'),
])
def test_a_bad_codec_field_is_named(written, key, value, message):
    stored = dict(_codec_object(written['lossy']), **{key: value})
    with pytest.raises(FormatError, match=message):
        CodecInfo.from_json(stored, 'x.ehc')


def _framed(version, sections):
    """A tile payload framed by hand as docs/format.md describes it."""
    return struct.pack('<BH', version, len(sections)) + b''.join(struct.pack('<I', len(s)) for s in sections) + \
        b''.join(sections)


@pytest.mark.parametrize('sections, extended, version, order', [
    (TileSections(b'\x01', b'L'), False, 2, ['mask', 'latent']),
    (TileSections(b'\x01', b'L', extra=b'EE'), False, 2, ['mask', 'latent', 'extra']),
    (TileSections(b'\x00', b'', samples=b'SSS'), False, 3, ['mask', 'latent', 'samples']),
    (TileSections(b'\x01', b'L', residual=b'R', checksum=b'CCCC'), False, 2, ['mask', 'latent', 'residual',
                                                                              'checksum']),
    (TileSections(b'\x01', b'L', b'EE', b'R', b'CCCC'), True, 4, ['mask', 'latent', 'extra', 'residual', 'checksum',
                                                                  None]),
    (TileSections(b'\x01', b'L', None, b'R', b'CCCC', b'SS'), True, 4, ['mask', 'latent', 'residual', 'checksum',
                                                                        'samples']),
])
def test_tile_sections_are_framed_in_the_documented_order(sections, extended, version, order):
    parts = [getattr(sections, name) if name else b'' for name in order]  # None: the empty sample section of v4
    payload = tilepayload.pack(sections, extended)
    assert payload == _framed(version, parts)
    assert tilepayload.unpack(payload, sections.extra is not None, sections.residual is not None) == sections


def test_a_payload_with_other_sections_than_its_file_is_refused():
    payload = tilepayload.pack(TileSections(b'\x01', b'L', residual=b'R', checksum=b'CCC'))
    with pytest.raises(FormatError, match='holds 4 sections; the tiles of this file have 2'):
        tilepayload.unpack(payload, has_extra=False, bounded=False)
    with pytest.raises(FormatError, match='checksum section is not 4 bytes'):
        tilepayload.unpack(payload, has_extra=False, bounded=True)
