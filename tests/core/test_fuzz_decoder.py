"""Seeded fuzz test of the decoder (ehc_fuzz.py): damaged and crafted .ehc files give a clean EnmapCompressError
and leave nothing behind, or decode to exactly the original image; never another exception, never unbounded
memory (the whole run is under a 2 GiB address-space limit, in which a 3 GiB zlib bomb cannot be inflated)."""
import json
import os
import subprocess
import sys

import pytest

from enmap_compress.plugin.core.codec import compress
from tools import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
OLD_RDNET = os.path.join(os.path.dirname(HERE), 'data', 'corpus', 'rdnet_q6_t16_hole.ehc')  # container 1.0
ADDRESS_SPACE = 2 << 30
SEED = 20261201


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='RLIMIT_AS is enforced on Linux')
def test_damaged_and_crafted_files_fail_cleanly_or_decode_identically(tmp_path):
    scene = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=24, height=20, seed=31)
    fresh = str(tmp_path / 'fresh.ehc')  # the current writer: MAX_ERROR, 9 tiles with nodata
    compress(scene, fresh, 'pca', None, 'cpu', max_error=3, tile_size=8)
    work = tmp_path / 'work'
    work.mkdir()
    proc = subprocess.run([sys.executable, os.path.join(HERE, 'ehc_fuzz.py'), str(work), str(SEED),
                           str(ADDRESS_SPACE), fresh, OLD_RDNET], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(summary, indent=1))
    assert summary['failures'] == [] and summary['outcomes'].get('failed', 0) == 0, summary['failures']
    assert summary['cases'] >= 120 and summary['outcomes']['refused'] >= 100
    for kind in ('bit flips', 'truncation', 'appended garbage', 'header field', 'index field', 'index bomb',
                 'header bomb', 'mask bomb', 'entropy side info bomb', 'chunks swapped', 'chunk dropped',
                 'chunk duplicated', 'header nesting'):
        assert summary['kinds'].get(kind), kind
    assert summary['peak_rss_mb'] < 1500
    assert sorted(os.listdir(work)) == ['reference0.tif', 'reference1.tif']
