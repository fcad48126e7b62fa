"""Missing Python packages, said once and clearly, with the exact command for this platform."""
import os
import sys
import sysconfig

from ..processing import base


def missing():
    return base.missing_dependencies()  # looked up on the module so tests can simulate a missing package


def _externally_managed():
    """PEP 668: Debian/Ubuntu's system Python refuses plain pip installs."""
    stdlib = sysconfig.get_paths().get('stdlib', '')
    return bool(stdlib) and os.path.isfile(os.path.join(stdlib, 'EXTERNALLY-MANAGED'))


def python_for_pip(platform=None, prefix=None, executable=None):
    """The Python that QGIS runs (inside QGIS sys.executable may be the QGIS binary itself)."""
    platform = platform or sys.platform
    prefix = prefix or sys.prefix
    executable = executable or sys.executable or ''
    if platform.startswith('win'):
        return 'python'  # in the OSGeo4W Shell / the QGIS installer's shell
    if platform == 'darwin':
        return os.path.join(prefix, 'bin', 'python3')
    name = os.path.basename(executable).lower()
    return executable if name.startswith('python') else 'python3'


def install_command(packages, platform=None, prefix=None, executable=None, externally_managed=None):
    """One command line that installs `packages` into the Python QGIS uses."""
    platform = platform or sys.platform
    python = python_for_pip(platform, prefix, executable)
    names = ' '.join(packages)
    if ' ' in python:
        python = f'"{python}"'
    flags = ''
    if platform.startswith('linux'):
        managed = _externally_managed() if externally_managed is None else externally_managed
        flags = ' --user --break-system-packages' if managed else ' --user'
    elif platform == 'darwin':
        flags = ' --user'
    return f'{python} -m pip install{flags} {names}'


def where_to_run(platform=None):
    platform = platform or sys.platform
    if platform.startswith('win'):
        return 'in the OSGeo4W Shell (Start menu > QGIS > OSGeo4W Shell)'
    if platform == 'darwin':
        return 'in a Terminal'
    return 'in a terminal'


def message(packages):
    """The one message users see when packages are missing."""
    return (f'EnMAP Compress needs {", ".join(packages)}, which the Python of QGIS does not have. Run '
            f'{where_to_run()}:\n{install_command(packages)}\nthen restart QGIS.')
