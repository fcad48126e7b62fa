"""metadata.txt describes what ships (#16 "Metadata"): every bundled model and the default one in `about`, no
training in QGIS, and the changelog starting with this version."""
import configparser
import os

from enmap_compress.plugin.core import runtime

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _general():
    parser = configparser.RawConfigParser()  # plugins.qgis.org reads it without interpolation too
    parser.read(os.path.join(PROJECT_ROOT, 'metadata.txt'), encoding='utf-8')
    return parser['general']


def test_about_names_every_bundled_model_and_the_default():
    about = _general()['about']
    models = os.path.join(PROJECT_ROOT, 'models')
    bundled = [package for package in runtime.list_models()
               if os.path.dirname(os.path.abspath(package.folder)) == models]
    assert {os.path.basename(package.folder) for package in bundled} == \
        {name for name in os.listdir(models) if os.path.isdir(os.path.join(models, name))}
    for package in bundled:
        name = package.meta.name.replace(':', ' ').split()[0]  # "1D-CAE (Kuester et al. 2021)" -> "1D-CAE"
        assert name in about, name
    assert f'{runtime.default_model_id()} (the default' in about
    assert 'Nothing is trained inside QGIS' in about


def test_the_changelog_starts_with_this_version():
    general = _general()
    assert general['changelog'].startswith(f'{general["version"]} ')
