#!/usr/bin/env python3
"""Install this checkout into a QGIS user profile as the plugin `enmap_compress` (for development).

    python3 tools/install.py                    link the checkout into the default profile
    python3 tools/install.py --profile NAME     another QGIS profile
    python3 tools/install.py --copy             copy the files that ship instead of linking
    python3 tools/install.py --uninstall        remove the link (or a copy made by this script)
    python3 tools/install.py --force            also replace / remove a folder this script did not make
    python3 tools/install.py --plugins-dir DIR  use DIR instead of the profile's python/plugins folder

A link (a symlink; on Windows a symlink, or a directory junction when symlinks are not allowed) makes QGIS run the
checkout itself: edit, then reload the plugin (Plugin Reloader) or restart QGIS. Where no link can be made the
files are copied. Standard library only: run it with any Python 3.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

PLUGIN_NAME = 'enmap_compress'
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MARKER = '.enmap_compress_install'  # written into copies, so only copies made here are replaced or removed


class InstallError(Exception):
    pass


def qgis_base_dir(system=None, env=None, home=None):
    """The QGIS3 settings folder of this user (it holds profiles/<name>/...)."""
    system = system or platform.system()
    env = os.environ if env is None else env
    home = Path(home) if home else Path.home()
    if system == 'Windows':
        appdata = env.get('APPDATA')
        base = Path(appdata) if appdata else home / 'AppData' / 'Roaming'
        return base / 'QGIS' / 'QGIS3'
    if system == 'Darwin':
        return home / 'Library' / 'Application Support' / 'QGIS' / 'QGIS3'
    data_home = env.get('XDG_DATA_HOME')
    base = Path(data_home) if data_home else home / '.local' / 'share'
    return base / 'QGIS' / 'QGIS3'


def plugins_dir(profile='default', system=None, env=None, home=None):
    """The python/plugins folder of a QGIS profile."""
    return qgis_base_dir(system, env, home) / 'profiles' / profile / 'python' / 'plugins'


def is_link(path):
    """True for a symlink or a Windows directory junction (removing it never touches its target)."""
    path = Path(path)
    if path.is_symlink():
        return True
    isjunction = getattr(os.path, 'isjunction', None)  # Python 3.12+
    if isjunction is not None:
        return isjunction(path)
    try:
        attrs = getattr(os.lstat(path), 'st_file_attributes', 0)
    except OSError:
        return False
    return bool(attrs & getattr(stat, 'FILE_ATTRIBUTE_REPARSE_POINT', 0))


def remove_link(path):
    """Remove a symlink or junction, never what it points to."""
    if os.name == 'nt':
        try:
            os.rmdir(path)  # a directory symlink or junction: rmdir removes the link only
            return
        except OSError:
            pass
    os.unlink(path)


def _same_place(a, b):
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def make_link(source, dest):
    """Link dest -> source; returns 'symlink' or 'junction', or None when the system allows neither."""
    try:
        os.symlink(source, dest, target_is_directory=True)
        return 'symlink'
    except (OSError, NotImplementedError):
        pass
    if os.name == 'nt':
        proc = subprocess.run(['cmd', '/c', 'mklink', '/J', str(dest), str(source)],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0 and os.path.isdir(dest):
            return 'junction'
    return None


def shipped_files(source):
    """The files a release ships (tools/package.py's rules), taken from the working tree (untracked files too)."""
    import importlib.util

    tool = Path(__file__).with_name('package.py')
    spec = importlib.util.spec_from_file_location('_enmap_compress_package_tool', tool)
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    try:
        return package.shipped_files(source, 'git-untracked')
    except package.PackageError:  # not a git checkout
        return package.shipped_files(source, 'walk')


def copy_plugin(source, dest):
    files = shipped_files(source)
    if '__init__.py' not in files:
        raise InstallError(f'{source} does not look like the plugin (no __init__.py to ship)')
    for rel in files:
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(source) / rel, target)
    stamp = {'source': str(source), 'installed': time.strftime('%Y-%m-%d %H:%M:%S')}
    (Path(dest) / MARKER).write_text(json.dumps(stamp), encoding='utf-8')
    return len(files)


def _clear(dest, force, log):
    """Make room at dest; returns True when something was there."""
    dest = Path(dest)
    if is_link(dest):
        old = os.path.realpath(dest)
        remove_link(dest)
        log(f'Removed the old link {dest} -> {old}')
        return True
    if not dest.exists():
        return False
    if dest.is_dir() and (dest / MARKER).is_file():
        shutil.rmtree(dest)
        log(f'Removed the copy installed earlier at {dest}')
        return True
    if not force:
        raise InstallError(f'{dest} exists and is not a link or a copy made by this script; rerun with --force to '
                           'move it aside (nothing was changed)')
    backup = dest.with_name(f'{dest.name}.backup-{time.strftime("%Y%m%d-%H%M%S")}')
    os.replace(dest, backup)
    log(f'Moved the existing {dest} aside to {backup}')
    return True


def install(source=PROJECT_ROOT, target_dir=None, profile='default', copy=False, force=False, log=print):
    """Install the plugin; returns (dest, how) where how is 'symlink', 'junction', 'copy' or 'unchanged'."""
    source = Path(source).resolve()
    if not (source / '__init__.py').is_file() or not (source / 'metadata.txt').is_file():
        raise InstallError(f'{source} is not the plugin folder (no __init__.py and metadata.txt)')
    target_dir = Path(target_dir) if target_dir else plugins_dir(profile)
    dest = target_dir / PLUGIN_NAME
    if not copy and is_link(dest) and _same_place(dest, source):
        log(f'Already installed: {dest} -> {source}')
        return dest, 'unchanged'
    if not target_dir.is_dir():
        log(f'Creating {target_dir} (the profile folder did not exist yet; QGIS uses it once started with that '
            'profile)')
        target_dir.mkdir(parents=True, exist_ok=True)
    _clear(dest, force, log)
    how = None if copy else make_link(source, dest)
    if how is None:
        if not copy:
            log('No link can be made here (no symlink or junction rights): copying the files instead')
        count = copy_plugin(source, dest)
        log(f'Copied {count} files to {dest} (run this again after changing the code)')
        how = 'copy'
    else:
        log(f'Linked {dest} -> {source} ({how})')
    return dest, how


def uninstall(target_dir=None, profile='default', force=False, log=print):
    """Remove the installed plugin; returns True when something was removed."""
    target_dir = Path(target_dir) if target_dir else plugins_dir(profile)
    dest = target_dir / PLUGIN_NAME
    if is_link(dest):
        remove_link(dest)
        log(f'Removed the link {dest} (the checkout itself is untouched)')
        return True
    if not dest.exists():
        log(f'Nothing to remove: {dest} does not exist')
        return False
    if dest.is_dir() and ((dest / MARKER).is_file() or force):
        shutil.rmtree(dest)
        log(f'Removed {dest}')
        return True
    raise InstallError(f'{dest} was not installed by this script; rerun with --force to delete it')


def enable_hint(profile):
    return (f'To enable it: start QGIS with the profile "{profile}", open Plugins > Manage and Install Plugins... > '
            'Installed and tick "EnMAP Compress" (it is marked experimental: if it is not listed, tick "Show also '
            'experimental plugins" under Settings). Its algorithms then appear in the Processing Toolbox under '
            '"EnMAP Compress". It needs numpy, onnxruntime, constriction and defusedxml in the Python QGIS uses: '
            'python -m pip install onnxruntime constriction defusedxml')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--profile', default='default', help='QGIS profile name (default: default)')
    parser.add_argument('--plugins-dir', metavar='DIR', help="install into DIR instead of the profile's plugins folder")
    parser.add_argument('--copy', action='store_true', help='copy the shipped files instead of linking the checkout')
    parser.add_argument('--uninstall', action='store_true', help='remove the installed plugin')
    parser.add_argument('--force', action='store_true',
                        help='replace (moved aside as a backup) or remove a folder this script did not make')
    args = parser.parse_args(argv)
    try:
        if args.uninstall:
            uninstall(args.plugins_dir, args.profile, args.force)
            print('Restart QGIS (or disable the plugin first) so it forgets the plugin.')
            return 0
        install(PROJECT_ROOT, args.plugins_dir, args.profile, args.copy, args.force)
    except (InstallError, OSError) as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 1
    print(enable_hint(args.profile))
    return 0


if __name__ == '__main__':
    sys.exit(main())
