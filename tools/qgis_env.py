#!/usr/bin/env python3
"""Run qgis_process with this plugin enabled, in a throw-away QGIS home (what ../shared/checks/qp.sh does).

    from qgis_env import qgis_process            # (tests load this file through tests/qgis/conftest.py)
    result = qgis_process(['list', '--json'], tmp_path)
    result = qgis_process(['run', 'enmapcompress:compress', '--', 'INPUT=a.tif', 'OUTPUT=a.ehc'], tmp_path)

    python tools/qgis_env.py [--home DIR] [--plugin DIR] ARGS...   (command line; home defaults to a temp folder)

The home folder gets plugins/enmap_compress (a symlink to the plugin folder: the checkout, or e.g. an unpacked
release zip), config/ (QGIS_CUSTOM_CONFIG_PATH) and runtime/ (XDG_RUNTIME_DIR). `qgis_process plugins enable
enmap_compress` runs once per home. PYTHONPATH gets the venv's site-packages, because qgis_process embeds the system
Python, which does not see the venv. Debian's /usr/bin/qgis_process wrapper is broken on 3.22, so
/usr/bin/qgis_process.bin is used (QGIS_PROCESS_BIN overrides it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGIN_NAME = 'enmap_compress'
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENABLED_MARKER = '.enabled'


class QgisProcessError(RuntimeError):
    pass


def find_qgis_process():
    """Path of the qgis_process binary, or None when QGIS is not installed."""
    override = os.environ.get('QGIS_PROCESS_BIN')
    if override:
        return override if os.path.isfile(override) else None
    for candidate in ('/usr/bin/qgis_process.bin', shutil.which('qgis_process.bin')):
        if candidate and os.path.isfile(candidate):
            return candidate
    if sys.platform != 'linux':  # elsewhere the plain qgis_process works
        return shutil.which('qgis_process') or shutil.which('qgis_process-qgis')
    return None


def venv_site_packages():
    """site-packages of the venv that runs this code, else of the project's .venv; [] when there is none."""
    import site

    if sys.prefix != sys.base_prefix:
        return [p for p in site.getsitepackages() if os.path.isdir(p)]
    venv_python = PROJECT_ROOT / '.venv' / ('Scripts/python.exe' if os.name == 'nt' else 'bin/python')
    if venv_python.is_file():
        proc = subprocess.run([str(venv_python), '-c', 'import site; print("\\n".join(site.getsitepackages()))'],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return [p for p in proc.stdout.splitlines() if p and os.path.isdir(p)]
    return []


def _link_plugin(plugins, plugin_source):
    link = plugins / PLUGIN_NAME
    if link.is_symlink():
        if os.path.realpath(link) == os.path.realpath(plugin_source):
            return
        link.unlink()
    elif link.exists():
        raise QgisProcessError(f'{link} exists and is not a link')
    os.symlink(plugin_source, link, target_is_directory=True)


def qgis_process_env(home, plugin_source=None, extra_env=None):
    """Prepare `home` (plugins/, config/, runtime/) and return the environment for qgis_process."""
    home = Path(home)
    plugin_source = Path(plugin_source or PROJECT_ROOT).resolve()
    plugins, config, runtime = home / 'plugins', home / 'config', home / 'runtime'
    for folder in (plugins, config, runtime):
        folder.mkdir(parents=True, exist_ok=True)
    os.chmod(runtime, 0o700)
    _link_plugin(plugins, plugin_source)
    env = dict(os.environ)
    python_path = venv_site_packages() + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env.update({
        'QGIS_PLUGINPATH': str(plugins),
        'QGIS_CUSTOM_CONFIG_PATH': str(config),
        'QT_QPA_PLATFORM': 'offscreen',
        'XDG_RUNTIME_DIR': str(runtime),
        'PYTHONPATH': os.pathsep.join(dict.fromkeys(python_path)),
        'PYTHONDONTWRITEBYTECODE': '1',  # keep __pycache__ out of the checkout
    })
    env.update(extra_env or {})
    return env


def enable_plugin(home, env, timeout=120):
    """Run `qgis_process plugins enable enmap_compress` once for this home; raise QgisProcessError on failure."""
    marker = Path(home) / ENABLED_MARKER
    if marker.is_file():
        return
    binary = find_qgis_process()
    if binary is None:
        raise QgisProcessError('qgis_process is not installed')
    proc = subprocess.run([binary, 'plugins', 'enable', PLUGIN_NAME], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise QgisProcessError(f'qgis_process plugins enable {PLUGIN_NAME} failed (exit {proc.returncode}):\n'
                               f'{proc.stdout}\n{proc.stderr}')
    marker.write_text(proc.stdout, encoding='utf-8')


def qgis_process(args, tmp_path, plugin_source=None, timeout=300, extra_env=None, check=False):
    """Run qgis_process ARGS with the plugin enabled, everything under `tmp_path`; returns CompletedProcess (text).

    plugin_source: the plugin folder to load (default: this checkout). check=True raises CalledProcessError on a
    non-zero exit. Raises QgisProcessError when qgis_process is missing or the plugin cannot be enabled.
    """
    binary = find_qgis_process()
    if binary is None:
        raise QgisProcessError('qgis_process is not installed (looked for /usr/bin/qgis_process.bin)')
    env = qgis_process_env(tmp_path, plugin_source, extra_env)
    enable_plugin(tmp_path, env)
    return subprocess.run([binary, *[str(a) for a in args]], env=env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    home = plugin = None
    while argv and argv[0] in ('--home', '--plugin') and len(argv) > 1:
        option, value = argv[0], argv[1]
        argv = argv[2:]
        if option == '--home':
            home = value
        else:
            plugin = value
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__)
        return 0
    home = home or tempfile.mkdtemp(prefix='enmap_compress_qp_')
    try:
        result = qgis_process(argv, home, plugin, timeout=None)
    except QgisProcessError as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 3
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == '__main__':
    sys.exit(main())
