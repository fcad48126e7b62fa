"""Shared test fixtures. Tests that need ../shared/data skip with a reason when it is absent."""
import os
import sys

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get('ENMAP_SHARED_DATA', os.path.join(os.path.dirname(PROJECT_ROOT), 'shared', 'data'))
POTSDAM_DIR = os.path.join(SHARED_DATA, 'enmap_potsdam')

# The plugin is imported as the package `enmap_compress` (its folder name when installed); make that importable
# from a checkout whatever the checkout folder is called.
_alias_dir = os.path.join(PROJECT_ROOT, 'build', 'import_alias')
if not os.path.isdir(os.path.join(_alias_dir, 'enmap_compress')):
    os.makedirs(_alias_dir, exist_ok=True)
    try:
        os.symlink(PROJECT_ROOT, os.path.join(_alias_dir, 'enmap_compress'))
    except FileExistsError:
        pass
if _alias_dir not in sys.path:
    sys.path.insert(0, _alias_dir)


def potsdam_tiles():
    if not os.path.isdir(POTSDAM_DIR):
        return []
    return sorted(os.path.join(POTSDAM_DIR, f) for f in os.listdir(POTSDAM_DIR) if f.endswith('.tif'))


@pytest.fixture
def potsdam_tile_paths():
    tiles = potsdam_tiles()
    if not tiles:
        pytest.skip(f'shared EnMAP Potsdam tiles not found in {POTSDAM_DIR}')
    return tiles
