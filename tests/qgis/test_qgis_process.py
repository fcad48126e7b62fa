"""qgis_process sees the plugin: run exactly like ../shared/checks/qp.sh, with every folder under pytest's tmp."""
import json
import zipfile

import pytest

PROVIDER_ID = 'enmapcompress'
PROVIDER_NAME = 'EnMAP Compress'


def _listing(qgis_env_tool, home, plugin_source=None):
    result = qgis_env_tool.qgis_process(['list', '--json'], home, plugin_source=plugin_source, timeout=120)
    assert result.returncode == 0, f'qgis_process list failed:\n{result.stdout}\n{result.stderr}'
    text = result.stdout
    return json.loads(text[text.index('{'):])


@pytest.fixture(scope='module')
def checkout_listing(tmp_path_factory, qgis_env_tool, qgis_process_bin):
    return _listing(qgis_env_tool, tmp_path_factory.mktemp('qp_checkout'))


def test_list_shows_the_provider(checkout_listing):
    providers = checkout_listing['providers']
    assert PROVIDER_ID in providers, f'provider {PROVIDER_ID} not listed; providers: {sorted(providers)}'
    provider = providers[PROVIDER_ID]
    assert provider['name'] == PROVIDER_NAME
    algorithms = provider['algorithms']
    assert algorithms, 'the provider is listed but has no algorithms (did plugin/processing/algorithms.py import?)'
    assert all(a.startswith(f'{PROVIDER_ID}:') for a in algorithms)


def test_plain_list_and_plugins_output(tmp_path, qgis_env_tool, qgis_process_bin):
    listing = qgis_env_tool.qgis_process(['list'], tmp_path, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert PROVIDER_NAME in listing.stdout.splitlines()
    assert f'\t{PROVIDER_ID}:' in listing.stdout
    plugins = qgis_env_tool.qgis_process(['plugins'], tmp_path, timeout=120)
    assert plugins.returncode == 0, plugins.stderr
    assert '* enmap_compress' in plugins.stdout, plugins.stdout
    for folder in ('plugins', 'config', 'runtime'):  # everything stays in the given home
        assert (tmp_path / folder).is_dir()


def test_session_fixture(qgis_process):
    result = qgis_process(['list', '--json'], timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'"{PROVIDER_ID}"' in result.stdout


def test_release_zip_works_in_qgis_process(tmp_path, checkout_listing, package_tool, qgis_env_tool):
    """The zip's content alone (no tests/, tools/ ...) loads in qgis_process with the same algorithms."""
    try:
        zip_path, _files, _notes = package_tool.build_zip(package_tool.PROJECT_ROOT, tmp_path / 'dist',
                                                          source='git-untracked')
    except package_tool.PackageError:  # not a git checkout
        zip_path, _files, _notes = package_tool.build_zip(package_tool.PROJECT_ROOT, tmp_path / 'dist',
                                                          source='walk')
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path / 'unpacked')
    listing = _listing(qgis_env_tool, tmp_path / 'home', plugin_source=tmp_path / 'unpacked' / 'enmap_compress')
    assert PROVIDER_ID in listing['providers']
    assert sorted(listing['providers'][PROVIDER_ID]['algorithms']) == \
        sorted(checkout_listing['providers'][PROVIDER_ID]['algorithms'])
