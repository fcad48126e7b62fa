"""Files written today decode forever: each frozen corpus (tests/data/corpus/ by 0.1.0, tests/data/corpus-0.3/ by
0.3.0, tests/data/corpus-0.4/ by 0.4.0, tests/data/corpus-0.5/ by 0.5.0, tests/data/corpus-0.6/ by 0.6.0,
tests/data/corpus-0.7/ by 0.7.0, written by
make_corpus.py with the version
named in its corpus.json) decodes bit-identically, metadata included, with the current reader."""
import importlib.util
import json
import os

import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import decompress
from enmap_compress.plugin.core.container import EhcReader

gdal.UseExceptions()

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
CORPORA = ('corpus', 'corpus-0.3', 'corpus-0.4', 'corpus-0.5', 'corpus-0.6', 'corpus-0.7')


def _record(corpus):
    with open(os.path.join(DATA, corpus, 'corpus.json'), encoding='utf-8') as handle:
        return json.load(handle)


RECORDS = {corpus: _record(corpus) for corpus in CORPORA}
MODELS = {'corpus': {'pca', 'rdnet', 'cae1d', 'hycot'}, 'corpus-0.3': {'pca', 'rdnet', 'cae1d', 'hycot', 'sscnet'},
          'corpus-0.4': {'pca', 'rdnet', 'cae1d', 'hycot', 'sscnet', 'cae3d'},
          'corpus-0.5': {'rdnet'}, 'corpus-0.6': {'rdnet'},  # 0.5.0 and 0.6.0 changed only rdnet's lossy files
          'corpus-0.7': {'rdnet', 'pca'}}  # and 0.7.0 their error-bounded and lossless ones
FILES = [(corpus, name) for corpus in CORPORA for name in sorted(RECORDS[corpus]['files'])]


def _make_corpus():
    spec = importlib.util.spec_from_file_location('make_corpus', os.path.join(DATA, 'make_corpus.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mode(options):
    if options.get('band_max_errors'):
        return 'band_max_errors'
    if options.get('relative_error'):
        return 'relative'
    return ('lossless' if options.get('max_error') == 0 else 'max_error' if options.get('max_error') else 'lossy')


@pytest.mark.parametrize('corpus, modes', [('corpus', {'lossy', 'max_error', 'lossless'}),
                                           ('corpus-0.3', {'lossy', 'max_error', 'lossless', 'band_max_errors',
                                                           'relative'}),
                                           ('corpus-0.4', {'lossy', 'max_error', 'lossless', 'band_max_errors'}),
                                           ('corpus-0.5', {'lossy'}), ('corpus-0.6', {'lossy'}),
                                           ('corpus-0.7', {'max_error', 'lossless', 'band_max_errors', 'relative'})])
def test_a_corpus_covers_every_bundled_model_and_mode_of_its_version(corpus, modes):
    files = RECORDS[corpus]['files']
    assert {e['compress']['model'] for e in files.values()} >= MODELS[corpus]
    assert {_mode(e['compress']) for e in files.values()} == modes
    assert all(e['tiles'] > 1 for e in files.values())
    assert sum(os.path.getsize(os.path.join(DATA, corpus, name)) for name in files) < 2_000_000


def test_the_0_3_corpus_holds_the_payloads_that_version_added():
    coders = set()
    for name in RECORDS['corpus-0.3']['files']:
        with EhcReader(os.path.join(DATA, 'corpus-0.3', name)) as reader:
            codec = reader.header['codec']
            coders |= {codec.get('latent_coder'), codec.get('residual_coder')}
    assert {'context-v1', 'predicted-v2', 'plain-v2'} <= coders


def test_the_0_4_corpus_holds_container_3_files_with_compact_tiles():
    smallest = []
    for name in RECORDS['corpus-0.4']['files']:
        with EhcReader(os.path.join(DATA, 'corpus-0.4', name)) as reader:
            assert reader.version[0] == 3
            smallest.append(min(reader.read_chunk(i)[0] for i in range(reader.chunk_count)))
    assert all(16 <= head < 32 for head in smallest)  # every tile's head byte is a compact one (16 + ...)


def test_the_0_7_corpus_holds_exact_synthesis_files():
    for name in RECORDS['corpus-0.7']['files']:
        with EhcReader(os.path.join(DATA, 'corpus-0.7', name)) as reader:
            assert reader.header['codec']['latent_coder'] == ('model-exact-v1' if name.startswith('pca')
                                                               else 'context-v4')


@pytest.mark.parametrize('corpus, coder', [('corpus-0.5', 'context-v2'), ('corpus-0.6', 'context-v3')])
def test_the_0_5_and_0_6_corpora_hold_rotated_and_unrotated_tiles_of_their_coder(corpus, coder):
    from bench.file_basis import tile_rotations

    rotations = []
    for name in RECORDS[corpus]['files']:
        path = os.path.join(DATA, corpus, name)
        with EhcReader(path) as reader:
            assert reader.header['codec']['latent_coder'] == coder
        rotations += tile_rotations(path)
    assert any(rotations) and not all(rotations)


@pytest.mark.parametrize('corpus, name', FILES)
def test_a_frozen_file_decodes_bit_identically(corpus, name, tmp_path):
    entry = RECORDS[corpus]['files'][name]
    path = os.path.join(DATA, corpus, name)
    assert os.path.getsize(path) == entry['bytes']
    with EhcReader(path) as reader:
        reader.verify()
    out = str(tmp_path / 'out.tif')
    decompress(path, out, 'cpu')
    assert _make_corpus().describe_output(out) == entry['decoded']
