"""The QGIS plugin class: registers the Processing provider and the GUI entries, and removes them on unload.

GUI entries: Compress (layer context menu on hyperspectral layers, Raster menu, toolbar), Decompress (Raster menu,
toolbar), the spectrum inspector (Raster menu, toolbar), Diagnostics, and .ehc files opening like rasters (drop
on the map or layer panel, Layer ▸ Add Layer, the Browser panel).
"""
from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsProject, QgsRasterLayer
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import dependencies
from .paths import resource_path
from .processing.provider import EnmapCompressProvider
from .processing.styling import ROLE_PROPERTY

MENU = '&EnMAP Compress'
LAYER_ACTION_TEXT = 'Compress with EnMAP Compress…'
MIN_BANDS = 50  # the context action is offered on layers that look hyperspectral


def looks_hyperspectral(layer):
    """A raster with many bands that is not one of the plugin's own error layers."""
    return (isinstance(layer, QgsRasterLayer) and layer.bandCount() >= MIN_BANDS
            and layer.customProperty(ROLE_PROPERTY) != 'error')


class EnmapCompressPlugin:
    def __init__(self, iface):
        self.iface = iface
        dependencies.configure(dependencies.install_folder(QgsApplication.qgisSettingsDirPath()))
        self.provider = None
        self.actions = {}  # name -> QAction
        self.layer_action = None
        self.dialogs = []  # open dialogs, closed on unload
        self.opener = self.drop_handler = self.item_provider = None
        self.spectrum_dock = self.spectrum_tool = None

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = EnmapCompressProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API name)
        from .gui.opener import EhcDataItemProvider, EhcDropHandler, EhcOpener

        self.initProcessing()
        if self.layer_action is not None:
            return
        window = self.iface.mainWindow()
        self.layer_action = QAction(QIcon(resource_path('compress.svg')), LAYER_ACTION_TEXT, window)
        self.layer_action.triggered.connect(self.compress_current_layer)
        self.iface.addCustomActionForLayerType(self.layer_action, '', QgsMapLayerType.RasterLayer, False)
        project = QgsProject.instance()
        project.layersAdded.connect(self._offer_layer_action)
        self._offer_layer_action(project.mapLayers().values())
        self.opener = EhcOpener(self.iface)
        entries = (('dialog', 'icon.svg', 'Compress / evaluate EnMAP image…', self.compress_current_layer, True),
                   ('decompress', 'decompress.svg', 'Decompress…', self.show_decompress, True),
                   ('spectrum', 'evaluate.svg', 'Spectrum inspector', self.toggle_spectrum_tool, True),
                   ('diagnostics', 'diagnostics.svg', 'Diagnostics…', self.show_diagnostics, False))
        for name, icon, text, slot, toolbar in entries:
            action = QAction(QIcon(resource_path(icon)), text, window)
            action.triggered.connect(slot)
            self.iface.addPluginToRasterMenu(MENU, action)
            if toolbar:
                self.iface.addToolBarIcon(action)
            self.actions[name] = action
        self.actions['spectrum'].setCheckable(True)
        self.actions['open'] = QAction(QIcon(resource_path('decompress.svg')), 'Add EnMAP Compress Image (.ehc)…',
                                       window)
        self.actions['open'].triggered.connect(self.opener.choose_and_open)
        self.iface.insertAddLayerAction(self.actions['open'])
        self.drop_handler = EhcDropHandler(self.opener)
        self.iface.registerCustomDropHandler(self.drop_handler)
        self.item_provider = EhcDataItemProvider(self.opener)
        QgsApplication.dataItemProviderRegistry().addProvider(self.item_provider)
        self._warn_missing_dependencies()

    def unload(self):
        from .gui import job

        job.cancel_all()
        if self.opener is not None:
            self.opener.cancel_all()
        for dialog in self._open_dialogs():
            dialog.close()
            dialog.deleteLater()
        self.dialogs = []
        if self.layer_action is not None:
            self._unload_gui()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def _unload_gui(self):
        QgsProject.instance().layersAdded.disconnect(self._offer_layer_action)
        self.iface.removeCustomActionForLayerType(self.layer_action)
        self.iface.removeAddLayerAction(self.actions['open'])
        for name, action in self.actions.items():
            if name != 'open':
                self.iface.removePluginRasterMenu(MENU, action)
                self.iface.removeToolBarIcon(action)
        self.iface.unregisterCustomDropHandler(self.drop_handler)
        QgsApplication.dataItemProviderRegistry().removeProvider(self.item_provider)  # deletes it
        if self.spectrum_tool is not None and not sip.isdeleted(self.spectrum_tool):  # the canvas owns it
            self.iface.mapCanvas().unsetMapTool(self.spectrum_tool)
        if self.spectrum_dock is not None and not sip.isdeleted(self.spectrum_dock):
            self.iface.removeDockWidget(self.spectrum_dock)
            self.spectrum_dock.deleteLater()
        for action in (self.layer_action, *self.actions.values()):
            action.deleteLater()
        self.layer_action, self.actions = None, {}
        self.drop_handler = self.item_provider = self.spectrum_dock = self.spectrum_tool = None

    # --- actions ------------------------------------------------------------------------------------------------

    def _offer_layer_action(self, layers):
        """The context action on each hyperspectral layer as it is added (not on 3-band or error layers)."""
        for layer in layers:
            if looks_hyperspectral(layer):
                self.iface.addCustomActionForLayer(self.layer_action, layer)

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

    def show_decompress(self, *_):
        """The Processing dialog of Decompress: the output loads in true colour through its post-processor."""
        import processing

        dialog = processing.createAlgorithmDialog('enmapcompress:decompress')
        if dialog is not None:
            self._keep(dialog)
            dialog.show()
        return dialog

    def toggle_spectrum_tool(self, checked=True):
        """The spectrum inspector's map tool and dock (the Raster menu / toolbar toggle)."""
        from .gui.spectrum import SpectrumDock, SpectrumTool

        canvas = self.iface.mapCanvas()
        if self.spectrum_dock is None:
            self.spectrum_dock = SpectrumDock(QgsProject.instance(), self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.spectrum_dock)
            self.spectrum_tool = SpectrumTool(canvas, self.spectrum_dock)
            self.spectrum_tool.setAction(self.actions['spectrum'])
        if checked:
            self.spectrum_dock.choose_default_pair()
            self.spectrum_dock.show()
            canvas.setMapTool(self.spectrum_tool)
        else:
            canvas.unsetMapTool(self.spectrum_tool)
        return self.spectrum_tool

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
