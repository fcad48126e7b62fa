"""The "Install missing packages" button: after asking, runs pip for QGIS's own Python into the plugin's own
folder and shows pip's output as it comes (QProcess: QGIS stays responsive)."""
import os

from qgis.PyQt.QtCore import QProcess, pyqtSignal
from qgis.PyQt.QtGui import QFont
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QLabel, QMessageBox, QPlainTextEdit, QVBoxLayout

from .. import dependencies

BUTTON_TEXT = 'Install missing packages'


def confirm_text(packages, folder, python):
    return (f'Install {", ".join(packages)} for the Python of QGIS?\n\n'
            f'Python: {python}\nFolder: {folder}\n\n'
            'pip downloads them from the Python Package Index (onnxruntime is about 15 MB). Nothing outside this '
            'folder changes; delete the folder to undo. Restart QGIS afterwards.')


class PipInstallDialog(QDialog):
    """Runs `<python> -u -m pip install --target <folder> ...`; `done_installing(ok)` when pip has finished."""

    done_installing = pyqtSignal(bool)  # noqa: N815 (Qt naming)

    def __init__(self, packages, folder, python, extra_args=(), parent=None):
        super().__init__(parent)
        self.setObjectName('EnmapCompressInstaller')
        self.setWindowTitle('EnMAP Compress — installing packages')
        self.packages, self.folder, self.python = list(packages), folder, python
        self.arguments = ['-u', *dependencies.pip_arguments(self.packages, folder,
                                                            ['--no-input', '--progress-bar', 'off', *extra_args])]
        self.ok = None
        layout = QVBoxLayout(self)
        self.status_label = QLabel(f'Installing {", ".join(self.packages)} into {folder} …')
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFont('monospace'))
        self.log.appendPlainText(' '.join([python, *self.arguments]))
        layout.addWidget(self.log)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.buttons.rejected.connect(self.close)
        layout.addWidget(self.buttons)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self.resize(720, 420)

    def start(self):
        # in a folder of the plugin's own: `python -m pip` imports from its working folder first, and QGIS's (where
        # it was started, a project's folder) may hold anyone's pip.py or pip/, which would run instead of pip
        work = os.path.dirname(os.path.abspath(self.folder))
        try:
            os.makedirs(work, exist_ok=True)
        except OSError as exc:
            self._finish(False, f'Could not create the folder {work} ({exc.strerror or exc}). Nothing was installed.')
            return
        self.process.setWorkingDirectory(work)
        self.process.start(self.python, self.arguments)

    def is_running(self):
        return self.process.state() != QProcess.NotRunning

    def _read_output(self):
        text = bytes(self.process.readAllStandardOutput()).decode('utf-8', 'replace').rstrip('\n')
        if text:
            self.log.appendPlainText(text)

    def _on_error(self, error):
        if error == QProcess.FailedToStart:
            self._finish(False, f'Could not start {self.python}: {self.process.errorString()}')

    def _on_finished(self, exit_code, exit_status):
        self._read_output()
        if exit_status == QProcess.NormalExit and exit_code == 0:
            dependencies.configure(self.folder)  # on sys.path now; a restart loads everything cleanly
            still = dependencies.missing(self.packages)
            note = f' ({", ".join(still)} still cannot be imported in this session)' if still else ''
            self._finish(True, f'Installed{note}. Restart QGIS to use EnMAP Compress.')
        else:
            self._finish(False, f'pip failed (exit code {exit_code}); its output is above. Nothing else changed.')

    def _finish(self, ok, text):
        if self.ok is not None:
            return
        self.ok = ok
        self.status_label.setText(text)
        self.log.appendPlainText(text)
        self.done_installing.emit(ok)

    def closeEvent(self, event):  # noqa: N802 (Qt API name)
        if self.is_running():
            self.process.kill()
            self.process.waitForFinished(3000)
        super().closeEvent(event)


def ask_and_install(parent=None, packages=None, extra_args=()):
    """Ask, then open the installer and start pip; None when nothing is missing, Python is unknown or the user
    says no."""
    packages = dependencies.missing() if packages is None else list(packages)
    folder = dependencies.configured_folder()
    python, found = dependencies.qgis_python()
    if not packages or not folder:
        return None
    if not found:
        QMessageBox.warning(parent, BUTTON_TEXT, f'The Python of QGIS was not found (looked for {python}). '
                                                 f'{dependencies.message(packages)}')
        return None
    answer = QMessageBox.question(parent, BUTTON_TEXT, confirm_text(packages, folder, python),
                                  QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    if answer != QMessageBox.Yes:
        return None
    dialog = PipInstallDialog(packages, folder, python, extra_args, parent)
    dialog.show()
    dialog.start()
    return dialog
