"""Missing packages: the Python that QGIS runs on every platform, one wording everywhere, and the Install button
running the real pip (from a wheel built here, no network) into the plugin's own folder."""
import base64
import hashlib
import os
import subprocess
import sys
import zipfile

import pytest
from gui_helpers import wait_for
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)

TINY = 'enmap_tiny_pkg'
PIP_TIMEOUT_S = 120


@pytest.mark.parametrize('platform, prefix, executable, present, expected', [
    ('win32', r'C:\OSGeo4W\apps\Python312', r'C:\OSGeo4W\bin\qgis-bin.exe',
     {r'C:\OSGeo4W\apps\Python312\python.exe', r'C:\OSGeo4W\bin\python3.exe'}, r'C:\OSGeo4W\apps\Python312\python.exe'),
    ('win32', r'C:\Program Files\QGIS 3.34.4\apps\Python39', r'C:\Program Files\QGIS 3.34.4\bin\qgis-ltr-bin.exe',
     {r'C:\Program Files\QGIS 3.34.4\bin\python3.exe'}, r'C:\Program Files\QGIS 3.34.4\bin\python3.exe'),
    ('darwin', '/Applications/QGIS.app/Contents/MacOS', '/Applications/QGIS.app/Contents/MacOS/QGIS',
     {'/Applications/QGIS.app/Contents/MacOS/bin/python3'}, '/Applications/QGIS.app/Contents/MacOS/bin/python3'),
    ('darwin', '/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.11',
     '/Applications/QGIS.app/Contents/MacOS/QGIS', {'/Applications/QGIS.app/Contents/MacOS/bin/python3.11'},
     '/Applications/QGIS.app/Contents/MacOS/bin/python3.11'),
    ('linux', '/usr', '/usr/bin/qgis', {'/usr/bin/python3.11', '/usr/bin/python3'}, '/usr/bin/python3.11'),
    ('linux', '/app', '/app/bin/qgis', {'/app/bin/python3'}, '/app/bin/python3'),  # Flatpak
    ('linux', '/home/me/.pyenv/versions/3.11.2', '/home/me/.pyenv/versions/3.11.2/bin/python3.11', set(),
     '/home/me/.pyenv/versions/3.11.2/bin/python3.11'),  # QGIS run from a Python: that Python itself
])
def test_the_python_of_qgis_is_found_from_its_own_prefix_and_executable(platform, prefix, executable, present,
                                                                        expected):
    from enmap_compress.plugin import dependencies

    exists = present.__contains__ if present else (lambda path: path == executable)
    assert dependencies.qgis_python(platform, prefix, executable, (3, 11), exists) == (expected, True)


def test_no_python_found_is_said_not_guessed_from_path():
    from enmap_compress.plugin import dependencies

    path, found = dependencies.qgis_python('linux', '/opt/qgis', '/opt/qgis/bin/qgis', (3, 11), lambda p: False)
    assert (path, found) == ('/opt/qgis/bin/python3.11', False)


def test_here_it_is_the_interpreter_running_these_tests():
    from enmap_compress.plugin import dependencies

    python, found = dependencies.qgis_python()
    assert found
    out = subprocess.run([python, '-c', 'import sys; print(sys.prefix)'], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == sys.prefix


def test_one_wording_names_the_python_the_folder_and_the_button(tmp_path):
    from enmap_compress.plugin import dependencies

    folder = dependencies.install_folder(str(tmp_path), (3, 11))
    assert folder == os.path.join(str(tmp_path), 'python', 'enmap_compress_deps', 'py311')
    text = dependencies.message(['onnxruntime', 'constriction'], folder, '/usr/bin/python3.11')
    assert '(/usr/bin/python3.11)' in text and 'Install missing packages' in text and 'restart QGIS' in text
    assert f'/usr/bin/python3.11 -m pip install --target {folder}' in text
    assert '--break-system-packages' not in text and '--user' not in text
    assert text.rstrip().endswith('then restart QGIS.')
    assert dependencies.missing(['numpy', 'enmap_no_such_module_x']) == ['enmap_no_such_module_x']


def _write_wheel(folder):
    """A real (tiny, pure-Python) wheel, so pip runs for real without the network."""
    files = {f'{TINY}/__init__.py': b'VALUE = 42\n',
             f'{TINY}-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\nName: enmap-tiny-pkg\nVersion: 1.0\n',
             f'{TINY}-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                             b'Tag: py3-none-any\n'}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append(f'{name},sha256={digest},{len(data)}')
    record.append(f'{TINY}-1.0.dist-info/RECORD,,')
    files[f'{TINY}-1.0.dist-info/RECORD'] = ('\n'.join(record) + '\n').encode()
    path = os.path.join(folder, f'{TINY}-1.0-py3-none-any.whl')
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return folder


def _pythons():
    """This interpreter, and Debian's externally managed system Python when it has pip (QGIS's on Debian)."""
    found = [sys.executable]
    system = '/usr/bin/python3'
    managed = any(os.path.isfile(os.path.join(d, 'EXTERNALLY-MANAGED')) for d in
                  ('/usr/lib/python3.11', '/usr/lib/python3.12', '/usr/lib/python3.13'))
    if os.path.isfile(system) and managed and subprocess.run([system, '-m', 'pip', '--version'],
                                                             capture_output=True, check=False).returncode == 0:
        found.append(system)
    return found


@pytest.fixture
def clean_sys_path():
    before = list(sys.path)
    yield
    sys.path[:] = before
    sys.modules.pop(TINY, None)


@pytest.mark.parametrize('python', _pythons())
def test_install_runs_pip_into_the_plugin_folder_with_live_output(python, qgis_app, tmp_path, clean_sys_path):
    from enmap_compress.plugin.gui.installer import PipInstallDialog

    wheels = _write_wheel(str(tmp_path))
    target = str(tmp_path / 'deps' / 'py')
    dialog = PipInstallDialog([TINY], target, python, ['--no-index', '--find-links', wheels])
    lines = []
    dialog.log.textChanged.connect(lambda: lines.append(dialog.log.blockCount()))
    dialog.show()
    dialog.start()
    assert wait_for(lambda: dialog.ok is not None, PIP_TIMEOUT_S), dialog.log.toPlainText()
    log = dialog.log.toPlainText()
    assert dialog.ok, log
    assert 'externally-managed' not in log
    assert 'Successfully installed enmap_tiny_pkg-1.0' in log
    assert len(set(lines)) >= 3, 'pip output should arrive as it is written'
    assert os.path.isfile(os.path.join(target, TINY, '__init__.py'))
    assert target in sys.path and __import__(TINY).VALUE == 42
    assert 'Restart QGIS' in dialog.status_label.text()
    dialog.close()


def test_install_never_runs_a_pip_in_the_folder_qgis_runs_in(qgis_app, tmp_path, monkeypatch, clean_sys_path):
    # before: pip ran in QGIS's working folder (where it was started, or a project opened from a file manager), and
    # `python -m pip` imports from there first: a pip/ handed over with the data ran instead of pip
    from enmap_compress.plugin.gui.installer import PipInstallDialog

    planted = tmp_path / 'download'
    (planted / 'pip').mkdir(parents=True)
    marker = tmp_path / 'planted-pip-ran'
    (planted / 'pip' / '__init__.py').write_text('')
    (planted / 'pip' / '__main__.py').write_text(f'open({str(marker)!r}, "w").close()\n')
    monkeypatch.chdir(planted)
    wheels = _write_wheel(str(tmp_path))
    target = str(tmp_path / 'deps' / 'py')
    dialog = PipInstallDialog([TINY], target, sys.executable, ['--no-index', '--find-links', wheels])
    dialog.start()
    assert wait_for(lambda: dialog.ok is not None, PIP_TIMEOUT_S), dialog.log.toPlainText()
    assert not marker.exists()
    assert dialog.ok and os.path.isfile(os.path.join(target, TINY, '__init__.py')), dialog.log.toPlainText()
    dialog.close()


def test_a_failing_pip_says_so_and_changes_nothing(qgis_app, tmp_path):
    from enmap_compress.plugin.gui.installer import PipInstallDialog

    target = str(tmp_path / 'deps')
    dialog = PipInstallDialog(['enmap-no-such-package-x'], target, sys.executable,
                              ['--no-index', '--find-links', str(tmp_path)])
    dialog.start()
    assert wait_for(lambda: dialog.ok is not None, PIP_TIMEOUT_S)
    assert dialog.ok is False and 'pip failed' in dialog.status_label.text()
    assert 'No matching distribution' in dialog.log.toPlainText()
    assert not os.path.isdir(target) or not os.listdir(target)
    dialog.close()


def _answer(button):
    """Click `button` in the message box that is about to open (as the user would)."""
    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(button).click()
        else:
            QTimer.singleShot(20, click)
    QTimer.singleShot(20, click)


def test_the_button_asks_first_and_installs_only_after_yes(qgis_app, tmp_path, monkeypatch, clean_sys_path):
    from enmap_compress.plugin import dependencies
    from enmap_compress.plugin.gui import installer

    target = str(tmp_path / 'deps')
    monkeypatch.setitem(dependencies._state, 'folder', target)
    wheels = _write_wheel(str(tmp_path))
    _answer(QMessageBox.No)
    assert installer.ask_and_install(None, [TINY]) is None
    assert not os.path.exists(target)
    _answer(QMessageBox.Yes)
    dialog = installer.ask_and_install(None, [TINY], ['--no-index', '--find-links', wheels])
    assert dialog is not None and dialog.isVisible()
    assert wait_for(lambda: dialog.ok is not None, PIP_TIMEOUT_S)
    assert dialog.ok, dialog.log.toPlainText()
    assert os.path.isfile(os.path.join(target, TINY, '__init__.py'))
    dialog.close()


def test_the_plugin_puts_its_folder_on_sys_path_at_load(gui_iface, qgis_processing, installed_model, tmp_path,
                                                        monkeypatch, clean_sys_path):
    from qgis.core import QgsApplication

    import enmap_compress
    from enmap_compress.plugin import dependencies

    folder = dependencies.install_folder(QgsApplication.qgisSettingsDirPath())
    os.makedirs(folder, exist_ok=True)
    created = not os.listdir(folder)
    try:
        plugin = enmap_compress.classFactory(gui_iface)
        assert dependencies.configured_folder() == folder
        assert folder in sys.path and sys.path.index(folder) > 0
        plugin.unload()
    finally:
        if created:
            os.rmdir(folder)
