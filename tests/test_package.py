"""tools/package.py builds a zip plugins.qgis.org accepts, and each of its checks can fail; tools/install.py links,
copies and removes the plugin safely."""
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _load_tool(name):
    module_name = f'enmap_compress_tool_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, PROJECT_ROOT / 'tools' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


package = _load_tool('package')
install = _load_tool('install')

GOOD_METADATA = (PROJECT_ROOT / 'metadata.txt').read_text(encoding='utf-8')


# ---------------------------------------------------------------------------------------------------------------
# The real package


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    zip_path, files, notes = package.build_zip(PROJECT_ROOT, out)
    return zip_path, files


def test_license_is_gpl2():
    text = (PROJECT_ROOT / 'LICENSE').read_text(encoding='utf-8')
    system_copy = Path('/usr/share/common-licenses/GPL-2')
    if system_copy.is_file():
        assert text == system_copy.read_text(encoding='utf-8')
    assert 'GNU GENERAL PUBLIC LICENSE' in text and 'Version 2, June 1991' in text


def test_zip_name_and_layout(built):
    zip_path, files = built
    assert zip_path.name == f'enmap_compress-{package.read_version(PROJECT_ROOT)}.zip'
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        infos = zf.infolist()
    assert names == sorted(names), 'entries are not in a fixed (sorted) order'
    assert all(n.startswith('enmap_compress/') for n in names)
    assert names == [f'enmap_compress/{f}' for f in sorted(files)]
    for required in ('metadata.txt', '__init__.py', 'LICENSE', 'plugin/__init__.py', 'plugin/plugin.py',
                     'plugin/processing/provider.py', 'resources/icon.svg'):
        assert f'enmap_compress/{required}' in names
    tops = {n.split('/')[1] for n in names}
    assert tops <= set(package.SHIPPED_TOP_FILES) | set(package.SHIPPED_TOP_DIRS), tops
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.external_attr >> 16) & 0o777 == 0o644


def test_zip_holds_every_shippable_file_of_the_checkout(built):
    """Nothing the plugin needs is dropped by the filters (compared with the working tree, untracked included)."""
    _, files = built
    on_disk = [f for f in package.walk_files(PROJECT_ROOT) if package.skip_reason(f) is None]
    tracked = package.git_file_lists(PROJECT_ROOT)
    if tracked is not None:
        ignored_or_untracked = set(on_disk) - set(tracked[0]) - set(tracked[1])
        on_disk = [f for f in on_disk if f not in ignored_or_untracked]
        if set(package.REQUIRED_FILES[:2]) <= set(tracked[0]):  # committed checkout: only tracked files ship
            on_disk = [f for f in on_disk if f in tracked[0]]
    assert sorted(files) == sorted(on_disk)


def test_build_is_deterministic(built, tmp_path):
    zip_path, _ = built
    again, _, _ = package.build_zip(PROJECT_ROOT, tmp_path)
    assert again.read_bytes() == zip_path.read_bytes()


def test_built_zip_passes_the_check(built):
    report = package.check_zip(built[0])
    assert report.passed, report.format()


def test_command_line_build_and_check(tmp_path):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / 'tools' / 'package.py'), '--out', str(tmp_path),
                           '--check'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'PASSED' in proc.stdout
    assert list(tmp_path.glob('enmap_compress-*.zip'))
    assert not list(tmp_path.glob('*.part'))


# ---------------------------------------------------------------------------------------------------------------
# What ships


@pytest.mark.parametrize('path, ships', [
    ('metadata.txt', True), ('__init__.py', True), ('LICENSE', True), ('README.md', True),
    ('plugin/core/codec.py', True), ('plugin/ui/dialog.ui', True), ('plugin/templates/report.html', True),
    ('models/pca/model.onnx', True), ('models/pca/model.json', True), ('resources/icon.svg', True),
    ('resources/style.qml', True),
    ('tests/test_x.py', False), ('training/train.py', False), ('bench/speed.py', False), ('docs/a.md', False),
    ('tools/package.py', False), ('.ci/run', False), ('.gitignore', False), ('Makefile', False),
    ('requirements.txt', False), ('build/import_alias/x', False), ('dist/a.zip', False),
    ('plugin/__pycache__/a.cpython-311.pyc', False), ('plugin/a.pyc', False), ('plugin/core/fast.so', False),
    ('plugin/core/libx.so.1', False), ('plugin/x.dll', False), ('plugin/x.dylib', False), ('plugin/run.sh', False),
    ('models/net.pth', False), ('models/net.pt', False), ('models/a.pkl', False), ('models/a.pickle', False),
    ('models/cache/x.bin', False), ('models/.cache/x', False), ('models/pca/.DS_Store', False),
    ('plugin/.gitignore', False), ('models/a.onnx.part', False), ('resources/x.tmp', False),
    ('.venv/lib/x.py', False), ('plugin/.pytest_cache/v', False),
])
def test_skip_rules(path, ships):
    assert (package.skip_reason(path) is None) == ships, package.skip_reason(path)


def _fake_project(root):
    """A small project tree with junk around the plugin."""
    files = {
        'metadata.txt': GOOD_METADATA, '__init__.py': 'def classFactory(iface):\n    return None\n',
        'LICENSE': 'GNU GENERAL PUBLIC LICENSE\n', 'resources/icon.svg': '<svg/>',
        'plugin/__init__.py': '', 'plugin/a.py': 'from . import b\n', 'plugin/b.py': 'X = 1\n',
        'models/m.onnx': 'onnx', 'tests/test_a.py': 'def test(): pass\n', 'plugin/__pycache__/a.cpython-311.pyc': 'x',
        'plugin/fast.so': 'elf', 'models/net.pth': 'pickle', 'Makefile': 'all:\n', 'notes.txt': 'x',
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


EXPECTED_FAKE = ['LICENSE', '__init__.py', 'metadata.txt', 'models/m.onnx', 'plugin/__init__.py', 'plugin/a.py',
                 'plugin/b.py', 'resources/icon.svg']


def test_walk_fallback_outside_git(tmp_path):
    root = _fake_project(tmp_path / 'proj')
    zip_path, files, _ = package.build_zip(root, tmp_path / 'out', source='walk')
    assert files == EXPECTED_FAKE
    assert package.check_zip(zip_path, bandit=False).passed


@pytest.mark.skipif(shutil.which('git') is None, reason='git is not installed')
def test_git_checkout_ships_tracked_files_only(tmp_path):
    root = _fake_project(tmp_path / 'proj')
    subprocess.run(['git', 'init', '-q', str(root)], check=True)
    tracked = [f for f in EXPECTED_FAKE if f != 'plugin/b.py'] + ['tests/test_a.py', 'Makefile']
    subprocess.run(['git', '-C', str(root), 'add', *tracked], check=True)
    zip_path, files, notes = package.build_zip(root, tmp_path / 'out')
    assert files == [f for f in EXPECTED_FAKE if f != 'plugin/b.py']
    assert any('plugin/b.py' in n for n in notes), notes  # the untracked module is reported, not shipped
    _, files, _ = package.build_zip(root, tmp_path / 'out2', source='git-untracked')
    assert files == EXPECTED_FAKE


# ---------------------------------------------------------------------------------------------------------------
# Each check can fail


@pytest.fixture
def good_tree(tmp_path):
    """A minimal valid plugin folder as it would be unpacked from the zip."""
    root = tmp_path / 'enmap_compress'
    shutil.copytree(PROJECT_ROOT / 'resources', root / 'resources')
    shutil.copyfile(PROJECT_ROOT / 'LICENSE', root / 'LICENSE')
    (root / 'metadata.txt').write_text(GOOD_METADATA, encoding='utf-8')
    (root / '__init__.py').write_text('def classFactory(iface):\n    from .plugin.main import Plugin\n\n'
                                      '    return Plugin(iface)\n')
    (root / 'plugin').mkdir()
    (root / 'plugin' / '__init__.py').write_text('')
    (root / 'plugin' / 'main.py').write_text('from .helper import VALUE\n\n\nclass Plugin:\n'
                                             '    def __init__(self, iface):\n        self.value = VALUE\n')
    (root / 'plugin' / 'helper.py').write_text('VALUE = 1\n')
    (root / 'models').mkdir()
    (root / 'models' / 'tiny.onnx').write_bytes(b'\x08\x07')
    return root


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_good_tree_passes(good_tree):
    report = package.check_tree(good_tree)  # with bandit
    assert report.passed, report.format()


@pytest.mark.parametrize('rel, code, fragment', [
    ('plugin/bad.py', 'x = eval("1 + 1")\n', 'eval() call'),
    ('plugin/bad.py', 'exec("x = 1")\n', 'exec() call'),
    ('plugin/bad.py', 'import builtins\nbuiltins.eval("1")\n', 'eval() call'),
    ('plugin/bad.py', 'def f(x):\n    assert x > 0\n    return x\n', 'assert statement'),
    ('plugin/bad.py', 'import pickle\n', 'import pickle'),
    ('plugin/bad.py', 'from pickle import loads\n', 'from pickle import'),
    ('plugin/bad.py', 'import torch\nm = torch.load("m.pt")\n', 'torch.load() without weights_only=True'),
    ('plugin/bad.py', 'import torch as th\nm = th.load("m.pt", weights_only=False)\n', 'torch.load()'),
    ('plugin/bad.py', 'from torch import load\nm = load("m.pt")\n', 'torch.load()'),
    ('plugin/bad.py', 'import numpy as np\na = np.load("a.npy", allow_pickle=True)\n', 'allow_pickle'),
    ('plugin/bad.py', 'import enmap_compress.plugin.helper\n', 'absolute self-import'),
    ('plugin/bad.py', 'from enmap_compress.plugin import helper\n', 'absolute self-import'),
    ('plugin/bad.py', 'from plugin.helper import VALUE\n', 'absolute self-import'),
    ('plugin/bad.py', 'import importlib\nm = importlib.import_module("enmap_compress.plugin")\n',
     'absolute self-import'),
    ('plugin/bad.py', 'def f(:\n', 'syntax error'),
])
def test_python_rules_fail(good_tree, rel, code, fragment):
    _write(good_tree, rel, code)
    report = package.check_tree(good_tree, bandit=False)
    assert not report.passed
    assert report.has_error(fragment), report.format()


def test_python_rules_allow_safe_code(good_tree):
    _write(good_tree, 'plugin/ok.py', (
        'import torch\nfrom qgis.PyQt.QtWidgets import QDialog\n\nfrom . import helper\nfrom .helper import VALUE\n\n\n'
        'def f(path, dialog: QDialog):\n    dialog.exec()\n    dialog.exec_()\n'
        '    state = torch.load(path, weights_only=True, map_location="cpu")\n'
        '    return helper, VALUE, state\n'))
    report = package.check_tree(good_tree, bandit=False)
    assert report.passed, report.format()


@pytest.mark.parametrize('rel, fragment', [
    ('plugin/core/fast.so', 'forbidden file'),
    ('plugin/x.dll', 'forbidden file'),
    ('plugin/setup.sh', 'forbidden file'),
    ('models/net.pth', 'forbidden file'),
    ('models/weights.pkl', 'forbidden file'),
    ('plugin/__pycache__/main.cpython-311.pyc', 'forbidden file'),
    ('tests/test_x.py', 'development folder tests/'),
    ('tools/package.py', 'development folder tools/'),
    ('.gitignore', 'forbidden file'),
    ('plugin/.git/config', 'forbidden file'),
])
def test_forbidden_files_fail(good_tree, rel, fragment):
    _write(good_tree, rel, 'x\n')
    report = package.check_tree(good_tree, bandit=False)
    assert report.has_error(fragment), report.format()


def test_missing_license_fails(good_tree):
    (good_tree / 'LICENSE').unlink()
    report = package.check_tree(good_tree, bandit=False)
    assert report.has_error('LICENSE is missing'), report.format()


def test_missing_classfactory_fails(good_tree):
    (good_tree / '__init__.py').write_text('"""No factory."""\n')
    assert package.check_tree(good_tree, bandit=False).has_error('classFactory')


@pytest.mark.parametrize('field', ['name', 'qgisMinimumVersion', 'description', 'about', 'version', 'author',
                                   'email', 'hasProcessingProvider', 'tags', 'icon'])
def test_missing_metadata_field_fails(good_tree, field):
    lines = [ln for ln in GOOD_METADATA.splitlines() if not ln.startswith(f'{field}=')]
    assert len(lines) < len(GOOD_METADATA.splitlines()), f'{field} is not in metadata.txt'
    (good_tree / 'metadata.txt').write_text('\n'.join(lines) + '\n')
    report = package.check_tree(good_tree, bandit=False)
    assert report.has_error(field), report.format()


def test_unset_addresses_warn_and_block_a_strict_release_check(good_tree):
    """No invented addresses: without the real repository the check says so, and --strict refuses the release."""
    lines = [ln for ln in GOOD_METADATA.splitlines() if not ln.startswith(('tracker=', 'repository=', 'homepage='))]
    (good_tree / 'metadata.txt').write_text('\n'.join(lines) + '\n')
    report = package.check_tree(good_tree, bandit=False)
    assert not report.errors and any('tracker, repository not set' in w for w in report.warnings), report.format()
    assert package.check_tree(good_tree, bandit=False, strict=True).has_error('tracker, repository not set')
    (good_tree / 'metadata.txt').write_text('\n'.join(lines + ['tracker=https://example.org/project/issues',
                                                               'repository=https://example.org/project']) + '\n')
    assert not package.check_tree(good_tree, bandit=False, strict=True).errors


@pytest.mark.parametrize('line, fragment', [
    ('hasProcessingProvider=no', 'hasProcessingProvider'),
    ('icon=resources/missing.png', 'icon'),
    ('tracker=http://bugs', 'tracker'),
    ('email=nobody', 'email'),
    ('version=one', 'version'),
    ('qgisMinimumVersion=3', 'qgisMinimumVersion'),
    ('experimental=maybe', 'experimental'),
    ('description=50% smaller', "'%%'"),
])
def test_bad_metadata_values_fail(good_tree, line, fragment):
    key = line.split('=', 1)[0]
    lines = [ln for ln in GOOD_METADATA.splitlines() if not ln.startswith(f'{key}=')] + [line]
    (good_tree / 'metadata.txt').write_text('\n'.join(lines) + '\n')
    report = package.check_tree(good_tree, bandit=False)
    assert report.has_error(fragment), report.format()


def test_models_budget_fails(good_tree, monkeypatch):
    monkeypatch.setattr(package, 'MAX_MODELS_BYTES', 1)
    report = package.check_tree(good_tree, bandit=False)
    assert report.has_error('models/ holds'), report.format()


def test_lfs_pointer_fails(good_tree):
    _write(good_tree, 'models/big.onnx', 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n')
    assert package.check_tree(good_tree, bandit=False).has_error('git-lfs pointer')


def test_bandit_findings_fail(good_tree):
    _write(good_tree, 'plugin/shell.py', 'import subprocess\n\n\ndef run(cmd):\n'
                                         '    return subprocess.call(cmd, shell=True)\n')
    report = package.check_tree(good_tree)
    assert report.has_error('bandit B602'), report.format()


def _zip_tree(tree, zip_path, prefix='enmap_compress', extra=()):
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, 'w') as zf:
        for f in package._walk_all(tree):
            zf.write(tree / f, f'{prefix}/{f}')
        for name, data in extra:
            zf.writestr(name, data)
    return zip_path


def test_zip_level_rules_fail(good_tree, tmp_path, monkeypatch):
    version = package.parse_metadata(GOOD_METADATA)['version']
    good = _zip_tree(good_tree, tmp_path / f'enmap_compress-{version}.zip')
    assert package.check_zip(good, bandit=False).passed

    monkeypatch.setattr(package, 'MAX_ZIP_BYTES', 100)
    assert package.check_zip(good, bandit=False).has_error('more than plugins.qgis.org accepts')
    monkeypatch.undo()

    two_tops = _zip_tree(good_tree, tmp_path / 'two' / f'enmap_compress-{version}.zip', extra=[('other/x.txt', 'x')])
    assert package.check_zip(two_tops, bandit=False).has_error('exactly one top folder')
    renamed = _zip_tree(good_tree, tmp_path / 'ren' / f'enmap_compress-{version}.zip', prefix='EnMAP Compress')
    assert package.check_zip(renamed, bandit=False).has_error('exactly one top folder')
    dotdot = _zip_tree(good_tree, tmp_path / 'dd' / f'enmap_compress-{version}.zip',
                       extra=[('enmap_compress/../evil.py', 'x')])
    assert package.check_zip(dotdot, bandit=False).has_error('unsafe entry name')
    wrong_version = _zip_tree(good_tree, tmp_path / 'enmap_compress-9.9.9.zip')
    assert package.check_zip(wrong_version, bandit=False).has_error('metadata.txt says')
    not_a_zip = tmp_path / 'enmap_compress-0.0.1.zip'
    not_a_zip.write_text('nope')
    assert package.check_zip(not_a_zip, bandit=False).has_error('not a readable zip')


def test_command_line_check_fails_on_a_bad_zip(good_tree, tmp_path):
    _write(good_tree, 'plugin/bad.py', 'x = eval("1")\n')
    version = package.parse_metadata(GOOD_METADATA)['version']
    bad = _zip_tree(good_tree, tmp_path / f'enmap_compress-{version}.zip')
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / 'tools' / 'package.py'), '--zip', str(bad),
                           '--no-bandit'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'FAILED' in proc.stdout and 'eval() call' in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# tools/install.py


def test_profile_folders():
    home = Path('/home/u')
    assert install.plugins_dir('default', 'Linux', {}, home) == \
        home / '.local/share/QGIS/QGIS3/profiles/default/python/plugins'
    assert install.plugins_dir('work', 'Linux', {'XDG_DATA_HOME': '/data'}, home) == \
        Path('/data/QGIS/QGIS3/profiles/work/python/plugins')
    assert install.plugins_dir('default', 'Darwin', {}, home) == \
        home / 'Library/Application Support/QGIS/QGIS3/profiles/default/python/plugins'
    assert install.plugins_dir('default', 'Windows', {'APPDATA': '/appdata'}, home) == \
        Path('/appdata/QGIS/QGIS3/profiles/default/python/plugins')


def test_install_link_copy_and_uninstall(tmp_path):
    target = tmp_path / 'plugins'
    log = []
    dest, how = install.install(PROJECT_ROOT, target, log=log.append)
    assert dest == target / 'enmap_compress'
    assert how in ('symlink', 'junction') and install.is_link(dest)
    assert os.path.realpath(dest) == os.path.realpath(PROJECT_ROOT)
    assert install.install(PROJECT_ROOT, target, log=log.append)[1] == 'unchanged'

    dest, how = install.install(PROJECT_ROOT, target, copy=True, log=log.append)  # replaces the link
    assert how == 'copy' and not install.is_link(dest)
    assert (dest / '__init__.py').is_file() and (dest / 'plugin' / 'plugin.py').is_file()
    assert not (dest / 'tests').exists() and not (dest / 'tools').exists()
    assert install.install(PROJECT_ROOT, target, copy=True, log=log.append)[1] == 'copy'  # own copy: replaced

    assert install.uninstall(target, log=log.append)
    assert not dest.exists() and not install.uninstall(target, log=log.append)
    assert (PROJECT_ROOT / '__init__.py').is_file()  # the checkout is untouched


def test_install_refuses_a_foreign_folder(tmp_path):
    target = tmp_path / 'plugins'
    foreign = target / 'enmap_compress'
    foreign.mkdir(parents=True)
    (foreign / 'mine.txt').write_text('keep me')
    with pytest.raises(install.InstallError, match='--force'):
        install.install(PROJECT_ROOT, target, log=lambda m: None)
    with pytest.raises(install.InstallError, match='--force'):
        install.uninstall(target, log=lambda m: None)
    assert (foreign / 'mine.txt').read_text() == 'keep me'

    dest, how = install.install(PROJECT_ROOT, target, force=True, log=lambda m: None)
    assert install.is_link(dest)
    backups = list(target.glob('enmap_compress.backup-*'))
    assert len(backups) == 1 and (backups[0] / 'mine.txt').read_text() == 'keep me'


def test_install_command_line(tmp_path):
    script = str(PROJECT_ROOT / 'tools' / 'install.py')
    proc = subprocess.run([sys.executable, script, '--plugins-dir', str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'Linked' in proc.stdout and 'Manage and Install Plugins' in proc.stdout
    proc = subprocess.run([sys.executable, script, '--plugins-dir', str(tmp_path), '--uninstall'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not (tmp_path / 'enmap_compress').exists()
