"""Fixtures for tests that need QGIS: the project's tools (package.py, qgis_env.py) and a qgis_process runner.

    def test_something(qgis_process):
        result = qgis_process(['run', 'enmapcompress:compress', '--', 'INPUT=...', 'OUTPUT=...'])
        assert result.returncode == 0, result.stdout + result.stderr

`qgis_process` runs /usr/bin/qgis_process.bin with the plugin enabled in a QGIS home shared by the whole session
(the plugin is enabled once); it skips the test when qgis_process is not installed. For a home of your own, call
`qgis_env_tool.qgis_process(args, tmp_path)`. `package_tool` is tools/package.py.
"""
import importlib.util
import os
import sys

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS_DIR = os.path.join(PROJECT_ROOT, 'tools')


def load_tool(name):
    """Import tools/<name>.py as the module `enmap_compress_tool_<name>` (tools/ is not a package)."""
    module_name = f'enmap_compress_tool_{name}'
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(TOOLS_DIR, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def package_tool():
    """tools/package.py as a module (build_zip, check_zip, shipped_files ...)."""
    return load_tool('package')


@pytest.fixture(scope='session')
def qgis_env_tool():
    """tools/qgis_env.py as a module (qgis_process(args, home, ...), find_qgis_process ...)."""
    return load_tool('qgis_env')


@pytest.fixture(scope='session')
def qgis_process_bin(qgis_env_tool):
    """Path of qgis_process; skips the test when QGIS's qgis_process is not installed."""
    binary = qgis_env_tool.find_qgis_process()
    if binary is None:
        pytest.skip('qgis_process is not installed (/usr/bin/qgis_process.bin not found; install QGIS: '
                    'apt-get install qgis)')
    return binary


@pytest.fixture(scope='session')
def qgis_process_home(tmp_path_factory):
    """One QGIS home (plugins/, config/, runtime/) for all qgis_process runs of the session."""
    return tmp_path_factory.mktemp('qgis_process_home')


@pytest.fixture
def qgis_process(qgis_process_home, qgis_env_tool, qgis_process_bin):
    """A function run(args, timeout=300, plugin_source=None, extra_env=None, check=False) -> CompletedProcess."""

    def run(args, timeout=300, plugin_source=None, extra_env=None, check=False):
        return qgis_env_tool.qgis_process(args, qgis_process_home, plugin_source=plugin_source, timeout=timeout,
                                     extra_env=extra_env, check=check)

    return run
