#!/usr/bin/env python3
"""Build and check the plugins.qgis.org zip of EnMAP Compress.

    python tools/package.py                      build dist/enmap_compress-<version>.zip
    python tools/package.py --out DIR            build into DIR instead of dist/
    python tools/package.py --check              build, then check the zip the way plugins.qgis.org would
    python tools/package.py --check --zip FILE   only check an existing zip
    python tools/package.py --list               print the files that would ship, and why others do not

The zip holds one folder, `enmap_compress/`, with metadata.txt, __init__.py, LICENSE, README.md (if present),
plugin/, models/ and resources/. Inside a git checkout only files git tracks are shipped (untracked files are
reported, never shipped); `--include-untracked` also ships untracked files that .gitignore does not ignore. File
order, timestamps (SOURCE_DATE_EPOCH, else 1980-01-01) and permissions are fixed, so the same sources always give
the same bytes.

The check fails (exit status 1) on: a zip over 25,000,000 bytes or not one top folder `enmap_compress/`; a missing
LICENSE, __init__.py or classFactory; metadata.txt without a field plugins.qgis.org needs (or with a bad value, or an
icon that is not in the zip); forbidden files (tests/, tools/, caches, .git*, *.pyc, *.so, *.dll, *.sh, pickled
weights ...); models/ over 20,000,000 bytes; `eval(`/`exec(` calls, `assert` statements, pickle imports,
`torch.load(` without `weights_only=True`, `allow_pickle=True` and absolute self-imports in shipped Python; and
bandit findings of medium or high severity or in the rules plugins.qgis.org treats as critical (low-severity ones
are printed as warnings, or fail with --strict).

Standard library only; bandit runs as `python -m bandit` in the Python that runs this script.
"""
from __future__ import annotations

import argparse
import ast
import configparser
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from urllib.parse import urlparse

PLUGIN_NAME = 'enmap_compress'
PROJECT_ROOT = Path(__file__).resolve().parent.parent

MAX_ZIP_BYTES = 25_000_000  # plugins.qgis.org PLUGIN_MAX_UPLOAD_SIZE
MAX_MODELS_BYTES = 20_000_000  # our own budget for bundled models

# What ships: these files at the top level, and these folders (recursively, minus the exclusions below).
SHIPPED_TOP_FILES = ('metadata.txt', '__init__.py', 'LICENSE', 'README.md')
SHIPPED_TOP_DIRS = ('plugin', 'models', 'resources')
REQUIRED_FILES = ('metadata.txt', '__init__.py', 'LICENSE')

# Never ship: development folders at the top level, caches and VCS folders anywhere, binaries and pickles anywhere.
FORBIDDEN_TOP_DIRS = frozenset({
    'tests', 'test', 'training', 'bench', 'docs', 'tools', '.ci', '.github', 'build', 'dist', '.venv', 'venv',
    'demo_output',
})
FORBIDDEN_DIRS_ANYWHERE = frozenset({
    '__pycache__', '.pytest_cache', '.ruff_cache', '.mypy_cache', '.ipynb_checkpoints', '.tox', '.venv', '.git',
    '__MACOSX', '.idea', '.vscode',
})
CACHE_DIR_NAMES = frozenset({'cache', '.cache', '_cache', '__cache__'})
FORBIDDEN_SUFFIXES = (
    '.pyc', '.pyo', '.pyd', '.so', '.dll', '.dylib', '.exe', '.bat', '.cmd', '.ps1', '.sh',
    '.pth', '.pt', '.pkl', '.pickle', '.ckpt', '.joblib',
)
_SHARED_LIB_RE = re.compile(r'\.(so|dylib)(\.\d+)+$')  # libfoo.so.1.2
JUNK_SUFFIXES = ('.part', '.tmp', '.swp', '.swo', '.orig', '.rej', '.bak', '~', '.cache', '.lock', '.log')
JUNK_NAMES = frozenset({'.DS_Store', 'Thumbs.db', 'desktop.ini'})

# metadata.txt: what plugins.qgis.org requires, plus what this project requires of itself.
PORTAL_REQUIRED_METADATA = ('name', 'description', 'version', 'qgisMinimumVersion', 'author', 'email', 'about')
PROJECT_REQUIRED_METADATA = ('hasProcessingProvider', 'tags', 'icon')
# Addresses: plugins.qgis.org needs tracker and repository to accept an upload. They must be the project's real
# addresses; until the project has a public repository they are left out, and the check says so (an error with
# --strict, which a release build uses).
ADDRESS_METADATA = ('tracker', 'repository', 'homepage')
UPLOAD_REQUIRED_ADDRESSES = ('tracker', 'repository')
BOOLEAN_METADATA = ('experimental', 'deprecated', 'server', 'supportsQt6')
PLACEHOLDER_URLS = {'tracker': 'http://bugs', 'repository': 'http://repo', 'homepage': 'http://homepage'}
VERSION_RE = re.compile(r'^\d+(\.\d+){1,3}([.-]?[A-Za-z0-9]+)*$')
QGIS_VERSION_RE = re.compile(r'^\d+\.\d+(\.\d+)?$')

# bandit: rules plugins.qgis.org treats as critical (mandatory) fail whatever bandit's own severity says; rules it
# disables (info) are ignored; everything else fails from medium severity up and is a warning below that.
BANDIT_CRITICAL = frozenset({
    'B102', 'B103', 'B105', 'B106', 'B107', 'B111', 'B201', 'B202', 'B301', 'B302', 'B304', 'B305', 'B306',
    'B307', 'B312', 'B321', 'B323', 'B401', 'B402', 'B501', 'B502', 'B503', 'B504', 'B506', 'B602', 'B604',
    'B605', 'B609', 'B610', 'B611', 'B613', 'B614', 'B615',
})
BANDIT_IGNORED = frozenset({'B404', 'B410', 'B109'})

PICKLE_MODULES = frozenset({'pickle', 'cPickle', '_pickle', 'dill', 'cloudpickle', 'shelve', 'marshal'})
PICKLE_CALLS = frozenset({'read_pickle', 'to_pickle'})


class PackageError(Exception):
    """The package cannot be built (missing file, unreadable metadata ...)."""


# --------------------------------------------------------------------------------------------------------------
# Reports


class Report:
    """Collects the outcome of the checks: passed checks, warnings and errors (errors make the check fail)."""

    def __init__(self, title=''):
        self.title = title
        self.passed_checks = []
        self.warnings = []
        self.errors = []

    def good(self, message):
        self.passed_checks.append(message)

    def warning(self, message):
        self.warnings.append(message)

    def error(self, message):
        self.errors.append(message)

    @property
    def passed(self):
        return not self.errors

    def has_error(self, fragment):
        """True when an error message contains `fragment` (case-insensitive): used by the tests."""
        return any(fragment.lower() in e.lower() for e in self.errors)

    def format(self):
        lines = [self.title] if self.title else []
        lines += [f'  [ok]   {m}' for m in self.passed_checks]
        lines += [f'  [warn] {m}' for m in self.warnings]
        lines += [f'  [FAIL] {m}' for m in self.errors]
        if self.passed:
            lines.append(f'PASSED: {len(self.passed_checks)} checks passed, {len(self.warnings)} warning(s).')
        else:
            lines.append(f'FAILED: {len(self.errors)} problem(s), {len(self.warnings)} warning(s).')
        return '\n'.join(lines)


# --------------------------------------------------------------------------------------------------------------
# Which files ship


def _parts(relpath):
    return [p for p in relpath.replace('\\', '/').split('/') if p]


def _forbidden_suffix(name):
    lower = name.lower()
    if lower.endswith(FORBIDDEN_SUFFIXES) or _SHARED_LIB_RE.search(lower):
        return True
    return False


def skip_reason(relpath):
    """Why `relpath` (relative to the project root, '/'-separated) is not shipped; None when it ships."""
    parts = _parts(relpath)
    if not parts:
        return 'empty path'
    top, name = parts[0], parts[-1]
    if len(parts) == 1:
        if top not in SHIPPED_TOP_FILES:
            return 'not part of the plugin'
    elif top not in SHIPPED_TOP_DIRS:
        return 'not part of the plugin'
    for part in parts:
        if part in FORBIDDEN_DIRS_ANYWHERE or part.startswith('.git'):
            return 'cache or version-control file'
        if part in CACHE_DIR_NAMES:
            return 'cache'
        if part.startswith('.'):
            return 'hidden file'
    if _forbidden_suffix(name):
        return 'forbidden file type (binary, script or pickle)'
    if name in JUNK_NAMES or name.endswith(JUNK_SUFFIXES):
        return 'temporary or junk file'
    return None


def _git(root, *args):
    return subprocess.run(['git', '-C', str(root), *args], capture_output=True, check=False)


def git_file_lists(root):
    """(tracked, untracked-but-not-ignored) relative paths under `root`, or None when it is no git checkout."""
    try:
        probe = _git(root, 'rev-parse', '--is-inside-work-tree')
    except OSError:
        return None
    if probe.returncode != 0 or probe.stdout.strip() != b'true':
        return None
    tracked = _git(root, 'ls-files', '-z', '--cached')
    untracked = _git(root, 'ls-files', '-z', '--others', '--exclude-standard')
    if tracked.returncode != 0 or untracked.returncode != 0:
        return None

    def split(out):
        return sorted({p for p in out.decode('utf-8', 'surrogateescape').split('\0') if p})

    return split(tracked.stdout), split(untracked.stdout)


def walk_files(root):
    """Every file under `root` (relative, '/'-separated), not descending into excluded or development folders."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        keep = []
        for d in sorted(dirnames):
            if d in FORBIDDEN_DIRS_ANYWHERE or d in CACHE_DIR_NAMES or d.startswith('.'):
                continue
            if rel_dir == Path('.') and d not in SHIPPED_TOP_DIRS:
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            found.append((rel_dir / f).as_posix())
    return sorted(found)


def source_files(root=PROJECT_ROOT, source='auto'):
    """The candidate files and notes on how they were chosen.

    source: 'git' (tracked files), 'git-untracked' (tracked plus untracked files .gitignore does not ignore),
    'walk' (every file on disk) or 'auto' ('git' in a checkout, 'walk' elsewhere; in a checkout where the plugin
    itself is not committed yet, 'git-untracked').
    Returns (sorted relative paths that exist, notes, untracked paths that would ship but were left out).
    """
    root = Path(root)
    notes, left_out = [], []
    lists = git_file_lists(root) if source != 'walk' else None
    if source in ('git', 'git-untracked') and lists is None:
        raise PackageError(f'{root} is not a git checkout (or git is missing): use --source walk')
    if lists is None:
        files = walk_files(root)
        notes.append('files: every file on disk (not a git checkout)')
    else:
        tracked, untracked = lists
        mode = source
        if source == 'auto':
            mode = 'git'
            if not set(REQUIRED_FILES[:2]) <= set(tracked):
                mode = 'git-untracked'
                notes.append('files: git tracks no plugin files yet, so untracked (not ignored) files are used')
        if mode == 'git':
            files = tracked
            left_out = [f for f in untracked if skip_reason(f) is None]
            notes.append('files: tracked by git')
        else:
            files = sorted(set(tracked) | set(untracked))
            if source != 'auto':
                notes.append('files: tracked by git plus untracked files that .gitignore does not ignore')
    existing = [f for f in files if (root / f).is_file()]
    return existing, notes, left_out


def shipped_files(root=PROJECT_ROOT, source='auto'):
    """The relative paths that go into the zip (sorted), after the filters of `skip_reason`."""
    files, _, _ = source_files(root, source)
    return [f for f in files if skip_reason(f) is None]


# --------------------------------------------------------------------------------------------------------------
# metadata.txt


def parse_metadata(text):
    """The [general] section of metadata.txt as a dict (keys keep their case). Raises PackageError."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise PackageError(f'metadata.txt cannot be parsed: {exc}') from exc
    if not parser.has_section('general'):
        raise PackageError("metadata.txt has no [general] section")
    return dict(parser.items('general'))


def read_version(root=PROJECT_ROOT):
    path = Path(root) / 'metadata.txt'
    if not path.is_file():
        raise PackageError(f'{path} is missing')
    version = parse_metadata(path.read_text(encoding='utf-8')).get('version', '').strip()
    if not VERSION_RE.match(version):
        raise PackageError(f'metadata.txt: version {version!r} is not like 1.2.3')
    return version


def zip_name(version):
    return f'{PLUGIN_NAME}-{version}.zip'


# --------------------------------------------------------------------------------------------------------------
# Building


def _zip_date_time():
    epoch = os.environ.get('SOURCE_DATE_EPOCH')
    if epoch and epoch.strip().isdigit():
        t = time.gmtime(max(int(epoch), 315532800))  # zip cannot store dates before 1980
        return t[:6]
    return (1980, 1, 1, 0, 0, 0)


def build_zip(root=PROJECT_ROOT, out_dir=None, source='auto'):
    """Write dist/enmap_compress-<version>.zip (or into `out_dir`); returns (zip path, shipped files, notes)."""
    root = Path(root)
    out_dir = Path(out_dir) if out_dir else root / 'dist'
    version = read_version(root)
    files, notes, left_out = source_files(root, source)
    files = [f for f in files if skip_reason(f) is None]
    missing = [f for f in REQUIRED_FILES if f not in files]
    if missing:
        raise PackageError(f'required file(s) missing or not tracked by git: {", ".join(missing)}')
    if left_out:
        shown = ', '.join(left_out[:10]) + (' ...' if len(left_out) > 10 else '')
        notes.append(f'WARNING: {len(left_out)} untracked file(s) not shipped (git add them, or build with '
                     f'--include-untracked): {shown}')
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / zip_name(version)
    partial = target.with_name(target.name + '.part')
    date_time = _zip_date_time()
    with zipfile.ZipFile(partial, 'w', zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(f'{PLUGIN_NAME}/{rel}', date_time=date_time)
            info.create_system = 3  # unix, so the permission bits below are honoured
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (root / rel).read_bytes(), compresslevel=9)
    os.replace(partial, target)
    return target, files, notes


# --------------------------------------------------------------------------------------------------------------
# Checking python source


def _const_true(node):
    return isinstance(node, ast.Constant) and node.value is True


def scan_python(source, filename='<string>', self_names=(PLUGIN_NAME, 'plugin')):
    """Problems in one shipped Python file as (line, message) pairs.

    Finds eval()/exec() calls, assert statements, pickle-family imports and calls, allow_pickle=True,
    torch.load() without weights_only=True and absolute imports of the plugin itself (`self_names`).
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [(exc.lineno or 0, f'syntax error: {exc.msg}')]
    self_names = set(self_names)
    problems = []
    torch_names = {'torch'}
    torch_load_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == 'torch':
                    torch_names.add(alias.asname or 'torch')
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == 'torch':
            torch_load_names.update(a.asname or a.name for a in node.names if a.name == 'load')

    def is_self(module):
        return bool(module) and module.split('.')[0] in self_names

    for node in ast.walk(tree):
        line = getattr(node, 'lineno', 0)
        if isinstance(node, ast.Assert):
            problems.append((line, 'assert statement (stripped under python -O; raise an exception instead)'))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] in PICKLE_MODULES:
                    problems.append((line, f'import {alias.name} (pickle-like deserialisation is not allowed)'))
                if is_self(alias.name):
                    problems.append((line, f'absolute self-import "import {alias.name}": use a relative import'))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split('.')[0] in PICKLE_MODULES:
                problems.append((line, f'from {node.module} import ... (pickle-like deserialisation is not allowed)'))
            if node.level == 0 and is_self(node.module):
                problems.append((line, f'absolute self-import "from {node.module} import ...": use a relative '
                                       'import'))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            attr = func.attr if isinstance(func, ast.Attribute) else None
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            if name in ('eval', 'exec') or (owner == 'builtins' and attr in ('eval', 'exec')):
                problems.append((line, f'{name or attr}() call'))
            if attr in PICKLE_CALLS or name in PICKLE_CALLS:
                problems.append((line, f'{attr or name}() uses pickle'))
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if 'allow_pickle' in keywords and not (isinstance(keywords['allow_pickle'], ast.Constant)
                                                   and keywords['allow_pickle'].value is False):
                problems.append((line, 'allow_pickle=True (loads pickled objects)'))
            is_torch_load = (attr == 'load' and owner in torch_names) or (name is not None and name in torch_load_names)
            if is_torch_load and not _const_true(keywords.get('weights_only')):
                problems.append((line, 'torch.load() without weights_only=True'))
            if (name == '__import__' or attr == 'import_module') and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and is_self(arg.value):
                    problems.append((line, f'absolute self-import of "{arg.value}": use a relative import'))
    return sorted(set(problems))


def self_import_names(plugin_dir):
    """Top-level names that would be absolute imports of the plugin itself."""
    plugin_dir = Path(plugin_dir)
    names = {PLUGIN_NAME, plugin_dir.name, 'plugin'}
    if plugin_dir.is_dir():
        for entry in plugin_dir.iterdir():
            if entry.is_dir() and (entry / '__init__.py').is_file():
                names.add(entry.name)
            elif entry.suffix == '.py' and entry.stem != '__init__':
                names.add(entry.stem)
    return names


# --------------------------------------------------------------------------------------------------------------
# Checking a plugin folder and a zip


def check_metadata(text, present_files, report, strict=False):
    """Check metadata.txt's text; `present_files` are the package's relative paths (for the icon)."""
    try:
        meta = parse_metadata(text)
    except PackageError as exc:
        report.error(str(exc))
        return None
    try:  # plugins.qgis.org parses with the default ConfigParser, whose '%' interpolation rejects a lone '%'
        portal_parser = configparser.ConfigParser()
        portal_parser.optionxform = str
        portal_parser.read_string(text)
        portal_parser.items('general')
    except configparser.Error as exc:
        report.error(f"metadata.txt: plugins.qgis.org's parser fails ({type(exc).__name__}): write '%%' for '%'")
    missing = [k for k in PORTAL_REQUIRED_METADATA + PROJECT_REQUIRED_METADATA if not meta.get(k, '').strip()]
    if missing:
        report.error(f'metadata.txt: missing or empty field(s): {", ".join(missing)}')
    else:
        report.good('metadata.txt has every required field')
    version = meta.get('version', '').strip()
    if version and not VERSION_RE.match(version):
        report.error(f'metadata.txt: version {version!r} is not like 1.2.3')
    for key in ('qgisMinimumVersion', 'qgisMaximumVersion'):
        value = meta.get(key, '').strip()
        if value and not QGIS_VERSION_RE.match(value):
            report.error(f'metadata.txt: {key} {value!r} is not like 3.22')
    minimum = meta.get('qgisMinimumVersion', '').strip()
    if QGIS_VERSION_RE.match(minimum) and int(minimum.split('.')[0]) < 3:
        report.error(f'metadata.txt: qgisMinimumVersion {minimum} is below QGIS 3')
    provider = meta.get('hasProcessingProvider', '').strip()
    if provider and provider.lower() != 'yes':
        report.error(f'metadata.txt: hasProcessingProvider={provider}, expected yes (qgis_process needs it)')
    email = meta.get('email', '').strip()
    if email and not re.match(r'^[^@\s]+@[^@\s]+\.[^@\s]+$', email):
        report.error(f'metadata.txt: email {email!r} is not an e-mail address')
    if '/' in meta.get('author', ''):
        report.error('metadata.txt: author must not contain "/"')
    unset = [k for k in UPLOAD_REQUIRED_ADDRESSES if not meta.get(k, '').strip()]
    if unset:
        message = (f'metadata.txt: {", ".join(unset)} not set: plugins.qgis.org refuses an upload without them; set '
                   "them to the project's real repository address before a release")
        (report.error if strict else report.warning)(message)
    for key in ADDRESS_METADATA:
        url = meta.get(key, '').strip()
        if not url:
            continue
        parsed = urlparse(url)
        if parsed.scheme not in ('http', 'https') or not parsed.netloc or url.rstrip('/') == PLACEHOLDER_URLS[key]:
            report.error(f'metadata.txt: {key} {url!r} is not a real http(s) address')
    for key in BOOLEAN_METADATA:
        value = meta.get(key)
        if value is not None and value.strip().lower() not in ('true', 'false', '1', '0'):
            report.error(f'metadata.txt: {key}={value!r} must be True or False')
    if '\n' in meta.get('description', '').strip():
        report.warning('metadata.txt: description spans several lines (one sentence is expected)')
    icon = meta.get('icon', '').strip()
    if icon:
        icon_rel = icon[2:] if icon.startswith('./') else icon
        if icon_rel not in set(present_files):
            report.error(f'metadata.txt: icon {icon!r} is not in the package')
        else:
            report.good(f'icon {icon_rel} is in the package')
    return meta


def forbidden_reason(relpath):
    """Why a file found inside the package must not be there (None when it may)."""
    parts = _parts(relpath)
    if len(parts) > 1 and parts[0] in FORBIDDEN_TOP_DIRS:
        return f'development folder {parts[0]}/'
    for part in parts:
        if part in FORBIDDEN_DIRS_ANYWHERE or part.startswith('.git'):
            return f'cache or version-control entry {part}'
    if _forbidden_suffix(parts[-1]):
        return 'forbidden file type (binary, script or pickle)'
    return None


def _walk_all(folder):
    folder = Path(folder)
    out = []
    for dirpath, _dirnames, filenames in os.walk(folder):
        for f in filenames:
            out.append((Path(dirpath) / f).relative_to(folder).as_posix())
    return sorted(out)


def run_bandit(folder, report, strict=False):
    """Run bandit on `folder` and add its findings to `report`."""
    cmd = [sys.executable, '-m', 'bandit', '-q', '-r', str(folder), '-f', 'json']
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.error(f'bandit could not run: {exc}')
        return
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        hint = ' (pip install bandit)' if 'No module named bandit' in proc.stderr else ''
        report.error(f'bandit did not run{hint}: {(proc.stderr or proc.stdout).strip()[-300:]}')
        return
    failed = warned = 0
    for issue in data.get('results', []):
        test_id = issue.get('test_id', '')
        if test_id in BANDIT_IGNORED:
            continue
        where = os.path.relpath(issue.get('filename', ''), folder).replace(os.sep, '/')
        severity = issue.get('issue_severity', 'UNDEFINED')
        text = (f'bandit {test_id} ({severity.lower()} severity) {where}:{issue.get("line_number", 0)}: '
                f'{issue.get("issue_text", "")}')
        if strict or test_id in BANDIT_CRITICAL or severity in ('MEDIUM', 'HIGH'):
            report.error(text)
            failed += 1
        else:
            report.warning(text)
            warned += 1
    for err in data.get('errors', []):
        report.error(f'bandit could not scan {err.get("filename", "?")}: {err.get("reason", "")}')
        failed += 1
    if not failed:
        scanned = data.get('metrics', {}).get('_totals', {}).get('loc', 0)
        report.good(f'bandit: no finding of medium or high severity ({scanned} lines, {warned} low-severity '
                    'warning(s))')


def check_tree(plugin_dir, report=None, bandit=True, strict=False):
    """Check an unpacked plugin folder (what the zip holds under enmap_compress/). Returns the Report."""
    plugin_dir = Path(plugin_dir)
    report = report if report is not None else Report(f'Checking {plugin_dir}')
    if not plugin_dir.is_dir():
        report.error(f'{plugin_dir} is not a folder')
        return report
    files = _walk_all(plugin_dir)

    # Mandatory files.
    for name in REQUIRED_FILES:
        if name not in files:
            report.error(f'{name} is missing')
    if 'LICENSE' in files:
        text = (plugin_dir / 'LICENSE').read_text(encoding='utf-8', errors='replace')
        if 'GNU GENERAL PUBLIC LICENSE' not in text:
            report.warning('LICENSE is not the GNU GPL (plugins.qgis.org accepts GPL-compatible licences only)')
        else:
            report.good('LICENSE (GNU GPL) is present')
    if '__init__.py' in files:
        init_src = (plugin_dir / '__init__.py').read_text(encoding='utf-8', errors='replace')
        try:
            has_factory = any(isinstance(n, ast.FunctionDef) and n.name == 'classFactory'
                              for n in ast.parse(init_src).body)
        except SyntaxError:
            has_factory = False
        if not has_factory:
            report.error('__init__.py does not define classFactory(iface)')
    if 'metadata.txt' in files:
        check_metadata((plugin_dir / 'metadata.txt').read_text(encoding='utf-8', errors='replace'), files, report,
                       strict=strict)

    # Forbidden and suspicious files.
    bad = [(f, forbidden_reason(f)) for f in files if forbidden_reason(f)]
    for f, why in bad:
        report.error(f'forbidden file {f}: {why}')
    if not bad:
        report.good(f'no forbidden files among {len(files)} files')
    for f in files:
        name = _parts(f)[-1]
        if forbidden_reason(f):
            continue
        if any(p.startswith('.') for p in _parts(f)):
            report.warning(f'hidden file {f}')
        elif name in JUNK_NAMES or name.endswith(JUNK_SUFFIXES):
            report.warning(f'temporary or junk file {f}')
        top = _parts(f)[0]
        if top not in SHIPPED_TOP_FILES and top not in SHIPPED_TOP_DIRS:
            report.warning(f'unexpected file {f} (outside what the plugin ships)')
        path = plugin_dir / f
        if path.stat().st_size < 200 and path.read_bytes().startswith(b'version https://git-lfs'):
            report.error(f'{f} is a git-lfs pointer, not the file (run git lfs pull)')

    # Models budget.
    models_bytes = sum((plugin_dir / f).stat().st_size for f in files if f.startswith('models/'))
    if models_bytes > MAX_MODELS_BYTES:
        report.error(f'models/ holds {models_bytes:,} bytes, more than {MAX_MODELS_BYTES:,}')
    else:
        report.good(f'models/ holds {models_bytes:,} bytes (limit {MAX_MODELS_BYTES:,})')

    # Python source rules.
    names = self_import_names(plugin_dir)
    py_files = [f for f in files if f.endswith('.py')]
    found = 0
    for f in py_files:
        source = (plugin_dir / f).read_text(encoding='utf-8', errors='replace')
        for line, message in scan_python(source, f, names):
            report.error(f'{f}:{line}: {message}')
            found += 1
    if not found:
        report.good(f'{len(py_files)} Python files: no eval/exec, assert, pickle, unsafe torch.load or absolute '
                    'self-imports')

    if bandit:
        run_bandit(plugin_dir, report, strict=strict)
    else:
        report.warning('bandit skipped (--no-bandit)')
    return report


def check_zip(zip_path, bandit=True, strict=False):
    """Check a built zip the way plugins.qgis.org does, then check what it holds. Returns the Report."""
    zip_path = Path(zip_path)
    report = Report(f'Checking {zip_path}')
    if not zip_path.is_file():
        report.error(f'{zip_path} does not exist')
        return report
    size = zip_path.stat().st_size
    if size > MAX_ZIP_BYTES:
        report.error(f'zip is {size:,} bytes, more than plugins.qgis.org accepts ({MAX_ZIP_BYTES:,})')
    else:
        report.good(f'zip is {size:,} bytes (limit {MAX_ZIP_BYTES:,})')
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.error(f'not a readable zip: {exc}')
        return report
    with zf, tempfile.TemporaryDirectory(prefix='enmap_compress_check_') as tmp:
        names = zf.namelist()
        if not names:
            report.error('zip is empty')
            return report
        bad_crc = zf.testzip()
        if bad_crc:
            report.error(f'zip is corrupt at {bad_crc}')
        unsafe = [n for n in names if '..' in n or n.startswith('/') or '\\' in n or re.match(r'^[A-Za-z]:', n)]
        for n in unsafe:
            report.error(f'unsafe entry name {n!r} (plugins.qgis.org rejects "..", absolute paths and "\\")')
        if len(set(names)) != len(names):
            report.error('zip has duplicate entries')
        tops = sorted({n.split('/')[0] for n in names})
        if tops != [PLUGIN_NAME] or '/' not in names[0]:
            report.error(f'zip must hold exactly one top folder {PLUGIN_NAME}/, found: {", ".join(tops)}')
        else:
            report.good(f'one top folder {PLUGIN_NAME}/ (a valid Python identifier)')
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode & 0o111 and not info.is_dir():
                report.warning(f'{info.filename} is executable (plugins.qgis.org flags that)')
        match = re.match(rf'^{PLUGIN_NAME}-(.+)\.zip$', zip_path.name)
        if unsafe or tops != [PLUGIN_NAME]:
            return report
        zf.extractall(tmp)
        plugin_dir = Path(tmp) / PLUGIN_NAME
        check_tree(plugin_dir, report, bandit=bandit, strict=strict)
        meta_path = plugin_dir / 'metadata.txt'
        if meta_path.is_file() and match:
            try:
                version = parse_metadata(meta_path.read_text(encoding='utf-8')).get('version', '').strip()
            except PackageError:
                version = None
            if version is not None and version != match.group(1):
                report.error(f'zip name says version {match.group(1)}, metadata.txt says {version}')
        elif not match:
            report.warning(f'zip name {zip_path.name} is not {PLUGIN_NAME}-<version>.zip')
    return report


# --------------------------------------------------------------------------------------------------------------
# Command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', metavar='DIR', help='folder for the zip (default: dist/ in the project)')
    parser.add_argument('--check', action='store_true', help='check the zip after building it')
    parser.add_argument('--zip', metavar='FILE', help='check this existing zip instead of building one')
    parser.add_argument('--source', choices=('auto', 'git', 'git-untracked', 'walk'), default='auto',
                        help='how to find the files to ship (default: git-tracked files in a checkout)')
    parser.add_argument('--include-untracked', action='store_true',
                        help='also ship untracked files that .gitignore does not ignore (same as '
                             '--source git-untracked)')
    parser.add_argument('--list', action='store_true', help='print what ships and what does not, build nothing')
    parser.add_argument('--no-bandit', action='store_true', help='skip bandit when checking')
    parser.add_argument('--strict', action='store_true', help='low-severity bandit findings fail too')
    parser.add_argument('--root', default=str(PROJECT_ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    source = 'git-untracked' if args.include_untracked else args.source
    root = Path(args.root)

    try:
        if args.list:
            files, notes, left_out = source_files(root, source)
            for note in notes:
                print(note)
            for f in files:
                why = skip_reason(f)
                print(f'  ship  {f}' if why is None else f'  skip  {f}  ({why})')
            for f in left_out:
                print(f'  skip  {f}  (untracked)')
            return 0
        if args.zip:
            zip_path = Path(args.zip)
        else:
            zip_path, files, notes = build_zip(root, args.out, source)
            for note in notes:
                print(note)
            print(f'Built {zip_path} ({len(files)} files, {zip_path.stat().st_size:,} bytes)')
    except PackageError as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 2
    if args.check or args.zip:
        report = check_zip(zip_path, bandit=not args.no_bandit, strict=args.strict)
        print(report.format())
        return 0 if report.passed else 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
