"""The Python packages the plugin needs, the Python that QGIS runs, and how to install what is missing.

QGIS-free and the single source of the wording: the Processing algorithms, the dialog, the message bar and the
Diagnostics all say the same. Packages go into a folder the plugin owns (`pip install --target`), which works on
externally managed system Pythons (Debian, Ubuntu) without --break-system-packages and without admin rights, and
which the plugin adds to sys.path when it loads.
"""
import importlib
import ntpath
import os
import posixpath
import sys

REQUIRED = ('numpy', 'onnxruntime', 'constriction', 'defusedxml')  # import names, equal to their pip names
FOLDER_NAME = 'enmap_compress_deps'
_state = {'folder': None}  # the install folder, set by the plugin when it loads (configure)


def missing(names=None):
    """The required packages that cannot be imported (a broken install counts as missing)."""
    absent = []
    for name in REQUIRED if names is None else names:
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return absent


def install_folder(settings_dir, version=None):
    """Where the plugin installs packages: per Python version, because compiled wheels only fit their own."""
    major, minor = version or sys.version_info[:2]
    return os.path.join(settings_dir, 'python', FOLDER_NAME, f'py{major}{minor}')


def configure(folder):
    """Remember the install folder and put it on sys.path when it exists (after QGIS's own packages, so it never
    shadows the numpy QGIS was built with)."""
    _state['folder'] = folder
    if folder and os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)
        importlib.invalidate_caches()


def configured_folder():
    return _state['folder']


def _candidates(platform, prefix, executable, version):
    """Interpreter paths to try, best first, for QGIS's own Python (inside QGIS sys.executable is the QGIS
    binary: qgis-bin.exe on OSGeo4W, .../QGIS.app/Contents/MacOS/QGIS, /usr/bin/qgis, /app/bin/qgis on Flatpak)."""
    paths = ntpath if platform.startswith('win') else posixpath  # the target platform's rules, wherever this runs
    exe_dir = paths.dirname(executable)
    versioned = 'python{}.{}'.format(*version)
    own = [executable] if paths.basename(executable).lower().startswith('python') else []
    if platform.startswith('win'):
        return own + [paths.join(prefix, 'python.exe'), paths.join(prefix, 'python3.exe'),
                      paths.join(exe_dir, 'python3.exe'), paths.join(exe_dir, 'python.exe')]
    unix = [paths.join(prefix, 'bin', versioned), paths.join(prefix, 'bin', 'python3')]
    if platform == 'darwin':  # the app bundle keeps its Python in Contents/MacOS/bin (prefix may be a framework)
        unix += [paths.join(exe_dir, 'bin', versioned), paths.join(exe_dir, 'bin', 'python3')]
    return own + unix


def qgis_python(platform=None, prefix=None, executable=None, version=None, exists=os.path.isfile):
    """(path, found): the Python interpreter QGIS runs; found is False when no candidate exists and path is only
    the most likely place."""
    platform = platform or sys.platform
    prefix = sys.prefix if prefix is None else prefix
    executable = (sys.executable or '') if executable is None else executable
    candidates = _candidates(platform, prefix, executable, version or sys.version_info[:2])
    for candidate in candidates:
        if exists(candidate):
            return candidate, True
    return candidates[0], False


def pip_arguments(packages, folder, extra=()):
    """Arguments after the interpreter: `-m pip install --target <folder> ...`."""
    return ['-m', 'pip', 'install', '--target', folder, '--upgrade', '--disable-pip-version-check',
            '--no-warn-script-location', *extra, *packages]


def _quoted(text):
    return f'"{text}"' if ' ' in text else text


def install_command(packages, folder=None, python=None):
    """One command line (for a terminal) that does what the Install button does."""
    python = python or qgis_python()[0]
    folder = folder or configured_folder()
    arguments = pip_arguments(packages, folder) if folder else ['-m', 'pip', 'install', '--user', *packages]
    return ' '.join(_quoted(part) for part in [python, *arguments])


def message(packages, folder=None, python=None):
    """The one message users see when packages are missing."""
    python = python or qgis_python()[0]
    return (f'EnMAP Compress needs {", ".join(packages)}, which the Python of QGIS ({python}) does not have. '
            'Click "Install missing packages" (the EnMAP Compress dialog or Diagnostics), or run in a terminal:\n'
            f'{install_command(packages, folder, python)}\nthen restart QGIS.')
