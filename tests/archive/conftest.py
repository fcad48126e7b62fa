"""Fixtures of the archive tests."""
import pytest
from archive_fixtures import make_archive


@pytest.fixture
def archive(tmp_path):
    """(SRC, expected outputs) of a small synthetic archive (see archive_fixtures.make_archive)."""
    return make_archive(str(tmp_path))
