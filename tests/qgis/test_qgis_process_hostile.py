"""Hostile .ehc files through `qgis_process run enmapcompress:decompress`, as acceptance runs them: each is refused
with one message, no traceback, no output file (no temporary either), and little memory."""
import os
import subprocess
import sys

import pytest
from ehc_forge import EhcParts, nested_json, zlib_bomb

from enmap_compress.plugin.core.codec import compress
from tools import synthetic

# runs qgis_process and prints the peak RSS (kB) of that child: the whole QGIS process, plugin and decoder included
MEASURED = """
import subprocess, sys
code = subprocess.call(sys.argv[1:])
try:
    import resource
    print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
except ImportError:  # Windows
    pass
sys.exit(code)
"""


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hostile')
    scene = synthetic.write_scene(str(folder / 'scene.tif'), width=24, height=20, seed=5)
    valid = str(folder / 'valid.ehc')
    compress(scene, valid, 'pca', 5, 'cpu', tile_size=8)
    parts = EhcParts.read(valid)
    huge_tile = parts.copy()
    huge_tile.chunks[0].meta = dict(huge_tile.chunks[0].meta, w=100_000, h=100_000)
    files = {'index_bomb.ehc': (parts.build(index_raw=zlib_bomb(3 << 30, version=parts.version)),
                                'more than a valid file of this size needs'),
             'huge_tile.ehc': (huge_tile.build(), 'chunk 0 claims the tile'),
             'deep_header.ehc': (parts.build(header_json=nested_json(100_000)), 'nested more than 32 levels')}
    for name, (data, _message) in files.items():
        (folder / name).write_bytes(data)
    return folder, {name: message for name, (_data, message) in files.items()}


def test_hostile_files_are_refused_with_one_message(qgis_process_home, qgis_env_tool, qgis_process_bin, hostile,
                                                    tmp_path):
    folder, expected = hostile
    env = qgis_env_tool.qgis_process_env(qgis_process_home)
    qgis_env_tool.enable_plugin(qgis_process_home, env)
    for name, message in expected.items():
        out = tmp_path / name.replace('.ehc', '.tif')
        proc = subprocess.run([sys.executable, '-c', MEASURED, qgis_process_bin, 'run', 'enmapcompress:decompress',
                               '--', f'INPUT={folder / name}', 'DEVICE=1', f'OUTPUT={out}'],
                              env=env, capture_output=True, text=True, timeout=300)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0, text[-2000:]
        assert message in text and 'Traceback' not in text, text[-2000:]
        errors = {line.split(': ', 1)[-1] for line in text.splitlines() if message in line}
        assert len(errors) == 1, errors  # one message (qgis_process repeats it on stdout and stderr)
        assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
        if sys.platform.startswith('linux'):  # ru_maxrss in kB (resource exists on POSIX only)
            peak_mb = int(text.split('peak_kb')[1].split()[0]) / 1024
            print(name, f'qgis_process peak {peak_mb:.0f} MB')
            assert peak_mb < 1500
