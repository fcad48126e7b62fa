"""Diagnostics: versions, compute devices and installed models, to read or paste into an issue."""
import html
import importlib
import platform
import sys
from importlib import metadata

from qgis.core import Qgis
from qgis.PyQt.QtGui import QGuiApplication, QIcon
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QPushButton, QTextBrowser, QVBoxLayout

from .. import __version__, dependencies
from ..core import runtime
from ..paths import MODELS_DIR, PLUGIN_ROOT, resource_path
from . import devices, installer


def _module_version(name):
    """Version of an importable module, 'not installed', or the import error (a clash is worth seeing)."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return 'not installed' if isinstance(exc, ModuleNotFoundError) else f'broken: {exc}'
    version = getattr(module, '__version__', None)
    return str(version) if version else _distribution_version(name).replace('not installed', 'installed')


def _distribution_version(name):
    """Version from package metadata, without importing (torch takes seconds and may load CUDA DLLs)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return 'not installed'


def _gdal_version():
    try:
        from osgeo import gdal
    except ImportError:
        return 'not installed'
    return gdal.__version__


def _python_for_pip():
    python, found = dependencies.qgis_python()
    return python if found else f'{python} (not found)'


def software():
    return [('EnMAP Compress', __version__), ('QGIS', Qgis.QGIS_VERSION), ('Python', platform.python_version()),
            ('Python executable', sys.executable), ('Python of QGIS (for pip)', _python_for_pip()),
            ('Platform', platform.platform()),
            ('GDAL (Python)', _gdal_version()), ('numpy', _module_version('numpy')),
            ('onnxruntime', _module_version('onnxruntime')), ('constriction', _module_version('constriction')),
            ('defusedxml', _module_version('defusedxml')), ('torch (optional, training only)',
                                                            _distribution_version('torch'))]


def compute():
    available = devices.providers()
    names = devices.gpu_names()
    try:
        choice = runtime.choose_device('auto')
        auto = f'{choice.device} ({choice.reason})'
    except Exception as exc:  # noqa: BLE001 (diagnostics report every failure instead of raising)
        auto = f'unavailable: {exc}'
    return [('onnxruntime providers', ', '.join(available) if available is not None else 'onnxruntime missing'),
            ('GPU (nvidia-smi)', ', '.join(names) if names else 'none found'),
            ('auto device', auto), ('CPU threads used', str(runtime.default_threads()))]


def models():
    rows = [('models folder', MODELS_DIR)]
    packages = runtime.list_models()
    for package in packages:
        rows.append((package.model_id, f'{package.title()} — {package.folder}'))
    if not packages:
        rows.append(('installed models', 'none'))
    return rows


def collect():
    """[(section, [(key, value)])]."""
    missing = dependencies.missing()
    problems = [('missing packages', ', '.join(missing) or 'none'),
                ('install folder', dependencies.configured_folder() or 'not set')]
    if missing:
        problems.append(('install with', dependencies.install_command(missing)))
    return [('Software', software()), ('Compute', compute()), ('Models', models()),
            ('Dependencies', problems), ('Plugin folder', [('path', PLUGIN_ROOT)])]


def as_text(sections):
    lines = []
    for title, rows in sections:
        lines.append(f'## {title}')
        lines += [f'{key}: {value}' for key, value in rows]
        lines.append('')
    return '\n'.join(lines)


def as_html(sections):
    parts = ['<style>td,th{padding:2px 8px;text-align:left;vertical-align:top}</style>']
    for title, rows in sections:
        body = ''.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>' for k, v in rows)
        parts.append(f'<h3>{html.escape(title)}</h3><table>{body}</table>')
    return ''.join(parts)


class DiagnosticsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName('EnmapCompressDiagnostics')
        self.setWindowTitle('EnMAP Compress — Diagnostics')
        self.setWindowIcon(QIcon(resource_path('diagnostics.svg')))
        self.sections = collect()
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setHtml(as_html(self.sections))
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = QPushButton('Copy to clipboard')
        buttons.addButton(self.copy_button, QDialogButtonBox.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        self.install_button = QPushButton(installer.BUTTON_TEXT)
        if dependencies.missing():  # (only then: a button box shows a hidden button again when it lays out)
            buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
        self.install_button.clicked.connect(self.install)
        self.installer = None
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 520)

    def install(self):
        self.installer = installer.ask_and_install(self)
        return self.installer

    def copy(self):
        QGuiApplication.clipboard().setText(as_text(self.sections))
