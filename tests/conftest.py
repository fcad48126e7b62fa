"""Shared test fixtures. Tests that need ../shared/data skip with a reason when it is absent."""
import os

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get('ENMAP_SHARED_DATA', os.path.join(os.path.dirname(PROJECT_ROOT), 'shared', 'data'))
POTSDAM_DIR = os.path.join(SHARED_DATA, 'enmap_potsdam')

# The plugin is imported as the installed package `enmap_compress` (`pip install -e .`, done by `make venv`).


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
