"""The QGIS plugin class: registers the Processing provider and the GUI entries, and removes them on unload."""
from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsRasterLayer
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import dependencies
from .paths import resource_path
from .processing.provider import EnmapCompressProvider

MENU = '&EnMAP Compress'
LAYER_ACTION_TEXT = 'Compress with EnMAP Compress…'


class EnmapCompressPlugin:
    def __init__(self, iface):
        self.iface = iface
        dependencies.configure(dependencies.install_folder(QgsApplication.qgisSettingsDirPath()))
        self.provider = None
        self.layer_action = None
        self.dialog_action = None
        self.diagnostics_action = None
        self.dialogs = []  # open dialogs, closed on unload

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = EnmapCompressProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API name)
        self.initProcessing()
        if self.layer_action is not None:
            return
        window = self.iface.mainWindow()
        self.layer_action = QAction(QIcon(resource_path('compress.svg')), LAYER_ACTION_TEXT, window)
        self.layer_action.triggered.connect(self.compress_current_layer)
        self.iface.addCustomActionForLayerType(self.layer_action, '', QgsMapLayerType.RasterLayer, True)
        self.dialog_action = QAction(QIcon(resource_path('icon.svg')), 'Compress / evaluate EnMAP image…', window)
        self.dialog_action.triggered.connect(self.compress_current_layer)
        self.iface.addPluginToRasterMenu(MENU, self.dialog_action)
        self.iface.addToolBarIcon(self.dialog_action)
        self.diagnostics_action = QAction(QIcon(resource_path('diagnostics.svg')), 'Diagnostics…', window)
        self.diagnostics_action.triggered.connect(self.show_diagnostics)
        self.iface.addPluginToRasterMenu(MENU, self.diagnostics_action)
        self._warn_missing_dependencies()

    def unload(self):
        from .gui import job

        job.cancel_all()
        for dialog in self._open_dialogs():
            dialog.close()
            dialog.deleteLater()
        self.dialogs = []
        if self.layer_action is not None:
            self.iface.removeCustomActionForLayerType(self.layer_action)
            self.iface.removePluginRasterMenu(MENU, self.dialog_action)
            self.iface.removeToolBarIcon(self.dialog_action)
            self.iface.removePluginRasterMenu(MENU, self.diagnostics_action)
            for action in (self.layer_action, self.dialog_action, self.diagnostics_action):
                action.deleteLater()
            self.layer_action = self.dialog_action = self.diagnostics_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # --- actions ------------------------------------------------------------------------------------------------

    def _warn_missing_dependencies(self):
        """One message at start when packages are missing, with the Install button; the provider is registered
        all the same."""
        from qgis.gui import QgsMessageBar
        from qgis.PyQt.QtWidgets import QPushButton

        from .gui import installer

        missing = dependencies.missing()
        if not missing:
            return None
        item = QgsMessageBar.createMessage('EnMAP Compress', dependencies.message(missing))
        button = QPushButton(installer.BUTTON_TEXT)
        button.setObjectName('enmapcompress_install')
        button.clicked.connect(lambda: self._keep_installer(installer.ask_and_install(self.iface.mainWindow())))
        item.layout().addWidget(button)
        self.iface.messageBar().pushWidget(item, Qgis.Warning, 0)
        return item

    def _keep_installer(self, dialog):
        if dialog is not None:
            self._keep(dialog)

    def current_raster_layer(self):
        """The layer the user right-clicked (QGIS makes it current before showing the menu)."""
        layer = self.iface.activeLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def compress_current_layer(self, *_):
        return self.open_dialog(self.current_raster_layer())

    def open_dialog(self, layer=None):
        from .gui.dialog import CompressDialog

        dialog = CompressDialog(self.iface, layer)
        self._keep(dialog)
        dialog.show()
        dialog.raise_()
        return dialog

    def show_diagnostics(self, *_):
        from .gui.diagnostics import DiagnosticsDialog

        dialog = DiagnosticsDialog(self.iface.mainWindow())
        self._keep(dialog)
        dialog.show()
        return dialog

    def _keep(self, dialog):
        """Dialogs delete themselves when closed (a running job lives on without its dialog)."""
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        self.dialogs = self._open_dialogs() + [dialog]

    def _open_dialogs(self):
        return [d for d in self.dialogs if not sip.isdeleted(d)]
