"""Files written today decode forever: the frozen corpus (tests/data/corpus/, written by make_corpus.py with the
version named in corpus.json) decodes bit-identically, metadata included, with the current reader."""
import importlib.util
import json
import os

import pytest
from osgeo import gdal

from enmap_compress.plugin.core.codec import decompress
from enmap_compress.plugin.core.container import EhcReader

gdal.UseExceptions()

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
CORPUS = os.path.join(DATA, 'corpus')
with open(os.path.join(CORPUS, 'corpus.json'), encoding='utf-8') as _handle:
    RECORD = json.load(_handle)


def _make_corpus():
    spec = importlib.util.spec_from_file_location('make_corpus', os.path.join(DATA, 'make_corpus.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_covers_every_bundled_model_and_mode():
    files = RECORD['files']
    assert {e['compress']['model'] for e in files.values()} >= {'pca', 'rdnet', 'cae1d', 'hycot'}
    modes = {('lossless' if e['compress'].get('max_error') == 0 else
              'max_error' if e['compress'].get('max_error') else 'lossy') for e in files.values()}
    assert modes == {'lossy', 'max_error', 'lossless'}
    assert all(e['tiles'] > 1 for e in files.values())
    assert sum(os.path.getsize(os.path.join(CORPUS, name)) for name in files) < 2_000_000


@pytest.mark.parametrize('name', sorted(RECORD['files']))
def test_a_frozen_file_decodes_bit_identically(name, tmp_path):
    entry = RECORD['files'][name]
    path = os.path.join(CORPUS, name)
    assert os.path.getsize(path) == entry['bytes']
    with EhcReader(path) as reader:
        reader.verify()
    out = str(tmp_path / 'out.tif')
    decompress(path, out, 'cpu')
    assert _make_corpus().describe_output(out) == entry['decoded']
